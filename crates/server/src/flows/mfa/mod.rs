//! The second factor, outside the login: enrolling TOTP, the recovery
//! codes, turning it off, a staff member's reset (lost phone) and the
//! `aal2_required` gate. The login's own second step is in
//! `flows::login::second_factor`.

pub mod codes;
pub mod gate;
pub mod notices;

use chrono::NaiveDateTime;
use latchkey_auth::Claims;
use latchkey_auth::recovery_codes::{self, keyed_hash};
use latchkey_auth::sealing::MfaKeys;
use latchkey_auth::totp::{self, TotpParams};
use latchkey_domain::permissions::{self, Actor, FlagChange, Target};
use latchkey_domain::{Assurance, Method};
use latchkey_persistence::{
    CodeFormat, DbConnection, DeviceShape, RecoveryCodes, SealedSecret, TotpDevice, User,
    UserChanges, db_now, write_transaction,
};

use self::codes::{Incorrect, Refused};
use self::notices::{Event, queue_notice};
use crate::email::{EmailSettings, Verification};
use crate::error::ApiError;
use crate::flows::login::password::{RightPassword, check_own_password};
use crate::flows::sessions::{WRONG_OLD_PASSWORD, revoke_everything};
use crate::flows::tokens::{Client, TokenPair, start_session};
use crate::forms::Body;
use crate::forms::mfa::{Factor, OwnPassword, TotpCodeForm, TotpDisable, TotpStartForm};
use crate::state::{State, unix_now};
use crate::throttle::LoginAttempt;

pub const ALREADY_ENABLED: &str = "TOTP is already enabled.";
pub const NOT_ENABLED: &str = "TOTP is not enabled.";
pub const START_FIRST: &str = "Start TOTP enrolment first.";

/// `GET /auth/mfa/`: the caller's second factors.
pub struct MfaStatus {
    pub totp_enabled_at: Option<NaiveDateTime>,
    pub unused_recovery_codes: i64,
    pub passkeys: i64,
}

pub async fn status(state: &State, caller: &User) -> Result<MfaStatus, ApiError> {
    let user_id = caller.id;
    state
        .with_conn(move |conn, _| {
            let device = codes::enabled_device(conn, user_id)?;
            Ok(MfaStatus {
                totp_enabled_at: device.and_then(|d| d.enabled_at),
                unused_recovery_codes: RecoveryCodes::unused(conn, user_id)?,
                passkeys: 0,
            })
        })
        .await
}

/// A pending TOTP secret as shown once: base32 and the `otpauth://` URL.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_url: String,
}

/// `POST /auth/mfa/totp/`: a new pending secret (replacing a pending one),
/// sealed before it is stored.
pub async fn start_totp(
    state: &State,
    caller: &User,
    body: Body<TotpStartForm>,
) -> Result<Enrolment, ApiError> {
    if state.settings.email.verification != Verification::None && !caller.email_verified {
        return Err(ApiError::Forbidden {
            detail: "Verify your email address first.",
            code: "email_not_verified",
        });
    }
    let user_id = caller.id;
    if state
        .with_conn(move |conn, _| codes::enabled_device(conn, user_id))
        .await?
        .is_some()
    {
        return Err(ApiError::AlreadyDone(ALREADY_ENABLED));
    }
    let form = body.parse(&OwnPassword {
        usable: caller.has_usable_password(),
    })?;
    check_current_password(state, caller, form.current_password).await?;
    let secret = totp::new_secret();
    let sealed = state.mfa_keys.seal(user_id, &secret);
    let stored = state
        .with_conn(move |conn, _| {
            write_transaction(conn, |conn| {
                Ok::<_, ApiError>(TotpDevice::set_pending(
                    conn,
                    user_id,
                    SealedSecret {
                        blob: &sealed.blob,
                        key_id: &sealed.key_id,
                    },
                    DeviceShape::default(),
                    db_now(),
                )?)
            })
        })
        .await?;
    if !stored {
        return Err(ApiError::AlreadyDone(ALREADY_ENABLED));
    }
    Ok(Enrolment {
        secret: totp::base32(&secret),
        otpauth_url: totp::otpauth_url(
            &state.settings.mfa.issuer,
            &caller.email,
            &secret,
            &TotpParams::default(),
        ),
    })
}

/// The caller's own password, when they have one to give (a wrong one is
/// the v2 `current_password` 400 and a failed login; a right one leaves the
/// account's failed logins as they are, since a code may follow).
async fn check_current_password(
    state: &State,
    caller: &User,
    given: Option<String>,
) -> Result<(), ApiError> {
    match given {
        Some(raw) if caller.has_usable_password() => check_own_password(
            state,
            caller,
            raw,
            "current_password",
            WRONG_OLD_PASSWORD,
            RightPassword::KeepsCount,
        )
        .await
        .map(|_| ()),
        _ => Ok(()),
    }
}

