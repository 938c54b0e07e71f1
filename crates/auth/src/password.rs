//! Password hashing in the configured format (`PASSWORD_HASHER`), checks of
//! a password against a hash in any format latchkey or Django writes (see
//! [`crate::hashers`]), the upgrade decision after a successful check, and a
//! check that costs at least one configured verification whether or not the
//! account exists and whatever its stored hash is (see
//! `docs/password-hashing.md`, "Bounds and the wrong-password floor").

use latchkey_domain::Password;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::HashError;
use crate::hashers::{
    self, Bounds, Checked, Cost, Format, HashProblem, HasherConfig, HasherConfigError, HasherKind,
};

pub use crate::hashers::MAX_BYTES_NON_BCRYPT;

pub struct PasswordHasher {
    config: HasherConfig,
    /// The largest parameters a stored hash may have to be verified.
    bounds: Bounds,
    /// The estimated work of one verification with `config`: a wrong
    /// password against a stored hash of less work also burns the dummy.
    configured_work: u64,
    /// A hash of a random password in the configured format, verified
    /// against when the email is unknown (or the stored hash unusable) so
    /// that the answer takes as long as a real check. Made on first use (or
    /// by [`PasswordHasher::warm_up`]) so that start-up does not wait for it.
    dummy_hash: OnceLock<String>,
    stored_checks: AtomicU64,
    dummy_checks: AtomicU64,
}

/// The verifications a [`PasswordHasher`] has run since it was made, for
/// tests and metrics: every refusal costs exactly one verification at the
/// configured cost or more, which these counts show without timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerificationCounts {
    /// Stored hashes recomputed at their own parameters (never one past the
    /// bounds, unusable or unreadable).
    pub stored: u64,
    /// Verifications of the dummy hash, at the configured parameters: for
    /// an unknown email, an unusable, unknown, malformed or out-of-bounds
    /// stored hash, and after a wrong password against a stored hash that
    /// costs less than the configured one.
    pub dummy: u64,
}

/// What [`PasswordHasher::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verification {
    /// The password is the one the hash was made from.
    pub matches: bool,
    /// Only when `matches`: the stored hash is not in the configured format
    /// or is weaker than configured, and should be replaced by
    /// [`PasswordHasher::hash`] of the same password (same unit of work as
    /// `last_login`). `false` means: keep the stored hash byte for byte.
    pub needs_upgrade: bool,
    /// The stored string is in no format latchkey reads (or is malformed for
    /// the one its prefix names): log once per user, without the hash.
    pub unknown_format: bool,
    /// The stored string is Django's unusable password (`!…`): never
    /// matches, and is not worth a log line.
    pub unusable: bool,
    /// A parameter of the stored hash is past latchkey's bounds (see
    /// [`PasswordHasher::stored_hash_problem`] for which): never matches,
    /// even with the right password, and was not computed. Log once per
    /// user, without the hash.
    pub out_of_bounds: bool,
}

impl PasswordHasher {
    /// The bcrypt hasher at `cost`, every other setting at its default.
    pub fn new(cost: u32) -> Result<Self, HashError> {
        Self::with_config(HasherConfig {
            kind: HasherKind::Bcrypt,
            bcrypt_cost: cost,
            ..HasherConfig::default()
        })
        .map_err(|e| HashError::Bcrypt(e.to_string()))
    }

    /// The hasher for `config`, its bounds checked (the error names the
    /// setting).
    pub fn with_config(config: HasherConfig) -> Result<Self, HasherConfigError> {
        config.check()?;
        Ok(PasswordHasher {
            config,
            bounds: Bounds::for_config(&config),
            configured_work: Cost::configured(&config).work(),
            dummy_hash: OnceLock::new(),
            stored_checks: AtomicU64::new(0),
            dummy_checks: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &HasherConfig {
        &self.config
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
            // The configuration was checked in `with_config`, so the hashers
            // cannot fail on a 32-byte password. (An empty dummy would make
            // unknown emails answer at once, undoing the timing equality.)
            #[allow(clippy::expect_used)]
            hashers::make(&random, &self.config)
                .expect("a checked configuration hashes a 32-character password")
        })
    }

    /// The bcrypt cost (`BCRYPT_COST`), whatever the configured format.
    pub fn cost(&self) -> u32 {
        self.config.bcrypt_cost
    }

    /// The longest password a new hash can be made of: 72 bytes under
    /// bcrypt, 4096 otherwise. Give it to `Password::parse_with_limit`.
    pub fn max_password_bytes(&self) -> usize {
        self.config.max_password_bytes()
    }

    /// A new hash in the configured format.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let raw = password.expose();
        if raw.len() > self.max_password_bytes() {
            return Err(HashError::TooLong);
        }
        hashers::make(raw, &self.config).map_err(HashError::Bcrypt)
    }

