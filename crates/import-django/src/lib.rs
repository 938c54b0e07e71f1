//! `latchkey import-django`: moves a Django (DRF + simplejwt) database's
//! users and refresh tokens into latchkey, once or again and again while
//! both run side by side (see docs/migrating-from-django.md).
//!
//! It owns the foreign database (`source.rs`: opened read only, on SQLite or
//! PostgreSQL), the mapping of its rows to latchkey's (`rows.rs`) and the
//! run's one write transaction (`write.rs`); `command.rs` is the command
//! line's driver and its output. It writes latchkey only through the
//! per-table functions of `latchkey_persistence` and knows nothing of HTTP
//! or the server, which hands it the command line, latchkey's database and
//! the hasher's settings.

mod command;
mod error;
mod report;
mod rows;
mod source;
mod write;

pub use command::{CommandFailed, ImportDjangoArgs, run};
pub use error::ImportError;
pub use report::{ImportEvent, ImportSummary};
pub use rows::{SkipReason, SkippedRow};
pub use source::{DjangoSource, UserTable};
pub use write::{ImportOptions, PROGRESS_EVERY, import};
