//! `latchkey import-django`: moves a Django (DRF + simplejwt) database's
//! users and refresh tokens into latchkey, once or again and again while
//! both run side by side (see docs/migrating-from-django.md).
//!
//! It owns the foreign database (opened read only, on SQLite or
//! PostgreSQL), the mapping of its rows to latchkey's, and the run's one
//! write transaction. It writes latchkey only through the per-table
//! functions of `latchkey_persistence`, and knows nothing of HTTP, tokens'
//! signing or the server, which only hands it the command line, the
//! database and the hasher's bounds.

mod command;
mod write;

pub use command::{CommandFailed, ImportDjangoArgs, run};
pub use write::{
    DjangoSource, ImportError, ImportEvent, ImportOptions, ImportSummary, PROGRESS_EVERY,
    SkipReason, SkippedRow, UserTable, import, parse_instant,
};
