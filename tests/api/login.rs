use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, payload, tests};
use serde_json::json;

tests![
    login_returns_the_user_tokens_and_cookies,
    login_sets_last_login,
    login_leaves_last_login_when_update_last_login_is_off,
    login_with_a_wrong_password_is_401,
    login_with_an_unknown_email_is_the_same_401,
    login_of_an_inactive_user_is_the_same_401,
    login_requires_email_and_password,
    login_refuses_blank_fields,
    login_is_case_insensitive_on_email,
    login_ignores_a_garbage_authorization_header_and_stale_cookies,
    login_accepts_a_form_body,
    login_tokens_carry_simplejwt_claims,
];

async fn login_returns_the_user_tokens_and_cookies(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let response = app.login("jae@example.com", PASSWORD).await;
    response.assert_status(200);
    assert_eq!(response.body["message"], "login success");
    assert_eq!(response.body["user"]["email"], "jae@example.com");
    assert!(!response.text.contains("password"));
    assert_eq!(response.cookie_value("access"), Some(response.access()));
    assert_eq!(response.cookie_value("refresh"), Some(response.refresh()));
    assert!(response.set_cookie("csrftoken").is_some());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    app.me(&response.access()).await.assert_status(200);
}

async fn login_sets_last_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let response = app.login("jae@example.com", PASSWORD).await;
    let last_login = response.body["user"]["last_login"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last_login.ends_with('Z'));
    let me = app.me(&response.access()).await;
    assert_eq!(me.body["last_login"], json!(last_login));
}

async fn login_leaves_last_login_when_update_last_login_is_off(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("UPDATE_LAST_LOGIN", "false")]).await;
    app.registered("jae@example.com").await;
    let response = app.login("jae@example.com", PASSWORD).await;
    response.assert_status(200);
    assert_eq!(response.body["user"]["last_login"], json!(null));
}

const NO_ACCOUNT: &str = "No active account found with the given credentials";

async fn login_with_a_wrong_password_is_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let response = app.login("jae@example.com", "not-the-password-1").await;
    response.assert_unauthorized(json!({"detail": NO_ACCOUNT, "code": "no_active_account"}));
    assert!(response.set_cookie("access").is_none());
}

async fn login_with_an_unknown_email_is_the_same_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.login("nobody@example.com", PASSWORD).await.assert(
        401,
        json!({"detail": NO_ACCOUNT, "code": "no_active_account"}),
    );
    app.login("not an email", PASSWORD).await.assert(
        401,
        json!({"detail": NO_ACCOUNT, "code": "no_active_account"}),
    );
}

async fn login_of_an_inactive_user_is_the_same_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let jae = app.user("jae@example.com").await;
    app.deactivate(&admin, jae.id).await;
    app.login("jae@example.com", PASSWORD).await.assert(
        401,
        json!({"detail": NO_ACCOUNT, "code": "no_active_account"}),
    );
}

async fn login_requires_email_and_password(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json("/auth/", json!({})).await.assert(
        400,
        json!({"email": ["This field is required."], "password": ["This field is required."]}),
    );
    app.post_json("/auth/", json!({"email": "jae@example.com"}))
        .await
        .assert(400, json!({"password": ["This field is required."]}));
}

async fn login_refuses_blank_fields(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.login("jae@example.com", "")
        .await
        .assert(400, json!({"password": ["This field may not be blank."]}));
}

async fn login_is_case_insensitive_on_email(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    app.login("  JAE@Example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn login_ignores_a_garbage_authorization_header_and_stale_cookies(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let response = app
        .post(
            "/auth/",
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_bearer("garbage")
                .with_cookie("access", "stale")
                .with_cookie("refresh", "stale"),
        )
        .await;
    response.assert_status(200);
}

async fn login_accepts_a_form_body(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let body = format!("email=jae%40example.com&password={PASSWORD}");
    app.post(
        "/auth/",
        Req::default().with_raw("application/x-www-form-urlencoded", body),
    )
    .await
    .assert_status(200);
}

async fn login_tokens_carry_simplejwt_claims(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let id = app.registered("jae@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    let response = app.login("jae@example.com", PASSWORD).await;
    let access = payload(&response.access());
    let refresh = payload(&response.refresh());
    assert_eq!(access["token_type"], "access");
    assert_eq!(refresh["token_type"], "refresh");
    assert_eq!(access["user_id"], json!(id));
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        1800
    );
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        604_800
    );
    assert_eq!(access["jti"].as_str().unwrap().len(), 32);
    assert_ne!(access["jti"], refresh["jti"]);
    let header = payload_header(&response.access());
    assert_eq!(header["alg"], "HS256");
}

fn payload_header(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}
