//! The `aal2_required` gate: what changes how an account is protected
//! (its second factor, its password, its email; later a passkey or a
//! linked provider) needs a session that passed two factors, once the
//! account has one.

use latchkey_auth::Claims;
use latchkey_domain::Aal;
use latchkey_persistence::User;

use super::codes;
use crate::error::ApiError;
use crate::state::State;

/// 403 `aal2_required` when the user has a second factor (`enrolled`) and
/// the request's session is below `aal` 2.
pub fn require_aal2_when_enrolled(claims: &Claims, enrolled: bool) -> Result<(), ApiError> {
    if enrolled && claims.assurance.aal < Aal::Two {
        Err(ApiError::aal2_required())
    } else {
        Ok(())
    }
}

/// The gate for a route that does not otherwise read the second factor:
/// one read only when the session is below `aal` 2.
pub async fn require_aal2(state: &State, user: &User, claims: &Claims) -> Result<(), ApiError> {
    if claims.assurance.aal >= Aal::Two {
        return Ok(());
    }
    let user_id = user.id;
    let enrolled = state
        .with_conn(move |conn, _| codes::enabled_device(conn, user_id))
        .await?
        .is_some();
    require_aal2_when_enrolled(claims, enrolled)
}
