//! Throttling: per-IP auth requests and per-account login failures, in
//! memory and in Redis (shared between instances).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use latchkey_tests::app::Req;
use latchkey_tests::database::redis_url;
use latchkey_tests::{Ctx, PASSWORD, TestApp, redis_tests, tests};
use serde_json::json;

tests![
    auth_requests_per_ip_are_limited_with_retry_after,
    one_bucket_is_shared_by_the_auth_endpoints,
    login_failures_lock_the_account_even_for_the_right_password,
    a_successful_login_resets_the_failure_count,
    sliding_login_failures_count_toward_the_account,
    x_forwarded_for_is_ignored_unless_from_a_trusted_proxy,
    zero_turns_throttling_off,
    a_burst_of_parallel_wrong_logins_gets_at_most_the_limit_through,
];

redis_tests![
    redis_counts_login_failures,
    two_instances_share_counters_through_redis,
    redis_a_burst_of_parallel_wrong_logins_gets_at_most_the_limit_through,
];

fn throttled_body(response: &latchkey_tests::Response) -> u64 {
    response.assert_status(429);
    let wait: u64 = response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(
        response.body,
        json!({"detail": format!("Request was throttled. Expected available in {wait} second{}.", if wait == 1 { "" } else { "s" })})
    );
    wait
}

fn unique_ip() -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    format!("10.{}.{}.{}", (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

async fn login_from(
    app: &TestApp,
    ip: &str,
    email: &str,
    password: &str,
) -> latchkey_tests::Response {
    app.post(
        "/auth/",
        Req::json(json!({"email": email, "password": password})).with_header("X-Forwarded-For", ip),
    )
    .await
}

async fn auth_requests_per_ip_are_limited_with_retry_after(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("THROTTLE_AUTH_PER_IP", "3/1m")]).await;
    for i in 0..3 {
        app.register(&format!("u{i}@example.com"), PASSWORD)
            .await
            .assert_status(201);
    }
    let refused = app.register("u3@example.com", PASSWORD).await;
    let wait = throttled_body(&refused);
    assert!((1..=60).contains(&wait), "{wait}");
    app.login("u0@example.com", PASSWORD)
        .await
        .assert_status(429);
    // other routes are not counted
    app.get("/healthz", Req::default()).await.assert_status(200);
}

async fn one_bucket_is_shared_by_the_auth_endpoints(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("THROTTLE_AUTH_PER_IP", "3/1m")]).await;
    let registered = app.registered("jae@example.com").await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.refresh_token(&registered.refresh())
        .await
        .assert_status(200);
    throttled_body(
        &app.post_json(
            "/auth/sliding/",
            json!({"email": "jae@example.com", "password": PASSWORD}),
        )
        .await,
    );
    throttled_body(&app.refresh_token(&registered.refresh()).await);
}

async fn login_failures_lock_the_account_even_for_the_right_password(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    app.registered("jae@example.com").await;
    app.registered("kim@example.com").await;
    for _ in 0..3 {
        app.login("jae@example.com", "wrong-password-1")
            .await
            .assert_status(401);
    }
    let wait = throttled_body(&app.login("jae@example.com", PASSWORD).await);
    assert!(wait > 800 && wait <= 900, "{wait}");
    throttled_body(&app.login("JAE@example.com", PASSWORD).await);
    app.login("kim@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn a_successful_login_resets_the_failure_count(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "2/15m")])
        .await;
    app.registered("jae@example.com").await;
    app.login("jae@example.com", "wrong-password-1")
        .await
        .assert_status(401);
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.login("jae@example.com", "wrong-password-1")
        .await
        .assert_status(401);
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn sliding_login_failures_count_toward_the_account(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "2/15m")])
        .await;
    app.registered("jae@example.com").await;
    for _ in 0..2 {
        app.post_json(
            "/auth/sliding/",
            json!({"email": "jae@example.com", "password": "wrong-password-1"}),
        )
        .await
        .assert_status(401);
    }
    throttled_body(&app.login("jae@example.com", PASSWORD).await);
}

