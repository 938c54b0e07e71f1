//! The secrets of the links latchkey emails (password reset, email
//! confirmation): made here, and stored only as their hash, so that a read
//! of the database cannot use a link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new secret for a link: 32 random bytes, URL-safe base64 (43 chars).
pub fn new_link_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// What is stored of a link's secret: its SHA-256, in hex.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lowercase hex, as every stored digest is written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_secret_is_43_url_safe_characters_never_repeated() {
        let (one, two) = (new_link_secret(), new_link_secret());
        assert_eq!(one.len(), 43);
        assert!(
            one.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(one, two);
    }

    #[test]
    fn the_stored_hash_is_the_hex_sha256() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
