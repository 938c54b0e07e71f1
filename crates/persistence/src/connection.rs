//! The run-time backend choice: a connection enum over PostgreSQL and SQLite,
//! picked from the URL's scheme by our own code (never by trying each backend
//! in turn), behind an r2d2 pool.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::StoreError;

/// Runs one expression against the concrete connection, for the few
/// queries the multi-backend cannot express (`ON CONFLICT`, `FOR UPDATE`):
/// the body is compiled once per backend.
#[macro_export]
#[doc(hidden)]
macro_rules! per_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Postgresql($c) => $body,
            $crate::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// A connection to whichever backend the URL named.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "DATABASE_URL has no scheme ({0:?}); use sqlite://PATH or postgres://USER@HOST/DB (a bare path is refused so that a typo cannot create a new, empty database)"
    )]
    NoScheme(String),
    #[error(
        "DATABASE_URL has the unsupported scheme {0:?}; use sqlite://PATH or postgres://USER@HOST/DB"
    )]
    UnknownScheme(String),
    #[error("DATABASE_URL names no SQLite file; use sqlite://PATH")]
    EmptySqlitePath,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(UrlError::NoScheme(raw.to_owned()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(DatabaseUrl::Postgres(raw.to_owned())),
            "sqlite" => {
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(UrlError::EmptySqlitePath);
                }
                Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
            }
            other => Err(UrlError::UnknownScheme(other.to_owned())),
        }
    }

    /// A SQLite file; its folder is created when missing.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> Self {
        DatabaseUrl::Sqlite(path.into())
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Never prints a PostgreSQL password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(url) => write!(f, "Postgres({})", redact_password(url)),
            DatabaseUrl::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(url) => f.write_str(&redact_password(url)),
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Makes PostgreSQL plan each statement for the tables as they are, until
/// the transaction ends (SQLite plans each one anyway). diesel prepares each
/// statement once; after five runs PostgreSQL may keep a generic plan made
/// while a table was still empty (a sequential scan), and a transaction
/// that fills the tables it also looks up grows quadratic with its rows.
pub fn plan_each_statement_afresh(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SET LOCAL plan_cache_mode = force_custom_plan").execute(pg)?;
    }
    Ok(())
}

/// Runs `work` in a transaction that writes. On SQLite it begins with
/// `BEGIN IMMEDIATE`, taking the write lock first (waiting up to
/// `busy_timeout` for it): a deferred transaction that reads and then
/// writes fails at once with "database is locked" when another connection
/// committed in between, which WAL mode does not retry. On PostgreSQL it is
/// an ordinary transaction (rows are locked where a flow needs it).
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return savepoint_or_transaction(conn, work);
    };
    if AnsiTransactionManager::transaction_manager_status_mut(sqlite)
        .transaction_depth()
        .ok()
        .flatten()
        .is_some()
    {
        // Already inside a transaction: a savepoint, under the same lock.
        return savepoint_or_transaction(conn, work);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        .map_err(StoreError::from)?;
    let outcome = work(conn);
    let DbConnection::Sqlite(sqlite) = conn else {
        return outcome;
    };
    match outcome {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite).map_err(StoreError::from)?;
            Ok(value)
        }
        Err(error) => {
            AnsiTransactionManager::rollback_transaction(sqlite).map_err(StoreError::from)?;
            Err(error)
        }
    }
}

/// diesel's own transaction (or savepoint), with a caller's error type.
fn savepoint_or_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::connection::TransactionManager;
    <DbConnection as Connection>::TransactionManager::begin_transaction(conn)
        .map_err(StoreError::from)?;
    match work(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(StoreError::from)?;
            Ok(value)
        }
        Err(error) => {
            <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
                .map_err(StoreError::from)?;
            Err(error)
        }
    }
}

/// A pooled connection, and whether work on it failed for want of the
/// database (then the pool discards it instead of handing it out again).
pub struct Conn {
    inner: DbConnection,
    broken: bool,
}

impl std::ops::Deref for Conn {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.inner
    }
}