async fn x_forwarded_for_is_ignored_unless_from_a_trusted_proxy(mut ctx: Ctx) {
    let untrusted = ctx.spawn_with(&[("THROTTLE_AUTH_PER_IP", "2/1m")]).await;
    for _ in 0..2 {
        login_from(&untrusted, &unique_ip(), "nobody@example.com", PASSWORD)
            .await
            .assert_status(401);
    }
    throttled_body(&login_from(&untrusted, &unique_ip(), "nobody@example.com", PASSWORD).await);

    let trusted = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "2/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    let client = unique_ip();
    for _ in 0..2 {
        login_from(&trusted, &client, "nobody@example.com", PASSWORD)
            .await
            .assert_status(401);
    }
    throttled_body(&login_from(&trusted, &client, "nobody@example.com", PASSWORD).await);
    login_from(&trusted, &unique_ip(), "nobody@example.com", PASSWORD)
        .await
        .assert_status(401);
}

async fn zero_turns_throttling_off(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "0"),
            ("THROTTLE_LOGIN_FAILURES", "0"),
        ])
        .await;
    app.registered("jae@example.com").await;
    for _ in 0..15 {
        app.login("jae@example.com", "wrong-password-1")
            .await
            .assert_status(401);
    }
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn redis_counts_login_failures(mut ctx: Ctx) {
    let redis = redis_url();
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "2/15m"), ("REDIS_URL", &redis)])
        .await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.registered(&email).await;
    for _ in 0..2 {
        app.login(&email, "wrong-password-1")
            .await
            .assert_status(401);
    }
    throttled_body(&app.login(&email, PASSWORD).await);
}

async fn two_instances_share_counters_through_redis(mut ctx: Ctx) {
    let redis = redis_url();
    let settings = [
        ("THROTTLE_AUTH_PER_IP", "2/1m"),
        ("THROTTLE_LOGIN_FAILURES", "2/15m"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("REDIS_URL", redis.as_str()),
    ];
    let first = ctx.spawn_with(&settings).await;
    let second = ctx.spawn_on(&first.database_url.clone(), &settings).await;
    let ip = unique_ip();
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    login_from(&first, &ip, &email, PASSWORD)
        .await
        .assert_status(401);
    login_from(&second, &ip, &email, PASSWORD)
        .await
        .assert_status(401);
    // the account's two failures were counted across both instances
    throttled_body(&login_from(&first, &unique_ip(), &email, PASSWORD).await);
    // and the IP's two requests too
    throttled_body(&login_from(&second, &ip, "other@example.com", PASSWORD).await);
}

/// Sends 30 wrong logins for one account at once (limit 10): at most 10 of
/// them get a password check (401), the rest answer 429. A second burst, with
/// the right password sent once the first 429 has come back, answers 429 to
/// the right password too.
async fn burst_of_wrong_logins(app: &TestApp, email: &str) {
    let burst = (0..30).map(|_| app.login(email, "wrong-password-1"));
    let answers = join_all(burst).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(
        (1..=10).contains(&checked),
        "{checked} password checks got through: {statuses:?}"
    );
    for answer in &answers {
        if answer.status == 401 {
            answer.assert(
                401,
                json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}),
            );
        } else {
            throttled_body(answer);
        }
    }
    // locked now: the right password answers 429, also alone
    throttled_body(&app.login(email, PASSWORD).await);
}

/// A burst on a fresh account in which the right password is sent while
/// the burst is past the limit (after its first 429): 429, not 200.
async fn right_password_inside_a_burst(app: &TestApp, email: &str) {
    let refused = Rc::new(Cell::new(false));
    let wrong = (0..30).map(|_| {
        let refused = refused.clone();
        async move {
            let answer = app.login(email, "wrong-password-1").await;
            if answer.status == 429 {
                refused.set(true);
            }
            answer
        }
    });
    let right = async {
        while !refused.get() {
            actix_web::rt::time::sleep(Duration::from_millis(2)).await;
        }
        app.login(email, PASSWORD).await
    };
    let (answers, right) = futures_util::future::join(join_all(wrong), right).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    assert!(checked <= 10, "{checked} password checks got through");
    throttled_body(&right);
}

async fn a_burst_of_parallel_wrong_logins_gets_at_most_the_limit_through(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "10/15m")])
        .await;
    app.registered("jae@example.com").await;
    app.registered("kim@example.com").await;
    burst_of_wrong_logins(&app, "jae@example.com").await;
    right_password_inside_a_burst(&app, "kim@example.com").await;
}

async fn redis_a_burst_of_parallel_wrong_logins_gets_at_most_the_limit_through(mut ctx: Ctx) {
    let redis = redis_url();
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "10/15m"), ("REDIS_URL", &redis)])
        .await;
    let first = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let second = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.registered(&first).await;
    app.registered(&second).await;
    burst_of_wrong_logins(&app, &first).await;
    right_password_inside_a_burst(&app, &second).await;
}
