//! Argon2: latchkey's PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`)
//! and Django's `argon2$` + the same string (`Argon2PasswordHasher`, which
//! verifies with argon2-cffi, i.e. the reference `argon2_verify`). The string
//! is read as the reference `decode_string` reads it: an optional `v=` (16 if
//! absent), then exactly `m=`,`t=`,`p=` in that order, minimal decimals,
//! unpadded standard base64 with zero trailing bits, nothing after the hash;
//! the hash is recomputed at the stored length and compared in constant time.

use ::argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::{Checked, Cost, Strength};

pub(crate) const VERSION_13: u32 = 0x13;
const VERSION_10: u32 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Id,
    I,
}

/// The reference implementation's `decode_decimal`: digits, no leading zero
/// (except `0` itself), fitting in 32 bits.
fn minimal_decimal(field: &str) -> Option<u32> {
    if field.len() > 1 && field.starts_with('0') {
        return None;
    }
    super::decimal(field)
}

struct Parsed {
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(phc: &str, variant: Variant) -> Option<Parsed> {
    let tag = match variant {
        Variant::Id => "$argon2id",
        Variant::I => "$argon2i",
    };
    let rest = phc.strip_prefix(tag)?;
    let (version, rest) = match rest.strip_prefix("$v=") {
        Some(rest) => {
            let (v, rest) = rest.split_once('$')?;
            (minimal_decimal(v)?, rest)
        }
        None => (VERSION_10, rest.strip_prefix('$')?),
    };
    let rest = rest.strip_prefix("m=")?;
    let (memory_kib, rest) = rest.split_once(",t=")?;
    let (iterations, rest) = rest.split_once(",p=")?;
    let (parallelism, rest) = rest.split_once('$')?;
    let (salt, hash) = rest.split_once('$')?;
    Some(Parsed {
        version,
        memory_kib: minimal_decimal(memory_kib)?,
        iterations: minimal_decimal(iterations)?,
        parallelism: minimal_decimal(parallelism)?,
        salt: STANDARD_NO_PAD.decode(salt).ok()?,
        hash: STANDARD_NO_PAD.decode(hash).ok()?,
    })
}

/// `stored` is `prefix` (`""` or `"argon2"`) followed by a PHC string.
fn parse_stored(stored: &str, prefix: &str, variant: Variant) -> Option<Parsed> {
    stored
        .strip_prefix(prefix)
        .and_then(|phc| parse(phc, variant))
}

/// m, t and p, read before the crate's own limits are checked.
pub(super) fn cost(stored: &str, prefix: &str, variant: Variant) -> Option<Cost> {
    let parsed = parse_stored(stored, prefix, variant)?;
    Some(Cost::Argon2 {
        memory_kib: parsed.memory_kib,
        iterations: parsed.iterations,
        parallelism: parsed.parallelism,
    })
}

/// The crate's version and parameters for `parsed`, refusing what the
/// reference `validate_inputs` refuses: output under 4 bytes, salt under 8,
/// t = 0, m < 8·p, p outside 1..2^24 (`Params::new` checks all but the salt).
fn prepare(parsed: &Parsed) -> Option<(Version, Params)> {
    let version = match parsed.version {
        VERSION_13 => Version::V0x13,
        VERSION_10 => Version::V0x10,
        _ => return None,
    };
    if parsed.salt.len() < ::argon2::MIN_SALT_LEN {
        return None;
    }
    let params = Params::new(
        parsed.memory_kib,
        parsed.iterations,
        parsed.parallelism,
        Some(parsed.hash.len()),
    )
    .ok()?;
    Some((version, params))
}

/// Whether [`check`] would compute anything for `stored`.
pub(super) fn readable(stored: &str, prefix: &str, variant: Variant) -> bool {
    parse_stored(stored, prefix, variant)
        .as_ref()
        .and_then(prepare)
        .is_some()
}

/// Checks `raw` against `stored`; the caller has checked the bounds (m, t,
/// p) already, so the memory asked for is at most the bound's.
pub(super) fn check(raw: &str, stored: &str, prefix: &str, variant: Variant) -> Checked {
    let Some(parsed) = parse_stored(stored, prefix, variant) else {
        return Checked::Unreadable;
    };
    let Some((version, params)) = prepare(&parsed) else {
        return Checked::Unreadable;
    };
    let algorithm = match variant {
        Variant::Id => Algorithm::Argon2id,
        Variant::I => Algorithm::Argon2i,
    };
    let mut out = vec![0u8; parsed.hash.len()];
    if Argon2::new(algorithm, version, params)
        .hash_password_into(raw.as_bytes(), &parsed.salt, &mut out)
        .is_err()
    {
        return Checked::Unreadable;
    }
    if bool::from(out.ct_eq(&parsed.hash)) {
        Checked::Matches(if prefix.is_empty() {
            Strength::Argon2id {
                version: parsed.version,
                memory_kib: parsed.memory_kib,
                iterations: parsed.iterations,
                parallelism: parsed.parallelism,
            }
        } else {
            Strength::Other
        })
    } else {
        Checked::Mismatch
    }
}

/// A new PHC string: 16 random bytes of salt, 32 bytes of hash, v=19.
pub(super) fn make(
    raw: &str,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<String, String> {
    let params =
        Params::new(memory_kib, iterations, parallelism, Some(32)).map_err(|e| e.to_string())?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(raw.as_bytes(), &salt, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "$argon2id$v={VERSION_13}$m={memory_kib},t={iterations},p={parallelism}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}
