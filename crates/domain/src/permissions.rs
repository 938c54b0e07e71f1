//! Who may do what to whom through the user viewset (`/list/`).
//!
//! Reading is open to every authenticated user; writing follows the
//! contract's table: self or staff, staff-only flags, `is_superuser` only by a
//! superuser, and a superuser's account only touched by a superuser.

use crate::UserFlags;

/// The authenticated user making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub flags: UserFlags,
}

/// The account being acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub id: i64,
    pub flags: UserFlags,
}

/// The flags a request would really change: a requested value equal to the
/// current one is not a change, so it is `None` here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagChange {
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
}

impl FlagChange {
    /// Compares what was asked for with what the target has now.
    pub fn between(
        current: UserFlags,
        is_active: Option<bool>,
        is_staff: Option<bool>,
        is_superuser: Option<bool>,
    ) -> Self {
        let differs = |requested: Option<bool>, now: bool| requested.filter(|v| *v != now);
        FlagChange {
            is_active: differs(is_active, current.is_active),
            is_staff: differs(is_staff, current.is_staff),
            is_superuser: differs(is_superuser, current.is_superuser),
        }
    }

    /// The flags a new account would get beyond `create_user`'s defaults.
    pub fn for_new_account(requested: UserFlags) -> Self {
        Self::between(
            UserFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
            Some(requested.is_active),
            Some(requested.is_staff),
            Some(requested.is_superuser),
        )
    }
}

/// The policy said no: the HTTP layer answers 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied;

impl Actor {
    /// Staff rights. A superuser has them even without `is_staff`, as a
    /// superuser can grant it to themself anyway.
    fn is_staff(&self) -> bool {
        self.flags.is_staff || self.flags.is_superuser
    }

    fn is_superuser(&self) -> bool {
        self.flags.is_superuser
    }
}

fn allow_if(condition: bool) -> Result<(), Denied> {
    if condition { Ok(()) } else { Err(Denied) }
}

/// `GET /list/` and `GET /list/{id}/`: any authenticated user.
pub fn can_read(_actor: &Actor) -> Result<(), Denied> {
    Ok(())
}

/// `POST /list/`: staff only, and `is_superuser` only by a superuser.
pub fn can_create(actor: &Actor, change: &FlagChange) -> Result<(), Denied> {
    allow_if(actor.is_staff())?;
    allow_if(change.is_superuser.is_none() || actor.is_superuser())
}

/// `PUT`/`PATCH /list/{id}/`.
pub fn can_update(actor: &Actor, target: &Target, change: &FlagChange) -> Result<(), Denied> {
    let is_self = actor.id == target.id;
    allow_if(is_self || actor.is_staff())?;
    allow_if(is_self || !target.flags.is_superuser || actor.is_superuser())?;
    allow_if((change.is_active.is_none() && change.is_staff.is_none()) || actor.is_staff())?;
    allow_if(change.is_superuser.is_none() || actor.is_superuser())
}

