//! The stored-hash formats latchkey reads and writes, each checked exactly as
//! Django 5.2's hasher of that name checks it (`django/contrib/auth/hashers.py`):
//! the parameters come from the stored string, the password is recomputed
//! with them, the result is encoded the way Django encodes it and the whole
//! string is compared in constant time (Django's `constant_time_compare`).
//! A stored string that Django would refuse (an unknown algorithm, a missing
//! salt, a malformed field) never matches and is reported as unknown.
//!
//! See `docs/password-hashing.md` for the crates and the measured costs.

mod argon2;
mod bcrypt;
mod cost;
mod md5;
pub(crate) mod pbkdf2;
mod scrypt;

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::distr::Alphanumeric;
use subtle::ConstantTimeEq;

pub use cost::HashProblem;
pub(crate) use cost::{Bounds, Cost};
pub use latchkey_domain::password::{MAX_BYTES as BCRYPT_MAX_BYTES, MAX_BYTES_NON_BCRYPT};

/// Which format new hashes are written in (`PASSWORD_HASHER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HasherKind {
    /// `$2b$<cost>$…`, latchkey's original format.
    #[default]
    Bcrypt,
    /// A PHC string, `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    Argon2id,
    /// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64>`: a team can move
    /// back to Django with every hash latchkey wrote.
    DjangoPbkdf2Sha256,
}

impl HasherKind {
    /// The setting's value for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            HasherKind::Bcrypt => "bcrypt",
            HasherKind::Argon2id => "argon2id",
            HasherKind::DjangoPbkdf2Sha256 => "django_pbkdf2_sha256",
        }
    }
}

impl fmt::Display for HasherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HasherKind {
    type Err = HasherConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "bcrypt" => Ok(HasherKind::Bcrypt),
            "argon2id" => Ok(HasherKind::Argon2id),
            "django_pbkdf2_sha256" => Ok(HasherKind::DjangoPbkdf2Sha256),
            other => Err(HasherConfigError {
                setting: "PASSWORD_HASHER",
                message: format!(
                    "must be one of bcrypt, argon2id, django_pbkdf2_sha256 (got {other:?})"
                ),
            }),
        }
    }
}

/// A setting out of bounds; `Display` names the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HasherConfigError {
    /// The environment variable, e.g. `BCRYPT_COST`.
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for HasherConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.setting, self.message)
    }
}

impl std::error::Error for HasherConfigError {}

/// How new hashes are made, and the strength below which a stored hash is
/// replaced at the next login. Every field has the contract's default; the
/// bounds are checked by [`HasherConfig::check`], which
/// [`crate::PasswordHasher::with_config`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherConfig {
    pub kind: HasherKind,
    /// `BCRYPT_COST`, 4–31, default 12.
    pub bcrypt_cost: u32,
    /// `PBKDF2_ITERATIONS`, at least 1,000, default 1,000,000 (Django 5.2's).
    pub pbkdf2_iterations: u32,
    /// `ARGON2_MEMORY_KIB`, at least 1,024, default 19,456.
    pub argon2_memory_kib: u32,
    /// `ARGON2_ITERATIONS`, at least 1, default 2.
    pub argon2_iterations: u32,
    /// `ARGON2_PARALLELISM`, 1–16, default 1.
    pub argon2_parallelism: u32,
}

