//! How a user proved who they are: the methods a session was authenticated
//! with (the tokens' `amr`), the assurance level they add up to (`aal`), and
//! what a login still needs once its first factor named the user.

/// A way of proving who one is, as the `amr` claim names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Password,
    Totp,
    RecoveryCode,
    Passkey,
    Federated,
}

impl Method {
    pub const fn amr(self) -> &'static str {
        match self {
            Method::Password => "pwd",
            Method::Totp => "otp",
            Method::RecoveryCode => "rec",
            Method::Passkey => "hwk",
            Method::Federated => "fed",
        }
    }

    pub fn from_amr(raw: &str) -> Option<Self> {
        [
            Method::Password,
            Method::Totp,
            Method::RecoveryCode,
            Method::Passkey,
            Method::Federated,
        ]
        .into_iter()
        .find(|method| method.amr() == raw)
    }
}

/// Authenticator assurance level (NIST SP 800-63B's AAL1 and AAL2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aal {
    One,
    Two,
}

impl Aal {
    pub const fn level(self) -> u8 {
        match self {
            Aal::One => 1,
            Aal::Two => 2,
        }
    }

    pub fn from_level(level: i64) -> Option<Self> {
        match level {
            1 => Some(Aal::One),
            2 => Some(Aal::Two),
            _ => None,
        }
    }
}

/// The methods a session was authenticated with, in order, and the level
/// they reach. Every token of the session carries both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Assurance {
    pub amr: Vec<Method>,
    pub aal: Aal,
}

impl Assurance {
    /// A session begun with a password alone: a password login, register,
    /// and every session that began before latchkey kept `amr` (Django's
    /// included: a refresh token was only ever issued after a password).
    pub fn password() -> Self {
        Assurance {
            amr: vec![Method::Password],
            aal: Aal::One,
        }
    }

    /// The level `amr` reaches: two different factors, or a passkey that
    /// verified its user (a possession and a PIN or biometric in one).
    pub fn of(amr: Vec<Method>, passkey_verified_user: bool) -> Self {
        let second = amr
            .iter()
            .any(|m| matches!(m, Method::Totp | Method::RecoveryCode | Method::Passkey));
        let first = amr
            .iter()
            .any(|m| matches!(m, Method::Password | Method::Federated));
        let aal = if (first && second) || passkey_verified_user {
            Aal::Two
        } else {
            Aal::One
        };
        Assurance { amr, aal }
    }

    /// This assurance with one more method, as after a second factor.
    pub fn and(&self, method: Method, passkey_verified_user: bool) -> Self {
        let mut amr = self.amr.clone();
        amr.push(method);
        let next = Assurance::of(amr, passkey_verified_user);
        Assurance {
            aal: next.aal.max(self.aal),
            ..next
        }
    }
}

/// A second factor a user has enrolled, as `mfa_required` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecondFactor {
    Totp,
    RecoveryCode,
    Passkey,
}

impl SecondFactor {
    pub const fn name(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::RecoveryCode => "recovery_code",
            SecondFactor::Passkey => "passkey",
        }
    }
}

/// What a login needs after its first factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start the session.
    Done,
    /// Ask for one of these second factors first.
    SecondFactor(Vec<SecondFactor>),
}

/// The login's next step: a user with a second factor enrolled needs one
/// unless what they presented already reaches `aal` 2 (a passkey that
/// verified them, or a second factor already given).
pub fn next_step(enrolled: &[SecondFactor], presented: &Assurance) -> Step {
    if enrolled.is_empty() || presented.aal >= Aal::Two {
        Step::Done
    } else {
        Step::SecondFactor(enrolled.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_names_read_back() {
        for method in [
            Method::Password,
            Method::Totp,
            Method::RecoveryCode,
            Method::Passkey,
            Method::Federated,
        ] {
            assert_eq!(Method::from_amr(method.amr()), Some(method));
        }
        assert_eq!(Method::from_amr("mfa"), None);
        assert_eq!(Method::from_amr("PWD"), None);
    }

    #[test]
    fn one_factor_is_aal1_and_two_are_aal2() {
        assert_eq!(Assurance::password().aal, Aal::One);
        assert_eq!(Assurance::of(vec![Method::Federated], false).aal, Aal::One);
        assert_eq!(Assurance::of(vec![Method::Passkey], false).aal, Aal::One);
        assert_eq!(Assurance::of(vec![Method::Passkey], true).aal, Aal::Two);
        let otp = Assurance::password().and(Method::Totp, false);
        assert_eq!(otp.amr, vec![Method::Password, Method::Totp]);
        assert_eq!(otp.aal, Aal::Two);
        let rec = Assurance::of(vec![Method::Federated], false).and(Method::RecoveryCode, false);
        assert_eq!(rec.aal, Aal::Two);
        // Two knowledge-like first factors are still one factor.
        assert_eq!(
            Assurance::of(vec![Method::Password, Method::Federated], false).aal,
            Aal::One
        );
    }

    #[test]
    fn levels_read_back_and_nothing_else_does() {
        assert_eq!(Aal::from_level(1), Some(Aal::One));
        assert_eq!(Aal::from_level(2), Some(Aal::Two));
        assert_eq!(Aal::from_level(0), None);
        assert_eq!(Aal::from_level(3), None);
        assert_eq!(Aal::Two.level(), 2);
    }

    #[test]
    fn a_second_factor_is_asked_only_of_who_enrolled_one_and_lacks_it() {
        let pwd = Assurance::password();
        assert_eq!(next_step(&[], &pwd), Step::Done);
        assert_eq!(
            next_step(&[SecondFactor::Totp, SecondFactor::RecoveryCode], &pwd),
            Step::SecondFactor(vec![SecondFactor::Totp, SecondFactor::RecoveryCode])
        );
        let passkey = Assurance::of(vec![Method::Passkey], true);
        assert_eq!(next_step(&[SecondFactor::Totp], &passkey), Step::Done);
    }
}
