//! Django's `ScryptPasswordHasher`:
//! `scrypt$<n>$<salt>$<r>$<p>$<base64(scrypt(password, salt, n, r, p, 64))>`,
//! computed by Django with `hashlib.scrypt(..., maxmem=0)`, i.e. OpenSSL's
//! `EVP_PBE_scrypt` with its default 32 MiB memory limit: parameters past
//! OpenSSL's checks make Django raise, so they never match here either.
//! latchkey's own bound (N·r·p ≤ 2^24, see [`super::cost`]) comes first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Checked, Cost, Strength, decimal, same};

/// OpenSSL's `SCRYPT_MAX_MEM`, used when `maxmem` is 0.
const OPENSSL_MAX_MEM: u64 = 32 * 1024 * 1024;
/// OpenSSL's `SCRYPT_PR_MAX`.
const PR_MAX: u64 = (1 << 30) - 1;

/// The checks of OpenSSL's `EVP_PBE_scrypt` (crypto/evp/pbe_scrypt.c and
/// providers/implementations/kdfs/scrypt.c) for `maxmem` = 32 MiB.
fn openssl_accepts(n: u64, r: u64, p: u64) -> bool {
    if r == 0 || p == 0 || n < 2 || n & (n - 1) != 0 {
        return false;
    }
    if p > PR_MAX / r {
        return false;
    }
    if 16 * r <= 63 && n >= 1u64 << (16 * r) {
        return false;
    }
    let b_len = p * 128 * r;
    if b_len > i32::MAX as u64 {
        return false;
    }
    if n + 2 > (u64::MAX / 128) / r {
        return false;
    }
    let v_len = 32 * r * (n + 2) * 4;
    match b_len.checked_add(v_len) {
        Some(total) => total <= OPENSSL_MAX_MEM,
        None => false,
    }
}

/// What Django's `decode` and OpenSSL accept: (n, salt, r, p) and the
/// crate's parameters, or `None`.
fn parse(stored: &str) -> Option<(u32, &str, u32, u32, ::scrypt::Params)> {
    let fields: Vec<&str> = stored.split('$').collect();
    // Django's `split("$", 6)` unpacked into six names.
    let [algorithm, n, salt, r, p, _hash] = fields[..] else {
        return None;
    };
    if algorithm != "scrypt" || salt.is_empty() {
        return None;
    }
    // 0 means Django's default in `encode`, which cannot re-encode to the
    // stored string; `openssl_accepts` refuses it.
    let (n, r, p) = (decimal(n)?, decimal(r)?, decimal(p)?);
    if !openssl_accepts(n.into(), r.into(), p.into()) {
        return None;
    }
    let log_n = n.trailing_zeros() as u8;
    let params = ::scrypt::Params::new(log_n, r, p, 64).ok()?;
    Some((n, salt, r, p, params))
}

/// N, r and p, read before the rest is validated.
pub(super) fn cost(stored: &str) -> Option<Cost> {
    let fields: Vec<&str> = stored.split('$').collect();
    let [_, n, _, r, p, _] = fields[..] else {
        return None;
    };
    Some(Cost::Scrypt {
        n: decimal(n)?.into(),
        r: decimal(r)?.into(),
        p: decimal(p)?.into(),
    })
}

/// Whether [`check`] would compute anything for `stored`.
pub(super) fn readable(stored: &str) -> bool {
    parse(stored).is_some()
}

pub(super) fn check(raw: &str, stored: &str) -> Checked {
    let Some((n, salt, r, p, params)) = parse(stored) else {
        return Checked::Unreadable;
    };
    let mut key = [0u8; 64];
    if ::scrypt::scrypt(raw.as_bytes(), salt.as_bytes(), &params, &mut key).is_err() {
        return Checked::Unreadable;
    }
    let recomputed = format!("scrypt${n}${salt}${r}${p}${}", STANDARD.encode(key));
    if same(stored, &recomputed) {
        Checked::Matches(Strength::Other)
    } else {
        Checked::Mismatch
    }
}
