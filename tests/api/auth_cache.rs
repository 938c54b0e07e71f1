//! The per-instance cache of the token check: a hit needs no database
//! round trip, yet a revocation by any writer — another instance, direct
//! SQL — is refused everywhere within the bound, and a blind instance (its
//! change feed cut) checks every token against the database.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, Response, TestApp, tests};
use serde_json::json;

tests![
    repeated_token_checks_are_answered_from_the_cache,
    a_session_ended_through_one_instance_is_refused_by_another_within_the_bound,
    a_deactivation_by_direct_sql_reaches_a_running_server,
    an_instance_never_answers_from_what_it_just_changed,
];

tests![postgres_only: with_the_change_feed_killed_revocation_takes_effect_at_once_and_the_feed_recovers];

/// Far above the 100 ms p99 target (measured by `bench/revocation.py`),
/// so the test asserts the mechanism without being a timing test.
const BOUND: Duration = Duration::from_secs(2);

fn invalid_token() -> serde_json::Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
    })
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", Req::default()).await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("latchkey_{name} ")))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("metric {name} missing in {text}"))
}

/// Polls until the instance follows the database's changes.
async fn wait_for_feed(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(app, "auth_cache_feed_up").await != 1.0 {
        assert!(Instant::now() < deadline, "the change feed never came up");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Repeats `GET /auth/` until it is 401, within [`BOUND`]; returns it.
async fn refused_within_bound(app: &TestApp, access: &str) -> Response {
    let started = Instant::now();
    loop {
        let response = app.me(access).await;
        if response.status == 401 {
            return response;
        }
        response.assert_status(200);
        assert!(
            started.elapsed() < BOUND,
            "still accepted {:?} after the revocation",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn repeated_token_checks_are_answered_from_the_cache(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    wait_for_feed(&app).await;
    let registered = app.registered("jae@example.com").await;
    let hits_before = metric(&app, "auth_cache_hits_total").await;
    for _ in 0..5 {
        let me = app.me(&registered.access()).await;
        me.assert_status(200);
        assert_eq!(me.body["email"], "jae@example.com");
    }
    let hits = metric(&app, "auth_cache_hits_total").await - hits_before;
    assert!(hits >= 4.0, "only {hits} of 5 checks were cache hits");
}

async fn a_session_ended_through_one_instance_is_refused_by_another_within_the_bound(mut ctx: Ctx) {
    let first = ctx.spawn().await;
    let second = ctx.spawn_on(&first.database_url.clone(), &[]).await;
    wait_for_feed(&second).await;
    let registered = first.registered("jae@example.com").await;
    for _ in 0..3 {
        second.me(&registered.access()).await.assert_status(200);
    }
    first
        .request("DELETE", "/auth/", Req::bearer(&registered.access()))
        .await
        .assert_status(202);
    refused_within_bound(&second, &registered.access())
        .await
        .assert(401, invalid_token());
    second.refresh_token(&registered.refresh()).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
}

async fn a_deactivation_by_direct_sql_reaches_a_running_server(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    wait_for_feed(&app).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    for _ in 0..3 {
        app.me(&registered.access()).await.assert_status(200);
    }
    // As an operator would in psql or sqlite3: not through latchkey.
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    diesel::sql_query(format!(
        "UPDATE users SET is_active = false WHERE id = {id}"
    ))
    .execute(&mut **conn)
    .unwrap();
    refused_within_bound(&app, &registered.access())
        .await
        .assert(
            401,
            json!({"detail": "User is inactive", "code": "user_inactive"}),
        );
}

async fn an_instance_never_answers_from_what_it_just_changed(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    wait_for_feed(&app).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    for _ in 0..3 {
        app.me(&registered.access()).await.assert_status(200);
    }
    app.request(
        "PATCH",
        &format!("/list/{id}/"),
        Req::bearer(&registered.access())
            .with_json(json!({"email": "kim@example.com", "current_password": PASSWORD})),
    )
    .await
    .assert_status(200);
    let me = app.me(&registered.access()).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "kim@example.com");
    let login = app.login("kim@example.com", PASSWORD).await;
    login.assert_status(200);
    let me = app.me(&login.access()).await;
    assert_eq!(me.body["last_login"], login.body["user"]["last_login"]);
    app.request("DELETE", "/auth/", Req::bearer(&login.access()))
        .await
        .assert_status(202);
    // The very next request, with no time for any feed to deliver.
    app.me(&login.access()).await.assert(401, invalid_token());
}

async fn with_the_change_feed_killed_revocation_takes_effect_at_once_and_the_feed_recovers(
    mut ctx: Ctx,
) {
    let app = ctx.spawn().await;
    wait_for_feed(&app).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    for _ in 0..3 {
        app.me(&registered.access()).await.assert_status(200);
    }
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    let killed: Vec<Terminated> = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity \
         WHERE application_name = 'latchkey_change_feed' AND datname = current_database()",
    )
    .load(&mut **conn)
    .unwrap();
    assert_eq!(killed.len(), 1, "one change feed per instance");
    // The feed notices within its poll interval; give it that, no more.
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&app, "auth_cache_feed_up").await, 0.0);
    diesel::sql_query(format!(
        "UPDATE users SET is_active = false WHERE id = {id}"
    ))
    .execute(&mut **conn)
    .unwrap();
    // Blind, the instance reads the database: refused on the next request.
    app.me(&registered.access()).await.assert(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    diesel::sql_query(format!("UPDATE users SET is_active = true WHERE id = {id}"))
        .execute(&mut **conn)
        .unwrap();
    wait_for_feed(&app).await;
    let hits_before = metric(&app, "auth_cache_hits_total").await;
    for _ in 0..3 {
        app.me(&registered.access()).await.assert_status(200);
    }
    assert!(metric(&app, "auth_cache_hits_total").await > hits_before);
    diesel::sql_query(format!(
        "UPDATE users SET is_active = false WHERE id = {id}"
    ))
    .execute(&mut **conn)
    .unwrap();
    refused_within_bound(&app, &registered.access())
        .await
        .assert(
            401,
            json!({"detail": "User is inactive", "code": "user_inactive"}),
        );
}

#[derive(diesel::QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    #[allow(dead_code)]
    killed: bool,
}
