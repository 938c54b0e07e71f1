use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, tests};
use serde_json::json;

tests![
    logout_blacklists_the_refresh_token_from_the_body,
    logout_with_cookies_clears_them_and_blacklists,
    logout_with_cookies_needs_the_csrf_header,
    logout_without_tokens_is_still_202,
    logout_with_a_garbage_token_is_still_202,
];

async fn logout_blacklists_the_refresh_token_from_the_body(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app.logout(&jae.refresh).await;
    response.assert(202, json!({"message": "Logout success"}));
    app.refresh_token(&jae.refresh).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
    app.verify(&jae.refresh).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
}

async fn logout_with_cookies_clears_them_and_blacklists(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let response = app
        .logout_with(
            Req::default()
                .with_cookie("access", &jae.access)
                .with_cookie("refresh", &jae.refresh)
                .with_cookie("csrftoken", jae.csrf())
                .with_header("X-CSRFToken", jae.csrf()),
        )
        .await;
    response.assert(202, json!({"message": "Logout success"}));
    for name in ["access", "refresh"] {
        let cookie = response.set_cookie(name).unwrap();
        assert!(cookie.starts_with(&format!("{name}=;")), "{cookie}");
        assert!(
            cookie.contains("Max-Age=0")
                && cookie.contains("Path=/")
                && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }
    app.refresh_token(&jae.refresh).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
}

async fn logout_with_cookies_needs_the_csrf_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    app.logout_with(
        Req::default()
            .with_cookie("refresh", &jae.refresh)
            .with_cookie("csrftoken", jae.csrf()),
    )
    .await
    .assert(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    app.refresh_token(&jae.refresh).await.assert_status(200);
}

async fn logout_without_tokens_is_still_202(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.logout_with(Req::default()).await;
    response.assert(202, json!({"message": "Logout success"}));
    assert!(response.set_cookie("access").unwrap().contains("Max-Age=0"));
}

async fn logout_with_a_garbage_token_is_still_202(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.logout("garbage")
        .await
        .assert(202, json!({"message": "Logout success"}));
}
