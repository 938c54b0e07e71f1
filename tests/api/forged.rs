//! Tokens a client should never get accepted.

use base64::Engine;
use jsonwebtoken::Algorithm;
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TEST_SECRET, forge, now, tests};
use serde_json::{Value, json};

tests![
    access_expired_by_5_seconds_is_expired,
    access_expired_by_90_seconds_is_expired,
    alg_none_is_invalid,
    another_hmac_algorithm_is_invalid,
    another_key_is_invalid,
    a_tampered_payload_is_invalid,
    a_refresh_token_is_not_an_access_token,
    an_access_token_is_not_a_refresh_token,
    a_token_without_type_has_no_type,
    exp_as_a_string_is_invalid,
    missing_exp_is_invalid,
    an_unknown_user_id_is_user_not_found,
    an_inactive_users_token_is_refused,
    user_id_as_a_string_is_accepted,
    garbage_is_invalid,
];

fn invalid(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

fn claims(user_id: i64, token_type: &str, exp_offset: i64) -> Value {
    json!({"token_type": token_type, "exp": now() + exp_offset, "iat": now() - 1000, "jti": "f".repeat(32), "user_id": user_id})
}

async fn user(ctx: &mut Ctx) -> (latchkey_tests::TestApp, i64) {
    let app = ctx.spawn().await;
    let id = app.registered("jae@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    (app, id)
}

async fn access_expired_by_5_seconds_is_expired(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = forge(Algorithm::HS256, TEST_SECRET, &claims(id, "access", -5));
    app.me(&token)
        .await
        .assert_unauthorized(invalid("Token is expired"));
}

async fn access_expired_by_90_seconds_is_expired(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = forge(Algorithm::HS256, TEST_SECRET, &claims(id, "access", -90));
    app.me(&token)
        .await
        .assert(401, invalid("Token is expired"));
}

async fn alg_none_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(id, "access", 600))
    );
    app.me(&token)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn another_hmac_algorithm_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = forge(Algorithm::HS512, TEST_SECRET, &claims(id, "access", 600));
    app.me(&token)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn another_key_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = forge(
        Algorithm::HS256,
        "some-other-secret-some-other-secret",
        &claims(id, "access", 600),
    );
    app.me(&token)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn a_tampered_payload_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = app.login("jae@example.com", PASSWORD).await.access();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["user_id"] = json!(id + 1);
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    app.me(&tampered)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn a_refresh_token_is_not_an_access_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    app.me(&registered.refresh())
        .await
        .assert(401, invalid("Token has wrong type"));
    app.get(
        "/auth/",
        Req::default().with_cookie("access", &registered.refresh()),
    )
    .await
    .assert(401, invalid("Token has wrong type"));
}

async fn an_access_token_is_not_a_refresh_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    app.refresh_token(&registered.access()).await.assert(
        401,
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
}

async fn a_token_without_type_has_no_type(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let mut payload = claims(id, "access", 600);
    payload.as_object_mut().unwrap().remove("token_type");
    let token = forge(Algorithm::HS256, TEST_SECRET, &payload);
    app.me(&token)
        .await
        .assert(401, invalid("Token has no type"));
}

async fn exp_as_a_string_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let mut payload = claims(id, "access", 600);
    payload["exp"] = json!((now() + 600).to_string());
    let token = forge(Algorithm::HS256, TEST_SECRET, &payload);
    app.me(&token)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn missing_exp_is_invalid(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let mut payload = claims(id, "access", 600);
    payload.as_object_mut().unwrap().remove("exp");
    let token = forge(Algorithm::HS256, TEST_SECRET, &payload);
    app.me(&token)
        .await
        .assert(401, invalid("Token is invalid"));
}

async fn an_unknown_user_id_is_user_not_found(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let token = forge(
        Algorithm::HS256,
        TEST_SECRET,
        &claims(id + 1000, "access", 600),
    );
    app.me(&token)
        .await
        .assert_unauthorized(json!({"detail": "User not found", "code": "user_not_found"}));
}

async fn an_inactive_users_token_is_refused(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let jae = app.user("jae@example.com").await;
    app.deactivate(&admin, jae.id).await;
    jae.me().await.assert(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
}

async fn user_id_as_a_string_is_accepted(mut ctx: Ctx) {
    let (app, id) = user(&mut ctx).await;
    let mut payload = claims(id, "access", 600);
    payload["user_id"] = json!(id.to_string());
    payload["iat"] = json!(now());
    let token = forge(Algorithm::HS256, TEST_SECRET, &payload);
    let response = app.me(&token).await;
    response.assert_status(200);
    assert_eq!(response.body["id"], json!(id));
}

async fn garbage_is_invalid(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.me("garbage")
        .await
        .assert(401, invalid("Token is invalid"));
    app.me("a.b.c")
        .await
        .assert(401, invalid("Token is invalid"));
}
