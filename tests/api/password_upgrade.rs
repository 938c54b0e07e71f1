//! Logging in with a hash as Django stored it, the upgrade to the
//! configured format, and the adoption of refresh tokens Django issued.
//! The hashes come from Django itself (`tests/fixtures/django_hashes/`,
//! made by `make_vectors.py` with Django 5.2's `make_password`).

use latchkey_persistence::{User, UserChanges};
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TEST_SECRET, TestApp, forge, now, payload, tests};
use serde_json::{Value, json};

tests![
    every_django_format_logs_in_as_stored,
    a_hash_in_another_format_is_upgraded_at_login,
    a_hash_in_the_configured_format_is_kept_byte_for_byte,
    a_weaker_bcrypt_hash_is_upgraded_and_a_stronger_one_kept,
    new_passwords_follow_password_hasher,
    an_unusable_or_unknown_hash_never_matches,
    passwords_up_to_4096_bytes_are_accepted_when_the_hasher_is_not_bcrypt,
    a_django_refresh_token_issued_before_the_import_is_adopted_once,
    a_django_refresh_token_issued_after_the_import_is_refused,
    a_django_refresh_token_of_a_native_user_is_refused,
];

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/django_hashes/vectors.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fixture["vectors"].as_array().unwrap().clone()
}

/// Registers a user, then stores `hash` as theirs, as an import would.
async fn user_with_hash(app: &TestApp, email: &str, hash: &str) -> i64 {
    let id = app.registered(email).await.body["user"]["id"]
        .as_i64()
        .unwrap();
    set_hash(app, id, hash);
    id
}

fn set_hash(app: &TestApp, id: i64, hash: &str) {
    let db = latchkey_tests::binary::open(&app.database_url);
    User::update(
        &mut db.get().unwrap(),
        id,
        &UserChanges {
            password_hash: Some(hash.to_owned()),
            ..UserChanges::default()
        },
    )
    .unwrap();
}

fn stored_hash(app: &TestApp, id: i64) -> String {
    let db = latchkey_tests::binary::open(&app.database_url);
    User::find(&mut db.get().unwrap(), id)
        .unwrap()
        .unwrap()
        .password_hash
}

fn no_active_account() -> Value {
    json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
}

/// The fast vectors (low work factors) that Django says match.
fn matching_vectors() -> Vec<Value> {
    vectors()
        .into_iter()
        .filter(|v| v["right"] == true && v["password"].as_str().is_some_and(|p| !p.is_empty()))
        .filter(|v| {
            let encoded = v["encoded"].as_str().unwrap();
            // Django's full default costs are covered by the auth crate's
            // tests; over HTTP in a debug build they would take minutes.
            !(encoded.starts_with("pbkdf2_sha256$1000000$")
                || encoded.starts_with("scrypt$16384$")
                || encoded.contains("m=102400")
                || encoded.starts_with("bcrypt_sha256$$2b$12$"))
        })
        .collect()
}

async fn every_django_format_logs_in_as_stored(mut ctx: Ctx) {
    // Upgrades off the point here: keep every hash as it is.
    let app = ctx.spawn_with(&[("UPDATE_LAST_LOGIN", "false")]).await;
    let mut formats = std::collections::BTreeSet::new();
    for (n, vector) in matching_vectors().iter().enumerate() {
        let email = format!("django{n}@example.com");
        let encoded = vector["encoded"].as_str().unwrap();
        user_with_hash(&app, &email, encoded).await;
        let password = vector["password"].as_str().unwrap();
        if password.len() > 4096 || password.contains('\0') {
            continue;
        }
        let login = app.login(&email, password).await;
        assert_eq!(
            login.status, 200,
            "{} {encoded}: {}",
            vector["hasher"], login.text
        );
        app.login(&email, vector["wrong_password"].as_str().unwrap())
            .await
            .assert(401, no_active_account());
        formats.insert(vector["hasher"].as_str().unwrap().to_owned());
    }
    for format in [
        "pbkdf2_sha256",
        "pbkdf2_sha1",
        "argon2id",
        "argon2i",
        "bcrypt_sha256",
        "bcrypt",
        "scrypt",
        "md5",
    ] {
        assert!(
            formats.contains(format),
            "no {format} vector logged in: {formats:?}"
        );
    }
}

