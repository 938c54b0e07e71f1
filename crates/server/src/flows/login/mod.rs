//! How every login ends. A first factor (today the password, in
//! [`password`]) names a user as they were read before the slow check; then
//! [`complete_login`] starts the session in one write transaction that
//! re-reads the user under lock and refuses when anything moved since that
//! read — a password change or reset, a logout everywhere, a deactivation.
//! So a login racing a revocation never leaves a live session behind, and
//! the hash upgrade it carries never writes an old password back.

pub mod password;

use latchkey_persistence::{DbConnection, User, UserChanges, db_now, write_transaction};

use crate::error::ApiError;
use crate::state::{AppState, State};

/// A user named by a first factor, as read before it was checked.
pub struct FirstFactor {
    pub user: User,
    /// The hash to store instead of theirs when it is not in the configured
    /// format (or is weaker): written only while theirs is still stored.
    pub upgrade: Option<String>,
}

/// Starts the session of a checked first factor (`start`, in the same
/// write transaction), or answers the usual 401 `no_active_account` when
/// the user changed since they were read. Returns the user as stored now.
pub async fn complete_login<T, F>(
    state: &State,
    first: FirstFactor,
    start: F,
) -> Result<(User, T), ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, &AppState, &User) -> Result<T, ApiError> + Send + 'static,
{
    state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                let user = recheck(conn, app, first)?;
                let session = start(conn, app, &user)?;
                Ok((user, session))
            })
        })
        .await
}

/// Inside the login's transaction: the user locked and compared with what
/// the first factor read, then the upgrade and `last_login` written.
fn recheck(conn: &mut DbConnection, app: &AppState, first: FirstFactor) -> Result<User, ApiError> {
    let FirstFactor {
        user: read,
        upgrade,
    } = first;
    let mut user = User::lock(conn, read.id)?
        .filter(|now| unchanged_since(&read, now))
        .ok_or_else(ApiError::no_active_account)?;
    if let Some(new_hash) = upgrade
        && User::upgrade_hash(conn, user.id, &read.password_hash, &new_hash)?
    {
        user.password_hash = new_hash;
    }
    if !app.settings.update_last_login {
        return Ok(user);
    }
    let changes = UserChanges {
        last_login: Some(db_now()),
        ..UserChanges::default()
    };
    Ok(User::update(conn, user.id, &changes)?)
}

/// Whether `now` may still log in on what was checked against `read`: the
/// same password, no revocation since, still active.
fn unchanged_since(read: &User, now: &User) -> bool {
    now.is_active && same_password(read, now) && now.tokens_valid_after == read.tokens_valid_after
}

/// Whether the password checked against `read`'s hash is still the user's:
/// the hash is the same, or it was replaced only by an upgrade (a login's
/// new hash of that same password), which every path that sets a password
/// would have told by moving `password_changed_at`. So a racing login's
/// upgrade does not refuse a concurrent login or password change, while a
/// change or reset does.
fn same_password(read: &User, now: &User) -> bool {
    now.password_changed_at == read.password_changed_at || now.password_hash == read.password_hash
}

/// Inside the write transaction of a password change (`POST /auth/password/`,
/// `PATCH` with `current_password`): the user locked, refused with the
/// wrong-password field error when the password checked against `read` is
/// no longer theirs (a reset or another change won the race).
pub fn still_verified(
    conn: &mut DbConnection,
    read: &User,
    refused: impl FnOnce() -> ApiError,
) -> Result<User, ApiError> {
    User::lock(conn, read.id)?
        .filter(|now| same_password(read, now))
        .ok_or_else(refused)
}
