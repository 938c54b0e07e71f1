//! Password reset and email verification (dj-rest-auth's and
//! django-allauth's shapes). Every email is queued in the outbox inside the
//! transaction that makes its token or key, so the two exist together or
//! not at all; the sender delivers it later, and no request waits for SMTP.
//!
//! - A reset token and a verification key are 32 random bytes (URL-safe
//!   base64); only their SHA-256 is stored. A reset token is good once,
//!   for `PASSWORD_RESET_TIMEOUT`, for the address it was sent to, and only
//!   while the password has not changed since it was issued
//!   (`users.password_changed_at`, set by every path that sets a password).
//! - A verification key is good for `EMAIL_VERIFICATION_TIMEOUT`, while it
//!   is the newest key of its user and the user's address is still the one
//!   it was sent to; it may be used again (allauth's behaviour).
//! - Nothing tells whether an address has an account: a reset request
//!   answers the same 200 after the same work and the same writes (one
//!   outbox row) for every address; the sender resolves the row later.

use chrono::NaiveDateTime;
use latchkey_auth::secrets::{new_link_secret, secret_hash};
use latchkey_domain::Email;
use latchkey_persistence::email_state::{
    EmailVerificationKey, NewEmailVerificationKey, NewPasswordResetToken, PasswordResetToken,
};
use latchkey_persistence::outbox::{MESSAGE, NewOutboxEmail, OutboxEmail};
use latchkey_persistence::{
    DbConnection, StoreError, User, UserChanges, db_now, write_transaction,
};

use super::sessions::replace_password;
use crate::email::templates::{self, Kind, human_duration, site_name};
use crate::email::{decode_uid, encode_uid, enqueue};
use crate::error::{ApiError, FieldErrors};
use crate::forms::{Body, EmailForm, PasswordResetConfirmForm, VerifyEmailForm, new_password};
use crate::state::{AppState, State};

pub const RESET_SENT: &str = "Password reset e-mail has been sent.";
pub const RESET_DONE: &str = "Password has been reset with the new password.";
pub const PASSWORDS_DIFFER: &str = "The two password fields didn\u{2019}t match.";
pub const INVALID_VALUE: &str = "Invalid value";
pub const NOT_CONFIGURED: &str = "Email delivery is not configured.";
pub const VERIFICATION_SENT: &str = "Verification e-mail sent.";

