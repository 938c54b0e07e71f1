//! Fresh databases per test.

use std::fmt;
use std::sync::OnceLock;

use diesel::{Connection, PgConnection, RunQueryDsl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether the PostgreSQL half must run (CI, or asked for explicitly).
pub fn postgres_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("LATCHKEY_REQUIRE_POSTGRES").is_some()
}

/// `Err(reason)` when PostgreSQL cannot be reached; checked once.
pub fn postgres_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            PgConnection::establish(&postgres_admin_url())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// A database that lives as long as this value.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
                TestDatabase {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
                let admin_url = postgres_admin_url();
                let mut conn =
                    PgConnection::establish(&admin_url).expect("PostgreSQL admin connection");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .expect("CREATE DATABASE");
                let url = match admin_url.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("LATCHKEY_TEST_POSTGRES_URL needs a database path"),
                };
                TestDatabase {
                    url,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

pub fn redis_url() -> String {
    std::env::var("LATCHKEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `Err(reason)` when Redis cannot be reached; checked once.
pub fn redis_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let client = redis::Client::open(redis_url()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_connection_with_timeout(std::time::Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query::<String>(&mut conn)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .clone()
}
