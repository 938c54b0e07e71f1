use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, tests};
use serde_json::json;

tests![
    api_root_links_the_user_list,
    healthz_answers_without_the_database,
    readyz_answers_when_the_database_does,
    unknown_path_is_a_json_404,
    wrong_method_is_a_json_405_with_allow,
    head_is_served_wherever_get_is,
    security_headers_are_on_every_response,
];

async fn api_root_links_the_user_list(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.get("/", Req::default()).await;
    response.assert_status(200);
    assert_eq!(
        response.body["list"],
        json!(format!("http://127.0.0.1:{}/list/", app.port))
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
}

async fn healthz_answers_without_the_database(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.get("/healthz", Req::default())
        .await
        .assert(200, json!({"status": "ok"}));
}

async fn readyz_answers_when_the_database_does(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.get("/readyz", Req::default())
        .await
        .assert(200, json!({"status": "ok", "database": "ok"}));
}

async fn unknown_path_is_a_json_404(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.get("/nope/", Req::default()).await;
    response.assert(404, json!({"detail": "Not found."}));
    assert_eq!(response.header("content-type"), Some("application/json"));
}

async fn wrong_method_is_a_json_405_with_allow(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.get("/register/", Req::default()).await;
    response.assert(405, json!({"detail": "Method \"GET\" not allowed."}));
    assert_eq!(response.header("allow"), Some("POST, OPTIONS"));
    let response = app.get("/auth/refresh/", Req::default()).await;
    response.assert(405, json!({"detail": "Method \"GET\" not allowed."}));
}

/// As Django does: HEAD answers what GET would, headers only, with GET's
/// checks (credentials included).
async fn head_is_served_wherever_get_is(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
        "/demo/",
    ] {
        let get = app.get(path, Req::default()).await;
        let head = app.request("HEAD", path, Req::default()).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.text, "", "HEAD {path} has no body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    let anonymous = app.request("HEAD", "/auth/", Req::default()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.text, "");
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    let user = app.user("head@example.com").await;
    for path in [
        "/auth/".to_owned(),
        "/auth/sessions/".to_owned(),
        "/list/".to_owned(),
        format!("/list/{}/", user.id),
    ] {
        let head = user.send("HEAD", &path, user.bearer()).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.text, "", "HEAD {path} has no body");
        assert_eq!(
            head.header("cache-control"),
            Some("no-store"),
            "HEAD {path}"
        );
    }
    // The Allow list names HEAD beside GET.
    let response = app.request("PUT", "/healthz", Req::default()).await;
    response.assert(405, json!({"detail": "Method \"PUT\" not allowed."}));
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    let response = app.request("PUT", "/auth/", Req::default()).await;
    assert_eq!(response.status, 405);
    assert_eq!(
        response.header("allow"),
        Some("GET, HEAD, POST, DELETE, OPTIONS")
    );
}

async fn security_headers_are_on_every_response(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    for response in [
        app.get("/", Req::default()).await,
        app.get("/missing", Req::default()).await,
    ] {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("same-origin"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
    }
}
