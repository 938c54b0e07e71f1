//! Second-factor secrets at rest. A TOTP secret (pending or enabled) is
//! sealed with AES-256-GCM under a key derived from `MFA_ENCRYPTION_KEY`
//! (or, unset, from `SECRET_KEY`) by HKDF-SHA256 under a label of its own,
//! with the user's id as associated data, so a sealed secret copied onto
//! another user's row does not open. The key's id is stored beside it: a
//! secret sealed under a previous key (`MFA_PREVIOUS_ENCRYPTION_KEYS`)
//! still opens, and is sealed again under the current key at its next use.
//! Recovery codes are keyed by a second key derived from the same value.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

const SEALING_LABEL: &[u8] = b"latchkey mfa secret sealing v1";
const CODES_LABEL: &[u8] = b"latchkey recovery code hashing v1";
const NONCE_BYTES: usize = 12;

/// One configured key, as derived for sealing and for recovery codes.
struct DerivedKey {
    /// The first 8 hex digits of the SHA-256 of the sealing key: names
    /// the key beside each sealed secret without telling anything of it.
    id: String,
    cipher: Aes256Gcm,
    codes: [u8; 32],
}

impl DerivedKey {
    fn from_secret(secret: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, secret);
        let mut sealing = [0u8; 32];
        let mut codes = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        #[allow(clippy::expect_used)]
        {
            hkdf.expand(SEALING_LABEL, &mut sealing)
                .expect("32 bytes is a valid HKDF length");
            hkdf.expand(CODES_LABEL, &mut codes)
                .expect("32 bytes is a valid HKDF length");
        }
        let id = crate::secrets::hex(&Sha256::digest(sealing)[..4]);
        #[allow(clippy::expect_used)]
        let cipher = Aes256Gcm::new_from_slice(&sealing).expect("a 32-byte AES-256 key");
        DerivedKey { id, cipher, codes }
    }
}

/// The keys second-factor secrets are sealed and opened with.
pub struct MfaKeys {
    current: DerivedKey,
    previous: Vec<DerivedKey>,
}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaKeys")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A sealed secret as stored: the key's id and base64 of nonce and
/// ciphertext (the tag included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: String,
}

/// A secret opened, and whether it should be sealed again (its key is not
/// the current one).
pub struct Opened {
    pub secret: Vec<u8>,
    pub stale: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("secret", &"[hidden]")
            .field("stale", &self.stale)
            .finish()
    }
}

/// Why a sealed secret does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed under a key that is not configured (any more): set it in
    /// `MFA_PREVIOUS_ENCRYPTION_KEYS`.
    UnknownKey,
    /// Not a blob this code sealed, or not for this user.
    Corrupt,
}

impl MfaKeys {
    /// `current` is `MFA_ENCRYPTION_KEY`'s value (else `SECRET_KEY`'s),
    /// `previous` the values either had before a rotation.
    pub fn derive(current: &[u8], previous: &[&[u8]]) -> Self {
        let current = DerivedKey::from_secret(current);
        let previous = previous
            .iter()
            .map(|secret| DerivedKey::from_secret(secret))
            .filter(|key| key.id != current.id)
            .collect();
        MfaKeys { current, previous }
    }

    /// The id of the key [`MfaKeys::seal`] uses.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, user_id: i64, secret: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = user_id.to_be_bytes();
        // Encryption fails only for inputs beyond GCM's 64 GiB limit.
        #[allow(clippy::expect_used)]
        let sealed = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("a short secret seals");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Sealed {
            key_id: self.current.id.clone(),
            blob: STANDARD_NO_PAD.encode(blob),
        }
    }

    pub fn open(&self, user_id: i64, sealed: &Sealed) -> Result<Opened, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == sealed.key_id)
            .ok_or(OpenError::UnknownKey)?;
        let blob = STANDARD_NO_PAD
            .decode(&sealed.blob)
            .map_err(|_| OpenError::Corrupt)?;
        if blob.len() < NONCE_BYTES {
            return Err(OpenError::Corrupt);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Corrupt)?;
        let secret = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &user_id.to_be_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt)?;
        Ok(Opened {
            secret,
            stale: key.id != self.current.id,
        })
    }

    /// The ids of every configured key, the current one first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| key.id.as_str())
            .collect()
    }

    /// The keys a recovery code's stored hash may be under, the current
    /// one first (a code set made before a rotation keeps working).
    pub fn recovery_code_keys(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| key.codes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_for_its_user_only() {
        let keys = MfaKeys::derive(b"a-secret-key-value", &[]);
        let sealed = keys.seal(7, b"twenty-byte-secret!!");
        assert_eq!(sealed.key_id, keys.current_id());
        assert!(!sealed.blob.contains("twenty"));
        let opened = keys.open(7, &sealed).unwrap();
        assert_eq!(opened.secret, b"twenty-byte-secret!!");
        assert!(!opened.stale);
        assert_eq!(keys.open(8, &sealed).unwrap_err(), OpenError::Corrupt);
        // Two seals of one secret differ (a fresh nonce each time).
        assert_ne!(keys.seal(7, b"same").blob, keys.seal(7, b"same").blob);
    }

    #[test]
    fn a_previous_key_still_opens_and_says_so() {
        let old = MfaKeys::derive(b"old-value", &[]);
        let sealed = old.seal(1, b"secret");
        let rotated = MfaKeys::derive(b"new-value", &[b"old-value"]);
        let opened = rotated.open(1, &sealed).unwrap();
        assert_eq!(opened.secret, b"secret");
        assert!(opened.stale);
        let forgotten = MfaKeys::derive(b"new-value", &[]);
        assert_eq!(
            forgotten.open(1, &sealed).unwrap_err(),
            OpenError::UnknownKey
        );
    }

    #[test]
    fn tampered_blobs_do_not_open() {
        let keys = MfaKeys::derive(b"value", &[]);
        let sealed = keys.seal(1, b"secret");
        let mut blob = STANDARD_NO_PAD.decode(&sealed.blob).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = Sealed {
            key_id: sealed.key_id.clone(),
            blob: STANDARD_NO_PAD.encode(&blob),
        };
        assert_eq!(keys.open(1, &tampered).unwrap_err(), OpenError::Corrupt);
        for blob in ["AAAA", "not base64!", ""] {
            let short = Sealed {
                key_id: keys.current_id().into(),
                blob: blob.into(),
            };
            assert_eq!(keys.open(1, &short).unwrap_err(), OpenError::Corrupt);
        }
    }

    #[test]
    fn the_code_key_differs_per_value_and_debug_shows_only_ids() {
        let keys = MfaKeys::derive(b"new-value", &[b"old-value"]);
        let codes: Vec<&[u8]> = keys.recovery_code_keys().collect();
        assert_eq!(codes.len(), 2);
        assert_ne!(codes[0], codes[1]);
        let debug = format!("{keys:?}");
        assert!(debug.contains(keys.current_id()));
        assert!(!debug.contains("value"));
        assert_eq!(keys.current_id().len(), 8);
    }
}
