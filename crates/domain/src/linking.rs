//! Which account a provider's identity signs in to (contract: "Sign in with
//! a provider", "Which account"), as a pure decision over what the provider
//! asserted and what storage holds. The caller applies it in one write
//! transaction in which a unique `(provider, subject)` settles races, so two
//! first logins of one new identity make one user.

/// What the provider asserted about the person, from its verified ID token
/// or userinfo (or GitHub's `/user/emails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asserted {
    /// Whether it gave an email address at all.
    pub has_email: bool,
    /// Whether it vouches for that address (`email_verified` true, or
    /// GitHub's primary verified address).
    pub email_verified: bool,
}

/// A local account, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub id: i64,
    pub email_verified: bool,
}

/// What storage holds for the identity and for its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The user the identity is linked to.
    pub linked: Option<i64>,
    /// The user whose email is the provider's address.
    pub with_email: Option<Local>,
}

/// Where a provider login leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Rule 1: the identity is linked to this user.
    Linked(i64),
    /// Rule 2, a verified local account: link the identity to it (its
    /// password and sessions stay).
    Link(i64),
    /// Rule 2, an unverified local account: whoever registered the address
    /// before its owner loses it — password unusable, second factors and
    /// other identities removed, sessions ended, email verified — and the
    /// identity is linked.
    Reclaim(i64),
    /// Rule 3: the address is taken and the provider does not vouch for it
    /// (409 `account_exists`).
    Exists,
    /// Rule 4: a new user with the address, verified as the provider says.
    Create { email_verified: bool },
    /// Rule 4 under `SOCIAL_SIGNUP=false` (403 `signup_closed`).
    SignupClosed,
    /// No address from the provider and no linked identity (400
    /// `email_missing`).
    EmailMissing,
}

/// The contract's four rules, in order.
pub fn account(asserted: Asserted, known: Known, signup_open: bool) -> Account {
    if let Some(user) = known.linked {
        return Account::Linked(user);
    }
    if !asserted.has_email {
        return Account::EmailMissing;
    }
    match known.with_email {
        Some(local) if asserted.email_verified && local.email_verified => Account::Link(local.id),
        Some(local) if asserted.email_verified => Account::Reclaim(local.id),
        Some(_) => Account::Exists,
        None if signup_open => Account::Create {
            email_verified: asserted.email_verified,
        },
        None => Account::SignupClosed,
    }
}

/// Where a `link=true` callback leads for the signed-in `caller`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTo {
    /// Link the identity to the caller.
    Link,
    /// It is the caller's already: nothing to write.
    AlreadyLinked,
    /// Another user holds it (`identity_taken`).
    Taken,
}

pub fn link_to(linked: Option<i64>, caller: i64) -> LinkTo {
    match linked {
        None => LinkTo::Link,
        Some(user) if user == caller => LinkTo::AlreadyLinked,
        Some(_) => LinkTo::Taken,
    }
}

/// The ways in a user keeps besides the one being removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaysIn {
    pub usable_password: bool,
    pub other_identities: usize,
    pub passkeys: usize,
}

/// Whether a provider may be unlinked: not when it is the user's last way
/// in (400 `last_login_method`).
pub fn may_unlink(left: WaysIn) -> bool {
    left.usable_password || left.other_identities > 0 || left.passkeys > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIED: Asserted = Asserted {
        has_email: true,
        email_verified: true,
    };
    const UNVERIFIED: Asserted = Asserted {
        has_email: true,
        email_verified: false,
    };
    const NO_EMAIL: Asserted = Asserted {
        has_email: false,
        email_verified: false,
    };

    fn known(linked: Option<i64>, with_email: Option<(i64, bool)>) -> Known {
        Known {
            linked,
            with_email: with_email.map(|(id, email_verified)| Local { id, email_verified }),
        }
    }

    #[test]
    fn a_linked_identity_wins_whatever_the_address_says() {
        for asserted in [VERIFIED, UNVERIFIED, NO_EMAIL] {
            for signup in [true, false] {
                assert_eq!(
                    account(asserted, known(Some(7), Some((9, true))), signup),
                    Account::Linked(7)
                );
            }
        }
    }

    #[test]
    fn a_vouched_address_links_a_verified_account_and_reclaims_an_unverified_one() {
        assert_eq!(
            account(VERIFIED, known(None, Some((9, true))), false),
            Account::Link(9)
        );
        assert_eq!(
            account(VERIFIED, known(None, Some((9, false))), false),
            Account::Reclaim(9)
        );
    }

    #[test]
    fn an_address_the_provider_does_not_vouch_for_never_reaches_an_account() {
        for local_verified in [true, false] {
            assert_eq!(
                account(UNVERIFIED, known(None, Some((9, local_verified))), true),
                Account::Exists
            );
        }
    }

    #[test]
    fn a_new_address_makes_a_user_unless_signup_is_closed() {
        assert_eq!(
            account(VERIFIED, known(None, None), true),
            Account::Create {
                email_verified: true
            }
        );
        assert_eq!(
            account(UNVERIFIED, known(None, None), true),
            Account::Create {
                email_verified: false
            }
        );
        assert_eq!(
            account(VERIFIED, known(None, None), false),
            Account::SignupClosed
        );
        assert_eq!(
            account(NO_EMAIL, known(None, None), true),
            Account::EmailMissing
        );
    }

    #[test]
    fn linking_refuses_an_identity_another_user_holds() {
        assert_eq!(link_to(None, 3), LinkTo::Link);
        assert_eq!(link_to(Some(3), 3), LinkTo::AlreadyLinked);
        assert_eq!(link_to(Some(4), 3), LinkTo::Taken);
    }

    #[test]
    fn the_last_way_in_stays() {
        let none = WaysIn {
            usable_password: false,
            other_identities: 0,
            passkeys: 0,
        };
        assert!(!may_unlink(none));
        assert!(may_unlink(WaysIn {
            usable_password: true,
            ..none
        }));
        assert!(may_unlink(WaysIn {
            other_identities: 1,
            ..none
        }));
        assert!(may_unlink(WaysIn {
            passkeys: 1,
            ..none
        }));
    }
}
