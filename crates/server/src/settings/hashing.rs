//! How passwords are hashed: `PASSWORD_HASHER`, `BCRYPT_COST`,
//! `PBKDF2_ITERATIONS`, `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`,
//! `ARGON2_PARALLELISM` (bounded by the hashers themselves), and
//! `HASHING_QUEUE`.

use latchkey_auth::{HasherConfig, HasherConfigError};

use super::env::{Reader, SettingsError};

pub const DEFAULT_HASHING_QUEUE: usize = 64;

pub(super) fn hasher(env: &Reader<'_>) -> Result<HasherConfig, SettingsError> {
    let defaults = HasherConfig::default();
    let hasher = HasherConfig {
        kind: match env.raw("PASSWORD_HASHER") {
            Some(raw) => raw
                .parse()
                .map_err(|e: HasherConfigError| SettingsError(e.to_string()))?,
            None => defaults.kind,
        },
        bcrypt_cost: env.number("BCRYPT_COST", defaults.bcrypt_cost)?,
        pbkdf2_iterations: env.number("PBKDF2_ITERATIONS", defaults.pbkdf2_iterations)?,
        argon2_memory_kib: env.number("ARGON2_MEMORY_KIB", defaults.argon2_memory_kib)?,
        argon2_iterations: env.number("ARGON2_ITERATIONS", defaults.argon2_iterations)?,
        argon2_parallelism: env.number("ARGON2_PARALLELISM", defaults.argon2_parallelism)?,
    };
    // The bounds live with the hashers; the message names the variable.
    hasher
        .check()
        .map_err(|e| SettingsError(format!("{e} (set in the environment)")))?;
    Ok(hasher)
}

/// Password checks that may wait at once (at least one).
pub(super) fn queue(env: &Reader<'_>) -> Result<usize, SettingsError> {
    Ok(env.number("HASHING_QUEUE", DEFAULT_HASHING_QUEUE)?.max(1))
}
