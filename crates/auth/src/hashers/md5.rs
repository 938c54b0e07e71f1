//! Django's `MD5PasswordHasher`: `md5$<salt>$<hex md5(salt + password)>`.
//! Django refuses an empty salt, and reads `md5$$<32 hex>` as the unsalted
//! hasher it no longer has (see [`super::Format::identify`]).

use md5::{Digest, Md5};

use super::{Checked, Strength, same};

pub(super) fn check(raw: &str, stored: &str) -> Checked {
    let mut parts = stored.splitn(3, '$');
    let (Some("md5"), Some(salt), Some(_hash)) = (parts.next(), parts.next(), parts.next()) else {
        return Checked::Unreadable;
    };
    if salt.is_empty() {
        return Checked::Unreadable;
    }
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
