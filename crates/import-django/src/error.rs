//! Why an import stops. Whatever the reason, nothing was written to
//! latchkey: the one transaction rolled back, or never began.

use latchkey_persistence::StoreError;

/// Why the import stopped; nothing was written to latchkey.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("--from must be sqlite://PATH or postgres://USER@HOST/DB: {0}")]
    BadUrl(String),
    #[error("the Django database {0} does not exist")]
    NoSuchFile(String),
    #[error("cannot open the Django database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error(
        "no table of the Django database has both an email and a password column; name the user table with --table"
    )]
    NoUserTable,
    #[error(
        "several tables of the Django database have both an email and a password column ({0}); name the user table with --table"
    )]
    SeveralUserTables(String),
    #[error("the Django database has no table {0:?}")]
    NoSuchTable(String),
    #[error(
        "the table {table:?} has no {missing} column (a user table needs id, email and password)"
    )]
    MissingColumns { table: String, missing: String },
    #[error(
        "the latchkey database holds {0} user(s) that were not imported from Django; their ids would collide with Django's, so nothing was imported (import into an empty latchkey database)"
    )]
    NativeUsers(i64),
    #[error("the Django row {table} id {id}: {what}")]
    BadRow {
        table: &'static str,
        id: i64,
        what: String,
    },
    #[error("reading the Django database: {0}")]
    Source(diesel::result::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}
