//! Where the users are stored: `DATABASE_URL`, `DATABASE_POOL_SIZE`,
//! `DATABASE_POOL_TIMEOUT`.

use std::path::Path;
use std::time::Duration;

use latchkey_persistence::{DatabaseUrl, PoolOptions};

use super::env::{Reader, SettingsError};

/// Where the users are stored.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…` (default: a SQLite
    /// file in `LATCHKEY_DATA_DIR`, `./data`).
    pub url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE` (10), `DATABASE_POOL_TIMEOUT` (5 s).
    pub pool: PoolOptions,
}

pub(super) fn read(env: &Reader<'_>, data_dir: &Path) -> Result<DatabaseSettings, SettingsError> {
    let url = match env.raw("DATABASE_URL") {
        Some(raw) => DatabaseUrl::parse(&raw).map_err(|e| SettingsError(e.to_string()))?,
        None => DatabaseUrl::sqlite_file(data_dir.join("latchkey.sqlite3")),
    };
    let defaults = PoolOptions::default();
    Ok(DatabaseSettings {
        url,
        pool: PoolOptions {
            max_size: env.number("DATABASE_POOL_SIZE", defaults.max_size)?.max(1),
            connection_timeout: env.bounded_duration(
                "DATABASE_POOL_TIMEOUT",
                defaults.connection_timeout,
                Duration::from_millis(1),
                Duration::from_secs(3600),
            )?,
        },
    })
}
