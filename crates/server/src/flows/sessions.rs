//! Revoking sessions: logout everywhere, password change, sliding tokens.

use chrono::{NaiveDateTime, Timelike};
use latchkey_auth::{Claims, IssuedToken, Strictness, TokenType};
use latchkey_domain::Assurance;
use latchkey_domain::Email;
use latchkey_persistence::{
    DbConnection, Session, SessionState, User, UserChanges, db_now, write_transaction,
};

use super::login::password::{verify_own_password, wrong_password};
use super::login::still_verified;
use super::tokens::{
    Client, TokenPair, end_session, refused, session_of, session_state, start_session, token_user,
};
use crate::error::ApiError;
use crate::forms::{Body, PasswordChangeForm, TokenForm, new_password};
use crate::state::State;
use crate::state::unix_now;

pub const WRONG_OLD_PASSWORD: &str =
    "Your old password was entered incorrectly. Please enter it again.";

/// `tokens_valid_after` is kept in whole seconds, like `iat`.
pub fn revocation_instant(now: NaiveDateTime) -> NaiveDateTime {
    now.with_nanosecond(0).unwrap_or(now)
}

/// Moves the user's `tokens_valid_after` to now (with `extra` changes) and
/// ends every session they have, in one write transaction: the user's row
/// first, then each session row, the order every revocation takes, so a
/// racing rotation either commits first (and its new token is ended here)
/// or finds its session ended.
pub fn revoke_everything(
    conn: &mut DbConnection,
    user_id: i64,
    extra: UserChanges,
) -> Result<User, ApiError> {
    write_transaction(conn, |conn| {
        let now = db_now();
        let changes = UserChanges {
            tokens_valid_after: Some(revocation_instant(now)),
            ..extra
        };
        let user = User::update(conn, user_id, &changes)?;
        Session::end_all_for_user(conn, user_id, now)?;
        Ok(user)
    })
}

/// Stores a new password hash: every session of the user ends, and
/// `password_changed_at` moves to now, so reset links sent before die
/// (a password change, a reset, `latchkey users set-password`).
pub fn replace_password(
    conn: &mut DbConnection,
    user_id: i64,
    new_hash: String,
) -> Result<User, ApiError> {
    let now = db_now();
    revoke_everything(
        conn,
        user_id,
        UserChanges {
            password_hash: Some(new_hash),
            updated_at: Some(now),
            password_changed_at: Some(now),
            ..UserChanges::default()
        },
    )
}

/// `DELETE /auth/sessions/`.
pub async fn logout_everywhere(state: &State, caller: &User) -> Result<(), ApiError> {
    let user_id = caller.id;
    state
        .with_conn(move |conn, _| {
            revoke_everything(conn, user_id, UserChanges::default()).map(|_| ())
        })
        .await
}

/// A live session as `GET /auth/sessions/` lists it.
pub struct ListedSession {
    pub session: Session,
    /// The session of the token that authenticated the request.
    pub current: bool,
}

/// `GET /auth/sessions/`: the caller's live sessions, most recently used first.
pub async fn list_sessions(
    state: &State,
    caller: &User,
    claims: &Claims,
) -> Result<Vec<ListedSession>, ApiError> {
    let user_id = caller.id;
    let sessions = state
        .with_conn(move |conn, _| Ok(Session::live_for_user(conn, user_id, db_now())?))
        .await?;
    Ok(sessions
        .into_iter()
        .map(|session| ListedSession {
            current: claims.sid.as_deref() == Some(session.id.as_str()),
            session,
        })
        .collect())
}

/// `DELETE /auth/sessions/{id}/`: ends one live session of the caller's.
pub async fn end_one_session(state: &State, caller: &User, id: String) -> Result<(), ApiError> {
    // Not an id latchkey issues (a NUL, which PostgreSQL refuses, among
    // them): no such session, without asking the database.
    if !latchkey_auth::jwt::is_issued_id(&id) {
        return Err(ApiError::NotFound);
    }
    let user_id = caller.id;
    let ended = state
        .with_conn(move |conn, _| end_session(conn, user_id, &id))
        .await?;
    if ended {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `DELETE /auth/`: ends the session of the token presented (a refresh
/// token's chain, else an access or sliding token's `sid`). A token that
/// does not verify changes nothing: logout is idempotent.
pub async fn logout(
    state: &State,
    presented: Option<(String, &[TokenType])>,
) -> Result<(), ApiError> {
    let Some((token, kinds)) = presented else {
        return Ok(());
    };
    let Ok(claims) = state.codec.verify(&token, kinds, unix_now()) else {
        return Ok(());
    };
    state
        .with_conn(move |conn, _| {
            if let Some(sid) = session_of(conn, &claims)? {
                end_session(conn, claims.user_id, &sid)?;
            }
            Ok(())
        })
        .await
}

/// `POST /auth/password/`: checks the old password, validates and stores
/// the new one, revokes every session, and starts a new one for the caller.
pub async fn change_password(
    state: &State,
    caller: &User,
    claims: &Claims,
    body: Body<PasswordChangeForm>,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    super::mfa::gate::require_aal2(state, caller, claims).await?;
    let form = body.parse(&())?;
    verify_own_password(
        state,
        caller,
        form.old_password,
        "old_password",
        WRONG_OLD_PASSWORD,
    )
    .await?;
    let email = Email::parse(&caller.email).ok();
    let password = new_password(
        "new_password",
        &form.new_password,
        email.as_ref(),
        state.hashing.max_password_bytes(),
    )
    .map_err(ApiError::Fields)?;
    let new_hash = state
        .hashing
        .run(move |hasher| hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let checked = caller.clone();
    // The caller's new session keeps how their current one was
    // authenticated (a token from before v3 began with a password).
    let assurance = match &claims.assurance {
        known if !known.amr.is_empty() => known.clone(),
        _ => Assurance::password(),
    };
    state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                // A reset or another change that committed since the check
                // wins: this one must not overwrite it.
                still_verified(conn, &checked, || {
                    wrong_password("old_password", WRONG_OLD_PASSWORD)
                })?;
                let user = replace_password(conn, checked.id, new_hash)?;
                let pair = start_session(conn, app, checked.id, &assurance, unix_now(), &client)?;
                Ok((user, pair))
            })
        })
        .await
}

/// `POST /auth/sliding/refresh/`: a new sliding token while `refresh_exp`
/// has not passed, for a user who may still use it, in a live session.
pub async fn slide(state: &State, body: Body<TokenForm>) -> Result<IssuedToken, ApiError> {
    let TokenForm { token } = body.parse(&())?;
    let now = unix_now();
    let claims = state
        .codec
        .verify_sliding_refresh(&token, now)
        .map_err(refused)?;
    state
        .with_conn(move |conn, app| {
            let (session, named) = match &claims.sid {
                Some(sid) => {
                    let session = Session::find(conn, sid)?;
                    let named = session_state(session.as_ref(), claims.user_id);
                    (session, named)
                }
                None => (None, SessionState::NotNamed),
            };
            token_user(conn, &claims, named, Strictness::Slide)?;
            if let Some(sid) = &claims.sid {
                Session::touch_last_used(conn, sid, db_now())?;
            }
            let assurance = session.map_or_else(Assurance::password, |s| s.assurance());
            Ok(app.codec.slide(&claims, &assurance, now))
        })
        .await
}
