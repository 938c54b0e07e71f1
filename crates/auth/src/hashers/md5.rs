//! Django's `MD5PasswordHasher`: `md5$<salt>$<hex md5(salt + password)>`.
//! Django refuses an empty salt, and reads `md5$$<32 hex>` as the unsalted
//! hasher it no longer has (see [`super::Format::identify`]).

use md5::{Digest, Md5};

use super::{Checked, Strength, same};

/// The salt, or `None` when Django would refuse the string.
fn parse(stored: &str) -> Option<&str> {
    let mut parts = stored.splitn(3, '$');
    let (Some("md5"), Some(salt), Some(_hash)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    (!salt.is_empty()).then_some(salt)
}

/// Whether [`check`] would compute anything for `stored`.
pub(super) fn readable(stored: &str) -> bool {
    parse(stored).is_some()
}

pub(super) fn check(raw: &str, stored: &str) -> Checked {
    let Some(salt) = parse(stored) else {
        return Checked::Unreadable;
    };
    let mut md5 = Md5::new();
    md5.update(salt.as_bytes());
    md5.update(raw.as_bytes());
    let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if same(stored, &format!("md5${salt}${hex}")) {
        Checked::Matches(Strength::Other)
    } else {
        Checked::Mismatch
    }
}