fn after(now: NaiveDateTime, wait: std::time::Duration) -> NaiveDateTime {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Makes a reset token for `user` and renders the email with its link.
/// Call inside the caller's write transaction.
fn password_reset_message(
    conn: &mut DbConnection,
    state: &AppState,
    user: &User,
) -> Result<templates::Rendered, StoreError> {
    let settings = &state.settings.email;
    let now = db_now();
    let token = new_link_secret();
    PasswordResetToken::insert(
        conn,
        &NewPasswordResetToken {
            user_id: user.id,
            email: &user.email,
            token_hash: &secret_hash(&token),
            created_at: now,
            expires_at: after(now, settings.password_reset_timeout),
        },
    )?;
    let uid = encode_uid(user.id);
    let link = settings.link(
        &settings.password_reset_url,
        &[("uid", &uid), ("token", &token)],
    );
    Ok(render_link(
        state,
        Kind::PasswordReset,
        user,
        &link,
        settings.password_reset_timeout,
    ))
}

/// The sender's half of `POST /auth/password/reset/`, for a request row it
/// has claimed (`claim`): an active user with a usable password gets a
/// token, and the row becomes their email (returned, to send now); for any
/// other address the row is deleted and nothing is sent. One write
/// transaction, so a token exists only with its email.
pub fn resolve_password_reset(
    conn: &mut DbConnection,
    state: &AppState,
    row: &OutboxEmail,
    claim: &str,
) -> Result<Option<OutboxEmail>, StoreError> {
    let resolved = write_transaction(conn, |conn| {
        let user = match Email::parse(&row.recipient) {
            Ok(email) => User::find_by_email(conn, &email)?,
            Err(_) => None,
        };
        let Some(user) = user.filter(|u| u.is_active && u.has_usable_password()) else {
            OutboxEmail::drop_request(conn, row.id, claim)?;
            return Ok(None);
        };
        let rendered = password_reset_message(conn, state, &user)?;
        let message = NewOutboxEmail::new(
            &user.email,
            &rendered.subject,
            &rendered.text,
            &rendered.html,
            row.created_at,
        );
        if !OutboxEmail::fill_request(conn, row.id, claim, &message)? {
            // The claim was lost meanwhile: the token is rolled back, and
            // whoever holds the claim resolves the row.
            return Err(StoreError::NotFound);
        }
        Ok(Some(OutboxEmail {
            recipient: user.email.clone(),
            subject: rendered.subject,
            text_body: rendered.text,
            html_body: rendered.html,
            kind: MESSAGE.into(),
            ..row.clone()
        }))
    });
    match resolved {
        Err(StoreError::NotFound) => Ok(None),
        other => other,
    }
}

/// Renders a link email (the link, the address, the site, how long the link
/// is good for) to the user.
fn render_link(
    state: &AppState,
    kind: Kind,
    user: &User,
    link: &str,
    valid_for: std::time::Duration,
) -> templates::Rendered {
    templates::render(
        kind,
        &[
            ("link", link),
            ("email", &user.email),
            ("site", &site_name(&state.settings.email.public_url)),
            ("valid_for", &human_duration(valid_for)),
        ],
    )
}

/// Makes a verification key for the user's current address and queues the
/// email with its link (any earlier key is superseded by it). Call inside
/// the caller's write transaction.
pub fn queue_verification(
    conn: &mut DbConnection,
    state: &AppState,
    user: &User,
) -> Result<(), ApiError> {
    let settings = &state.settings.email;
    let now = db_now();
    let key = new_link_secret();
    EmailVerificationKey::insert(
        conn,
        &NewEmailVerificationKey {
            user_id: user.id,
            email: &user.email,
            key_hash: &secret_hash(&key),
            created_at: now,
            expires_at: after(now, settings.email_verification_timeout),
        },
    )?;
    let link = settings.link(&settings.email_verification_url, &[("key", &key)]);
    let rendered = render_link(
        state,
        Kind::VerifyEmail,
        user,
        &link,
        settings.email_verification_timeout,
    );
    Ok(enqueue(conn, &user.email, &rendered, now)?)
}

/// Register, in the transaction that inserts the user: under `optional`
/// and `mandatory`, the verification email.
pub fn on_register(
    conn: &mut DbConnection,
    state: &AppState,
    user: User,
) -> Result<User, ApiError> {
    if state.settings.email.verification.is_on() {
        queue_verification(conn, state, &user)?;
    }
    Ok(user)
}

/// Whether a change of address must be verified again (`optional`,
/// `mandatory`): the caller sets `email_verified` false and queues
/// [`queue_verification`] in the same transaction.
pub fn reverifies_new_addresses(state: &AppState) -> bool {
    state.settings.email.verification.is_on()
}

/// One email more for this address within `THROTTLE_PASSWORD_RESET`?
/// (The counter is shared by reset and resend.)
async fn address_allows(state: &AppState, email: &Email) -> bool {
    match state.settings.email.throttle_password_reset {
        None => true,
        Some(rate) => state.throttle.hit_address(email, rate).await.is_ok(),
    }
}

/// `POST /auth/password/reset/`: the same answer, the same work and the
/// same writes for every address: one request row in the outbox (at most
/// `THROTTLE_PASSWORD_RESET` per address), which the sender resolves
/// ([`resolve_password_reset`]). Nothing here looks the address up, so
/// neither the time taken nor the rows written tell whether it has an
/// account.
pub async fn request_password_reset(state: &State, body: Body<EmailForm>) -> Result<(), ApiError> {
    let EmailForm { email } = body.parse(&())?;
    if !address_allows(state, &email).await {
        log::info!(target: "latchkey::email", "password reset past THROTTLE_PASSWORD_RESET for an address: no email");
        return Ok(());
    }
    state
        .with_conn(move |conn, _| {
            OutboxEmail::enqueue(
                conn,
                &NewOutboxEmail::password_reset_request(email.as_str(), db_now()),
            )?;
            Ok::<_, ApiError>(())
        })
        .await?;
    state.mailer.wake();
    Ok(())
}

fn invalid(field: &str) -> ApiError {
    ApiError::Fields(FieldErrors::single(field, INVALID_VALUE))
}

/// Whether a reset token still opens the account.
fn token_is_live(token: &PasswordResetToken, user: &User, now: NaiveDateTime) -> bool {
    token.used_at.is_none()
        && token.expires_at > now
        && token.email == user.email
        && user.is_active
        && user.has_usable_password()
        && user
            .password_changed_at
            .is_none_or(|changed| token.created_at >= changed)
}

/// `POST /auth/password/reset/confirm/`: the checks in dj-rest-auth's
/// order (fields, `uid`, `token`, then the new password), so a refused
/// password leaves the token usable. The token is used up, the password
/// set and every session ended in one write transaction; then the
/// account's failed-login count is cleared.
pub async fn confirm_password_reset(
    state: &State,
    body: Body<PasswordResetConfirmForm>,
) -> Result<(), ApiError> {
    let PasswordResetConfirmForm {
        uid,
        token,
        new_password1: password1,
        new_password2: password2,
    } = body.parse(&())?;
    let user_id = decode_uid(&uid).ok_or_else(|| invalid("uid"))?;
    let token_hash = secret_hash(&token);
    let found = state
        .with_conn(move |conn, _| {
            let Some(user) = User::find(conn, user_id)? else {
                return Ok(None);
            };
            let token = PasswordResetToken::find(conn, user_id, &token_hash)?;
            Ok(Some((user, token)))
        })
        .await?;
    let Some((user, token)) = found else {
        return Err(invalid("uid"));
    };
    let token = token
        .filter(|t| token_is_live(t, &user, db_now()))
        .ok_or_else(|| invalid("token"))?;
    if password1 != password2 {
        return Err(ApiError::Fields(FieldErrors::single(
            "new_password2",
            PASSWORDS_DIFFER,
        )));
    }
    let email = Email::parse(&user.email).ok();
    // the configured hasher's limit (72 bytes for bcrypt, else 4096)
    let limit = state.hashing.max_password_bytes();
    let password = new_password("new_password2", &password2, email.as_ref(), limit)
        .map_err(ApiError::Fields)?;
    let hash = state
        .hashing
        .run(move |hasher| hasher.hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let token_id = token.id;
    let token_email = token.email.clone();
    state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                let now = db_now();
                // Used up by a concurrent confirm, or the user changed
                // meanwhile: refused, and nothing is written.
                if !PasswordResetToken::use_up(conn, token_id, now)? {
                    return Err(invalid("token"));
                }
                let current = User::find(conn, user_id)?.ok_or_else(|| invalid("uid"))?;
                if current.email != token_email
                    || current
                        .password_changed_at
                        .is_some_and(|changed| token.created_at < changed)
                {
                    return Err(invalid("token"));
                }
                replace_password(conn, user_id, hash)
            })
        })
        .await?;
    // The owner of the address proved it: their failed logins are cleared,
    // a lockout included.
    if let Some(email) = email {
        state.throttle.reset_login(&email).await;
    }
    Ok(())
}