impl Default for HasherConfig {
    fn default() -> Self {
        HasherConfig {
            kind: HasherKind::Bcrypt,
            bcrypt_cost: 12,
            pbkdf2_iterations: 1_000_000,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

impl HasherConfig {
    /// Every bound of the contract, the first one broken named in the error.
    pub fn check(&self) -> Result<(), HasherConfigError> {
        fn out_of_bounds(setting: &'static str, bounds: &str, got: u32) -> HasherConfigError {
            HasherConfigError {
                setting,
                message: format!("must be {bounds} (got {got})"),
            }
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(out_of_bounds(
                "BCRYPT_COST",
                "between 4 and 31",
                self.bcrypt_cost,
            ));
        }
        if self.pbkdf2_iterations < 1_000 {
            return Err(out_of_bounds(
                "PBKDF2_ITERATIONS",
                "at least 1000",
                self.pbkdf2_iterations,
            ));
        }
        if self.argon2_memory_kib < 1_024 {
            return Err(out_of_bounds(
                "ARGON2_MEMORY_KIB",
                "at least 1024",
                self.argon2_memory_kib,
            ));
        }
        if self.argon2_iterations < 1 {
            return Err(out_of_bounds(
                "ARGON2_ITERATIONS",
                "at least 1",
                self.argon2_iterations,
            ));
        }
        if !(1..=16).contains(&self.argon2_parallelism) {
            return Err(out_of_bounds(
                "ARGON2_PARALLELISM",
                "between 1 and 16",
                self.argon2_parallelism,
            ));
        }
        Ok(())
    }

    /// The longest password this configuration can store: 72 bytes under
    /// bcrypt (never truncated), 4096 otherwise.
    pub fn max_password_bytes(&self) -> usize {
        match self.kind {
            HasherKind::Bcrypt => BCRYPT_MAX_BYTES,
            _ => MAX_BYTES_NON_BCRYPT,
        }
    }
}

/// The formats a stored hash can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `$2a$`, `$2b$` or `$2y$`.
    Bcrypt,
    /// `$argon2id$…` (PHC).
    Argon2id,
    /// Django's `pbkdf2_sha256$`.
    DjangoPbkdf2Sha256,
    /// Django's `pbkdf2_sha1$`.
    DjangoPbkdf2Sha1,
    /// Django's `argon2$argon2id$`.
    DjangoArgon2id,
    /// Django's `argon2$argon2i$`.
    DjangoArgon2i,
    /// Django's `bcrypt_sha256$`: bcrypt of the hex SHA-256 of the password.
    DjangoBcryptSha256,
    /// Django's `bcrypt$`.
    DjangoBcrypt,
    /// Django's `scrypt$`.
    DjangoScrypt,
    /// Django's salted `md5$salt$hex`.
    DjangoMd5,
}

impl Format {
    /// Which format `stored` claims to be in, from its prefix (as Django's
    /// `identify_hasher` does: the text before the first `$`). `None` for an
    /// unusable (`!`) or unknown one.
    pub fn identify(stored: &str) -> Option<Format> {
        let (algorithm, rest) = stored.split_once('$')?;
        Some(match algorithm {
            "" if ["2a$", "2b$", "2y$"].iter().any(|v| rest.starts_with(v)) => Format::Bcrypt,
            "" if rest.starts_with("argon2id$") => Format::Argon2id,
            "pbkdf2_sha256" => Format::DjangoPbkdf2Sha256,
            "pbkdf2_sha1" => Format::DjangoPbkdf2Sha1,
            "argon2" if rest.starts_with("argon2id$") => Format::DjangoArgon2id,
            "argon2" if rest.starts_with("argon2i$") => Format::DjangoArgon2i,
            "bcrypt_sha256" => Format::DjangoBcryptSha256,
            "bcrypt" => Format::DjangoBcrypt,
            "scrypt" => Format::DjangoScrypt,
            // Django 5.2 reads `md5$$<32 hex>` as the removed unsalted MD5
            // hasher, i.e. not at all.
            "md5" if !(stored.len() == 37 && stored.starts_with("md5$$")) => Format::DjangoMd5,
            _ => return None,
        })
    }
}

/// The work factor read from a stored hash, for the upgrade decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    /// Only `$2b$` is the configured bcrypt format.
    Bcrypt {
        cost: u32,
        two_b: bool,
    },
    Argon2id {
        version: u32,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    Pbkdf2Sha256 {
        iterations: u32,
    },
    /// A format latchkey never writes.
    Other,
}

/// What checking a password against a stored string found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    Matches(Strength),
    Mismatch,
    /// Unknown or malformed: Django would not verify it either.
    Unreadable,
}

/// The format `stored` is in and what verifying it costs, or why it can
/// never match: no format latchkey reads, a parameter past `bounds`, or
/// malformed. Parses only; the bounds come before the rest of the
/// validation, so a huge parameter is reported as such.
pub(crate) fn inspect(stored: &str, bounds: &Bounds) -> Result<(Format, Cost), HashProblem> {
    let format = Format::identify(stored).ok_or(HashProblem::UnknownFormat)?;
    let cost = match format {
        Format::Bcrypt => bcrypt::cost_native(stored),
        Format::DjangoBcrypt | Format::DjangoBcryptSha256 => bcrypt::cost_django(stored),
        Format::Argon2id => argon2::cost(stored, "", argon2::Variant::Id),
        Format::DjangoArgon2id => argon2::cost(stored, "argon2", argon2::Variant::Id),
        Format::DjangoArgon2i => argon2::cost(stored, "argon2", argon2::Variant::I),
        Format::DjangoPbkdf2Sha256 | Format::DjangoPbkdf2Sha1 => pbkdf2::cost(stored),
        Format::DjangoScrypt => scrypt::cost(stored),
        Format::DjangoMd5 => Some(Cost::Md5),
    }
    .ok_or(HashProblem::UnknownFormat)?;
    bounds.check(cost)?;
    let readable = match format {
        Format::Bcrypt => bcrypt::readable(stored, false),
        Format::DjangoBcrypt | Format::DjangoBcryptSha256 => bcrypt::readable(stored, true),
        Format::Argon2id => argon2::readable(stored, "", argon2::Variant::Id),
        Format::DjangoArgon2id => argon2::readable(stored, "argon2", argon2::Variant::Id),
        Format::DjangoArgon2i => argon2::readable(stored, "argon2", argon2::Variant::I),
        Format::DjangoPbkdf2Sha256 => pbkdf2::readable(stored, pbkdf2::Digest::Sha256),
        Format::DjangoPbkdf2Sha1 => pbkdf2::readable(stored, pbkdf2::Digest::Sha1),
        Format::DjangoScrypt => scrypt::readable(stored),
        Format::DjangoMd5 => md5::readable(stored),
    };
    if readable {
        Ok((format, cost))
    } else {
        Err(HashProblem::UnknownFormat)
    }
}

/// Checks `raw` against `stored` in the format `format` claims. Callers
/// outside the dummy hash go through [`inspect`] first: the parameters are
/// taken from `stored` as they are.
pub(crate) fn check_format(format: Format, raw: &str, stored: &str) -> Checked {
    match format {
        Format::Bcrypt => bcrypt::check_native(raw, stored),
        Format::DjangoBcrypt => bcrypt::check_django(raw, stored, false),
        Format::DjangoBcryptSha256 => bcrypt::check_django(raw, stored, true),
        Format::Argon2id => argon2::check(raw, stored, "", argon2::Variant::Id),
        Format::DjangoArgon2id => argon2::check(raw, stored, "argon2", argon2::Variant::Id),
        Format::DjangoArgon2i => argon2::check(raw, stored, "argon2", argon2::Variant::I),
        Format::DjangoPbkdf2Sha256 => pbkdf2::check(raw, stored, pbkdf2::Digest::Sha256),
        Format::DjangoPbkdf2Sha1 => pbkdf2::check(raw, stored, pbkdf2::Digest::Sha1),
        Format::DjangoScrypt => scrypt::check(raw, stored),
        Format::DjangoMd5 => md5::check(raw, stored),
    }
}

/// Whether a verified hash of this strength must be replaced under `config`.
pub(crate) fn needs_upgrade(strength: Strength, config: &HasherConfig) -> bool {
    match (config.kind, strength) {
        (HasherKind::Bcrypt, Strength::Bcrypt { cost, two_b }) => {
            !two_b || cost < config.bcrypt_cost
        }
        (
            HasherKind::Argon2id,
            Strength::Argon2id {
                version,
                memory_kib,
                iterations,
                parallelism,
            },
        ) => {
            version != argon2::VERSION_13
                || memory_kib < config.argon2_memory_kib
                || iterations < config.argon2_iterations
                || parallelism < config.argon2_parallelism
        }
        (HasherKind::DjangoPbkdf2Sha256, Strength::Pbkdf2Sha256 { iterations }) => {
            iterations < config.pbkdf2_iterations
        }
        _ => true,
    }
}

/// A new hash of `raw` in the configured format. `raw` must already be
/// within [`HasherConfig::max_password_bytes`].
pub(crate) fn make(raw: &str, config: &HasherConfig) -> Result<String, String> {
    match config.kind {
        HasherKind::Bcrypt => bcrypt::make(raw, config.bcrypt_cost),
        HasherKind::Argon2id => argon2::make(
            raw,
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
        ),
        HasherKind::DjangoPbkdf2Sha256 => Ok(pbkdf2::make(
            raw,
            &django_salt(),
            config.pbkdf2_iterations,
            pbkdf2::Digest::Sha256,
        )),
    }
}

/// Django's `BasePasswordHasher.salt()`: 22 characters of [a-zA-Z0-9]
/// (ceil(128 / log2(62)), at least 128 bits of entropy).
pub(crate) fn django_salt() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(22)
        .map(char::from)
        .collect()
}

/// Django's `constant_time_compare` of the stored string and the one
/// recomputed from the password.
pub(crate) fn same(stored: &str, recomputed: &str) -> bool {
    stored.as_bytes().ct_eq(recomputed.as_bytes()).into()
}

/// Parses a decimal field as Python's `int()` would for the values Django
/// writes (`%d`): plain ASCII digits. Anything else cannot equal Django's
/// re-encoding, so it never matches either way.
pub(crate) fn decimal(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}
