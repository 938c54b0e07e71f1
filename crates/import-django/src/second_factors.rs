//! Django's second factors mapped to latchkey's, in clear, for the write to
//! seal and hash at once: django-otp's confirmed TOTP devices (hex `key`,
//! `digits`, `step`, `t0`, `last_t`) and its static tokens, allauth's TOTP
//! authenticator (base32 `secret`) and recovery codes (derived from `seed`
//! and `used_mask` as allauth 65.21.1 derives them, or its
//! `migrated_codes`). allauth's rows record neither its TOTP shape nor its
//! code count and length: its defaults are assumed (TOTP 6 digits, 30 s;
//! 10 codes of 8 digits), and its `MFA_ADAPTER.decrypt` is taken to be the
//! default one, the identity.

use std::collections::{BTreeMap, HashSet};

use hmac::{Hmac, Mac};
use latchkey_auth::recovery_codes::normalise_as_stored;
use latchkey_auth::totp::{TotpParams, from_base32};
use latchkey_persistence::DeviceShape;
use serde_json::Value;
use sha1::Sha1;

use crate::source::{DjangoAuthenticator, DjangoStaticToken, DjangoTotpDevice};

/// allauth's `MFA_RECOVERY_CODE_COUNT` default.
const ALLAUTH_CODE_COUNT: u32 = 10;
/// allauth's `MFA_RECOVERY_CODE_DIGITS` default.
const ALLAUTH_CODE_DIGITS: u32 = 8;

/// The TOTP device a user is imported with, its secret in clear.
pub(crate) struct ChosenDevice {
    pub(crate) user_id: i64,
    pub(crate) secret: Vec<u8>,
    pub(crate) shape: DeviceShape,
    pub(crate) last_step_at: Option<i64>,
}

/// A second factor that could not be read, and where it is.
pub(crate) struct Unparsable {
    pub(crate) user_id: i64,
    pub(crate) what: String,
}

