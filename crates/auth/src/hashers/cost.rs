//! What verifying a stored hash costs, read from its parameters alone.
//!
//! Two decisions hang on it. The bounds: a stored hash asking for more than
//! a sane multiple of the configured work (a hostile or corrupted row, which
//! `import-django` copies as it is) is never verified, so one login cannot
//! cost minutes of CPU or gigabytes of memory. And the floor: a wrong
//! password against a hash cheaper than the configured one also burns one
//! configured verification, so that no account answers faster than an
//! unknown email.

use std::fmt;

use super::{HasherConfig, HasherKind};

/// The parameters of a stored hash that set the work of verifying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// `$2?$`, `bcrypt$`, `bcrypt_sha256$`: 2^cost rounds.
    Bcrypt { cost: u32 },
    /// `pbkdf2_sha256$`, `pbkdf2_sha1$`.
    Pbkdf2 { iterations: u32 },
    /// `$argon2id$`, `argon2$argon2id$`, `argon2$argon2i$`.
    Argon2 {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    /// `scrypt$`.
    Scrypt { n: u64, r: u64, p: u64 },
    /// `md5$`: one digest.
    Md5,
}

/// Nanoseconds per unit of work, release build, on the machine of
/// `docs/password-hashing.md` (`cargo run --release -p latchkey-auth
/// --example hash_work` measures them): a bcrypt round (cost 12 ≈ 330 ms),
/// a PBKDF2 iteration (1,000,000 ≈ 140 ms), an argon2 block pass (measured
/// 460–950 ns: 19456 KiB × 2 ≈ 27 ms) and a scrypt N·r·p unit
/// (2^14·8·5 ≈ 200 ms). Only their ratios matter. Between two hashes of one
/// family the comparison is exact; across families an estimate off by a
/// little only decides whether a wrong password against a hash of about the
/// configured cost takes one or two verifications.
const NS_PER_BCRYPT_ROUND: u64 = 80_000;
const NS_PER_PBKDF2_ITERATION: u64 = 140;
const NS_PER_ARGON2_BLOCK: u64 = 700;
const NS_PER_SCRYPT_UNIT: u64 = 300;
const NS_PER_MD5: u64 = 1_000;

impl Cost {
    /// The cost of one verification with the configured hasher.
    pub(crate) fn configured(config: &HasherConfig) -> Cost {
        match config.kind {
            HasherKind::Bcrypt => Cost::Bcrypt {
                cost: config.bcrypt_cost,
            },
            HasherKind::Argon2id => Cost::Argon2 {
                memory_kib: config.argon2_memory_kib,
                iterations: config.argon2_iterations,
                parallelism: config.argon2_parallelism,
            },
            HasherKind::DjangoPbkdf2Sha256 => Cost::Pbkdf2 {
                iterations: config.pbkdf2_iterations,
            },
        }
    }

    /// An estimate of one verification's time (see the constants), which
    /// grows with every parameter that adds work. Argon2's lanes run one
    /// after the other here, so `p` adds none.
    pub(crate) fn work(self) -> u64 {
        match self {
            Cost::Bcrypt { cost } => NS_PER_BCRYPT_ROUND.saturating_mul(1u64 << cost.min(63)),
            Cost::Pbkdf2 { iterations } => NS_PER_PBKDF2_ITERATION * u64::from(iterations),
            Cost::Argon2 {
                memory_kib,
                iterations,
                ..
            } => NS_PER_ARGON2_BLOCK
                .saturating_mul(u64::from(memory_kib))
                .saturating_mul(u64::from(iterations)),
            Cost::Scrypt { n, r, p } => NS_PER_SCRYPT_UNIT
                .saturating_mul(n)
                .saturating_mul(r)
                .saturating_mul(p),
            Cost::Md5 => NS_PER_MD5,
        }
    }
}

/// Why a stored hash can never be used to log in, found from its text alone.
/// `Display` completes "a password hash …" and never shows the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashProblem {
    /// A parameter past latchkey's bound (see [`Bounds`]): the hash is never
    /// verified. `what` names the parameter (`"PBKDF2 iterations"`).
    OutOfBounds {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// No format latchkey reads, or malformed for the one its prefix names.
    UnknownFormat,
}

impl fmt::Display for HashProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashProblem::OutOfBounds { what, value, limit } => {
                write!(f, "with {what} {value} above the bound {limit}")
            }
            HashProblem::UnknownFormat => f.write_str("in no format latchkey reads"),
        }
    }
}

/// The largest parameters a stored hash may have under a configuration (the
/// contract's "Hardening (v3)"); each is at least the configured value, so
/// every hash latchkey writes stays within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// max(10 × `PBKDF2_ITERATIONS`, 10,000,000).
    pbkdf2_iterations: u64,
    /// max(`BCRYPT_COST` + 2, 14).
    bcrypt_cost: u64,
    /// max(256 MiB, 4 × `ARGON2_MEMORY_KIB`).
    argon2_memory_kib: u64,
    /// 16, or `ARGON2_ITERATIONS` if larger (the contract's 16 would
    /// otherwise refuse latchkey's own hashes).
    argon2_iterations: u64,
    /// 16 (`ARGON2_PARALLELISM` is at most 16).
    argon2_parallelism: u64,
    /// N·r·p ≤ 2^24.
    scrypt_work: u64,
}

