use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, paths, payload, tests};
use serde_json::json;

tests![
    refresh_rotates_and_blacklists_the_old_token,
    refresh_without_rotation_returns_only_an_access_token,
    refresh_requires_a_token,
    refresh_of_garbage_is_401,
    refresh_from_the_cookie_needs_the_csrf_header,
    refresh_from_the_cookie_sets_new_cookies,
    refresh_ignores_a_garbage_authorization_header,
    reuse_inside_the_interval_returns_the_same_replacement,
    reuse_after_the_interval_revokes_the_whole_session,
    concurrent_refreshes_of_one_token_yield_one_chain,
    rotated_tokens_stay_in_the_same_session,
];

const BLACKLISTED: &str = "Token is blacklisted";

async fn refresh_rotates_and_blacklists_the_old_token(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")])
        .await;
    let jae = app.user("jae@example.com").await;
    let response = app.refresh_token(&jae.refresh).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let access = response.body["access"].as_str().unwrap();
    let refresh = response.body["refresh"].as_str().unwrap();
    assert_ne!(refresh, jae.refresh);
    assert_eq!(payload(refresh)["token_type"], "refresh");
    app.me(access).await.assert_status(200);
    assert!(
        response.set_cookie("access").is_none(),
        "a body refresh sets no cookies"
    );
    // After the interval (0 s; compared in milliseconds).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    app.refresh_token(&jae.refresh).await.assert(
        401,
        json!({"detail": BLACKLISTED, "code": "token_not_valid"}),
    );
}

async fn refresh_without_rotation_returns_only_an_access_token(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("ROTATE_REFRESH_TOKENS", "false")]).await;
    let jae = app.user("jae@example.com").await;
    let response = app.refresh_token(&jae.refresh).await;
    response.assert_status(200);
    assert_eq!(
        response
            .body
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["access"]
    );
    app.refresh_token(&jae.refresh).await.assert_status(200);
}

async fn refresh_requires_a_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json(paths::REFRESH, json!({}))
        .await
        .assert(400, json!({"refresh": ["This field is required."]}));
}

async fn refresh_of_garbage_is_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.refresh_token("garbage").await.assert_unauthorized(
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
}

async fn refresh_from_the_cookie_needs_the_csrf_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let without = app
        .post(
            paths::REFRESH,
            Req::default()
                .with_cookie("refresh", &jae.refresh)
                .with_cookie("csrftoken", jae.csrf()),
        )
        .await;
    without.assert(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let wrong = app
        .post(
            paths::REFRESH,
            Req::default()
                .with_cookie("refresh", &jae.refresh)
                .with_cookie("csrftoken", jae.csrf())
                .with_header("X-CSRFToken", "not-the-token"),
        )
        .await;
    wrong.assert(403, json!({"detail": "CSRF Failed: CSRF token incorrect."}));
    let foreign = app
        .post(
            paths::REFRESH,
            Req::default()
                .with_cookie("refresh", &jae.refresh)
                .with_cookie("csrftoken", jae.csrf())
                .with_header("X-CSRFToken", jae.csrf())
                .with_header("Origin", "https://evil.example"),
        )
        .await;
    foreign.assert_status(403);
    assert!(
        foreign.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("CSRF Failed: Origin checking failed")
    );
}

async fn refresh_from_the_cookie_sets_new_cookies(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app
        .post(
            paths::REFRESH,
            Req::default()
                .with_cookie("refresh", &jae.refresh)
                .with_cookie("csrftoken", jae.csrf())
                .with_header("X-CSRFToken", jae.csrf())
                .with_header("Origin", &app.address),
        )
        .await;
    response.assert_status(200);
    assert_eq!(
        response.cookie_value("access").as_deref(),
        response.body["access"].as_str()
    );
    assert_eq!(
        response.cookie_value("refresh").as_deref(),
        response.body["refresh"].as_str()
    );
}

async fn refresh_ignores_a_garbage_authorization_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.post(
        paths::REFRESH,
        Req::json(json!({"refresh": jae.refresh})).with_bearer("garbage"),
    )
    .await
    .assert_status(200);
}

async fn reuse_inside_the_interval_returns_the_same_replacement(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let first = app.refresh_token(&jae.refresh).await;
    let second = app.refresh_token(&jae.refresh).await;
    first.assert_status(200);
    second.assert_status(200);
    assert_eq!(first.body["refresh"], second.body["refresh"]);
    app.me(second.body["access"].as_str().unwrap())
        .await
        .assert_status(200);
    app.refresh_token(second.body["refresh"].as_str().unwrap())
        .await
        .assert_status(200);
}

async fn reuse_after_the_interval_revokes_the_whole_session(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")])
        .await;
    let jae = app.user("jae@example.com").await;
    let rotated = app.refresh_token(&jae.refresh).await;
    let current = rotated.body["refresh"].as_str().unwrap().to_owned();
    // After the interval (0 s; compared in milliseconds).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    app.refresh_token(&jae.refresh).await.assert(
        401,
        json!({"detail": BLACKLISTED, "code": "token_not_valid"}),
    );
    app.refresh_token(&current).await.assert(
        401,
        json!({"detail": BLACKLISTED, "code": "token_not_valid"}),
    );
    let other = app.login("jae@example.com", PASSWORD).await;
    app.refresh_token(&other.refresh()).await.assert_status(200);
}

async fn concurrent_refreshes_of_one_token_yield_one_chain(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let token = jae.refresh;
    let responses = futures_util::future::join_all((0..8).map(|_| app.refresh_token(&token))).await;
    let mut replacements: Vec<String> = responses
        .iter()
        .map(|r| {
            r.assert_status(200);
            r.body["refresh"].as_str().unwrap().to_owned()
        })
        .collect();
    replacements.dedup();
    assert_eq!(
        replacements.len(),
        1,
        "every concurrent refresh got the same replacement"
    );
}

async fn rotated_tokens_stay_in_the_same_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let first = app.refresh_token(&jae.refresh).await;
    let second = app
        .refresh_token(first.body["refresh"].as_str().unwrap())
        .await;
    second.assert_status(200);
    app.logout(second.body["refresh"].as_str().unwrap())
        .await
        .assert_status(202);
    app.refresh_token(second.body["refresh"].as_str().unwrap())
        .await
        .assert(
            401,
            json!({"detail": BLACKLISTED, "code": "token_not_valid"}),
        );
}
