//! bcrypt: latchkey's `$2a$`/`$2b$`/`$2y$` strings and Django's `bcrypt$` and
//! `bcrypt_sha256$` (Django's `BCryptSHA256PasswordHasher` hashes the
//! lowercase hex SHA-256 of the password, 64 bytes, so long passwords are
//! never truncated).
//!
//! Django's `verify` recomputes `bcrypt.hashpw(password, stored)` (pyca
//! bcrypt, built on the same `bcrypt` crate as here, which keeps the stored
//! version prefix) and compares the whole string. A password over 72 bytes
//! never matches a plain bcrypt hash: pyca bcrypt 5 refuses it and latchkey
//! never truncates; it still costs one computation at the stored cost.

use ::bcrypt::Version;
use base64::Engine;
use base64::alphabet::BCRYPT;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::NO_PAD;
use sha2::{Digest, Sha256};

use super::{BCRYPT_MAX_BYTES, Checked, Cost, Strength, same};

/// bcrypt's own base64 (the `bcrypt` crate's `BASE_64`).
const BASE_64: GeneralPurpose = GeneralPurpose::new(&BCRYPT, NO_PAD);

struct Parsed {
    tag: &'static str,
    two_b: bool,
    cost: u32,
    salt: [u8; 16],
}

/// `$2?$<cost>$<22 salt chars><31 hash chars>`, the prefix read as pyca
/// bcrypt's `hashpw` reads its salt argument.
fn parse(modular: &str, versions: &[&str]) -> Option<Parsed> {
    let rest = modular.strip_prefix('$')?;
    let (tag, rest) = rest.split_once('$')?;
    if !versions.contains(&tag) {
        return None;
    }
    let tag = ["2a", "2b", "2x", "2y"].into_iter().find(|v| *v == tag)?;
    let (cost, data) = rest.split_once('$')?;
    let cost = super::decimal(cost)?;
    if !(4..=31).contains(&cost) {
        return None;
    }
    let salt = BASE_64.decode(data.get(..22)?).ok()?;
    Some(Parsed {
        tag,
        two_b: tag == "2b",
        cost,
        salt: salt.try_into().ok()?,
    })
}

/// The cost field of `$2?$<cost>$…`, whatever the rest holds (the bounds are
/// checked before the rest is validated).
fn cost_of(modular: &str) -> Option<Cost> {
    let cost = modular.strip_prefix('$')?.split('$').nth(1)?;
    Some(Cost::Bcrypt {
        cost: super::decimal(cost)?,
    })
}

/// latchkey's own `$2?$<cost>$…`.
pub(super) fn cost_native(stored: &str) -> Option<Cost> {
    cost_of(stored)
}

/// Django's `bcrypt$$2?$<cost>$…` and `bcrypt_sha256$$2?$<cost>$…`.
pub(super) fn cost_django(stored: &str) -> Option<Cost> {
    cost_of(stored.split_once('$')?.1)
}

/// Whether `stored` is well formed (as [`check_native`] or [`check_django`]
/// would read it), without computing anything.
pub(super) fn readable(stored: &str, django: bool) -> bool {
    if django {
        stored
            .split_once('$')
            .and_then(|(_, modular)| parse(modular, &["2a", "2b", "2x", "2y"]))
            .is_some()
    } else {
        parse(stored, &["2a", "2b", "2y"]).is_some()
    }
}

fn recompute(password: &[u8], parsed: &Parsed) -> Option<String> {
    ::bcrypt::hash_with_salt(password, parsed.cost, parsed.salt)
        .ok()
        .map(|parts| {
            parts.format_for_version(match parsed.tag {
                "2a" => Version::TwoA,
                "2x" => Version::TwoX,
                "2y" => Version::TwoY,
                _ => Version::TwoB,
            })
        })
}

fn check_bcrypt(password: &[u8], modular: &str, versions: &[&str], native: bool) -> Checked {
    let Some(parsed) = parse(modular, versions) else {
        return Checked::Unreadable;
    };
    let too_long = password.len() > BCRYPT_MAX_BYTES;
    // Over 72 bytes: the same work on the first 72, then a refusal.
    let input = &password[..password.len().min(BCRYPT_MAX_BYTES)];
    let Some(recomputed) = recompute(input, &parsed) else {
        return Checked::Unreadable;
    };
    if same(modular, &recomputed) && !too_long {
        Checked::Matches(if native {
            Strength::Bcrypt {
                cost: parsed.cost,
                two_b: parsed.two_b,
            }
        } else {
            Strength::Other
        })
    } else {
        Checked::Mismatch
    }
}

/// latchkey's own `$2a$`, `$2b$`, `$2y$`.
pub(super) fn check_native(raw: &str, stored: &str) -> Checked {
    check_bcrypt(raw.as_bytes(), stored, &["2a", "2b", "2y"], true)
}

/// Django's `bcrypt$…` and `bcrypt_sha256$…` (pyca bcrypt also reads `$2x$`).
pub(super) fn check_django(raw: &str, stored: &str, sha256: bool) -> Checked {
    let prefix = if sha256 { "bcrypt_sha256$" } else { "bcrypt$" };
    let Some(modular) = stored.strip_prefix(prefix) else {
        return Checked::Unreadable;
    };
    let versions = ["2a", "2b", "2x", "2y"];
    if sha256 {
        let hex = hex_sha256(raw.as_bytes());
        check_bcrypt(hex.as_bytes(), modular, &versions, false)
    } else {
        check_bcrypt(raw.as_bytes(), modular, &versions, false)
    }
}

/// `binascii.hexlify(hashlib.sha256(password).digest())`: lowercase hex.
fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new `$2b$` hash; `raw` is at most 72 bytes (checked by the caller).
pub(super) fn make(raw: &str, cost: u32) -> Result<String, String> {
    ::bcrypt::hash(raw, cost).map_err(|e| e.to_string())
}
