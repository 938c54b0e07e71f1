//! The per-request authentication path as the middleware runs it, minus the
//! HTTP: verify the access token, load the user from a real SQLite database
//! and its session through the pool in one query, and check them (active,
//! session live).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use latchkey_auth::{JwtSettings, KeyConfig, KeySet, TokenCodec, TokenType};
use latchkey_domain::{Assurance, Email, UserFlags};
use latchkey_persistence::{
    Database, DatabaseUrl, NewSession, NewUser, PoolOptions, Session, User, db_now,
    run_pending_migrations,
};
use latchkey_server::http::authn::check_user;

fn auth_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(dir.path().join("bench.sqlite3"));
    let db = Database::new(&url, PoolOptions::default()).unwrap();
    run_pending_migrations(&db).unwrap();
    let flags = UserFlags {
        is_active: true,
        is_staff: false,
        is_superuser: false,
    };
    let email = Email::parse("bench@example.com").unwrap();
    let new = NewUser::new(&email, "$2b$04$x", flags, db_now());
    let user = User::insert(&mut db.get().unwrap(), &new).unwrap();
    let keys = KeySet::new(&KeyConfig {
        algorithm: Algorithm::HS256,
        secret: b"bench-secret-key-0123456789abcdef0123456789".to_vec(),
        signing_pem: None,
        verifying_pems: vec![],
    })
    .unwrap();
    let codec = TokenCodec::new(keys, JwtSettings::default());
    let now = chrono::Utc::now().timestamp() + 1;
    let sid = "bench-session";
    let assurance = Assurance::password();
    let (amr, aal) = NewSession::assurance_columns(&assurance);
    Session::start(
        &mut db.get().unwrap(),
        &NewSession {
            id: sid,
            user_id: user.id,
            created_at: db_now(),
            last_used_at: db_now(),
            expires_at: db_now() + chrono::Duration::days(1),
            user_agent: None,
            ip: None,
            amr: amr.clone(),
            aal,
        },
    )
    .unwrap();
    let token = codec
        .issue(TokenType::Access, user.id, sid, &assurance, now)
        .token;
    c.bench_function("auth_path/verify_load_check_sqlite", |b| {
        b.iter(|| {
            let claims = codec
                .verify(&token, &[TokenType::Access, TokenType::Sliding], now)
                .unwrap();
            let found = User::find_with_session(
                &mut db.get().unwrap(),
                claims.user_id,
                claims.sid.as_deref(),
            )
            .unwrap();
            check_user(found, &claims).unwrap()
        })
    });
}

criterion_group!(benches, auth_path);
criterion_main!(benches);
