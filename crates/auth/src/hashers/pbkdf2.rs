//! Django's `PBKDF2PasswordHasher` (`pbkdf2_sha256$`) and
//! `PBKDF2SHA1PasswordHasher` (`pbkdf2_sha1$`):
//! `<algorithm>$<iterations>$<salt>$<base64(PBKDF2-HMAC(password, salt))>`,
//! the key as long as the digest, password and salt in UTF-8.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Checked, Cost, Strength, decimal, same};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digest {
    Sha256,
    Sha1,
}

impl Digest {
    fn algorithm(self) -> &'static str {
        match self {
            Digest::Sha256 => "pbkdf2_sha256",
            Digest::Sha1 => "pbkdf2_sha1",
        }
    }
}

/// Django's `encode(password, salt, iterations)`.
pub(crate) fn make(raw: &str, salt: &str, iterations: u32, digest: Digest) -> String {
    let key = match digest {
        Digest::Sha256 => {
            let mut key = [0u8; 32];
            ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                raw.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut key,
            );
            STANDARD.encode(key)
        }
        Digest::Sha1 => {
            let mut key = [0u8; 20];
            ::pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                raw.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut key,
            );
            STANDARD.encode(key)
        }
    };
    format!("{}${iterations}${salt}${key}", digest.algorithm())
}

/// Django's `decode` (`split("$", 3)`): the iterations and the salt, or
/// `None` for what Django refuses: an empty salt (`_check_encode_args`), and
/// 0 iterations, which Django replaces by its default and so cannot
/// re-encode to the stored string.
fn parse(stored: &str, digest: Digest) -> Option<(u32, &str)> {
    let mut parts = stored.splitn(4, '$');
    let (Some(algorithm), Some(iterations), Some(salt), Some(_hash)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if algorithm != digest.algorithm() || salt.is_empty() {
        return None;
    }
    let iterations = decimal(iterations).filter(|&n| n > 0)?;
    Some((iterations, salt))
}

/// The iterations field, read before the rest is validated.
pub(super) fn cost(stored: &str) -> Option<Cost> {
    let iterations = stored.split('$').nth(1)?;
    Some(Cost::Pbkdf2 {
        iterations: decimal(iterations).filter(|&n| n > 0)?,
    })
}

/// Whether [`check`] would compute anything for `stored`.
pub(super) fn readable(stored: &str, digest: Digest) -> bool {
    parse(stored, digest).is_some()
}

/// [`parse`], then Django's `encode` with the stored salt and iterations,
/// compared with the whole stored string.
pub(super) fn check(raw: &str, stored: &str, digest: Digest) -> Checked {
    let Some((iterations, salt)) = parse(stored, digest) else {
        return Checked::Unreadable;
    };
    if same(stored, &make(raw, salt, iterations, digest)) {
        Checked::Matches(match digest {
            Digest::Sha256 => Strength::Pbkdf2Sha256 { iterations },
            Digest::Sha1 => Strength::Other,
        })
    } else {
        Checked::Mismatch
    }
}
