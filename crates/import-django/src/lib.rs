//! `latchkey import-django`: moves a Django (DRF + simplejwt) database's
//! users, their second factors (django-otp, django-allauth), their linked
//! provider identities (django-allauth's social accounts) and refresh
//! tokens into latchkey, once or again and again while
//! both run side by side (see docs/migrating-from-django.md).
//!
//! It owns the foreign database (`source.rs`: opened read only, on SQLite or
//! PostgreSQL), the mapping of its rows to latchkey's (`rows.rs`, and
//! `second_factors.rs` for django-otp's and allauth's rows, held in clear
//! only until the write seals and hashes them through functions the server
//! passes in, so that this crate never holds latchkey's keys;
//! `social_accounts.rs` for allauth's social accounts and apps), the run's one
//! write transaction (`write.rs`); `command.rs` is the command
//! line's driver and its output. It writes latchkey only through the
//! per-table functions of `latchkey_persistence` and knows nothing of HTTP
//! or the server, which hands it the command line, latchkey's database and
//! the hasher's settings.

mod command;
mod error;
mod report;
mod rows;
mod second_factors;
mod social_accounts;
mod source;
mod write;

pub use command::{CommandFailed, ImportDjangoArgs, SecondFactorSealing, run};
pub use error::ImportError;
pub use report::{ImportEvent, ImportSummary, SecondFactorCounts};
pub use rows::{SkipReason, SkippedRow};
pub use source::{DjangoSource, UserTable};
pub use write::{ImportOptions, PROGRESS_EVERY, import};