/// Opens connections for the pool and prepares each SQLite one.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    sqlite_busy_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        let inner = match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn =
                    SqliteConnection::establish(&path).map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; busy_timeout makes
                // a writer wait for the lock instead of failing at once.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
                    self.sqlite_busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }?;
        Ok(Conn {
            inner,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), r2d2::Error> {
        diesel::sql_query("SELECT 1")
            .execute(&mut conn.inner)
            .map(|_| ())
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a request waits for a connection before it is refused (503).
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// The connection pool: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// Until when checkouts validate their connection: set after a
    /// connection was found dead, as others from before an outage are too.
    /// Validating every checkout always would cost a round trip per request.
    validate_until: Arc<Mutex<Option<Instant>>>,
}

/// How long after a dead connection checkouts keep validating.
const SUSPICION: Duration = Duration::from_secs(30);

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("state", &self.pool.state())
            .finish()
    }
}

/// A pooled connection.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

impl Database {
    /// Builds the pool without connecting: the server may start while the
    /// database is down and serve 503 until it is back.
    pub fn new(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, StoreError> {
        if let DatabaseUrl::Sqlite(path) = url {
            prepare_sqlite_file(path)?;
        }
        let manager = Manager {
            url: url.clone(),
            sqlite_busy_timeout: options.connection_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.connection_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Database {
            pool,
            backend: url.backend(),
            validate_until: Arc::new(Mutex::new(None)),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection, or [`StoreError::Unavailable`] after the pool timeout.
    pub fn get(&self) -> Result<PooledConnection, StoreError> {
        // One deadline for the whole checkout: dead connections found on
        // the way (after an outage) must not add a pool timeout each.
        let deadline = Instant::now() + self.pool.connection_timeout();
        for _ in 0..=self.pool.max_size() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let mut conn = self.pool.get_timeout(remaining)?;
            if !self.suspicious()
                || diesel::sql_query("SELECT 1")
                    .execute(&mut conn.inner)
                    .is_ok()
            {
                return Ok(conn);
            }
            conn.broken = true;
        }
        Err(StoreError::Unavailable(
            "no working database connection".into(),
        ))
    }

    /// Work on `conn` failed for want of the database: the pool drops the
    /// connection, and checkouts validate theirs for a while.
    pub fn discard(&self, conn: &mut PooledConnection) {
        conn.broken = true;
        if let Ok(mut until) = self.validate_until.lock() {
            *until = Some(Instant::now() + SUSPICION);
        }
    }

    fn suspicious(&self) -> bool {
        self.validate_until
            .lock()
            .map(|until| until.is_some_and(|t| Instant::now() < t))
            .unwrap_or(true)
    }

    /// Connections in use and idle, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections - state.idle_connections,
            state.idle_connections,
        )
    }

    pub fn max_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// Whether the database answers a trivial query now.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.get()?;
        if let Err(error) = diesel::sql_query("SELECT 1").execute(&mut conn.inner) {
            self.discard(&mut conn);
            return Err(error.into());
        }
        Ok(())
    }
}

/// Creates the SQLite file's folder (0700) and the file itself (0600) when
/// missing, so that the hashes in it are never readable by other local
/// users: SQLite gives the WAL and shared-memory files the database file's
/// permissions.
fn prepare_sqlite_file(path: &Path) -> Result<(), StoreError> {
    let unavailable = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        private_dir_builder()
            .create(parent)
            .map_err(|e| unavailable(parent, e))?;
    }
    if path.exists() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    match private_file_options().open(path) {
        Ok(_) => Ok(()),
        // Another process created it meanwhile: it is theirs to set up.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable(path, e)),
    }
}

fn private_dir_builder() -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_schemes_are_postgres() {
        for url in ["postgres://u@h/db", "postgresql://u:p@h:5432/db"] {
            assert_eq!(
                DatabaseUrl::parse(url).unwrap().backend(),
                Backend::Postgres
            );
        }
    }

    #[test]
    fn sqlite_scheme_strips_the_prefix() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/app.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/app.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/app.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/tmp/app.db"))
        );
    }

    #[test]
    fn a_bare_path_is_refused() {
        let err = DatabaseUrl::parse("data/app.db").unwrap_err();
        assert!(matches!(err, UrlError::NoScheme(_)));
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn an_unknown_scheme_is_refused() {
        let err = DatabaseUrl::parse("mysql://root@localhost/db").unwrap_err();
        assert_eq!(err, UrlError::UnknownScheme("mysql".into()));
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn an_empty_sqlite_path_is_refused() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://").unwrap_err(),
            UrlError::EmptySqlitePath
        );
    }

    #[test]
    fn display_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/latchkey").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/latchkey");
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
