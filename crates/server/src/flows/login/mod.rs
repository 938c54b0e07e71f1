//! How every login ends. A first factor (today the password, in
//! [`password`]) names a user as they were read before the slow check; then
//! [`complete_login`] runs the gates in the contract's order (active, email
//! verified, second factor) and starts the session in ONE write transaction
//! that re-reads the user under lock and refuses when anything moved since
//! that read — a password change or reset, a logout everywhere, a
//! deactivation. So a login racing a revocation never leaves a live session
//! behind, and the hash upgrade it carries never writes an old password
//! back.
//!
//! A new way in is one first-factor module here, returning a
//! [`FirstFactor`] with its [`Method`], and nothing else: the gates, the
//! session and the tokens' `amr`/`aal` follow from it.

pub mod federated;
pub mod password;
pub mod second_factor;

use latchkey_auth::IssuedToken;
use latchkey_domain::factors::{Step, next_step};
use latchkey_domain::{Assurance, Method};
use latchkey_persistence::{DbConnection, User, UserChanges, db_now, write_transaction};

use crate::email::Verification;
use crate::error::ApiError;
use crate::flows::tokens::{Client, TokenPair, start_session, start_sliding_session};
use crate::state::{AppState, State, unix_now};
use crate::throttle::LoginAttempt;

/// A user named by a first factor, as read before it was checked.
pub struct FirstFactor {
    pub user: User,
    /// How they proved it: the session's first `amr` entry.
    pub method: Method,
    /// The hash to store instead of theirs when it is not in the configured
    /// format (or is weaker): written only while theirs is still stored.
    pub upgrade: Option<String>,
    /// The account's reserved login attempt, settled by the gates.
    pub attempt: Option<LoginAttempt>,
}

/// What a completed login starts: the session's tokens, of one kind.
pub trait SessionKind: Send + 'static {
    type Tokens: Send + 'static;
    /// How a pending second factor names the kind it continues.
    const NAME: &'static str;

    fn start(
        conn: &mut DbConnection,
        app: &AppState,
        user_id: i64,
        assurance: &Assurance,
        client: &Client,
    ) -> Result<Self::Tokens, ApiError>;
}

/// An access and a refresh token (`POST /auth/`).
pub struct Pair;

impl SessionKind for Pair {
    type Tokens = TokenPair;
    const NAME: &'static str = "pair";

    fn start(
        conn: &mut DbConnection,
        app: &AppState,
        user_id: i64,
        assurance: &Assurance,
        client: &Client,
    ) -> Result<TokenPair, ApiError> {
        start_session(conn, app, user_id, assurance, unix_now(), client)
    }
}

/// A sliding token (`POST /auth/sliding/`).
pub struct Sliding;

impl SessionKind for Sliding {
    type Tokens = IssuedToken;
    const NAME: &'static str = "sliding";

    fn start(
        conn: &mut DbConnection,
        app: &AppState,
        user_id: i64,
        assurance: &Assurance,
        client: &Client,
    ) -> Result<IssuedToken, ApiError> {
        start_sliding_session(conn, app, user_id, assurance, unix_now(), client)
    }
}

/// How a login that passed its first factor ends: a session, or a second
/// factor asked for.
enum Outcome<T> {
    Done(User, T),
    SecondFactorDue(ApiError),
}

/// The gates, then the session: 401 `no_active_account` for an inactive
/// user (a failed login of the account), 401 `email_not_verified` under
/// `EMAIL_VERIFICATION=mandatory` (the password was right: a success), then
/// the second factor; only then the one write transaction that starts the
/// session — or, for a user with a second factor, that begins the
/// `mfa_pending` ceremony and answers 401 `mfa_required`
/// ([`second_factor`]). Returns the user as stored now.
pub async fn complete_login<K: SessionKind>(
    state: &State,
    first: FirstFactor,
    client: Client,
    _kind: K,
) -> Result<(User, K::Tokens), ApiError> {
    let FirstFactor {
        user,
        method,
        upgrade,
        attempt,
    } = first;
    if !user.is_active {
        state.metrics.login_failures.inc();
        if let Some(attempt) = attempt {
            attempt.failed();
        }
        return Err(ApiError::no_active_account());
    }
    if let Err(unverified) = require_verified(state, &user) {
        if let Some(attempt) = attempt {
            attempt.succeeded().await;
        }
        return Err(unverified);
    }
    let assurance = Assurance::of(vec![method], false);
    let outcome = state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                let user = recheck(conn, user, upgrade)?;
                let enrolled = second_factor::enrolled(conn, user.id)?;
                match next_step(&enrolled, &assurance) {
                    Step::Done => {
                        let user = record_login(conn, app, user)?;
                        let tokens = K::start(conn, app, user.id, &assurance, &client)?;
                        Ok(Outcome::Done(user, tokens))
                    }
                    Step::SecondFactor(methods) => Ok(Outcome::SecondFactorDue(
                        second_factor::ask(conn, app, &user, &assurance, K::NAME, &methods)?,
                    )),
                }
            })
        })
        .await;
    match outcome {
        Ok(Outcome::Done(user, tokens)) => {
            state.metrics.logins.inc();
            if let Some(attempt) = attempt {
                attempt.succeeded().await;
            }
            Ok((user, tokens))
        }
        Ok(Outcome::SecondFactorDue(mfa_required)) => {
            if let Some(attempt) = attempt {
                attempt.given_back().await;
            }
            Err(mfa_required)
        }
        Err(refused) => {
            if let Some(attempt) = attempt {
                attempt.given_back().await;
            }
            Err(refused)
        }
    }
}

/// Under `mandatory`, the right password of an unverified user is not a
/// login yet.
fn require_verified(state: &AppState, user: &User) -> Result<(), ApiError> {
    if state.settings.email.verification == Verification::Mandatory && !user.email_verified {
        return Err(ApiError::Unauthorized {
            detail: "E-mail is not verified.",
            code: "email_not_verified",
        });
    }
    Ok(())
}

/// Inside the login's transaction: the user locked and compared with what
/// the first factor read, then the hash upgrade written.
fn recheck(conn: &mut DbConnection, read: User, upgrade: Option<String>) -> Result<User, ApiError> {
    let mut user = User::lock(conn, read.id)?
        .filter(|now| unchanged_since(&read, now))
        .ok_or_else(ApiError::no_active_account)?;
    if let Some(new_hash) = upgrade
        && User::upgrade_hash(conn, user.id, &read.password_hash, &new_hash)?
    {
        user.password_hash = new_hash;
    }
    Ok(user)
}

/// A completed login's `last_login`, when `UPDATE_LAST_LOGIN` asks for it.
fn record_login(conn: &mut DbConnection, app: &AppState, user: User) -> Result<User, ApiError> {
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
