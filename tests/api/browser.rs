//! What browsers and operators see: CORS, metrics.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, tests};

tests![
    cors_preflight_from_an_allowed_origin_is_answered,
    cors_preflight_from_another_origin_gets_no_cors_headers,
    no_cors_headers_without_allowed_origins,
    cookie_writes_from_an_allowed_origin_pass_the_origin_check,
    metrics_count_requests_and_logins,
];

const APP: &str = "https://app.example.com";

fn preflight(origin: &str) -> Req {
    Req::default()
        .with_header("Origin", origin)
        .with_header("Access-Control-Request-Method", "POST")
        .with_header("Access-Control-Request-Headers", "content-type,x-csrftoken")
}

async fn cors_preflight_from_an_allowed_origin_is_answered(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("CORS_ALLOWED_ORIGINS", APP)]).await;
    let response = app.request("OPTIONS", "/auth/", preflight(APP)).await;
    assert!(
        response.status == 200 || response.status == 204,
        "{}",
        response.status
    );
    assert_eq!(response.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = response
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let simple = app
        .get("/", Req::default().with_header("Origin", APP))
        .await;
    assert_eq!(simple.header("access-control-allow-origin"), Some(APP));
}

async fn cors_preflight_from_another_origin_gets_no_cors_headers(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("CORS_ALLOWED_ORIGINS", APP)]).await;
    let response = app
        .request("OPTIONS", "/auth/", preflight("https://evil.example"))
        .await;
    assert_eq!(response.header("access-control-allow-origin"), None);
    let simple = app
        .get(
            "/",
            Req::default().with_header("Origin", "https://evil.example"),
        )
        .await;
    assert_eq!(simple.header("access-control-allow-origin"), None);
    simple.assert_status(200);
}

async fn no_cors_headers_without_allowed_origins(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.request("OPTIONS", "/auth/", preflight(APP)).await;
    assert_eq!(response.header("access-control-allow-origin"), None);
}

async fn cookie_writes_from_an_allowed_origin_pass_the_origin_check(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("CORS_ALLOWED_ORIGINS", APP)]).await;
    let registered = app.registered("jae@example.com").await;
    let csrf = registered.cookie_value("csrftoken").unwrap();
    let with_origin = |origin: &str| {
        Req::default()
            .with_cookie("refresh", &registered.refresh())
            .with_cookie("csrftoken", &csrf)
            .with_header("X-CSRFToken", &csrf)
            .with_header("Origin", origin)
    };
    app.post("/auth/refresh/", with_origin("https://evil.example"))
        .await
        .assert_status(403);
    app.post("/auth/refresh/", with_origin(APP))
        .await
        .assert_status(200);
}

async fn metrics_count_requests_and_logins(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.login("jae@example.com", "wrong-password-1")
        .await
        .assert_status(401);
    let response = app.get("/metrics", Req::default()).await;
    response.assert_status(200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = &response.text;
    assert!(text.contains("latchkey_logins_total 1"), "{text}");
    assert!(text.contains("latchkey_login_failures_total 1"), "{text}");
    assert!(
        text.contains(
            r#"latchkey_http_requests_total{method="POST",route="/register/",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("latchkey_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("latchkey_db_pool_connections_max 4"),
        "{text}"
    );
}
