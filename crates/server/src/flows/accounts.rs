//! Register and create accounts (the CLI's `create-superuser` too); a
//! login is [`super::login`].

use latchkey_domain::{Assurance, NewAccount};
use latchkey_persistence::{DbConnection, NewUser, User, db_now, write_transaction};

use super::tokens::{Client, TokenPair, start_session};
use crate::email::Verification;
use crate::error::{ApiError, EMAIL_TAKEN};
use crate::forms::{Body, Form, InvalidAccount, PasswordRules, RegisterForm};
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
pub async fn new_account_form<F>(state: &State, body: &Body<F>) -> Result<F, ApiError>
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
pub async fn create_account(state: &State, account: NewAccount) -> Result<User, ApiError> {
    create_account_then(state, account, |_, user| Ok(user)).await
}

/// [`create_account`], then `then` in the same write transaction as the
/// insert (the verification email of register is queued there).
pub async fn create_account_then<F>(
    state: &State,
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
            write_transaction(conn, |conn| {
                let user = User::insert(conn, &new)?;
                then(conn, user)
            })
        })
        .await
}

/// What `POST /register/` made.
#[allow(
    clippy::large_enum_variant,
    reason = "made once per registration and matched at once by its handler"
)]
pub enum Registered {
    /// The user and their first session.
    WithSession(User, TokenPair),
    /// Under `EMAIL_VERIFICATION=mandatory`: the user, no session until the
    /// address is verified.
    AwaitingVerification(User),
}

/// `POST /register/`: a new active user, the verification email (when
/// verification is on) queued in the same transaction, then their first
/// session unless verification is mandatory.
pub async fn register(
    state: &State,
    body: Body<RegisterForm>,
    client: Client,
) -> Result<Registered, ApiError> {
    let form = new_account_form(state, &body).await?;
    let app = state.clone();
    let user = create_account_then(
        state,
        NewAccount::user(form.email, form.password),
        move |conn, user| super::email::on_register(conn, &app, user),
    )
    .await?;
    state.mailer.wake();
    if state.settings.email.verification == Verification::Mandatory {
        return Ok(Registered::AwaitingVerification(user));
    }
    let user_id = user.id;
    let pair = state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| {
                start_session(
                    conn,
                    app,
                    user_id,
                    &Assurance::password(),
                    unix_now(),
                    &client,
                )
            })
        })
        .await?;
    Ok(Registered::WithSession(user, pair))
}