    /// Whether `raw` matches `stored`, and whether to rehash it.
    ///
    /// A password over 4096 bytes is refused without any hashing (the
    /// server should answer it before looking the user up). A password over
    /// 72 bytes never matches a bcrypt hash but costs one computation at its
    /// cost. An unusable (`!`), unknown, malformed or out-of-bounds hash
    /// never matches and costs one verification of the dummy hash, as an
    /// unknown email does. A wrong password against a hash that costs less
    /// than the configured one (an imported `md5$`, Django's PBKDF2 under
    /// bcrypt 12) also costs one verification of the dummy hash, so that no
    /// refusal is faster than an unknown email's; the right one costs only
    /// its own check.
    pub fn check(&self, raw: &str, stored: &str) -> Verification {
        if raw.len() > MAX_BYTES_NON_BCRYPT {
            return Verification::default();
        }
        if stored.starts_with('!') {
            self.burn(raw);
            return Verification {
                unusable: true,
                ..Verification::default()
            };
        }
        let (format, cost) = match hashers::inspect(stored, &self.bounds) {
            Ok(found) => found,
            Err(problem) => {
                self.burn(raw);
                return Verification {
                    unknown_format: problem == HashProblem::UnknownFormat,
                    out_of_bounds: problem != HashProblem::UnknownFormat,
                    ..Verification::default()
                };
            }
        };
        self.stored_checks.fetch_add(1, Ordering::Relaxed);
        match hashers::check_format(format, raw, stored) {
            Checked::Matches(strength) => Verification {
                matches: true,
                // Under bcrypt a password over 72 bytes cannot be rehashed:
                // it keeps the hash it has.
                needs_upgrade: raw.len() <= self.max_password_bytes()
                    && hashers::needs_upgrade(strength, &self.config),
                ..Verification::default()
            },
            Checked::Mismatch => {
                if cost.work() < self.configured_work {
                    self.burn(raw);
                }
                Verification::default()
            }
            Checked::Unreadable => {
                self.burn(raw);
                Verification {
                    unknown_format: true,
                    ..Verification::default()
                }
            }
        }
    }

    /// Why `stored` can never be used to log in (a parameter past the
    /// bounds, or no format latchkey reads), from its text alone: nothing
    /// is hashed, so `import-django` can list such rows. `None` for a hash
    /// that [`PasswordHasher::check`] would verify, and for Django's
    /// unusable password (`!…`), which is a normal state, not a problem.
    pub fn stored_hash_problem(&self, stored: &str) -> Option<HashProblem> {
        if stored.starts_with('!') {
            return None;
        }
        hashers::inspect(stored, &self.bounds).err()
    }

    /// The verifications run so far (see [`VerificationCounts`]).
    pub fn verification_counts(&self) -> VerificationCounts {
        VerificationCounts {
            stored: self.stored_checks.load(Ordering::Relaxed),
            dummy: self.dummy_checks.load(Ordering::Relaxed),
        }
    }

    /// Whether `raw` matches `hash` (see [`PasswordHasher::check`]).
    pub fn verify(&self, raw: &str, hash: &str) -> bool {
        self.check(raw, hash).matches
    }

    /// Spends one verification's time and always fails: for unknown emails.
    /// A password over 4096 bytes is refused without hashing.
    pub fn verify_dummy(&self, raw: &str) -> bool {
        if raw.len() <= MAX_BYTES_NON_BCRYPT {
            self.burn(raw);
        }
        false
    }

