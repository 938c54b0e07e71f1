//! Fresh databases per test: empty ones ([`TestDatabase::create`]), and
//! migrated ones ([`TestDatabase::migrated`]) copied from a template that
//! this test run migrates once per backend with the current migrations
//! (`CREATE DATABASE … TEMPLATE` on PostgreSQL, a file copy on SQLite), so a
//! trial does not run every migration again.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use diesel::{Connection, PgConnection, RunQueryDsl};
use latchkey_persistence::{Database, DatabaseUrl, PoolOptions, run_pending_migrations};

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
    /// An empty database (no table, no migration applied).
    pub fn create(backend: Backend) -> Self {
        Self::make(backend, None)
    }

    /// A database with every current migration applied: a copy of this
    /// run's template for `backend`.
    pub fn migrated(backend: Backend) -> Self {
        let template = match template(backend) {
            Ok(template) => template,
            Err(reason) => panic!("the migrated {backend} template: {reason}"),
        };
        Self::make(backend, Some(template))
    }

    fn make(backend: Backend, template: Option<&str>) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("test.sqlite3");
                if let Some(template) = template {
                    std::fs::copy(template, &path).expect("copy of the SQLite template");
                }
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
                let template = template.map_or_else(String::new, |t| format!(" TEMPLATE \"{t}\""));
                admin_execute(&format!("CREATE DATABASE \"{name}\"{template}"))
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}{template}: {e}"));
                TestDatabase {
                    url: postgres_database_url(&name),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

/// The URL of database `name` on the server of `LATCHKEY_TEST_POSTGRES_URL`.
fn postgres_database_url(name: &str) -> String {
    match postgres_admin_url().rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("LATCHKEY_TEST_POSTGRES_URL needs a database path"),
    }
}

/// Runs one statement on the admin connection.
fn admin_execute(sql: &str) -> Result<(), String> {
    let mut conn = PgConnection::establish(&postgres_admin_url()).map_err(|e| e.to_string())?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The templates this process made, removed by [`drop_templates`].
static MADE: Mutex<Vec<(Backend, String)>> = Mutex::new(Vec::new());

/// This run's migrated template for `backend` (a PostgreSQL database name,
/// or a SQLite file path), made on first use. Its name is new for each run
/// (the process id and a random part), so concurrent runs, or runs of
/// another checkout with other migrations, never share one; it is migrated
/// by the same embedded migrations the server runs at start, so it always
/// holds the current ones.
fn template(backend: Backend) -> Result<&'static str, String> {
    static SQLITE: OnceLock<Result<String, String>> = OnceLock::new();
    static POSTGRES: OnceLock<Result<String, String>> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| make_template(backend))
        .as_deref()
        .map_err(Clone::clone)
}

fn make_template(backend: Backend) -> Result<String, String> {
    let unique = format!(
        "{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    match backend {
        Backend::Sqlite => {
            let path: PathBuf =
                std::env::temp_dir().join(format!("latchkey_template_{unique}.sqlite3"));
            MADE.lock()
                .unwrap()
                .push((backend, path.display().to_string()));
            migrate(&DatabaseUrl::sqlite_file(&path))?;
            // Every connection closed: WAL checkpointed into the file.
            for suffix in ["-wal", "-shm"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                if std::path::Path::new(&side).exists() {
                    return Err(format!("{} left after closing", side.display()));
                }
            }
            Ok(path.display().to_string())
        }
        Backend::Postgres => {
            let name = format!("latchkey_template_{unique}");
            admin_execute(&format!("CREATE DATABASE \"{name}\""))?;
            MADE.lock().unwrap().push((backend, name.clone()));
            let url =
                DatabaseUrl::parse(&postgres_database_url(&name)).map_err(|e| e.to_string())?;
            migrate(&url)?;
            // A template may have no session open while it is copied;
            // refusing connections keeps it so.
            admin_execute(&format!(
                "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            ))?;
            Ok(name)
        }
    }
}

/// Applies the embedded migrations, then closes every connection.
fn migrate(url: &DatabaseUrl) -> Result<(), String> {
    let db = Database::new(url, PoolOptions::default()).map_err(|e| e.to_string())?;
    run_pending_migrations(&db).map_err(|e| e.to_string())?;
    drop(db);
    Ok(())
}

/// Removes the templates this process made (at the end of the run).
pub fn drop_templates() {
    for (backend, name) in std::mem::take(&mut *MADE.lock().unwrap()) {
        match backend {
            Backend::Sqlite => {
                let _ = std::fs::remove_file(&name);
            }
            Backend::Postgres => {
                let _ = admin_execute(&format!("ALTER DATABASE \"{name}\" WITH IS_TEMPLATE false"));
                let _ = admin_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
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
