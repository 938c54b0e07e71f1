//! Revoking sessions: logout everywhere, password change, sliding tokens.

use chrono::{NaiveDateTime, Timelike};
use latchkey_auth::{Claims, IssuedToken, TokenType};
use latchkey_domain::{Email, Password};
use latchkey_persistence::{DbConnection, OutstandingToken, User, UserChanges, db_now};

use super::accounts::{password_messages, verify_own_password};
use super::tokens::{TokenPair, start_session, token_user};
use crate::authn::CurrentUser;
use crate::body::Fields;
use crate::error::{ApiError, FieldErrors};
use crate::state::State;
use crate::state::unix_now;

pub const WRONG_OLD_PASSWORD: &str =
    "Your old password was entered incorrectly. Please enter it again.";

/// `tokens_valid_after` is kept in whole seconds, like `iat`.
pub fn revocation_instant(now: NaiveDateTime) -> NaiveDateTime {
    now.with_nanosecond(0).unwrap_or(now)
}

/// Moves the user's `tokens_valid_after` to now and blacklists every refresh
/// token they hold: every session ends, access tokens included.
pub fn revoke_everything(
    conn: &mut DbConnection,
    user_id: i64,
    extra: UserChanges,
) -> Result<User, ApiError> {
    let now = db_now();
    let changes = UserChanges {
        tokens_valid_after: Some(revocation_instant(now)),
        ..extra
    };
    let user = User::update(conn, user_id, &changes)?;
    OutstandingToken::blacklist_user(conn, user_id, now)?;
    Ok(user)
}

/// `DELETE /auth/sessions/`.
pub async fn logout_everywhere(state: &State, current: &CurrentUser) -> Result<(), ApiError> {
    let user_id = current.user.id;
    state
        .with_conn(move |conn| revoke_everything(conn, user_id, UserChanges::default()).map(|_| ()))
        .await
}

/// `POST /auth/password/`: checks the old password, validates and stores
/// the new one, revokes every session, and starts a new one for the caller.
pub async fn change_password(
    state: &State,
    current: &CurrentUser,
    fields: Fields,
) -> Result<(User, TokenPair), ApiError> {
    let mut errors = FieldErrors::default();
    let old = fields.required_string("old_password", &mut errors);
    let new = fields.required_string("new_password", &mut errors);
    errors.into_result()?;
    let (Some(old), Some(new)) = (old, new) else {
        return Err(ApiError::Internal(
            "passwords parsed without errors but missing".into(),
        ));
    };
    verify_own_password(
        state,
        &current.user,
        old,
        "old_password",
        WRONG_OLD_PASSWORD,
    )
    .await?;
    let email = Email::parse(&current.user.email).ok();
    let password = Password::parse(&new, email.as_ref()).map_err(|failures| {
        let mut errors = FieldErrors::default();
        for message in password_messages(&failures) {
            errors.add("new_password", message);
        }
        ApiError::Fields(errors)
    })?;
    let new_hash = state
        .hashing
        .run(move |hasher| hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let app = state.clone();
    let user_id = current.user.id;
    state
        .with_conn(move |conn| {
            let user = revoke_everything(
                conn,
                user_id,
                UserChanges {
                    password_hash: Some(new_hash),
                    updated_at: Some(db_now()),
                    ..UserChanges::default()
                },
            )?;
            let pair = start_session(conn, &app, user_id, unix_now())?;
            Ok((user, pair))
        })
        .await
}

/// `POST /auth/sliding/refresh/`: a new sliding token while `refresh_exp`
/// has not passed, for a user who may still use it.
pub async fn slide(state: &State, claims: Claims) -> Result<IssuedToken, ApiError> {
    let app = state.clone();
    state
        .with_conn(move |conn| {
            token_user(conn, &claims)?;
            Ok(app.codec.slide(&claims, unix_now()))
        })
        .await
}

/// A new sliding token for a user whose credentials were just checked.
pub fn issue_sliding(state: &State, user_id: i64) -> IssuedToken {
    state.codec.issue(TokenType::Sliding, user_id, unix_now())
}