async fn a_hash_in_another_format_is_upgraded_at_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let vector = matching_vectors()
        .into_iter()
        .find(|v| v["hasher"] == "pbkdf2_sha256")
        .unwrap();
    let id = user_with_hash(&app, "jae@example.com", vector["encoded"].as_str().unwrap()).await;
    let password = vector["password"].as_str().unwrap();
    let login = app.login("jae@example.com", password).await;
    login.assert_status(200);
    let upgraded = stored_hash(&app, id);
    assert!(upgraded.starts_with("$2b$04$"), "{upgraded}");
    assert!(login.body["user"]["last_login"].is_string());
    // The new hash is the same password.
    app.login("jae@example.com", password)
        .await
        .assert_status(200);
    assert_eq!(stored_hash(&app, id), upgraded, "kept once upgraded");
}

async fn a_hash_in_the_configured_format_is_kept_byte_for_byte(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("PASSWORD_HASHER", "django_pbkdf2_sha256"),
            ("PBKDF2_ITERATIONS", "1000"),
        ])
        .await;
    let vector = matching_vectors()
        .into_iter()
        .find(|v| {
            v["hasher"] == "pbkdf2_sha256"
                && v["encoded"]
                    .as_str()
                    .unwrap()
                    .starts_with("pbkdf2_sha256$1000$")
        })
        .unwrap();
    let encoded = vector["encoded"].as_str().unwrap();
    let id = user_with_hash(&app, "jae@example.com", encoded).await;
    app.login("jae@example.com", vector["password"].as_str().unwrap())
        .await
        .assert_status(200);
    assert_eq!(stored_hash(&app, id), encoded);
}

async fn a_weaker_bcrypt_hash_is_upgraded_and_a_stronger_one_kept(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("BCRYPT_COST", "5")]).await;
    let weak = bcrypt::hash(PASSWORD, 4).unwrap();
    let id = user_with_hash(&app, "weak@example.com", &weak).await;
    app.login("weak@example.com", PASSWORD)
        .await
        .assert_status(200);
    assert!(stored_hash(&app, id).starts_with("$2b$05$"));
    let strong = bcrypt::hash(PASSWORD, 6).unwrap();
    let id = user_with_hash(&app, "strong@example.com", &strong).await;
    app.login("strong@example.com", PASSWORD)
        .await
        .assert_status(200);
    assert_eq!(stored_hash(&app, id), strong);
}

async fn new_passwords_follow_password_hasher(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("PASSWORD_HASHER", "argon2id"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
        ])
        .await;
    let id = app.registered("jae@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    let stored = stored_hash(&app, id);
    assert!(
        stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{stored}"
    );
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    assert_eq!(stored_hash(&app, id), stored);

    let django = ctx
        .spawn_with(&[
            ("PASSWORD_HASHER", "django_pbkdf2_sha256"),
            ("PBKDF2_ITERATIONS", "1000"),
        ])
        .await;
    let id = django.registered("kim@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    let stored = stored_hash(&django, id);
    assert!(stored.starts_with("pbkdf2_sha256$1000$"), "{stored}");
    django
        .login("kim@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn an_unusable_or_unknown_hash_never_matches(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    for (n, hash) in [
        format!("!{}", "x".repeat(40)),
        "sha1$$0123456789abcdef0123456789abcdef01234567".to_owned(),
        "crypt$$ab1234567890".to_owned(),
        PASSWORD.to_owned(),
        String::new(),
    ]
    .iter()
    .enumerate()
    {
        let email = format!("u{n}@example.com");
        let id = user_with_hash(&app, &email, hash).await;
        app.login(&email, PASSWORD)
            .await
            .assert(401, no_active_account());
        assert_eq!(&stored_hash(&app, id), hash);
    }
}

async fn passwords_up_to_4096_bytes_are_accepted_when_the_hasher_is_not_bcrypt(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("PASSWORD_HASHER", "argon2id"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
        ])
        .await;
    let long = "long passphrase ".repeat(256);
    assert_eq!(long.len(), 4096);
    app.register("jae@example.com", &long)
        .await
        .assert_status(201);
    app.login("jae@example.com", &long).await.assert_status(200);
    let over = format!("{long}x");
    app.register("kim@example.com", &over).await.assert(
        400,
        json!({"password": ["This password is too long. It must contain at most 4096 bytes."]}),
    );
    app.login("jae@example.com", &over)
        .await
        .assert(401, no_active_account());
    // Under bcrypt the limit stays 72 bytes.
    let bcrypt_app = ctx.spawn().await;
    bcrypt_app
        .register("jae@example.com", &"x1".repeat(37))
        .await
        .assert(
            400,
            json!({"password": ["This password is too long. It must contain at most 72 bytes."]}),
        );
}

