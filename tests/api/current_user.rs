use jsonwebtoken::Algorithm;
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, TEST_SECRET, forge, now, paths, tests};
use serde_json::json;

tests![
    current_user_by_bearer_header,
    current_user_by_access_cookie,
    header_wins_over_cookie,
    no_credentials_is_401_not_a_crash,
    expired_access_cookie_with_valid_refresh_cookie_refreshes_on_the_server,
    missing_access_cookie_with_valid_refresh_cookie_refreshes_on_the_server,
    expired_access_cookie_with_garbage_refresh_cookie_is_401,
    expired_bearer_header_is_not_refreshed_from_cookies,
    a_blacklisted_refresh_cookie_does_not_refresh,
    another_auth_scheme_is_not_credentials,
    auth_header_types_are_configurable,
];

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";

fn invalid(message: &str) -> serde_json::Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

fn expired_access(user_id: i64) -> String {
    let iat = now() - 3600;
    forge(
        Algorithm::HS256,
        TEST_SECRET,
        &json!({"token_type": "access", "exp": now() - 5, "iat": iat, "jti": "e".repeat(32), "user_id": user_id}),
    )
}

async fn current_user_by_bearer_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = jae.me().await;
    response.assert(200, jae.object.clone());
}

async fn current_user_by_access_cookie(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app
        .get(
            paths::AUTH,
            Req::default().with_cookie("access", &jae.access),
        )
        .await;
    response.assert(200, jae.object.clone());
}

async fn header_wins_over_cookie(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let kim = app.user("kim@example.com").await;
    let response = app
        .get(
            paths::AUTH,
            Req::bearer(&kim.access).with_cookie("access", &jae.access),
        )
        .await;
    assert_eq!(response.body["email"], "kim@example.com");
}

async fn no_credentials_is_401_not_a_crash(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.get(paths::AUTH, Req::default())
        .await
        .assert_unauthorized(json!({"detail": NOT_PROVIDED}));
}

async fn expired_access_cookie_with_valid_refresh_cookie_refreshes_on_the_server(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app
        .get(
            paths::AUTH,
            Req::default()
                .with_cookie("access", &expired_access(jae.id))
                .with_cookie("refresh", &jae.refresh),
        )
        .await;
    response.assert(200, jae.object.clone());
    let new_access = response.cookie_value("access").expect("new access cookie");
    let new_refresh = response
        .cookie_value("refresh")
        .expect("rotated refresh cookie");
    assert_ne!(new_refresh, jae.refresh);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    app.me(&new_access).await.assert_status(200);
}

async fn missing_access_cookie_with_valid_refresh_cookie_refreshes_on_the_server(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app
        .get(
            paths::AUTH,
            Req::default().with_cookie("refresh", &jae.refresh),
        )
        .await;
    response.assert(200, jae.object.clone());
    assert!(response.cookie_value("access").is_some());
}

async fn expired_access_cookie_with_garbage_refresh_cookie_is_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.get(
        paths::AUTH,
        Req::default()
            .with_cookie("access", &expired_access(jae.id))
            .with_cookie("refresh", "garbage"),
    )
    .await
    .assert(401, invalid("Token is expired"));
}

async fn expired_bearer_header_is_not_refreshed_from_cookies(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.get(
        paths::AUTH,
        Req::bearer(&expired_access(jae.id)).with_cookie("refresh", &jae.refresh),
    )
    .await
    .assert(401, invalid("Token is expired"));
}

async fn a_blacklisted_refresh_cookie_does_not_refresh(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.logout(&jae.refresh).await.assert_status(202);
    app.get(
        paths::AUTH,
        Req::default().with_cookie("refresh", &jae.refresh),
    )
    .await
    .assert(401, json!({"detail": NOT_PROVIDED}));
}

async fn another_auth_scheme_is_not_credentials(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.get(
        paths::AUTH,
        Req::default().with_header("authorization", &format!("JWT {}", jae.access)),
    )
    .await
    .assert(401, json!({"detail": NOT_PROVIDED}));
    app.get(paths::AUTH, Req::default().with_header("authorization", "Bearer"))
        .await
        .assert(
            401,
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        );
}

async fn auth_header_types_are_configurable(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("AUTH_HEADER_TYPES", "Bearer,JWT")]).await;
    let jae = app.user("jae@example.com").await;
    app.get(
        paths::AUTH,
        Req::default().with_header("authorization", &format!("JWT {}", jae.access)),
    )
    .await
    .assert_status(200);
    jae.me().await.assert_status(200);
}
