//! bcrypt hashing that never truncates, and a login check that costs the same
//! whether or not the account exists.

use latchkey_domain::Password;
use latchkey_domain::password::MAX_BYTES;
use std::sync::OnceLock;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::HashError;

pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at the same cost, verified against when the
    /// email is unknown so that the answer takes as long as a real check.
    /// Made on first use (or by [`PasswordHasher::warm_up`]) so that start-up
    /// does not wait for a bcrypt hash.
    dummy_hash: OnceLock<String>,
}

impl PasswordHasher {
    pub fn new(cost: u32) -> Result<Self, HashError> {
        if !(4..=31).contains(&cost) {
            return Err(HashError::Bcrypt(format!("cost {cost} is outside 4..=31")));
        }
        Ok(PasswordHasher {
            cost,
            dummy_hash: OnceLock::new(),
        })
    }

    /// Makes the dummy hash now.
    pub fn warm_up(&self) {
        self.dummy_hash();
    }

    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            let random: String = rand::rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            // The cost was range-checked in `new`, the only way bcrypt fails.
            bcrypt::hash(random, self.cost).unwrap_or_default()
        })
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        // bcrypt reads at most 72 bytes; `non_truncating_hash` also refuses
        // exactly 72 (it counts the C terminator), which loses nothing, so the
        // limit is checked here and the plain call made.
        let raw = password.expose();
        if raw.len() > MAX_BYTES {
            return Err(HashError::TooLong);
        }
        bcrypt::hash(raw, self.cost).map_err(|e| HashError::Bcrypt(e.to_string()))
    }

    /// Whether `raw` matches `hash`. Input over 72 bytes never matches (it
    /// could not have been set), but still costs one verification.
    pub fn verify(&self, raw: &str, hash: &str) -> bool {
        if raw.len() > MAX_BYTES {
            self.burn(raw);
            return false;
        }
        bcrypt::verify(raw, hash).unwrap_or(false)
    }

    /// Spends one verification's time and always fails: for unknown emails.
    pub fn verify_dummy(&self, raw: &str) -> bool {
        self.burn(raw);
        false
    }

    fn burn(&self, raw: &str) {
        let truncated: Vec<u8> = raw.as_bytes().iter().copied().take(MAX_BYTES).collect();
        let _ = bcrypt::verify(truncated, self.dummy_hash());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hasher = PasswordHasher::new(4).unwrap();
        let password = Password::parse("a-fine-passphrase", None).unwrap();
        let hash = hasher.hash(&password).unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify("a-fine-passphrase", &hash));
        assert!(!hasher.verify("a-fine-passphrasE", &hash));
    }

    #[test]
    fn a_longer_input_never_matches_a_72_byte_password() {
        let hasher = PasswordHasher::new(4).unwrap();
        let exact = "x".repeat(72);
        let hash = hasher
            .hash(&Password::parse_unvalidated(&exact).unwrap())
            .unwrap();
        assert!(hasher.verify(&exact, &hash));
        assert!(!hasher.verify(&format!("{exact}y"), &hash));
    }

    #[test]
    fn the_dummy_never_matches() {
        let hasher = PasswordHasher::new(4).unwrap();
        assert!(!hasher.verify_dummy("anything"));
    }
}