/// `DELETE /list/{id}/`: staff, and a superuser only by a superuser.
pub fn can_delete(actor: &Actor, target: &Target) -> Result<(), Denied> {
    allow_if(actor.is_staff())?;
    allow_if(!target.flags.is_superuser || actor.is_superuser())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: UserFlags = UserFlags {
        is_active: true,
        is_staff: false,
        is_superuser: false,
    };
    const STAFF: UserFlags = UserFlags {
        is_active: true,
        is_staff: true,
        is_superuser: false,
    };
    const SUPER: UserFlags = UserFlags {
        is_active: true,
        is_staff: true,
        is_superuser: true,
    };

    fn actor(id: i64, flags: UserFlags) -> Actor {
        Actor { id, flags }
    }
    fn target(id: i64, flags: UserFlags) -> Target {
        Target { id, flags }
    }
    fn no_change() -> FlagChange {
        FlagChange::default()
    }

    #[test]
    fn everyone_authenticated_may_read() {
        for flags in [USER, STAFF, SUPER] {
            assert_eq!(can_read(&actor(1, flags)), Ok(()));
        }
    }

    #[test]
    fn only_staff_may_create() {
        assert_eq!(can_create(&actor(1, USER), &no_change()), Err(Denied));
        assert_eq!(can_create(&actor(1, STAFF), &no_change()), Ok(()));
        assert_eq!(can_create(&actor(1, SUPER), &no_change()), Ok(()));
    }

    #[test]
    fn only_a_superuser_may_create_a_superuser() {
        let make_super = FlagChange::for_new_account(SUPER);
        assert_eq!(can_create(&actor(1, STAFF), &make_super), Err(Denied));
        assert_eq!(can_create(&actor(1, SUPER), &make_super), Ok(()));
        let make_staff = FlagChange::for_new_account(STAFF);
        assert_eq!(can_create(&actor(1, STAFF), &make_staff), Ok(()));
    }

    #[test]
    fn a_user_may_update_themself_but_not_another_user() {
        assert_eq!(
            can_update(&actor(1, USER), &target(1, USER), &no_change()),
            Ok(())
        );
        assert_eq!(
            can_update(&actor(1, USER), &target(2, USER), &no_change()),
            Err(Denied)
        );
        assert_eq!(
            can_update(&actor(1, USER), &target(2, STAFF), &no_change()),
            Err(Denied)
        );
    }

    #[test]
    fn a_user_may_not_change_their_own_flags() {
        let me = target(1, USER);
        for change in [
            FlagChange::between(USER, Some(false), None, None),
            FlagChange::between(USER, None, Some(true), None),
            FlagChange::between(USER, None, None, Some(true)),
        ] {
            assert_eq!(
                can_update(&actor(1, USER), &me, &change),
                Err(Denied),
                "{change:?}"
            );
        }
    }

    #[test]
    fn a_value_equal_to_the_current_one_is_not_a_change() {
        let same = FlagChange::between(USER, Some(true), Some(false), Some(false));
        assert_eq!(same, no_change());
        assert_eq!(can_update(&actor(1, USER), &target(1, USER), &same), Ok(()));
    }

    #[test]
    fn staff_may_update_users_and_their_flags_but_not_superuser() {
        let change = FlagChange::between(USER, Some(false), Some(true), None);
        assert_eq!(
            can_update(&actor(1, STAFF), &target(2, USER), &change),
            Ok(())
        );
        let promote = FlagChange::between(USER, None, None, Some(true));
        assert_eq!(
            can_update(&actor(1, STAFF), &target(2, USER), &promote),
            Err(Denied)
        );
    }

    #[test]
    fn staff_may_not_touch_a_superuser() {
        assert_eq!(
            can_update(&actor(1, STAFF), &target(2, SUPER), &no_change()),
            Err(Denied)
        );
        assert_eq!(can_delete(&actor(1, STAFF), &target(2, SUPER)), Err(Denied));
    }

    #[test]
    fn a_superuser_may_update_and_delete_anyone() {
        let demote = FlagChange::between(SUPER, None, None, Some(false));
        assert_eq!(
            can_update(&actor(1, SUPER), &target(2, SUPER), &demote),
            Ok(())
        );
        assert_eq!(
            can_update(&actor(1, SUPER), &target(1, SUPER), &demote),
            Ok(())
        );
        assert_eq!(can_delete(&actor(1, SUPER), &target(2, SUPER)), Ok(()));
        assert_eq!(can_delete(&actor(1, SUPER), &target(2, USER)), Ok(()));
    }

    #[test]
    fn only_staff_may_delete() {
        assert_eq!(can_delete(&actor(1, USER), &target(2, USER)), Err(Denied));
        assert_eq!(can_delete(&actor(1, USER), &target(1, USER)), Err(Denied));
        assert_eq!(can_delete(&actor(1, STAFF), &target(2, USER)), Ok(()));
        assert_eq!(can_delete(&actor(1, STAFF), &target(3, STAFF)), Ok(()));
    }

    #[test]
    fn a_superuser_without_is_staff_still_has_staff_rights() {
        let bare_super = UserFlags {
            is_active: true,
            is_staff: false,
            is_superuser: true,
        };
        assert_eq!(can_create(&actor(1, bare_super), &no_change()), Ok(()));
    }
}
