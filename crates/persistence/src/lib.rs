//! Storage for latchkey: the diesel schema, the queries, the r2d2 pool and the
//! embedded migrations, on SQLite and PostgreSQL from one binary.
//!
//! The backend is chosen at run time from the database URL's scheme and stays
//! inside this crate: callers get a [`Database`] and a [`DbConnection`] and
//! never learn which one it is. This crate knows the domain's types but
//! nothing of HTTP, tokens or the server.

// Linked for what they build, never named: SQLite and libpq compiled from
// source (and the OpenSSL libpq's TLS uses, below), all statically linked.
use libsqlite3_sys as _;
use pq_sys as _;

/// Initialises the statically linked OpenSSL without its exit-time cleanup.
/// Call it first in `main`, before libpq (or anything else) opens a TLS
/// connection: the first initialisation decides, and libpq's own registers
/// a cleanup at exit that frees what threads still running then are using
/// (a `double free or corruption` abort after `main` returned).
pub fn init_tls() {
    openssl_sys::init();
}

pub mod ceremonies;
pub mod changes;
mod connection;
pub mod django_imports;
pub mod email_state;
mod error;
pub mod identities;
mod migrations;
pub mod outbox;
pub mod recovery_codes;
pub mod schema;
pub mod sessions;
pub mod tokens;
pub mod totp_devices;
pub mod users;

pub use ceremonies::{Ceremony, CeremonyKind, NewCeremony};
pub use connection::{
    Backend, Conn, Database, DatabaseUrl, DbConnection, Manager, PoolOptions, PooledConnection,
    UrlError, plan_each_statement_afresh, write_transaction,
};
pub use django_imports::latest_import_at;
pub use error::StoreError;
pub use identities::{AcceptedIdTokens, Identity, NewIdentity};
pub use migrations::run_pending_migrations;
pub use recovery_codes::{CodeFormat, RecoveryCodes};
pub use sessions::{ImportedSession, NewSession, Session, SessionState};
pub use tokens::{KnownToken, NewOutstandingToken, OutstandingToken, TokenRecord};
pub use totp_devices::{DeviceShape, ImportedDevice, SealedSecret, TotpDevice};
pub use users::{
    ImportedUser, ListOrder, ListQuery, NewUser, PriorImport, User, UserChanges, UserPage,
};

use chrono::{NaiveDateTime, Timelike, Utc};

/// Rows a multi-row `INSERT` writes at most: 13 bound parameters a row
/// (a user), far below SQLite's 32766 and PostgreSQL's 65535.
const BATCH_ROWS: usize = 500;

/// The current instant as stored: naive UTC with microsecond precision, the
/// finest both backends keep, so a value reads back exactly as written.
pub fn db_now() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