impl Bounds {
    pub(crate) fn for_config(config: &HasherConfig) -> Bounds {
        Bounds {
            pbkdf2_iterations: (10 * u64::from(config.pbkdf2_iterations)).max(10_000_000),
            bcrypt_cost: (u64::from(config.bcrypt_cost) + 2).max(14),
            argon2_memory_kib: (4 * u64::from(config.argon2_memory_kib)).max(256 * 1024),
            argon2_iterations: u64::from(config.argon2_iterations).max(16),
            argon2_parallelism: u64::from(config.argon2_parallelism).max(16),
            scrypt_work: 1 << 24,
        }
    }

    /// The first parameter of `cost` past its bound, if any.
    pub(crate) fn check(&self, cost: Cost) -> Result<(), HashProblem> {
        let over = |what, value: u64, limit: u64| {
            if value > limit {
                Err(HashProblem::OutOfBounds { what, value, limit })
            } else {
                Ok(())
            }
        };
        match cost {
            Cost::Bcrypt { cost } => over("bcrypt cost", cost.into(), self.bcrypt_cost),
            Cost::Pbkdf2 { iterations } => over(
                "PBKDF2 iterations",
                iterations.into(),
                self.pbkdf2_iterations,
            ),
            Cost::Argon2 {
                memory_kib,
                iterations,
                parallelism,
            } => {
                over(
                    "argon2 memory (KiB)",
                    memory_kib.into(),
                    self.argon2_memory_kib,
                )?;
                over(
                    "argon2 iterations (t)",
                    iterations.into(),
                    self.argon2_iterations,
                )?;
                over(
                    "argon2 parallelism (p)",
                    parallelism.into(),
                    self.argon2_parallelism,
                )
            }
            Cost::Scrypt { n, r, p } => over(
                "scrypt N·r·p",
                n.saturating_mul(r).saturating_mul(p),
                self.scrypt_work,
            ),
            Cost::Md5 => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_follow_the_configuration_above_their_floors() {
        let defaults = Bounds::for_config(&HasherConfig::default());
        assert_eq!(defaults.pbkdf2_iterations, 10_000_000);
        assert_eq!(defaults.bcrypt_cost, 14);
        assert_eq!(defaults.argon2_memory_kib, 262_144);
        assert_eq!(defaults.argon2_iterations, 16);
        assert_eq!(defaults.argon2_parallelism, 16);
        assert_eq!(defaults.scrypt_work, 16_777_216);
        let raised = Bounds::for_config(&HasherConfig {
            bcrypt_cost: 13,
            pbkdf2_iterations: 2_000_000,
            argon2_memory_kib: 100_000,
            argon2_iterations: 20,
            ..HasherConfig::default()
        });
        assert_eq!(raised.pbkdf2_iterations, 20_000_000);
        assert_eq!(raised.bcrypt_cost, 15);
        assert_eq!(raised.argon2_memory_kib, 400_000);
        assert_eq!(raised.argon2_iterations, 20);
        let highest = Bounds::for_config(&HasherConfig {
            bcrypt_cost: 31,
            pbkdf2_iterations: u32::MAX,
            argon2_memory_kib: u32::MAX,
            argon2_iterations: u32::MAX,
            ..HasherConfig::default()
        });
        assert_eq!(highest.pbkdf2_iterations, 10 * u64::from(u32::MAX));
        assert_eq!(highest.bcrypt_cost, 33);
        let most = Cost::Argon2 {
            memory_kib: u32::MAX,
            iterations: u32::MAX,
            parallelism: 16,
        };
        assert_eq!(highest.check(most), Ok(()));
    }

    #[test]
    fn work_grows_with_every_parameter_that_adds_some() {
        let base = Cost::Argon2 {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        };
        assert!(
            Cost::Argon2 {
                memory_kib: 19_457,
                iterations: 2,
                parallelism: 1
            }
            .work()
                > base.work()
        );
        assert!(
            Cost::Argon2 {
                memory_kib: 19_456,
                iterations: 3,
                parallelism: 1
            }
            .work()
                > base.work()
        );
        assert!(Cost::Bcrypt { cost: 13 }.work() == 2 * Cost::Bcrypt { cost: 12 }.work());
        assert!(
            Cost::Pbkdf2 {
                iterations: 1_000_001
            }
            .work()
                > Cost::Pbkdf2 {
                    iterations: 1_000_000
                }
                .work()
        );
        // Django's defaults are all cheaper than bcrypt at 12, and md5 is
        // the cheapest of all.
        let bcrypt12 = Cost::Bcrypt { cost: 12 }.work();
        for django in [
            Cost::Pbkdf2 {
                iterations: 1_000_000,
            },
            Cost::Argon2 {
                memory_kib: 102_400,
                iterations: 2,
                parallelism: 8,
            },
            Cost::Scrypt {
                n: 16_384,
                r: 8,
                p: 5,
            },
            Cost::Md5,
        ] {
            assert!(django.work() < bcrypt12, "{django:?}");
            assert!(Cost::Md5.work() <= django.work());
        }
        assert_eq!(Cost::Bcrypt { cost: 31 }.work(), 80_000 << 31);
    }
}
