//! Register, log in, and create accounts (the CLI's `create-superuser` too).

use latchkey_domain::{Email, NewAccount, Password};
use latchkey_persistence::{DbConnection, NewUser, User, UserChanges, db_now};

use latchkey_auth::password::MAX_BYTES_NON_BCRYPT;
use latchkey_auth::{IssuedToken, PasswordHasher, Verification};

use super::tokens::{Client, TokenPair, start_session, start_sliding_session};
use crate::error::{ApiError, EMAIL_TAKEN, FieldErrors};
use crate::forms::{Body, Form, InvalidAccount, LoginForm, PasswordRules, RegisterForm};
use crate::state::{AppState, State, unix_now};

/// What a new password is checked against: the configured hasher's limit.
pub fn password_rules(state: &AppState) -> PasswordRules {
    PasswordRules {
        max_bytes: state.hashing.max_password_bytes(),
    }
}

/// Reads the form of a new account. DRF reports a taken address together
/// with the other field errors: a form that failed is looked up here; one
/// that passed is looked up once by [`create_account_then`], before any
/// hashing.
pub async fn new_account_form<F>(state: &AppState, body: &Body<F>) -> Result<F, ApiError>
where
    F: Form<Context = PasswordRules, Error = InvalidAccount>,
{
    let InvalidAccount { mut errors, email } = match body.parse(&password_rules(state)) {
        Ok(form) => return Ok(form),
        Err(invalid) => invalid,
    };
    if let Some(email) = email
        && state
            .with_conn(move |conn, _| Ok(User::find_by_email(conn, &email)?.is_some()))
            .await?
    {
        errors.add("email", EMAIL_TAKEN);
    }
    Err(ApiError::Fields(errors))
}

/// Hashes the password (on the hashing pool) and stores the account. Two
/// registrations racing past the check above meet the unique constraint:
/// the loser gets the same 400 field error.
pub async fn create_account(state: &AppState, account: NewAccount) -> Result<User, ApiError> {
    create_account_then(state, account, |_, user| Ok(user)).await
}

