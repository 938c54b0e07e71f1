//! `amr` and `aal` (How a login completes, v3), read from real responses:
//! every token latchkey issues carries how its session was authenticated,
//! a refresh (rotated, not rotated, the reuse-interval replacement, the
//! sliding refresh) copies the session's, register and a password login
//! start `["pwd"]` at `aal` 1, `GET /auth/sessions/` shows both, a token
//! without them counts as `aal` 1, and the real simplejwt still verifies
//! latchkey's tokens.

use std::io::Write;
use std::process::{Command, Stdio};

use diesel::prelude::*;
use jsonwebtoken::Algorithm;
use latchkey_persistence::DbConnection;
use latchkey_persistence::schema::sessions;
use latchkey_tests::{
    Ctx, PASSWORD, TEST_SECRET, TestApp, TestUser, django, forge, payload, tests,
};
use serde_json::{Value, json};

tests![
    a_login_and_a_sliding_login_carry_pwd_at_aal1,
    register_starts_a_pwd_session_at_aal1,
    the_session_list_shows_amr_and_aal,
    a_rotating_refresh_and_its_replacement_copy_the_session,
    a_refresh_without_rotation_copies_the_session,
    a_sliding_refresh_copies_the_session,
    a_password_change_keeps_the_callers_values,
    a_token_without_amr_and_aal_counts_as_aal1,
    malformed_amr_or_aal_is_an_invalid_token,
];

tests![
    django:
    simplejwt_verifies_tokens_that_carry_amr_and_aal,
];

fn claims_of(token: &str) -> (Value, Value) {
    let payload = payload(token);
    (payload["amr"].clone(), payload["aal"].clone())
}

fn pwd() -> (Value, Value) {
    (json!(["pwd"]), json!(1))
}

fn pwd_otp() -> (Value, Value) {
    (json!(["pwd", "otp"]), json!(2))
}

/// Makes the session as a login with a second factor would have stored it
/// (what the second-factor login writes), so that a copy from the session
/// is told apart from a default.
fn raise_session(app: &TestApp, sid: &str) {
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut pooled = db.get().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    let updated = diesel::update(sessions::table.find(sid))
        .set((sessions::amr.eq(r#"["pwd","otp"]"#), sessions::aal.eq(2)))
        .execute(conn)
        .unwrap();
    assert_eq!(updated, 1);
}

/// A token of a refresh's answer (`{"access", "refresh"}`).
fn top<'a>(response: &'a latchkey_tests::Response, name: &str) -> &'a str {
    response.body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {}", response.text))
}

fn sid_of(token: &str) -> String {
    payload(token)["sid"].as_str().unwrap().to_owned()
}

async fn a_login_and_a_sliding_login_carry_pwd_at_aal1(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.user("jae@example.com").await;
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(claims_of(&login.access()), pwd());
    assert_eq!(claims_of(&login.refresh()), pwd());
    let sliding = app.sliding_token("jae@example.com").await;
    assert_eq!(claims_of(&sliding), pwd());
}

async fn register_starts_a_pwd_session_at_aal1(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("new@example.com").await;
    assert_eq!(claims_of(&registered.access()), pwd());
    assert_eq!(claims_of(&registered.refresh()), pwd());
    let listed = app.sessions(&registered.access()).await;
    listed.assert_status(200);
    assert_eq!(listed.body["results"][0]["amr"], json!(["pwd"]));
    assert_eq!(listed.body["results"][0]["aal"], json!(1));
}

async fn the_session_list_shows_amr_and_aal(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let first = app.user("jae@example.com").await;
    let second = app.login("jae@example.com", PASSWORD).await;
    raise_session(&app, &sid_of(&second.access()));
    let listed = first.sessions().await;
    listed.assert_status(200);
    let results = listed.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for session in results {
        let expected = if session["id"] == json!(sid_of(&second.access())) {
            json!({"amr": ["pwd", "otp"], "aal": 2})
        } else {
            json!({"amr": ["pwd"], "aal": 1})
        };
        assert_eq!(
            json!({"amr": session["amr"], "aal": session["aal"]}),
            expected
        );
    }
}

async fn a_rotating_refresh_and_its_replacement_copy_the_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    raise_session(&app, &sid_of(&user.access));
    let rotated = app.refresh_token(&user.refresh).await;
    rotated.assert_status(200);
    assert_eq!(claims_of(top(&rotated, "access")), pwd_otp());
    assert_eq!(claims_of(top(&rotated, "refresh")), pwd_otp());
    // The old token again, inside the reuse interval: the same replacement,
    // signed again, with the session's values.
    let again = app.refresh_token(&user.refresh).await;
    again.assert_status(200);
    assert_eq!(top(&again, "refresh"), top(&rotated, "refresh"));
    assert_eq!(claims_of(top(&again, "access")), pwd_otp());
}