/// A django-otp device as latchkey's, or why it cannot be one.
fn otp_device(row: &DjangoTotpDevice) -> Result<ChosenDevice, String> {
    let secret = from_hex(row.key.trim()).ok_or("the key is not hex")?;
    if secret.is_empty() {
        return Err("the key is empty".into());
    }
    let shape = DeviceShape {
        digits: i32::try_from(row.digits).map_err(|_| "digits out of range")?,
        step: i32::try_from(row.step).map_err(|_| "step out of range")?,
        t0: row.t0,
    };
    let params = TotpParams {
        digits: u32::try_from(shape.digits).unwrap_or(0),
        step: i64::from(shape.step),
        t0: shape.t0,
    };
    if !params.is_valid() {
        return Err(format!(
            "{} digits every {} s cannot make codes",
            row.digits, row.step
        ));
    }
    // django-otp's last_t counts steps from t0; -1 when none was accepted.
    let last_step_at = if row.last_t >= 0 {
        Some(
            row.last_t
                .checked_mul(row.step)
                .and_then(|at| at.checked_add(row.t0))
                .ok_or("last_t out of range")?,
        )
    } else {
        None
    };
    Ok(ChosenDevice {
        user_id: row.user_id,
        secret,
        shape,
        last_step_at,
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn json(row: &DjangoAuthenticator) -> Result<Value, String> {
    serde_json::from_str(&row.data).map_err(|_| "data is not JSON".to_owned())
}

/// allauth's TOTP authenticator as latchkey's device (allauth's defaults).
fn allauth_device(row: &DjangoAuthenticator) -> Result<ChosenDevice, String> {
    let data = json(row)?;
    let secret = data["secret"]
        .as_str()
        .ok_or("data has no secret")
        .and_then(|text| from_base32(text).ok_or("the secret is not base32"))?;
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(ChosenDevice {
        user_id: row.user_id,
        secret,
        shape: DeviceShape::default(),
        last_step_at: None,
    })
}

/// One device per user: of the user's confirmed django-otp devices, the
/// one that accepted the latest step (one never used ranks below any used
/// one; a tie goes to the newest row); allauth's TOTP when the user has no
/// readable django-otp device. Unreadable devices are listed, never chosen.
pub(crate) fn choose_devices(
    otp: &[DjangoTotpDevice],
    allauth: &[DjangoAuthenticator],
) -> (Vec<ChosenDevice>, Vec<Unparsable>) {
    let mut unparsable = Vec::new();
    let mut chosen: BTreeMap<i64, (ChosenDevice, (Option<i64>, i64))> = BTreeMap::new();
    for row in otp {
        match otp_device(row) {
            Ok(device) => {
                let rank = (device.last_step_at, row.id);
                let better = chosen
                    .get(&row.user_id)
                    .is_none_or(|(_, best)| rank > *best);
                if better {
                    chosen.insert(row.user_id, (device, rank));
                }
            }
            Err(why) => unparsable.push(Unparsable {
                user_id: row.user_id,
                what: format!("otp_totp_totpdevice id {}: {why}", row.id),
            }),
        }
    }
    for row in allauth.iter().filter(|row| row.kind == "totp") {
        match allauth_device(row) {
            Ok(device) => {
                chosen
                    .entry(row.user_id)
                    .or_insert((device, (None, i64::MIN)));
            }
            Err(why) => unparsable.push(Unparsable {
                user_id: row.user_id,
                what: format!("mfa_authenticator id {}: {why}", row.id),
            }),
        }
    }
    (
        chosen.into_values().map(|(device, _)| device).collect(),
        unparsable,
    )
}

/// allauth's codes for `seed`, as `RecoveryCodes.generate_codes` makes
/// them: one HMAC-SHA1 keyed by the seed, fed `f"{i:3},"` for each index
/// in turn, each code the first 4 bytes of the digest so far (big-endian)
/// modulo 10^8, zero-padded; the codes whose bit is set in `used_mask` are
/// left out.
fn allauth_unused_codes(seed: &str, used_mask: u64) -> Vec<String> {
    // HMAC accepts a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha1>::new_from_slice(seed.as_bytes()).expect("HMAC takes any key");
    let byte_count = (ALLAUTH_CODE_DIGITS / 2) as usize;
    let modulus = 10u64.pow(ALLAUTH_CODE_DIGITS);
    let mut codes = Vec::new();
    for i in 0..ALLAUTH_CODE_COUNT {
        mac.update(format!("{i:3},").as_bytes());
        let digest = mac.clone().finalize().into_bytes();
        let value = digest[..byte_count]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            % modulus;
        if used_mask & (1 << i) == 0 {
            codes.push(format!(
                "{value:0width$}",
                width = ALLAUTH_CODE_DIGITS as usize
            ));
        }
    }
    codes
}

/// allauth's unused recovery codes of a `recovery_codes` row.
fn allauth_codes(row: &DjangoAuthenticator) -> Result<Vec<String>, String> {
    let data = json(row)?;
    if let Some(migrated) = data.get("migrated_codes") {
        return migrated
            .as_array()
            .and_then(|codes| {
                codes
                    .iter()
                    .map(|code| code.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| "migrated_codes is not a list of codes".to_owned());
    }
    let seed = data["seed"].as_str().ok_or("data has no seed")?;
    let used_mask = match &data["used_mask"] {
        Value::Null => 0,
        mask => mask.as_u64().ok_or("used_mask is not a number")?,
    };
    Ok(allauth_unused_codes(seed, used_mask))
}

/// The unused recovery codes of each user, `(user id, code)` with the code
/// in its `AsStored` form: django-otp's static tokens (a used one is no
/// longer in the table) and allauth's unused codes, each once per user.
pub(crate) fn recovery_codes(
    tokens: &[DjangoStaticToken],
    allauth: &[DjangoAuthenticator],
) -> (Vec<(i64, String)>, Vec<Unparsable>) {
    let mut unparsable = Vec::new();
    let mut seen = HashSet::new();
    let mut codes = Vec::new();
    let mut add = |user_id: i64, code: &str| {
        if let Some(code) = normalise_as_stored(code)
            && seen.insert((user_id, code.clone()))
        {
            codes.push((user_id, code));
        }
    };
    for token in tokens {
        add(token.user_id, &token.token);
    }
    for row in allauth.iter().filter(|row| row.kind == "recovery_codes") {
        match allauth_codes(row) {
            Ok(found) => found.iter().for_each(|code| add(row.user_id, code)),
            Err(why) => unparsable.push(Unparsable {
                user_id: row.user_id,
                what: format!("mfa_authenticator id {}: {why}", row.id),
            }),
        }
    }
    codes.sort_by_key(|(user_id, _)| *user_id);
    (codes, unparsable)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed and codes make_django_db.py printed for a user of the
    /// `mfa` scenario, from allauth 65.21.1's own `generate_codes()`.
    const SEED: &str =
        "d7986acf4ed3fdbf9b6d54676c9949b973e9dd679ad79b1db0d8aa83dea4581fbffb2db04a4b633a";
    const CODES: [&str; 10] = [
        "49100905", "65511854", "66835739", "96657413", "41748880", "26132431", "50975961",
        "36688711", "80995445", "62557559",
    ];

    #[test]
    fn allauth_codes_are_derived_as_allauth_derives_them() {
        assert_eq!(allauth_unused_codes(SEED, 0), CODES);
        let mut unused = CODES.to_vec();
        unused.remove(3);
        assert_eq!(allauth_unused_codes(SEED, 8), unused);
    }

    fn device(id: i64, key: &str, last_t: i64) -> DjangoTotpDevice {
        DjangoTotpDevice {
            id,
            user_id: 1,
            key: key.into(),
            digits: 6,
            step: 30,
            t0: 0,
            last_t,
        }
    }

    #[test]
    fn the_most_recently_used_readable_device_is_chosen() {
        let rows = [
            device(1, "00", 10),
            device(2, "01", 20),
            device(3, "02", -1),
            device(4, "zz", 99),
        ];
        let (chosen, unparsable) = choose_devices(&rows, &[]);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].secret, [1]);
        assert_eq!(chosen[0].last_step_at, Some(600));
        assert_eq!(unparsable.len(), 1);
        assert_eq!(
            unparsable[0].what,
            "otp_totp_totpdevice id 4: the key is not hex"
        );
        let (chosen, _) = choose_devices(&[device(5, "05", -1), device(6, "06", -1)], &[]);
        assert_eq!(chosen[0].secret, [6]);
    }
}
