//! The password as a first factor (`POST /auth/`, `POST /auth/sliding/`),
//! and the check of a signed-in user's own password.

use latchkey_auth::password::MAX_BYTES_NON_BCRYPT;
use latchkey_auth::{HashProblem, IssuedToken, Verification};
use latchkey_domain::{Email, Method, Password};
use latchkey_persistence::User;

use super::{FirstFactor, Pair, Sliding, complete_login};
use crate::error::{ApiError, FieldErrors};
use crate::flows::tokens::{Client, TokenPair};
use crate::forms::{Body, LoginForm};
use crate::state::{AppState, State};

/// `POST /auth/`: checked credentials, then a new session.
pub async fn login(
    state: &State,
    body: Body<LoginForm>,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    let first = authenticate_credentials(state, body).await?;
    complete_login(state, first, client, Pair).await
}

/// `POST /auth/sliding/`: checked credentials, then a sliding session.
pub async fn sliding_login(
    state: &State,
    body: Body<LoginForm>,
    client: Client,
) -> Result<IssuedToken, ApiError> {
    let first = authenticate_credentials(state, body).await?;
    let (_, token) = complete_login(state, first, client, Sliding).await?;
    Ok(token)
}

/// Checks email and password, the first factor: the user as read before
/// the check, whom [`complete_login`] gates and re-reads. An unknown email
/// and a wrong password are the same 401 after the same one verification
/// (a failed login of the account); an inactive user's right password is
/// refused by the gates with that same 401.
pub async fn authenticate_credentials(
    state: &State,
    body: Body<LoginForm>,
) -> Result<FirstFactor, ApiError> {
    let LoginForm {
        email: raw_email,
        password,
    } = body.parse(&())?;
    // An address that is not an email cannot be an account: refused at
    // once, without a counter (whose key it would otherwise become).
    // Nor can a password longer than any hash is made of: no hashing.
    let (Ok(email), true) = (
        Email::parse(&raw_email),
        password.len() <= MAX_BYTES_NON_BCRYPT,
    ) else {
        state.metrics.login_failures.inc();
        return Err(ApiError::no_active_account());
    };
    let attempt = state.throttle.reserve_login(&email).await?;
    let user = state
        .with_conn(move |conn, _| Ok(User::find_by_email(conn, &email)?))
        .await?;
    let (verification, upgrade) = check_password(state, user.as_ref(), password).await?;
    match user {
        Some(user) if verification.matches => Ok(FirstFactor {
            user,
            method: Method::Password,
            upgrade,
            attempt: Some(attempt),
        }),
        _ => {
            state.metrics.login_failures.inc();
            attempt.failed();
            Err(ApiError::no_active_account())
        }
    }
}

/// Checks `raw` against `user`'s stored hash (the dummy hash when there is
/// no such user) and, when it matches a hash that is not in the configured
/// format (or weaker than configured), makes its replacement: both on the
/// hashing pool, in one job. A stored hash that can never match is logged
/// once.
async fn check_password(
    state: &AppState,
    user: Option<&User>,
    raw: String,
) -> Result<(Verification, Option<String>), ApiError> {
    let stored = user.map(|u| u.password_hash.clone());
    let (verification, upgrade, problem) = state
        .hashing
        .run(move |hasher| {
            let Some(stored) = stored else {
                hasher.verify_dummy(&raw);
                return (Verification::default(), None, None);
            };
            let verification = hasher.check(&raw, &stored);
            let upgrade = (verification.matches && verification.needs_upgrade)
                .then(|| {
                    Password::parse_unvalidated_with_limit(&raw, hasher.max_password_bytes()).ok()
                })
                .flatten()
                .and_then(|password| hasher.hash(&password).ok());
            let problem = (verification.unknown_format || verification.out_of_bounds)
                .then(|| hasher.stored_hash_problem(&stored))
                .flatten();
            (verification, upgrade, problem)
        })
        .await?;
    if let (Some(user), Some(problem)) = (user, problem) {
        log_unusable_hash(user.id, problem);
    }
    Ok((verification, upgrade))
}

/// Logs, once per user and process, a stored hash latchkey will never
/// check: in no format it reads, or past the bounds on its parameters
/// (never the hash itself).
fn log_unusable_hash(user_id: i64, problem: HashProblem) {
    static LOGGED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<i64>>> =
        std::sync::LazyLock::new(Default::default);
    if let Ok(mut logged) = LOGGED.lock()
        && logged.len() < 100_000
        && logged.insert(user_id)
    {
        log::warn!(
            "user {user_id} has a password hash {problem}: they cannot log in until it is reset"
        );
    }
}

/// Checks a signed-in user's own password (`old_password`,
/// `current_password`) against `user` as read: a wrong one is the 400 field
/// error `message` under `field` and counts as a failed login of the
/// account, so the lockout holds on every endpoint that checks a password.
/// Returns the hash to store instead of theirs when it is not in the
/// configured format (or weaker). The caller's write re-checks, under lock,
/// that the hash checked is still the stored one
/// ([`super::still_verified`]).
pub async fn verify_own_password(
    state: &AppState,
    user: &User,
    raw: String,
    field: &str,
    message: &str,
) -> Result<Option<String>, ApiError> {
    check_own_password(state, user, raw, field, message, RightPassword::Resets).await
}

/// What a right own password does to the account's failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RightPassword {
    /// Clears them (a password is all the endpoint asks).
    Resets,
    /// Leaves them (a code is checked next, whose wrong guesses must keep
    /// adding up: a right password must not clear them between guesses).
    KeepsCount,
}

/// [`verify_own_password`], saying what a right password does to the
/// account's failed logins.
pub async fn check_own_password(
    state: &AppState,
    user: &User,
    raw: String,
    field: &str,
    message: &str,
    right: RightPassword,
) -> Result<Option<String>, ApiError> {
    let attempt = state.throttle.reserve_login_of(&user.email).await?;
    let (verification, upgrade) = check_password(state, Some(user), raw).await?;
    if verification.matches {
        if let Some(attempt) = attempt {
            match right {
                RightPassword::Resets => attempt.succeeded().await,
                RightPassword::KeepsCount => attempt.given_back().await,
            }
        }
        Ok(upgrade)
    } else {
        state.metrics.login_failures.inc();
        if let Some(attempt) = attempt {
            attempt.failed();
        }
        Err(wrong_password(field, message))
    }
}

/// The 400 of a wrong own password.
pub fn wrong_password(field: &str, message: &str) -> ApiError {
    ApiError::Fields(FieldErrors::single(field, message))
}