/// `POST /auth/registration/verify-email/`: 404 for a key that is wrong,
/// expired, superseded by a newer one or sent to an earlier address.
pub async fn verify_email(state: &State, body: Body<VerifyEmailForm>) -> Result<(), ApiError> {
    let VerifyEmailForm { key } = body.parse(&())?;
    let key_hash = secret_hash(&key);
    state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                let key = EmailVerificationKey::find_by_hash(conn, &key_hash)?
                    .ok_or(ApiError::NotFound)?;
                let user = User::find(conn, key.user_id)?.ok_or(ApiError::NotFound)?;
                let latest = EmailVerificationKey::latest_id(conn, user.id)?;
                if key.expires_at <= db_now() || latest != Some(key.id) || key.email != user.email {
                    return Err(ApiError::NotFound);
                }
                if !user.email_verified {
                    User::update(
                        conn,
                        user.id,
                        &UserChanges {
                            email_verified: Some(true),
                            updated_at: Some(db_now()),
                            ..UserChanges::default()
                        },
                    )?;
                }
                Ok(())
            })
        })
        .await
}

/// `POST /auth/registration/resend-email/`: the same answer for every
/// address; an active, unverified user gets a new key (the per-address
/// limit of reset). Under `EMAIL_VERIFICATION=none` nothing is sent.
pub async fn resend_verification(state: &State, body: Body<EmailForm>) -> Result<(), ApiError> {
    let EmailForm { email } = body.parse(&())?;
    if !state.settings.email.verification.is_on() {
        return Ok(());
    }
    if !address_allows(state, &email).await {
        log::info!(target: "latchkey::email", "verification resend past THROTTLE_PASSWORD_RESET for an address: no email");
        return Ok(());
    }
    let queued = state
        .with_conn(move |conn, app| {
            write_transaction(conn, |conn| match User::find_by_email(conn, &email)? {
                Some(user) if user.is_active && !user.email_verified => {
                    queue_verification(conn, app, &user)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
        })
        .await?;
    if queued {
        state.mailer.wake();
    }
    Ok(())
}
