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
pub mod django;
pub mod mfa_enrol;
pub mod oidc;
pub mod pgbouncer;
pub mod private_pg;
pub mod roles;
pub mod runner;
pub mod smtp;
pub mod social;
pub mod tcp_proxy;
pub mod user;

pub use app::{Response, TestApp, paths};
pub use database::Backend;
pub use roles::{DENIED, Roles, roles};
pub use runner::{Ctx, Test};
pub use user::TestUser;

/// A password that passes every validator.
pub const PASSWORD: &str = "correct-horse-battery-9";

/// The HMAC key test servers sign with, so tests can forge tokens.
pub const TEST_SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";

/// Signs `claims` as HS256 with `secret` (or any other algorithm of the
/// HMAC family): for forged-token tests.
pub fn forge(
    algorithm: jsonwebtoken::Algorithm,
    secret: &str,
    claims: &serde_json::Value,
) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The payload of a token, read without verification.
pub fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// How many migrations the backend has (the folders of `migrations/`).
pub fn migration_count(backend: Backend) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().join("up.sql").exists())
        .count()
}

/// Now in Unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Waits until the clock has left the second `token` was issued in (its
/// `iat`; at most a second): revocation has whole-second precision (a token
/// issued in the revocation's second survives it), so a test that revokes a
/// token it was just given waits this long, not a fixed 1.1 s. (Presenting
/// the token as issued a second earlier, re-signed with [`TEST_SECRET`],
/// would not do: a token issued in the user's registration second would then
/// predate the user's `tokens_valid_after`, refused for that.)
pub async fn after_the_second_of(token: &str) {
    let issued = payload(token)["iat"].as_i64().expect("an iat claim");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while now() <= issued {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
