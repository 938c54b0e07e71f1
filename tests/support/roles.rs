//! Every role of the user viewset, on one server.

use crate::app::TestApp;
use crate::runner::Ctx;
use crate::user::TestUser;

/// The 403 body of the viewset's permission rules.
pub const DENIED: &str = "You do not have permission to perform this action.";

/// Two plain users, a staff user and a superuser (registered in that
/// order, so their ids ascend).
pub struct Roles {
    pub app: TestApp,
    /// `user@example.com`, in the session register started.
    pub user: TestUser,
    /// `other@example.com`, in the session register started.
    pub other: TestUser,
    /// `staff@example.com`, logged in after the flag was set.
    pub staff: TestUser,
    /// `super@example.com`, logged in after the flags were set.
    pub superuser: TestUser,
}

/// A server with every role of [`Roles`].
pub async fn roles(ctx: &mut Ctx) -> Roles {
    let app = ctx.spawn().await;
    let user = app.user("user@example.com").await;
    let other = app.user("other@example.com").await;
    let staff = app.staff("staff@example.com").await;
    let superuser = app.superuser("super@example.com").await;
    Roles {
        app,
        user,
        other,
        staff,
        superuser,
    }
}