async fn a_refresh_without_rotation_copies_the_session(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("ROTATE_REFRESH_TOKENS", "false")]).await;
    let user = app.user("jae@example.com").await;
    raise_session(&app, &sid_of(&user.access));
    let refreshed = app.refresh_token(&user.refresh).await;
    refreshed.assert_status(200);
    assert!(
        refreshed.body.get("refresh").is_none(),
        "{}",
        refreshed.text
    );
    assert_eq!(claims_of(top(&refreshed, "access")), pwd_otp());
}

async fn a_sliding_refresh_copies_the_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.user("jae@example.com").await;
    let token = app.sliding_token("jae@example.com").await;
    raise_session(&app, &sid_of(&token));
    let slid = app.sliding_refresh(&token).await;
    slid.assert_status(200);
    assert_eq!(claims_of(&slid.sliding()), pwd_otp());
}

async fn a_password_change_keeps_the_callers_values(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    raise_session(&app, &sid_of(&user.access));
    let refreshed = app.refresh_token(&user.refresh).await;
    let caller = user.with_tokens_of(&refreshed);
    let changed = caller
        .change_password(PASSWORD, "another-horse-battery-7")
        .await;
    changed.assert_status(200);
    let pair = &changed.body["token"];
    assert_eq!(claims_of(pair["access"].as_str().unwrap()), pwd_otp());
    assert_eq!(claims_of(pair["refresh"].as_str().unwrap()), pwd_otp());
    // A caller at aal 1 stays there.
    let plain = app
        .login("jae@example.com", "another-horse-battery-7")
        .await;
    let changed = app
        .change_password(&plain.access(), "another-horse-battery-7", PASSWORD)
        .await;
    changed.assert_status(200);
    assert_eq!(
        claims_of(changed.body["token"]["access"].as_str().unwrap()),
        pwd()
    );
}

/// The claims of a real token, without `amr` and `aal`, signed again with
/// the test servers' key: a token as latchkey issued them before v3.
fn without_assurance(token: &str) -> String {
    let mut claims = payload(token);
    let map = claims.as_object_mut().unwrap();
    map.remove("amr");
    map.remove("aal");
    forge(Algorithm::HS256, TEST_SECRET, &claims)
}

async fn a_token_without_amr_and_aal_counts_as_aal1(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    let access = without_assurance(&user.access);
    let me = app.me(&access).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    // Its refresh still works, and what it issues says what the session is.
    let refreshed = app.refresh_token(&without_assurance(&user.refresh)).await;
    refreshed.assert_status(200);
    assert_eq!(claims_of(top(&refreshed, "access")), pwd());
    app.verify(&access).await.assert(200, json!({}));
}

async fn malformed_amr_or_aal_is_an_invalid_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user: TestUser = app.user("jae@example.com").await;
    for (name, value) in [
        ("aal", json!(3)),
        ("aal", json!("2")),
        ("amr", json!("pwd")),
        ("amr", json!(["pwd", "sms"])),
    ] {
        let mut claims = payload(&user.access);
        claims[name] = value.clone();
        let forged = forge(Algorithm::HS256, TEST_SECRET, &claims);
        let me = app.me(&forged).await;
        me.assert_status(401);
        assert_eq!(me.body["code"], "token_not_valid", "{name}: {value}");
        app.verify(&forged).await.assert(
            401,
            json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
        );
    }
}

/// The seed's SECRET_KEY (tests/django's settings): simplejwt verifies with it.
const DJANGO_SECRET_KEY: &str =
    "django-insecure-ux1fai&rd72d8gi4zdp=-$dz2k!e(u@yny_ivje-qxa-5czy)y";

/// Verifies each `(type, token)` with the real simplejwt
/// (`tests/django/verify_tokens.py`): its payload, or its error.
fn simplejwt_verify(tokens: &[(&str, &str)]) -> Vec<Value> {
    let input: Vec<Value> = tokens
        .iter()
        .map(|(kind, token)| json!({"type": kind, "token": token}))
        .collect();
    let mut child = Command::new(django::python())
        .arg(django::project().join("verify_tokens.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(input).to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "verify_tokens.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn simplejwt_verifies_tokens_that_carry_amr_and_aal(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("SECRET_KEY", DJANGO_SECRET_KEY)]).await;
    app.user("jae@example.com").await;
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    let sliding = app.sliding_token("jae@example.com").await;
    let (access, refresh) = (login.access(), login.refresh());
    let verified = simplejwt_verify(&[
        ("access", &access),
        ("refresh", &refresh),
        ("sliding", &sliding),
    ]);
    for (answer, token) in verified.iter().zip([&access, &refresh, &sliding]) {
        assert_eq!(answer["valid"], true, "{answer}");
        assert_eq!(answer["payload"], payload(token));
        assert_eq!(answer["payload"]["amr"], json!(["pwd"]));
        assert_eq!(answer["payload"]["aal"], json!(1));
    }
    // And it still refuses what it should: the wrong type.
    let refused = simplejwt_verify(&[("access", &refresh)]);
    assert_eq!(refused[0]["valid"], false, "{}", refused[0]);
}
