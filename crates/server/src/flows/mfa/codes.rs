//! Checking a second factor inside the caller's write transaction. Each
//! code is used by ONE conditional statement (`TotpDevice::accept_step`,
//! `RecoveryCodes::use_up`), never a read and then a write: of any number of
//! requests with one code, on any instance, exactly one is accepted, and a
//! caller whose later step fails rolls the use back with its transaction.

use latchkey_auth::recovery_codes::lookup_hashes;
use latchkey_auth::sealing::{MfaKeys, OpenError, Sealed};
use latchkey_auth::totp::{self, TotpParams};
use latchkey_domain::Method;
use latchkey_persistence::{DbConnection, RecoveryCodes, SealedSecret, TotpDevice, db_now};

use crate::error::{ApiError, FieldErrors};
use crate::forms::mfa::Factor;

pub const INCORRECT_CODE: &str = "Incorrect code.";

/// A second factor that is not the user's (wrong, already used, or not a
/// code at all), under the field it was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incorrect(pub &'static str);

impl From<Incorrect> for ApiError {
    fn from(Incorrect(field): Incorrect) -> Self {
        ApiError::Fields(FieldErrors::single(field, INCORRECT_CODE))
    }
}

/// Why a second factor was not accepted: wrong, or a failure to report.
#[derive(Debug)]
pub enum Refused {
    Incorrect(Incorrect),
    Error(ApiError),
}

impl From<Incorrect> for Refused {
    fn from(incorrect: Incorrect) -> Self {
        Refused::Incorrect(incorrect)
    }
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused::Error(error)
    }
}

impl From<latchkey_persistence::StoreError> for Refused {
    fn from(error: latchkey_persistence::StoreError) -> Self {
        Refused::Error(error.into())
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Incorrect(incorrect) => incorrect.into(),
            Refused::Error(error) => error,
        }
    }
}

/// The device's parameters, as stored.
pub fn params(device: &TotpDevice) -> TotpParams {
    TotpParams {
        digits: u32::try_from(device.digits).unwrap_or(0),
        step: i64::from(device.step),
        t0: device.t0,
    }
}

/// Opens the device's secret (enabled or pending). A secret sealed under a
/// key that is no longer configured refuses every code (never reads as "no
/// TOTP") and is logged once per user with the variable to set; one sealed
/// under a previous key is sealed again under the current one.
fn open_secret(
    conn: &mut DbConnection,
    keys: &MfaKeys,
    device: &TotpDevice,
) -> Result<Option<Vec<u8>>, ApiError> {
    let (Some(blob), Some(key_id)) = (&device.secret_sealed, &device.secret_key_id) else {
        return Ok(None);
    };
    let sealed = Sealed {
        key_id: key_id.clone(),
        blob: blob.clone(),
    };
    match keys.open(device.user_id, &sealed) {
        Ok(opened) => {
            if opened.stale {
                let fresh = keys.seal(device.user_id, &opened.secret);
                TotpDevice::reseal(
                    conn,
                    device.user_id,
                    blob,
                    SealedSecret {
                        blob: &fresh.blob,
                        key_id: &fresh.key_id,
                    },
                )?;
            }
            Ok(Some(opened.secret))
        }
        Err(error) => {
            log_unopenable(device.user_id, error);
            Ok(None)
        }
    }
}

/// Once per user and process: why their TOTP secret does not open.
fn log_unopenable(user_id: i64, error: OpenError) {
    static LOGGED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<i64>>> =
        std::sync::LazyLock::new(Default::default);
    if let Ok(mut logged) = LOGGED.lock()
        && logged.len() < 100_000
        && logged.insert(user_id)
    {
        match error {
            OpenError::UnknownKey => log::error!(
                "user {user_id}'s TOTP secret was sealed under a key that is not configured: \
                 set MFA_ENCRYPTION_KEY or MFA_PREVIOUS_ENCRYPTION_KEYS to the value it was \
                 sealed under; their codes are refused until then"
            ),
            OpenError::Corrupt => log::error!(
                "user {user_id}'s TOTP secret does not open (damaged, or moved from another \
                 user's row); their codes are refused"
            ),
        }
    }
}

/// Accepts a TOTP code of `device` (enabled or pending) at `now`: its step
/// must come after the user's last accepted step, and taking it is one
/// statement.
pub fn accept_totp(
    conn: &mut DbConnection,
    keys: &MfaKeys,
    device: &TotpDevice,
    typed: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let Some(secret) = open_secret(conn, keys, device)? else {
        return Ok(false);
    };
    let Ok(step_at) = totp::check(&secret, &params(device), typed, now, device.last_step_at) else {
        return Ok(false);
    };
    Ok(TotpDevice::accept_step(conn, device.user_id, step_at)?)
}

/// Uses up one of the user's unused recovery codes, in one statement.
pub fn accept_recovery_code(
    conn: &mut DbConnection,
    keys: &MfaKeys,
    user_id: i64,
    typed: &str,
) -> Result<bool, ApiError> {
    let hashes = lookup_hashes(keys.recovery_code_keys(), typed);
    if hashes.is_empty() {
        return Ok(false);
    }
    Ok(RecoveryCodes::use_up(conn, user_id, &hashes, db_now())?)
}

/// The user's enabled TOTP device, read in the transaction.
pub fn enabled_device(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Option<TotpDevice>, ApiError> {
    Ok(TotpDevice::find(conn, user_id)?.filter(|device| device.enabled_at.is_some()))
}

/// Accepts a second factor of a user with TOTP enabled: the method it
/// proves, or [`Incorrect`] under the field it came in.
pub fn accept(
    conn: &mut DbConnection,
    keys: &MfaKeys,
    user_id: i64,
    factor: &Factor,
    now: i64,
) -> Result<Method, Refused> {
    let incorrect = Incorrect(factor.field());
    let totp = |conn: &mut DbConnection, typed: &str| -> Result<bool, ApiError> {
        match enabled_device(conn, user_id)? {
            Some(device) => accept_totp(conn, keys, &device, typed, now),
            None => Ok(false),
        }
    };
    let accepted = match factor {
        Factor::Totp(typed) => totp(conn, typed)?.then_some(Method::Totp),
        Factor::RecoveryCode(typed) => {
            accept_recovery_code(conn, keys, user_id, typed)?.then_some(Method::RecoveryCode)
        }
        Factor::Either(typed) => {
            if totp(conn, typed)? {
                Some(Method::Totp)
            } else {
                accept_recovery_code(conn, keys, user_id, typed)?.then_some(Method::RecoveryCode)
            }
        }
    };
    accepted.ok_or(Refused::Incorrect(incorrect))
}