/// [`create_account`], then `then` in the same write transaction as the
/// insert (the verification email of register is queued there).
pub async fn create_account_then<F>(
    state: &AppState,
    account: NewAccount,
    then: F,
) -> Result<User, ApiError>
where
    F: FnOnce(&mut DbConnection, User) -> Result<User, ApiError> + Send + 'static,
{
    let email = account.email.clone();
    let taken = state
        .with_conn(move |conn, _| Ok(User::find_by_email(conn, &email)?.is_some()))
        .await?;
    if taken {
        return Err(latchkey_persistence::StoreError::EmailTaken.into());
    }
    let password = account.password.clone();
    let hash = state
        .hashing
        .run(move |hasher| hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .with_conn(move |conn, _| {
            let new = NewUser::new(&account.email, &hash, account.flags, db_now());
            latchkey_persistence::write_transaction(conn, |conn| {
                let user = User::insert(conn, &new)?;
                then(conn, user)
            })
        })
        .await
}

/// `POST /register/`: a new active user and their first session.
pub async fn register(
    state: &State,
    body: Body<RegisterForm>,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    let user = register_without_session(state, body).await?;
    let user_id = user.id;
    let pair = state
        .with_conn(move |conn, app| start_session(conn, app, user_id, unix_now(), &client))
        .await?;
    Ok((user, pair))
}

/// `POST /register/` without a session (all of it under
/// `EMAIL_VERIFICATION=mandatory`): the user, and the verification email
/// queued in the same transaction.
pub async fn register_without_session(
    state: &State,
    body: Body<RegisterForm>,
) -> Result<User, ApiError> {
    let form = new_account_form(state, &body).await?;
    let app = state.clone();
    let user = create_account_then(
        state,
        NewAccount::user(form.email, form.password),
        move |conn, user| super::email::on_register(conn, &app, user),
    )
    .await?;
    state.mailer.wake();
    Ok(user)
}

/// Checks email and password as `POST /auth/` and `POST /auth/sliding/` do:
/// the same 401 for an unknown email, a wrong password and an inactive user,
/// after the same one bcrypt verification. Returns the authenticated user;
/// the caller records the login ([`record_login`]) in its unit of work.
pub async fn authenticate_credentials(
    state: &State,
    body: Body<LoginForm>,
) -> Result<Authenticated, ApiError> {
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
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let (verification, new_hash) = state
        .hashing
        .run(move |hasher| match stored_hash {
            Some(hash) => check_and_upgrade(hasher, &password, &hash),
            None => {
                hasher.verify_dummy(&password);
                (Verification::default(), None)
            }
        })
        .await?;
    if verification.unknown_format
        && let Some(user) = &user
    {
        log_unknown_format(user.id);
    }
    let succeeded = verification.matches && user.as_ref().is_some_and(|u| u.is_active);
    if succeeded {
        state.metrics.logins.inc();
        attempt.succeeded().await;
    } else {
        state.metrics.login_failures.inc();
        attempt.failed();
    }
    match user {
        Some(user) if succeeded => {
            // EMAIL_VERIFICATION=mandatory: the right password of an
            // unverified address is not a login yet.
            super::email::require_verified(state, &user)?;
            Ok(Authenticated { user, new_hash })
        }
        _ => Err(ApiError::no_active_account()),
    }
}

/// A user whose password was just checked, and the hash to store instead of
/// theirs when it is not in the configured format or is weaker.
pub struct Authenticated {
    pub user: User,
    pub new_hash: Option<String>,
}

/// Checks `raw` against `stored` and, when it matches a hash that is not in
/// the configured format (or weaker than configured), makes its
/// replacement: both on the hashing pool, in one job.
fn check_and_upgrade(
    hasher: &PasswordHasher,
    raw: &str,
    stored: &str,
) -> (Verification, Option<String>) {
    let verification = hasher.check(raw, stored);
    let new_hash = (verification.matches && verification.needs_upgrade)
        .then(|| Password::parse_unvalidated_with_limit(raw, hasher.max_password_bytes()).ok())
        .flatten()
        .and_then(|password| hasher.hash(&password).ok());
    (verification, new_hash)
}

/// Logs, once per user and process, a stored hash in no format latchkey
/// reads (never the hash itself).
fn log_unknown_format(user_id: i64) {
    static LOGGED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<i64>>> =
        std::sync::LazyLock::new(Default::default);
    if let Ok(mut logged) = LOGGED.lock()
        && logged.len() < 100_000
        && logged.insert(user_id)
    {
        log::warn!(
            "user {user_id} has a password hash in a format latchkey does not read: they cannot log in until it is reset"
        );
    }
}

/// Checks a signed-in user's own password (`old_password`,
/// `current_password`): a wrong one is the 400 field error `message` under
/// `field` and counts as a failed login of the account, so the lockout
/// holds on every endpoint that checks a password. Returns the hash to store
/// instead of theirs when it is not in the configured format (or weaker).
pub async fn verify_own_password(
    state: &AppState,
    user: &User,
    raw: String,
    field: &str,
    message: &str,
) -> Result<Option<String>, ApiError> {
    let attempt = match Email::parse(&user.email) {
        Ok(email) => Some(state.throttle.reserve_login(&email).await?),
        Err(_) => None,
    };
    let hash = user.password_hash.clone();
    let (verification, new_hash) = state
        .hashing
        .run(move |hasher| check_and_upgrade(hasher, &raw, &hash))
        .await?;
    if verification.unknown_format {
        log_unknown_format(user.id);
    }
    if verification.matches {
        if let Some(attempt) = attempt {
            attempt.succeeded().await;
        }
        Ok(new_hash)
    } else {
        state.metrics.login_failures.inc();
        if let Some(attempt) = attempt {
            attempt.failed();
        }
        Err(ApiError::Fields(FieldErrors::single(field, message)))
    }
}

/// Sets `last_login` when `UPDATE_LAST_LOGIN` is on; returns the user as
/// stored now.
pub fn record_login(
    conn: &mut DbConnection,
    state: &AppState,
    authenticated: Authenticated,
) -> Result<User, ApiError> {
    let Authenticated { user, new_hash } = authenticated;
    let last_login = state.settings.update_last_login.then(db_now);
    if last_login.is_none() && new_hash.is_none() {
        return Ok(user);
    }
    let changes = UserChanges {
        last_login,
        password_hash: new_hash,
        ..UserChanges::default()
    };
    Ok(User::update(conn, user.id, &changes)?)
}

/// `POST /auth/`: checked credentials, then the login recorded and a new
/// session started in one unit of work.
pub async fn login(
    state: &State,
    body: Body<LoginForm>,
    client: Client,
) -> Result<(User, TokenPair), ApiError> {
    let user = authenticate_credentials(state, body).await?;
    state
        .with_conn(move |conn, app| {
            let user = record_login(conn, app, user)?;
            let pair = start_session(conn, app, user.id, unix_now(), &client)?;
            Ok((user, pair))
        })
        .await
}

/// `POST /auth/sliding/`: checked credentials, then the login recorded and
/// a sliding session started in one unit of work.
pub async fn sliding_login(
    state: &State,
    body: Body<LoginForm>,
    client: Client,
) -> Result<IssuedToken, ApiError> {
    let user = authenticate_credentials(state, body).await?;
    state
        .with_conn(move |conn, app| {
            let user = record_login(conn, app, user)?;
            start_sliding_session(conn, app, user.id, unix_now(), &client)
        })
        .await
}