/// The account's login counter, reserved before a code is checked: a
/// wrong code is a failed login (past the limit: 429, right code or not).
async fn reserve(state: &State, user: &User) -> Result<Option<LoginAttempt>, ApiError> {
    Ok(state.throttle.reserve_login_of(&user.email).await?)
}

/// Settles a reserved attempt by how the code fared: a wrong one stays
/// counted; a right one is given back (only a completed login resets).
async fn settle<T>(
    state: &State,
    attempt: Option<LoginAttempt>,
    outcome: Result<T, Refused>,
) -> Result<T, ApiError> {
    match outcome {
        Err(Refused::Incorrect(incorrect)) => {
            state.metrics.login_failures.inc();
            if let Some(attempt) = attempt {
                attempt.failed();
            }
            Err(incorrect.into())
        }
        other => {
            if let Some(attempt) = attempt {
                attempt.given_back().await;
            }
            other.map_err(ApiError::from)
        }
    }
}

/// A new set of recovery codes: shown once, stored as keyed hashes under
/// the current key, replacing the user's earlier set.
fn new_recovery_codes(
    conn: &mut DbConnection,
    keys: &MfaKeys,
    user_id: i64,
) -> Result<Vec<String>, ApiError> {
    let shown = recovery_codes::new_set();
    let key = keys
        .recovery_code_keys()
        .next()
        .ok_or_else(|| ApiError::Internal("no recovery-code key".into()))?;
    let hashes: Vec<String> = shown
        .iter()
        .filter_map(|code| recovery_codes::normalise(code))
        .map(|code| keyed_hash(key, &code))
        .collect();
    RecoveryCodes::replace(conn, user_id, &hashes, CodeFormat::Latchkey, db_now())?;
    Ok(shown)
}

/// `POST /auth/mfa/totp/confirm/`: the pending secret's code enables TOTP
/// and the first recovery codes; every session of the user ends, and the
/// caller's continues as a new one at `aal` 2.
pub async fn confirm_totp(
    state: &State,
    caller: &User,
    claims: &Claims,
    body: Body<TotpCodeForm>,
    client: Client,
) -> Result<(Vec<String>, TokenPair), ApiError> {
    let TotpCodeForm { code } = body.parse(&())?;
    let user_id = caller.id;
    let assurance = match &claims.assurance {
        known if !known.amr.is_empty() => known.clone(),
        _ => Assurance::password(),
    }
    .and(Method::Totp, false);
    let attempt = reserve(state, caller).await?;
    let outcome = state
        .with_conn(move |conn, app| {
            Ok(write_transaction(conn, |conn| -> Result<_, Refused> {
                let device = TotpDevice::lock(conn, user_id)?
                    .filter(|d| d.secret_sealed.is_some())
                    .ok_or(ApiError::BadRequest(START_FIRST.into()))?;
                if device.enabled_at.is_some() {
                    return Err(ApiError::AlreadyDone(ALREADY_ENABLED).into());
                }
                if !codes::accept_totp(conn, &app.mfa_keys, &device, &code, unix_now())? {
                    return Err(Incorrect("code").into());
                }
                if !TotpDevice::enable(conn, user_id, db_now())? {
                    return Err(ApiError::BadRequest(START_FIRST.into()).into());
                }
                let shown = new_recovery_codes(conn, &app.mfa_keys, user_id)?;
                let user = revoke_everything(conn, user_id, UserChanges::default())?;
                let pair = start_session(conn, app, user_id, &assurance, unix_now(), &client)?;
                queue_notice(conn, &app.settings.email, &user, Event::TotpEnabled)?;
                Ok((shown, pair))
            }))
        })
        .await?;
    let confirmed = settle(state, attempt, outcome).await?;
    state.mailer.wake();
    Ok(confirmed)
}