/// Marks the user as imported and records an import at `imported_at`
/// (Unix seconds), as `latchkey import-django` does (which also dates the
/// user's `tokens_valid_after` from their Django `date_joined`).
fn imported(app: &TestApp, id: i64, imported_at: i64) {
    use diesel::RunQueryDsl;
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    let at = chrono::DateTime::from_timestamp(imported_at, 0)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    diesel::sql_query(format!(
        "UPDATE users SET imported_from_django = true, \
         tokens_valid_after = '2020-01-01 00:00:00' WHERE id = {id}"
    ))
    .execute(&mut **conn)
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO django_imports (imported_at, source, users, skipped, tokens, blacklisted) \
         VALUES ('{at}', 'test', 1, 0, 0, 0)"
    ))
    .execute(&mut **conn)
    .unwrap();
}

/// A refresh token as simplejwt 5.5 mints it: `user_id` a string, no `sid`.
fn django_refresh(id: i64, iat: i64) -> String {
    forge(
        jsonwebtoken::Algorithm::HS256,
        TEST_SECRET,
        &json!({
            "token_type": "refresh",
            "exp": iat + 7 * 86_400,
            "iat": iat,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "user_id": id.to_string(),
        }),
    )
}

fn invalid_or_expired() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

async fn a_django_refresh_token_issued_before_the_import_is_adopted_once(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")])
        .await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    let token = django_refresh(id, now() - 120);
    imported(&app, id, now() - 60);
    let adopted = app
        .post(
            "/auth/refresh/",
            Req::json(json!({"refresh": token})).with_header("User-Agent", "django-app/1"),
        )
        .await;
    adopted.assert_status(200);
    let rotated = adopted.body["refresh"].as_str().unwrap().to_owned();
    let sid = payload(&rotated)["sid"].as_str().unwrap().to_owned();
    let access = adopted.body["access"].as_str().unwrap().to_owned();
    assert_eq!(payload(&access)["sid"], sid);
    // A session of its own, listed with the adopting request's client.
    let sessions = app.get("/auth/sessions/", Req::bearer(&access)).await;
    let listed = sessions.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == sid)
        .cloned()
        .unwrap();
    assert_eq!(listed["user_agent"], "django-app/1");
    // Presented again after its adoption: an ordinary reuse, which ends
    // the session.
    std::thread::sleep(std::time::Duration::from_millis(20));
    app.refresh_token(&token).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
    app.refresh_token(&rotated).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
}

async fn a_django_refresh_token_issued_after_the_import_is_refused(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    let import_at = now() - 60;
    imported(&app, id, import_at);
    // The same second as the import is not before it.
    for iat in [import_at, import_at + 1] {
        app.refresh_token(&django_refresh(id, iat))
            .await
            .assert(401, invalid_or_expired());
    }
}

async fn a_django_refresh_token_of_a_native_user_is_refused(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let native = app.registered("jae@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    let imported_user = app.registered("kim@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    imported(&app, imported_user, now() - 60);
    app.refresh_token(&django_refresh(native, now() - 120))
        .await
        .assert(401, invalid_or_expired());
}
