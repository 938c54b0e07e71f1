use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, tests};
use serde_json::json;

tests![
    verify_accepts_access_and_refresh_tokens,
    verify_requires_a_token,
    verify_refuses_garbage,
    verify_refuses_a_revoked_access_token,
    verify_ignores_a_stale_authorization_header,
];

async fn verify_accepts_access_and_refresh_tokens(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    app.post_json("/auth/verify/", json!({"token": registered.access()}))
        .await
        .assert(200, json!({}));
    app.post_json("/auth/verify/", json!({"token": registered.refresh()}))
        .await
        .assert(200, json!({}));
}

async fn verify_requires_a_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json("/auth/verify/", json!({}))
        .await
        .assert(400, json!({"token": ["This field is required."]}));
}

async fn verify_refuses_garbage(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app
        .post_json("/auth/verify/", json!({"token": "garbage"}))
        .await;
    response.assert(
        401,
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
}

async fn verify_refuses_a_revoked_access_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let (_, admin) = app.user_with_flags("admin@example.com", true, true).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    // Revocation has whole-second precision: wait for the next second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    app.request(
        "PATCH",
        &format!("/list/{id}/"),
        Req::bearer(&admin).with_json(json!({"is_active": false})),
    )
    .await
    .assert_status(200);
    app.post_json("/auth/verify/", json!({"token": registered.access()}))
        .await
        .assert(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
}

async fn verify_ignores_a_stale_authorization_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    app.post(
        "/auth/verify/",
        Req::json(json!({"token": registered.access()})).with_bearer("garbage"),
    )
    .await
    .assert(200, json!({}));
}