/// `POST /auth/mfa/recovery-codes/`: a TOTP code buys a new set; the
/// earlier set stops working.
pub async fn replace_recovery_codes(
    state: &State,
    caller: &User,
    claims: &Claims,
    body: Body<TotpCodeForm>,
) -> Result<Vec<String>, ApiError> {
    require_enabled(state, caller).await?;
    gate::require_aal2_when_enrolled(claims, true)?;
    let TotpCodeForm { code } = body.parse(&())?;
    let user_id = caller.id;
    let attempt = reserve(state, caller).await?;
    let outcome = state
        .with_conn(move |conn, app| {
            Ok(write_transaction(conn, |conn| -> Result<_, Refused> {
                TotpDevice::lock(conn, user_id)?;
                let user = User::find(conn, user_id)?.ok_or(ApiError::NotAuthenticated)?;
                codes::accept(
                    conn,
                    &app.mfa_keys,
                    user_id,
                    &Factor::Totp(code),
                    unix_now(),
                )?;
                let shown = new_recovery_codes(conn, &app.mfa_keys, user_id)?;
                queue_notice(
                    conn,
                    &app.settings.email,
                    &user,
                    Event::RecoveryCodesReplaced,
                )?;
                Ok(shown)
            }))
        })
        .await?;
    let shown = settle(state, attempt, outcome).await?;
    state.mailer.wake();
    Ok(shown)
}

/// 400 unless the caller has TOTP enabled.
async fn require_enabled(state: &State, caller: &User) -> Result<(), ApiError> {
    let user_id = caller.id;
    match state
        .with_conn(move |conn, _| codes::enabled_device(conn, user_id))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::BadRequest(NOT_ENABLED.into())),
    }
}

/// `DELETE /auth/mfa/totp/`: the password and a TOTP or recovery code turn
/// TOTP off; its recovery codes go with it. No session ends.
pub async fn disable_totp(
    state: &State,
    caller: &User,
    claims: &Claims,
    body: Body<TotpDisable>,
) -> Result<(), ApiError> {
    require_enabled(state, caller).await?;
    gate::require_aal2_when_enrolled(claims, true)?;
    let TotpDisable {
        current_password,
        factor,
    } = body.parse(&OwnPassword {
        usable: caller.has_usable_password(),
    })?;
    check_current_password(state, caller, current_password).await?;
    let user_id = caller.id;
    let attempt = reserve(state, caller).await?;
    let outcome = state
        .with_conn(move |conn, app| {
            Ok(write_transaction(conn, |conn| -> Result<_, Refused> {
                TotpDevice::lock(conn, user_id)?;
                let user = User::find(conn, user_id)?.ok_or(ApiError::NotAuthenticated)?;
                let method = codes::accept(conn, &app.mfa_keys, user_id, &factor, unix_now())?;
                if method == Method::RecoveryCode {
                    queue_notice(conn, &app.settings.email, &user, Event::RecoveryCodeUsed)?;
                }
                remove_second_factor(conn, user_id)?;
                queue_notice(conn, &app.settings.email, &user, Event::TotpDisabled)?;
                Ok(())
            }))
        })
        .await?;
    settle(state, attempt, outcome).await?;
    state.mailer.wake();
    Ok(())
}

/// TOTP off and the recovery codes gone (the device row stays, with its
/// last step, so no used step comes back): whether there was any.
pub(crate) fn remove_second_factor(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<bool, ApiError> {
    let totp = TotpDevice::disable(conn, user_id, db_now())?;
    let codes = RecoveryCodes::remove(conn, user_id)?;
    Ok(totp || codes > 0)
}

/// `DELETE /list/{id}/mfa/`: a staff member removes another user's second
/// factor (a lost phone), under the rule of deactivating that user, and
/// every session of theirs ends.
pub async fn reset_by_staff(state: &State, caller: &User, id: i64) -> Result<(), ApiError> {
    // One's own second factor is turned off with a code
    // (`DELETE /auth/mfa/totp/`), never by rank alone.
    if caller.id == id {
        return Err(ApiError::PermissionDenied);
    }
    let target = state
        .with_conn(move |conn, _| Ok(User::find(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound)?;
    permissions::can_update(
        &Actor {
            id: caller.id,
            flags: caller.flags(),
        },
        &Target {
            id: target.id,
            flags: target.flags(),
        },
        &FlagChange {
            is_active: Some(false),
            ..FlagChange::default()
        },
    )
    .map_err(|_| ApiError::PermissionDenied)?;
    state
        .with_conn(move |conn, app| reset(conn, &app.settings.email, id))
        .await?;
    state.mailer.wake();
    Ok(())
}

/// The staff reset's one transaction (also `latchkey disable-mfa`): the
/// second factor removed, every session ended, and the user told when
/// there was a second factor to remove.
pub fn reset(
    conn: &mut DbConnection,
    email: &EmailSettings,
    user_id: i64,
) -> Result<User, ApiError> {
    write_transaction(conn, |conn| {
        TotpDevice::lock(conn, user_id)?;
        let removed = remove_second_factor(conn, user_id)?;
        let user = revoke_everything(conn, user_id, UserChanges::default())?;
        if removed {
            queue_notice(conn, email, &user, Event::RemovedByStaff)?;
        }
        Ok(user)
    })
}
