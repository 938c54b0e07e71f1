//! Sessions and revocation: logout everywhere, password change, sliding
//! tokens, the JWKS.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TestApp, TestUser, paths, payload, tests};
use serde_json::json;

tests![
    logout_everywhere_revokes_every_session,
    logout_everywhere_needs_credentials,
    password_change_revokes_other_sessions_and_returns_new_tokens,
    password_change_with_a_wrong_old_password_is_400,
    password_change_validates_the_new_password,
    password_change_by_cookie_sets_new_cookies_and_needs_csrf,
    sliding_token_lifecycle,
    a_sliding_token_for_bad_credentials_is_401,
    jwks_is_empty_under_hmac,
];

/// Revocation has whole-second precision: tokens issued in the same second
/// as a revocation survive it, so tests wait for the next second (after
/// `token`'s, the latest they hold).
async fn next_second(token: &str) {
    latchkey_tests::after_the_second_of(token).await;
}

/// An access token issued before its user's revocation.
fn revoked_access() -> serde_json::Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
    })
}

async fn two_sessions(app: &TestApp) -> (TestUser, TestUser) {
    let first = app.user("jae@example.com").await;
    let second = app.logged_in("jae@example.com").await;
    (first, second)
}

async fn logout_everywhere_revokes_every_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let (first, second) = two_sessions(&app).await;
    next_second(&second.access).await;
    let response = first.logout_everywhere().await;
    response.assert(202, json!({"message": "Logout success"}));
    assert!(
        response
            .set_cookie("refresh")
            .unwrap()
            .contains("Max-Age=0")
    );
    for session in [&first, &second] {
        session.me().await.assert(401, revoked_access());
        app.refresh_token(&session.refresh).await.assert(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
    }
    let fresh = app.logged_in("jae@example.com").await;
    fresh.me().await.assert_status(200);
}

async fn logout_everywhere_needs_credentials(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.request("DELETE", paths::SESSIONS, Req::default())
        .await
        .assert(
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        );
}

async fn password_change_revokes_other_sessions_and_returns_new_tokens(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let (first, second) = two_sessions(&app).await;
    next_second(&second.access).await;
    let response = first.change_password(PASSWORD, "a-new-passphrase-42").await;
    response.assert_status(200);
    assert_eq!(response.body["message"], "Password changed");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    app.me(&response.access()).await.assert_status(200);
    app.refresh_token(&response.refresh())
        .await
        .assert_status(200);
    for old in [&first, &second] {
        old.me().await.assert(401, revoked_access());
        app.refresh_token(&old.refresh).await.assert(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
    }
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(401);
    app.login("jae@example.com", "a-new-passphrase-42")
        .await
        .assert_status(200);
}

async fn password_change_with_a_wrong_old_password_is_400(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    jae.change_password("wrong-one-123", "a-new-passphrase-42")
        .await
        .assert(400, json!({"old_password": ["Your old password was entered incorrectly. Please enter it again."]}));
    jae.post(paths::PASSWORD, json!({}))
        .await
        .assert(400, json!({"old_password": ["This field is required."], "new_password": ["This field is required."]}));
}

async fn password_change_validates_the_new_password(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    jae.change_password(PASSWORD, "12345678")
        .await
        .assert(400, json!({"new_password": ["This password is too common.", "This password is entirely numeric."]}));
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn password_change_by_cookie_sets_new_cookies_and_needs_csrf(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let body = json!({"old_password": PASSWORD, "new_password": "a-new-passphrase-42"});
    app.post(paths::PASSWORD, jae.cookies().with_json(body.clone()))
        .await
        .assert(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let response = app
        .post(paths::PASSWORD, jae.cookies_with_csrf().with_json(body))
        .await;
    response.assert_status(200);
    assert_eq!(response.cookie_value("access"), Some(response.access()));
    assert_eq!(response.cookie_value("refresh"), Some(response.refresh()));
}

async fn sliding_token_lifecycle(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    let obtained = app.sliding("jae@example.com", PASSWORD).await;
    obtained.assert_status(200);
    let token = obtained.body["token"].as_str().unwrap().to_owned();
    let claims = payload(&token);
    assert_eq!(claims["token_type"], "sliding");
    assert!(claims["refresh_exp"].as_i64().unwrap() > claims["exp"].as_i64().unwrap());
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    app.verify(&token).await.assert(200, json!({}));
    next_second(&token).await;
    let slid = app.sliding_refresh(&token).await;
    slid.assert_status(200);
    let new_token = slid.body["token"].as_str().unwrap();
    let new_claims = payload(new_token);
    assert_eq!(new_claims["jti"], claims["jti"]);
    assert_eq!(new_claims["refresh_exp"], claims["refresh_exp"]);
    assert!(new_claims["exp"].as_i64().unwrap() > claims["exp"].as_i64().unwrap());
    app.sliding_refresh("garbage").await.assert(
        401,
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
    let access = app.login("jae@example.com", PASSWORD).await.access();
    app.sliding_refresh(&access).await.assert(
        401,
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );
}

async fn a_sliding_token_for_bad_credentials_is_401(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    app.sliding("jae@example.com", "wrong-password-1")
        .await
        .assert(401, json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}));
}

async fn jwks_is_empty_under_hmac(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.get("/.well-known/jwks.json", Req::default())
        .await
        .assert(200, json!({"keys": []}));
}
