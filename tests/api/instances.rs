//! Several instances on one database, as behind a load balancer.

use std::collections::BTreeMap;

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TestApp, tests};
use serde_json::json;

tests![
    a_token_blacklisted_through_one_instance_is_refused_by_the_others,
    the_request_after_a_revoking_response_is_refused_by_another_instance,
];

async fn a_token_blacklisted_through_one_instance_is_refused_by_the_others(mut ctx: Ctx) {
    let first = ctx.spawn().await;
    let url = first.database_url.clone();
    let second = ctx.spawn_on(&url, &[]).await;
    let third = ctx.spawn_on(&url, &[]).await;
    let registered = first.registered("jae@example.com").await;
    second.me(&registered.access()).await.assert_status(200);
    third
        .login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    second
        .request(
            "DELETE",
            "/auth/",
            Req::json(json!({"refresh": registered.refresh()})),
        )
        .await
        .assert_status(202);
    for instance in [&first, &third] {
        instance.refresh_token(&registered.refresh()).await.assert(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
    }
}

/// Trials per kind of revocation.
const TRIALS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Revocation {
    Logout,
    LogoutEverywhere,
    EndOneSession,
}

/// Revokes `access` through `app`: the response is the revoking one.
async fn revoke(app: &TestApp, kind: Revocation, access: &str) {
    let response = match kind {
        Revocation::Logout => app.logout_with(Req::bearer(access)).await,
        Revocation::LogoutEverywhere => app.logout_everywhere(access).await,
        Revocation::EndOneSession => {
            let sessions = app.sessions(access).await;
            sessions.assert_status(200);
            let id = sessions.body["results"][0]["id"].as_str().unwrap().to_owned();
            let response = app.end_session(access, &id).await;
            response.assert_status(204);
            return;
        }
    };
    response.assert(202, json!({"message": "Logout success"}));
}

/// The contract: the revoking response of instance A is sent only once the
/// revocation is visible to the change feed, so the very next request on
/// instance B — whose cache holds the user — is refused (with
/// `AUTH_CACHE=false`, trivially). Each trial: a new user, B's cache
/// warmed, a revocation through A, at once `GET /auth/` on B.
async fn the_request_after_a_revoking_response_is_refused_by_another_instance(mut ctx: Ctx) {
    let first = ctx.spawn().await;
    let second = ctx.spawn_on(&first.database_url.clone(), &[]).await;
    for app in [&first, &second] {
        crate::auth_cache::wait_for_feed(app).await;
    }
    let kinds = [
        Revocation::Logout,
        Revocation::LogoutEverywhere,
        Revocation::EndOneSession,
    ];
    let mut accepted: BTreeMap<Revocation, usize> = BTreeMap::new();
    for trial in 0..TRIALS * kinds.len() {
        let kind = kinds[trial % kinds.len()];
        let email = format!("trial{trial}@example.com");
        let access = first.registered(&email).await.access();
        for _ in 0..2 {
            let me = second.me(&access).await;
            me.assert_status(200);
            assert_eq!(me.body["email"], email.as_str());
        }
        revoke(&first, kind, &access).await;
        let next = second.me(&access).await;
        if next.status == 401 {
            next.assert(401, crate::auth_cache::invalid_token());
        } else {
            next.assert_status(200);
            *accepted.entry(kind).or_default() += 1;
        }
    }
    assert!(
        accepted.is_empty(),
        "instance B accepted the revoked token on the next request in {accepted:?} of {TRIALS} trials per kind"
    );
}
