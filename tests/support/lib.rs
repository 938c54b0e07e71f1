//! The black-box test harness: every test body runs once on SQLite and once
//! on PostgreSQL, against the real server over real HTTP, each with a fresh
//! database of its own (a temp SQLite file, or a PostgreSQL database created
//! for the test and dropped after it).
//!
//! PostgreSQL is found at `LATCHKEY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the PostgreSQL half is reported as ignored, loudly, unless `CI` or
//! `LATCHKEY_REQUIRE_POSTGRES` is set, in which case those tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod binary;
pub mod database;
pub mod runner;

pub use app::{Response, TestApp};
pub use database::Backend;
pub use runner::{Ctx, Test};

/// A password that passes every validator.
pub const PASSWORD: &str = "correct-horse-battery-9";
