//! Bodies that cannot be read, and what the server says about them.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, tests};
use serde_json::json;

tests![
    malformed_json_is_400_with_the_parse_error,
    a_json_list_is_a_non_field_error,
    another_media_type_is_415,
    a_body_over_the_limit_is_413,
    a_1_mb_body_is_413_and_creates_nothing,
    paths_work_without_the_trailing_slash,
];

async fn malformed_json_is_400_with_the_parse_error(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app
        .post(
            "/register/",
            Req::default().with_raw("application/json", "{\"email\":"),
        )
        .await;
    response.assert_status(400);
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{}",
        response.text
    );
}

async fn a_json_list_is_a_non_field_error(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post("/auth/", Req::default().with_raw("application/json", "[1]"))
        .await
        .assert(
            400,
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        );
}

async fn another_media_type_is_415(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post(
        "/register/",
        Req::default().with_raw("text/plain", "email=a"),
    )
    .await
    .assert(
        415,
        json!({"detail": "Unsupported media type \"text/plain\" in request."}),
    );
}

async fn a_body_over_the_limit_is_413(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("MAX_BODY_SIZE", "100")]).await;
    let body = json!({"email": "a@example.com", "password": "x".repeat(200)});
    let response = app.post_json("/register/", body).await;
    response.assert(413, json!({"detail": "Request body is too large."}));
}

async fn a_1_mb_body_is_413_and_creates_nothing(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let body = json!({"email": "big@example.com", "password": "correct-horse-battery-9", "pad": "x".repeat(1024 * 1024)});
    app.post_json("/register/", body)
        .await
        .assert(413, json!({"detail": "Request body is too large."}));
    app.login("big@example.com", "correct-horse-battery-9")
        .await
        .assert_status(401);
}

async fn paths_work_without_the_trailing_slash(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app
        .post_json(
            "/register",
            json!({"email": "a@example.com", "password": "correct-horse-battery-9"}),
        )
        .await;
    response.assert_status(201);
    app.post_json(
        "/auth",
        json!({"email": "a@example.com", "password": "correct-horse-battery-9"}),
    )
    .await
    .assert_status(200);
    app.get("/auth", Req::bearer(&response.access()))
        .await
        .assert_status(200);
}
