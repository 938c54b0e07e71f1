//! The blacklist and session rules: what presenting a refresh token does,
//! and whether a token may still speak for its user, decided from what
//! storage knows about them.

use latchkey_domain::SessionState;

use crate::Claims;

/// What storage holds about a presented refresh token (instants in Unix
/// milliseconds: the reuse interval is not rounded to whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    pub blacklisted: bool,
    /// Its session was ended (logout, revocation, reuse detection).
    pub session_ended: bool,
    /// The token this one was rotated into, and when (Unix milliseconds).
    pub replaced: Option<(String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub rotate: bool,
    pub blacklist_after_rotation: bool,
    /// Seconds during which a rotated-away token still yields its replacement.
    pub reuse_interval: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            rotate: true,
            blacklist_after_rotation: true,
            reuse_interval: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Issue a new refresh token in the same session (and blacklist the old
    /// one when the policy says so).
    Rotate,
    /// Issue an access token only (rotation is off).
    AccessOnly,
    /// A concurrent refresh already rotated it moments ago: hand back that
    /// replacement with a fresh access token.
    ReturnReplacement(String),
    /// An old, rotated-away token came back: assume theft, revoke the session.
    RevokeSession,
    /// Blacklisted (logged out or revoked).
    Blacklisted,
    /// Never issued here (or deleted with its user): refuse.
    Unknown,
}

/// `now_ms` is the current instant in Unix milliseconds.
pub fn decide_refresh(
    stored: Option<&StoredRefresh>,
    policy: &RefreshPolicy,
    now_ms: i64,
) -> RefreshDecision {
    let Some(stored) = stored else {
        return RefreshDecision::Unknown;
    };
    if stored.session_ended {
        return RefreshDecision::Blacklisted;
    }
    if let Some((replacement, replaced_at)) = &stored.replaced
        && policy.blacklist_after_rotation
    {
        return if now_ms.saturating_sub(*replaced_at) <= policy.reuse_interval.saturating_mul(1000)
        {
            RefreshDecision::ReturnReplacement(replacement.clone())
        } else {
            RefreshDecision::RevokeSession
        };
    }
    if stored.blacklisted {
        return RefreshDecision::Blacklisted;
    }
    if policy.rotate {
        RefreshDecision::Rotate
    } else {
        RefreshDecision::AccessOnly
    }
}

/// A token is refused when issued strictly before its user's
/// `tokens_valid_after` (both whole seconds), so tokens issued in the same
/// second as a revocation work at once.
pub fn issued_before_revocation(iat: i64, tokens_valid_after: i64) -> bool {
    iat < tokens_valid_after
}

/// The user a token names, as storage holds them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub is_active: bool,
    /// `tokens_valid_after`, Unix seconds.
    pub tokens_valid_after: i64,
}

/// Which checks a use of a token makes, and in which order: the one rule
/// "may this token still speak", as every endpoint that takes a token
/// applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// An access or sliding token on any authenticated request: the user,
    /// then a deactivation, then a revocation and the session it names.
    Request,
    /// A refresh token at `POST /auth/refresh/`: the user, a deactivation,
    /// a revocation. Its session and the blacklist are [`decide_refresh`]'s,
    /// under the session's lock.
    Refresh,
    /// A sliding token at `POST /auth/sliding/refresh/`: as `Refresh`, and
    /// the session it names must be live.
    Slide,
    /// Any token at `POST /auth/verify/`: as `Slide`, except that a token
    /// issued before its user's revocation is told as revoked even when the
    /// user was deactivated since (a deactivation through the API revokes
    /// too).
    Verify,
}

/// Why a token may no longer speak. Each caller answers it in its own words
/// (the per-request check in simplejwt's access-token terms, the token
/// endpoints in theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such user (any more).
    NoUser,
    /// The user was deactivated.
    Inactive,
    /// The token predates the user's `tokens_valid_after`.
    Revoked,
    /// The token names a session that was never this user's.
    UnknownSession,
    /// The token's session was ended.
    EndedSession,
}