    /// One verification against the dummy hash, its result ignored.
    fn burn(&self, raw: &str) {
        let dummy = self.dummy_hash();
        if let Some(format) = Format::identify(dummy) {
            self.dummy_checks.fetch_add(1, Ordering::Relaxed);
            let _ = hashers::check_format(format, raw, dummy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: HasherKind) -> HasherConfig {
        HasherConfig {
            kind,
            bcrypt_cost: 4,
            pbkdf2_iterations: 1_000,
            argon2_memory_kib: 1_024,
            argon2_iterations: 1,
            argon2_parallelism: 1,
        }
    }

    fn hasher(kind: HasherKind) -> PasswordHasher {
        PasswordHasher::with_config(config(kind)).unwrap()
    }

    fn password(raw: &str) -> Password {
        Password::parse_unvalidated_with_limit(raw, 4096).unwrap()
    }

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
        assert!(!hasher.verify_dummy(&"x".repeat(5000)));
    }

    #[test]
    fn the_old_constructor_keeps_its_bounds() {
        assert!(PasswordHasher::new(3).is_err());
        assert!(PasswordHasher::new(32).is_err());
        assert_eq!(PasswordHasher::new(31).unwrap().cost(), 31);
    }

    #[test]
    fn every_configured_format_round_trips_and_is_kept() {
        for (kind, prefix) in [
            (HasherKind::Bcrypt, "$2b$04$"),
            (HasherKind::Argon2id, "$argon2id$v=19$m=1024,t=1,p=1$"),
            (HasherKind::DjangoPbkdf2Sha256, "pbkdf2_sha256$1000$"),
        ] {
            let hasher = hasher(kind);
            let hash = hasher.hash(&password("a-fine-passphrase")).unwrap();
            assert!(hash.starts_with(prefix), "{hash}");
            let verified = hasher.check("a-fine-passphrase", &hash);
            assert_eq!(
                verified,
                Verification {
                    matches: true,
                    ..Verification::default()
                },
                "{kind}"
            );
            assert_eq!(
                hasher.check("a-fine-passphrasE", &hash),
                Verification::default()
            );
        }
    }

    #[test]
    fn the_django_salt_is_like_djangos() {
        let hash = hasher(HasherKind::DjangoPbkdf2Sha256)
            .hash(&password("pw"))
            .unwrap();
        let salt = hash.split('$').nth(2).unwrap();
        assert_eq!(salt.len(), 22);
        assert!(salt.bytes().all(|b| b.is_ascii_alphanumeric()));
        // Django's encoding of the key: standard base64 with padding.
        assert_eq!(hash.split('$').nth(3).unwrap().len(), 44);
    }

    #[test]
    fn another_format_or_a_weaker_one_is_upgraded() {
        let bcrypt4 = hasher(HasherKind::Bcrypt)
            .hash(&password("a-fine-passphrase"))
            .unwrap();
        let argon = hasher(HasherKind::Argon2id)
            .hash(&password("a-fine-passphrase"))
            .unwrap();
        let pbkdf2 = hasher(HasherKind::DjangoPbkdf2Sha256)
            .hash(&password("a-fine-passphrase"))
            .unwrap();
        let upgrade = |config: HasherConfig, stored: &str| {
            let verified = PasswordHasher::with_config(config)
                .unwrap()
                .check("a-fine-passphrase", stored);
            assert!(verified.matches);
            verified.needs_upgrade
        };
        // Not in the configured format.
        for kind in [HasherKind::Argon2id, HasherKind::DjangoPbkdf2Sha256] {
            assert!(upgrade(config(kind), &bcrypt4));
        }
        assert!(upgrade(config(HasherKind::Bcrypt), &argon));
        assert!(upgrade(config(HasherKind::Bcrypt), &pbkdf2));
        // Weaker than configured.
        let stronger = |kind| HasherConfig {
            bcrypt_cost: 5,
            pbkdf2_iterations: 1_001,
            ..config(kind)
        };
        assert!(upgrade(stronger(HasherKind::Bcrypt), &bcrypt4));
        assert!(upgrade(stronger(HasherKind::DjangoPbkdf2Sha256), &pbkdf2));
        for argon2 in [
            HasherConfig {
                argon2_memory_kib: 2_048,
                ..config(HasherKind::Argon2id)
            },
            HasherConfig {
                argon2_iterations: 2,
                ..config(HasherKind::Argon2id)
            },
            HasherConfig {
                argon2_parallelism: 2,
                ..config(HasherKind::Argon2id)
            },
        ] {
            assert!(upgrade(argon2, &argon));
        }
        // Stronger than configured: kept.
        let weaker = |kind| HasherConfig {
            pbkdf2_iterations: 1_000,
            ..config(kind)
        };
        let bcrypt5 = PasswordHasher::new(5)
            .unwrap()
            .hash(&password("a-fine-passphrase"))
            .unwrap();
        assert!(!upgrade(weaker(HasherKind::Bcrypt), &bcrypt5));
        let pbkdf2_more = hashers::pbkdf2::make(
            "a-fine-passphrase",
            "abcdefghijklmnopqrstuv",
            2_000,
            hashers::pbkdf2::Digest::Sha256,
        );
        assert!(!upgrade(
            weaker(HasherKind::DjangoPbkdf2Sha256),
            &pbkdf2_more
        ));
        // `$2a$` and `$2y$` verify but are rewritten as `$2b$`.
        let two_y = bcrypt4.replacen("$2b$", "$2y$", 1);
        assert!(upgrade(config(HasherKind::Bcrypt), &two_y));
    }

    #[test]
    fn a_long_password_keeps_its_hash_under_bcrypt() {
        let long = "long passphrase ".repeat(10);
        assert!(long.len() > 72);
        let pbkdf2 = hasher(HasherKind::DjangoPbkdf2Sha256)
            .hash(&password(&long))
            .unwrap();
        let under_bcrypt = hasher(HasherKind::Bcrypt).check(&long, &pbkdf2);
        assert!(under_bcrypt.matches);
        assert!(!under_bcrypt.needs_upgrade);
        let under_argon = hasher(HasherKind::Argon2id).check(&long, &pbkdf2);
        assert!(under_argon.matches && under_argon.needs_upgrade);
        // Under bcrypt it cannot be hashed; a 4096-byte one can elsewhere.
        assert!(matches!(
            hasher(HasherKind::Bcrypt).hash(&password(&long)),
            Err(HashError::TooLong)
        ));
        assert_eq!(hasher(HasherKind::Bcrypt).max_password_bytes(), 72);
        assert_eq!(hasher(HasherKind::Argon2id).max_password_bytes(), 4096);
        let max = "y".repeat(4096);
        let hash = hasher(HasherKind::Argon2id).hash(&password(&max)).unwrap();
        assert!(hasher(HasherKind::Bcrypt).verify(&max, &hash));
        assert!(!hasher(HasherKind::Bcrypt).verify(&format!("{max}y"), &hash));
    }

    #[test]
    fn over_72_bytes_never_matches_a_bcrypt_hash() {
        let raw = "z".repeat(72);
        let hash = hasher(HasherKind::Bcrypt).hash(&password(&raw)).unwrap();
        for kind in [HasherKind::Bcrypt, HasherKind::Argon2id] {
            let hasher = hasher(kind);
            assert!(hasher.verify(&raw, &hash));
            let verified = hasher.check(&format!("{raw}z"), &hash);
            assert_eq!(verified, Verification::default());
        }
        let django = format!("bcrypt${hash}");
        assert!(hasher(HasherKind::Bcrypt).verify(&raw, &django));
        assert!(!hasher(HasherKind::Bcrypt).verify(&format!("{raw}z"), &django));
    }

    #[test]
    fn unusable_and_unknown_hashes_never_match() {
        let hasher = hasher(HasherKind::Bcrypt);
        let unusable = hasher.check("", "!abcdefghijklmnopqrstuvwxyz0123456789ABCD");
        assert!(!unusable.matches && unusable.unusable && !unusable.unknown_format);
        for stored in [
            "",
            "plain-text",
            "5f4dcc3b5aa765d61d8327deb882cf99", // Django's removed unsalted md5
            "md5$$5f4dcc3b5aa765d61d8327deb882cf99",
            "sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            "crypt$$abc",
            "argon2$argon2d$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2i$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$2x$04$abcdefghijklmnopqrstuuJ1zT1XV1EQbbp1b1o8pcpF8cpCqJ8G2",
            "pbkdf2_sha256$$salt$hash",
            "pbkdf2_sha256$0$salt$hash",
            "pbkdf2_sha256$1000$$hash",
            "scrypt$16384$salt$8$1",
            "scrypt$32768$salt$8$1$hash",
            "md5$$hash",
        ] {
            let verified = hasher.check("password", stored);
            assert!(!verified.matches, "{stored}");
            assert!(verified.unknown_format, "{stored}");
        }
    }

    #[test]
    fn a_password_over_4096_bytes_is_refused_without_hashing() {
        let hasher = hasher(HasherKind::Argon2id);
        let hash = hasher.hash(&password("pw")).unwrap();
        let verified = hasher.check(&"x".repeat(4097), &hash);
        assert_eq!(verified, Verification::default());
    }

    #[test]
    fn bounds_name_the_setting() {
        let bad = [
            (
                HasherConfig {
                    bcrypt_cost: 3,
                    ..HasherConfig::default()
                },
                "BCRYPT_COST",
            ),
            (
                HasherConfig {
                    bcrypt_cost: 32,
                    ..HasherConfig::default()
                },
                "BCRYPT_COST",
            ),
            (
                HasherConfig {
                    pbkdf2_iterations: 999,
                    ..HasherConfig::default()
                },
                "PBKDF2_ITERATIONS",
            ),
            (
                HasherConfig {
                    argon2_memory_kib: 1_023,
                    ..HasherConfig::default()
                },
                "ARGON2_MEMORY_KIB",
            ),
            (
                HasherConfig {
                    argon2_iterations: 0,
                    ..HasherConfig::default()
                },
                "ARGON2_ITERATIONS",
            ),
            (
                HasherConfig {
                    argon2_parallelism: 0,
                    ..HasherConfig::default()
                },
                "ARGON2_PARALLELISM",
            ),
            (
                HasherConfig {
                    argon2_parallelism: 17,
                    ..HasherConfig::default()
                },
                "ARGON2_PARALLELISM",
            ),
        ];
        for (config, setting) in bad {
            let error = PasswordHasher::with_config(config).err().unwrap();
            assert_eq!(error.setting, setting);
            assert!(error.to_string().starts_with(setting), "{error}");
        }
        let error = "scrypt".parse::<HasherKind>().unwrap_err();
        assert_eq!(error.setting, "PASSWORD_HASHER");
        for kind in ["bcrypt", "argon2id", "django_pbkdf2_sha256"] {
            assert_eq!(kind.parse::<HasherKind>().unwrap().as_str(), kind);
        }
        let defaults = HasherConfig::default();
        assert_eq!(defaults.kind, HasherKind::Bcrypt);
        assert_eq!(
            (
                defaults.bcrypt_cost,
                defaults.pbkdf2_iterations,
                defaults.argon2_memory_kib,
                defaults.argon2_iterations,
                defaults.argon2_parallelism
            ),
            (12, 1_000_000, 19_456, 2, 1)
        );
        assert!(PasswordHasher::with_config(defaults).is_ok());
    }

    #[test]
    fn the_dummy_is_in_the_configured_format() {
        for kind in [
            HasherKind::Bcrypt,
            HasherKind::Argon2id,
            HasherKind::DjangoPbkdf2Sha256,
        ] {
            let hasher = hasher(kind);
            hasher.warm_up();
            assert!(hasher.dummy_hash().starts_with(match kind {
                HasherKind::Bcrypt => "$2b$04$",
                HasherKind::Argon2id => "$argon2id$",
                HasherKind::DjangoPbkdf2Sha256 => "pbkdf2_sha256$1000$",
            }));
        }
    }
}
