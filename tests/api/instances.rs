//! Several instances on one database, as behind a load balancer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use latchkey_tests::app::Req;
use latchkey_tests::{Backend, Ctx, PASSWORD, TestApp, tests};
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
/// The bound: B refuses within 1 s in every trial (the contract's
/// 50 ms p99 is measured by `bench/revocation.py`, not asserted here).
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

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
            let id = sessions.body["results"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let response = app.end_session(access, &id).await;
            response.assert_status(204);
            return;
        }
    };
    response.assert(202, json!({"message": "Logout success"}));
}

/// The contract: the revoking response of instance A is sent only once the
/// revocation is visible to the change feed (its own marker, sent after the
/// commit, has come back), so instance B — whose cache holds the user —
/// refuses the token within the bound, and almost always on the very next
/// request. Each trial: a new user, B's cache warmed, a revocation through
/// A, at once `GET /auth/` on B.
///
/// On SQLite B reads the change log itself before answering: every next
/// request is refused. On PostgreSQL, A's marker coming back proves the
/// revocation is queued for every listener, not that B's listening backend
/// has been scheduled to write it to B's socket: on a loaded machine that
/// can take a few ms more (1–4 of 120 trials at a load average of 25 on
/// 2 cores). Before the marker wait, A answered before the notification
/// was sent at all: 28 and 62 of 120 trials accepted on the next request.
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
    let mut slowest = Duration::ZERO;
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
        let answered = Instant::now();
        let mut next = second.me(&access).await;
        if next.status != 401 {
            *accepted.entry(kind).or_default() += 1;
        }
        while next.status != 401 {
            next.assert_status(200);
            assert!(
                answered.elapsed() < REFUSED_WITHIN,
                "{kind:?}: B still accepted the token {:?} after A's response",
                answered.elapsed()
            );
            next = second.me(&access).await;
        }
        slowest = slowest.max(answered.elapsed());
        next.assert(401, crate::auth_cache::invalid_token());
    }
    let total: usize = accepted.values().sum();
    eprintln!(
        "{}: accepted on the next request in {accepted:?} of {TRIALS} trials per kind; every trial refused within {slowest:?}",
        ctx.backend
    );
    let allowed = match ctx.backend {
        Backend::Sqlite => 0,
        Backend::Postgres => TRIALS * kinds.len() / 10,
    };
    assert!(
        total <= allowed,
        "instance B accepted the revoked token on the next request in {accepted:?} of {TRIALS} trials per kind (at most {allowed} in all allowed on {})",
        ctx.backend
    );
}
