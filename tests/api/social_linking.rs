//! Sign-in with a provider: linked providers (contract: "Linked providers"
//! and its details): `link=true` with the access cookie, `identity_taken`,
//! `GET /auth/social/`, and unlinking with its `last_login_method` rule.

use latchkey_tests::app::{Req, WWW_AUTHENTICATE};
use latchkey_tests::mfa_enrol::assert_live;
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, PASSWORD, TestApp, TestUser, tests};
use serde_json::json;

tests![node:
    link_true_with_the_access_cookie_links_the_provider_to_that_user,
    link_true_without_an_access_cookie_is_401,
    linking_an_identity_another_user_holds_is_identity_taken,
    unlinking_is_204_and_a_provider_not_linked_is_404,
    unlinking_the_last_way_in_is_400_last_login_method,
    the_linked_providers_need_authentication,
];

/// `link=true` at `name` with `user`'s access cookie, through the OP's
/// pages as `sub`: the callback's answer.
async fn link(
    app: &TestApp,
    op: &latchkey_tests::oidc::OidcProvider,
    name: &str,
    user: &TestUser,
    sub: &str,
) -> latchkey_tests::Response {
    let flow = begin_with(
        app,
        name,
        &[("next", NEXT), ("link", "true")],
        Req::default().with_cookie("access", &user.access),
    )
    .await;
    let landing = op.log_in(&flow.location, sub).await;
    callback(app, &flow, &landing).await
}

async fn unlink(app: &TestApp, name: &str, access: &str) -> latchkey_tests::Response {
    app.request("DELETE", &paths::unlink(name), Req::bearer(access))
        .await
}

async fn link_true_with_the_access_cookie_links_the_provider_to_that_user(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let user = app.user("me@example.com").await;

    let back = link(&app, &op, "oidc", &user, "alice").await;

    assert_eq!(back_to(&back, NEXT), Back::Linked("oidc".into()));
    assert_eq!(
        identity(&app, "oidc", "alice").map(|i| i.user_id),
        Some(user.id)
    );
    let linked = app.get(paths::LINKED, user.bearer()).await;
    linked.assert_status(200);
    let results = linked.body["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1, "{}", linked.text);
    let linked_at = results[0]["linked_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(linked_at.ends_with('Z'), "{}", linked.text);
    assert_eq!(
        results[0],
        json!({
            "provider": "oidc",
            "subject": "alice",
            "email": "alice@example.com",
            "linked_at": linked_at,
            "last_login": null,
        })
    );
    // The user's session is untouched; the identity now signs them in.
    assert_live(&user).await;
    let login = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&login, "me@example.com");
    assert_eq!(user_id_of(&login), user.id);
    assert_eq!(user_count(&app), 1);
    let linked = app.get(paths::LINKED, user.bearer()).await;
    assert!(
        linked.body["results"][0]["last_login"].is_string(),
        "{}",
        linked.text
    );
}

async fn link_true_without_an_access_cookie_is_401(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let user = app.user("me@example.com").await;
    let ended = app.user("ended@example.com").await;
    app.logout(&ended.refresh).await.assert_status(202);

    for req in [
        Req::default(),
        Req::default().with_cookie("access", "garbage"),
        Req::default().with_cookie("access", &ended.access),
        Req::default().with_cookie("refresh", &user.refresh),
    ] {
        let response = authorize(&app, "oidc", &[("next", NEXT), ("link", "true")], req).await;
        assert_eq!(response.status, 401, "{}", response.text);
        assert_eq!(response.header("www-authenticate"), Some(WWW_AUTHENTICATE));
        assert_eq!(response.header("location"), None);
    }
    assert!(op.requests_to("/auth").await.is_empty());
}

async fn linking_an_identity_another_user_holds_is_identity_taken(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let holder = browser_login(&app, &op, "oidc", "alice").await;
    let other = app.user("other@example.com").await;

    let back = link(&app, &op, "oidc", &other, "alice").await;

    assert_eq!(back_to(&back, NEXT), Back::Error("identity_taken".into()));
    assert_eq!(
        identity(&app, "oidc", "alice").map(|i| i.user_id),
        Some(user_id_of(&holder))
    );
    assert!(identities_of(&app, other.id).is_empty());
    let linked = app.get(paths::LINKED, other.bearer()).await;
    linked.assert(200, json!({"results": []}));
}

async fn unlinking_is_204_and_a_provider_not_linked_is_404(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .oidc("partner", &op)
        .spawn(&mut ctx)
        .await;
    let user = app.user("me@example.com").await;
    let back = link(&app, &op, "oidc", &user, "alice").await;
    assert_eq!(back_to(&back, NEXT), Back::Linked("oidc".into()));

    assert_detail(&unlink(&app, "partner", &user.access).await, 404);
    let removed = unlink(&app, "oidc", &user.access).await;

    assert_eq!(removed.status, 204, "{}", removed.text);
    assert!(removed.text.is_empty(), "{}", removed.text);
    assert!(identity(&app, "oidc", "alice").is_none());
    app.get(paths::LINKED, user.bearer())
        .await
        .assert(200, json!({"results": []}));
    assert_detail(&unlink(&app, "oidc", &user.access).await, 404);
    // The password still signs in; the session is live.
    assert_live(&user).await;
    app.login("me@example.com", PASSWORD)
        .await
        .assert_status(200);
    // Without credentials: 401.
    let anonymous = app
        .request("DELETE", &paths::unlink("oidc"), Req::default())
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
}

async fn unlinking_the_last_way_in_is_400_last_login_method(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .oidc("partner", &op)
        .spawn(&mut ctx)
        .await;
    // Made by a provider: no usable password.
    let login = browser_login(&app, &op, "oidc", "alice").await;
    let user = TestUser::of(&app, &login);
    let back = link(&app, &op, "partner", &user, "alice").await;
    assert_eq!(back_to(&back, NEXT), Back::Linked("partner".into()));

    // Another provider is left: allowed.
    let removed = unlink(&app, "oidc", &user.access).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    // The last one: refused, nothing removed.
    let refused = unlink(&app, "partner", &user.access).await;
    assert_coded(&refused, 400, "last_login_method");
    assert!(identity(&app, "partner", "alice").is_some());
    let login = browser_login(&app, &op, "partner", "alice").await;
    assert_eq!(user_id_of(&login), user.id);
}

async fn the_linked_providers_need_authentication(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    let response = app.get(paths::LINKED, Req::default()).await;

    response
        .assert_unauthorized(json!({"detail": "Authentication credentials were not provided."}));
}
