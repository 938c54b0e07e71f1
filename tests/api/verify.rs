use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, paths, tests};
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
    let jae = app.user("jae@example.com").await;
    app.verify(&jae.access).await.assert(200, json!({}));
    app.verify(&jae.refresh).await.assert(200, json!({}));
}

async fn verify_requires_a_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json(paths::VERIFY, json!({}))
        .await
        .assert(400, json!({"token": ["This field is required."]}));
}

async fn verify_refuses_garbage(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.verify("garbage").await.assert_unauthorized(
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
}

async fn verify_refuses_a_revoked_access_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let jae = app.user("jae@example.com").await;
    // Revocation has whole-second precision: wait for the next second.
    latchkey_tests::after_the_second_of(&jae.access).await;
    app.deactivate(&admin, jae.id).await;
    app.verify(&jae.access).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
}

async fn verify_ignores_a_stale_authorization_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.post(
        paths::VERIFY,
        Req::json(json!({"token": jae.access})).with_bearer("garbage"),
    )
    .await
    .assert(200, json!({}));
}