/// Whether a verified token (`claims`) may still speak for `holder`, the
/// user it names, in `session`, the session it names as storage found it.
pub fn check_holder(
    holder: Option<Holder>,
    session: SessionState,
    claims: &Claims,
    strictness: Strictness,
) -> Result<(), Refusal> {
    let holder = holder.ok_or(Refusal::NoUser)?;
    let revoked = issued_before_revocation(claims.iat, holder.tokens_valid_after);
    match (holder.is_active, revoked, strictness) {
        (false, true, Strictness::Verify) => return Err(Refusal::Revoked),
        (false, _, _) => return Err(Refusal::Inactive),
        (true, true, _) => return Err(Refusal::Revoked),
        (true, false, _) => {}
    }
    match (session, strictness) {
        (_, Strictness::Refresh) => Ok(()),
        (SessionState::NotNamed | SessionState::Live, _) => Ok(()),
        (SessionState::Unknown, _) => Err(Refusal::UnknownSession),
        (SessionState::Ended, _) => Err(Refusal::EndedSession),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> StoredRefresh {
        StoredRefresh {
            blacklisted: false,
            session_ended: false,
            replaced: None,
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(
            decide_refresh(Some(&fresh()), &RefreshPolicy::default(), 0),
            RefreshDecision::Rotate
        );
    }

    #[test]
    fn without_rotation_only_an_access_token_is_issued() {
        let policy = RefreshPolicy {
            rotate: false,
            ..RefreshPolicy::default()
        };
        assert_eq!(
            decide_refresh(Some(&fresh()), &policy, 0),
            RefreshDecision::AccessOnly
        );
    }

    #[test]
    fn reuse_inside_the_interval_returns_the_replacement() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: false,
            replaced: Some(("next".into(), 100_000)),
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 110_000),
            RefreshDecision::ReturnReplacement("next".into())
        );
        // Not rounded: 10.001 s after the rotation is past a 10 s interval.
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 110_001),
            RefreshDecision::RevokeSession
        );
    }

    #[test]
    fn blacklisted_and_unknown_tokens_are_refused() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: false,
            replaced: None,
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 0),
            RefreshDecision::Blacklisted
        );
        assert_eq!(
            decide_refresh(None, &RefreshPolicy::default(), 0),
            RefreshDecision::Unknown
        );
    }

    #[test]
    fn a_token_of_an_ended_session_is_refused_even_inside_the_reuse_interval() {
        let stored = StoredRefresh {
            blacklisted: true,
            session_ended: true,
            replaced: Some(("next".into(), 100_000)),
        };
        assert_eq!(
            decide_refresh(Some(&stored), &RefreshPolicy::default(), 101_000),
            RefreshDecision::Blacklisted
        );
    }

    #[test]
    fn same_second_tokens_survive_a_revocation() {
        assert!(!issued_before_revocation(100, 100));
        assert!(issued_before_revocation(99, 100));
    }

    const STRICTNESSES: [Strictness; 4] = [
        Strictness::Request,
        Strictness::Refresh,
        Strictness::Slide,
        Strictness::Verify,
    ];

    const SESSIONS: [SessionState; 4] = [
        SessionState::NotNamed,
        SessionState::Unknown,
        SessionState::Ended,
        SessionState::Live,
    ];

    fn issued_at(iat: i64) -> Claims {
        Claims {
            token_type: crate::TokenType::Access,
            exp: iat + 300,
            iat,
            jti: "j".into(),
            user_id: 1,
            sid: Some("s".into()),
            refresh_exp: None,
            assurance: latchkey_domain::Assurance::password(),
        }
    }

    fn holder(is_active: bool, tokens_valid_after: i64) -> Option<Holder> {
        Some(Holder {
            is_active,
            tokens_valid_after,
        })
    }

    /// The whole table: every user standing × session × strictness.
    #[test]
    fn every_case_of_the_holder_rule() {
        let claims = issued_at(100);
        for strictness in STRICTNESSES {
            for session in SESSIONS {
                let check = |user| check_holder(user, session, &claims, strictness);
                assert_eq!(
                    check(None),
                    Err(Refusal::NoUser),
                    "{strictness:?} {session:?}"
                );
                // Deactivated: told as such, except at verify for a token
                // that a revocation also covers.
                assert_eq!(check(holder(false, 0)), Err(Refusal::Inactive));
                assert_eq!(check(holder(false, 100)), Err(Refusal::Inactive));
                let inactive_and_revoked = if strictness == Strictness::Verify {
                    Refusal::Revoked
                } else {
                    Refusal::Inactive
                };
                assert_eq!(check(holder(false, 101)), Err(inactive_and_revoked));
                // Revoked after the token was issued, whatever the session.
                assert_eq!(check(holder(true, 101)), Err(Refusal::Revoked));
                // Same second as the revocation: still speaks, if the
                // session lets it.
                let by_session = match (strictness, session) {
                    (Strictness::Refresh, _) => Ok(()),
                    (_, SessionState::NotNamed | SessionState::Live) => Ok(()),
                    (_, SessionState::Unknown) => Err(Refusal::UnknownSession),
                    (_, SessionState::Ended) => Err(Refusal::EndedSession),
                };
                assert_eq!(
                    check(holder(true, 100)),
                    by_session,
                    "{strictness:?} {session:?}"
                );
                assert_eq!(check(holder(true, 0)), by_session);
            }
        }
    }

    #[test]
    fn a_refresh_leaves_its_session_to_decide_refresh() {
        let claims = issued_at(100);
        for session in SESSIONS {
            assert_eq!(
                check_holder(holder(true, 0), session, &claims, Strictness::Refresh),
                Ok(())
            );
        }
    }
}
