//! The user manager's rules: what a new account looks like, as Django's
//! `create_user` and `create_superuser` decide it.

use crate::{Email, Password};

/// The three flags the permission policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserFlags {
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A validated account about to be stored (the password still in clear: the
/// caller hashes it).
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub flags: UserFlags,
}

impl NewAccount {
    /// `create_user`: active, neither staff nor superuser.
    pub fn user(email: Email, password: Password) -> Self {
        NewAccount {
            email,
            password,
            flags: UserFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
        }
    }

    /// `create_superuser`: active, staff and superuser, all three forced on
    /// (Django refuses a superuser without `is_staff` or `is_superuser`).
    pub fn superuser(email: Email, password: Password) -> Self {
        NewAccount {
            email,
            password,
            flags: UserFlags {
                is_active: true,
                is_staff: true,
                is_superuser: true,
            },
        }
    }

    /// An account created by staff through the viewset, with the flags they
    /// asked for (the permission policy has already allowed them).
    pub fn with_flags(email: Email, password: Password, flags: UserFlags) -> Self {
        NewAccount {
            email,
            password,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> (Email, Password) {
        (
            Email::parse("a@example.com").unwrap(),
            Password::parse("long-enough-phrase", None).unwrap(),
        )
    }

    #[test]
    fn create_user_is_active_and_unprivileged() {
        let (email, password) = parts();
        let account = NewAccount::user(email, password);
        assert_eq!(
            account.flags,
            UserFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false
            }
        );
    }

    #[test]
    fn create_superuser_sets_all_three_flags() {
        let (email, password) = parts();
        let account = NewAccount::superuser(email, password);
        assert_eq!(
            account.flags,
            UserFlags {
                is_active: true,
                is_staff: true,
                is_superuser: true
            }
        );
    }
}
