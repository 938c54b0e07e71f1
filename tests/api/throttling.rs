//! Throttling: per-IP auth requests and per-account login failures, in
//! memory and in Redis (shared between instances).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use latchkey_tests::app::Req;
use latchkey_tests::database::redis_url;
use latchkey_tests::{Ctx, PASSWORD, TestApp, tests};
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
    ipv6_clients_share_a_bucket_per_network,
    a_v4_mapped_address_counts_as_its_ipv4_address,
    x_forwarded_for_entries_with_a_port_are_read_as_their_address,
    an_unreadable_rightmost_entry_falls_back_to_the_peer,
    a_v4_mapped_peer_matches_trusted_proxies,
    unreachable_redis_still_throttles_in_memory_and_quickly,
    a_silent_redis_still_throttles_within_the_timeout,
];

tests![
    redis:
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

#[track_caller]
fn no_account(response: &latchkey_tests::Response) {
    response.assert(
        401,
        json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}),
    );
}

/// Two requests from `first` pass, the third from `third` (the same
/// bucket) is refused.
async fn same_bucket(app: &TestApp, first: &str, second: &str, third: &str) {
    no_account(&login_from(app, first, "nobody@example.com", PASSWORD).await);
    no_account(&login_from(app, second, "nobody@example.com", PASSWORD).await);
    throttled_body(&login_from(app, third, "nobody@example.com", PASSWORD).await);
}

const BEHIND_PROXY: [(&str, &str); 2] = [
    ("THROTTLE_AUTH_PER_IP", "2/1m"),
    ("TRUSTED_PROXIES", "127.0.0.1"),
];

async fn ipv6_clients_share_a_bucket_per_network(mut ctx: Ctx) {
    let app = ctx.spawn_with(&BEHIND_PROXY).await;
    same_bucket(
        &app,
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "2001:db8:1:2:abcd::7",
    )
    .await;
    // the next /64 is another client
    no_account(&login_from(&app, "2001:db8:1:3::1", "nobody@example.com", PASSWORD).await);

    let per_address = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "2/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("THROTTLE_IPV6_PREFIX", "128"),
        ])
        .await;
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"] {
        no_account(&login_from(&per_address, ip, "nobody@example.com", PASSWORD).await);
    }
    let per_48 = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "2/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("THROTTLE_IPV6_PREFIX", "48"),
        ])
        .await;
    same_bucket(
        &per_48,
        "2001:db8:1:2::1",
        "2001:db8:1:3::1",
        "2001:db8:1:ffff::1",
    )
    .await;
}

async fn a_v4_mapped_address_counts_as_its_ipv4_address(mut ctx: Ctx) {
    let app = ctx.spawn_with(&BEHIND_PROXY).await;
    same_bucket(
        &app,
        "::ffff:203.0.113.9",
        "203.0.113.9",
        "[::ffff:203.0.113.9]:443",
    )
    .await;
}

async fn x_forwarded_for_entries_with_a_port_are_read_as_their_address(mut ctx: Ctx) {
    let app = ctx.spawn_with(&BEHIND_PROXY).await;
    // the client rotates what it writes itself; the proxy's entry decides
    let rotating = |proxied: &str| format!("{}, {proxied}", unique_ip());
    same_bucket(
        &app,
        &rotating("203.0.113.8:5555"),
        &rotating("203.0.113.8:5556"),
        &rotating("203.0.113.8"),
    )
    .await;
    same_bucket(
        &app,
        &rotating("[2001:db8::8]:443"),
        &rotating("[2001:db8::8]:8443"),
        &rotating("2001:db8::8"),
    )
    .await;
    // a trusted proxy's own entry is skipped, not the client's
    same_bucket(
        &app,
        &format!("{}, 198.51.100.4:1000, 127.0.0.1:2000", unique_ip()),
        &format!("{}, 198.51.100.4, 127.0.0.1", unique_ip()),
        &format!("{}, [::ffff:198.51.100.4]:3000", unique_ip()),
    )
    .await;
}

async fn an_unreadable_rightmost_entry_falls_back_to_the_peer(mut ctx: Ctx) {
    let app = ctx.spawn_with(&BEHIND_PROXY).await;
    // never an entry further left: these all count as the proxy (the peer)
    no_account(
        &login_from(
            &app,
            &format!("{}, not-an-address", unique_ip()),
            "nobody@example.com",
            PASSWORD,
        )
        .await,
    );
    no_account(
        &login_from(
            &app,
            &format!("{}, 203.0.113.8:port", unique_ip()),
            "nobody@example.com",
            PASSWORD,
        )
        .await,
    );
    throttled_body(&app.login("nobody@example.com", PASSWORD).await);
    throttled_body(
        &login_from(
            &app,
            &format!("{},", unique_ip()),
            "nobody@example.com",
            PASSWORD,
        )
        .await,
    );
    // a readable entry is still its own client
    no_account(&login_from(&app, &unique_ip(), "nobody@example.com", PASSWORD).await);
}

async fn a_v4_mapped_peer_matches_trusted_proxies(mut ctx: Ctx) {
    // an IPv6 socket on the v4-mapped loopback: the peer is ::ffff:127.0.0.1
    let app = ctx
        .spawn_with(&[
            ("BIND", "[::ffff:127.0.0.1]:0"),
            ("THROTTLE_AUTH_PER_IP", "2/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    for _ in 0..4 {
        no_account(&login_from(&app, &unique_ip(), "nobody@example.com", PASSWORD).await);
    }
    same_bucket(&app, "203.0.113.5", "203.0.113.5", "203.0.113.5").await;
}

/// Each call answers well within the old 6 s, however the store fails.
async fn timed(
    response: impl std::future::Future<Output = latchkey_tests::Response>,
) -> latchkey_tests::Response {
    let started = Instant::now();
    let response = response.await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "answered in {took:?}");
    response
}

/// With the counters' Redis failing: the account still locks, the per-IP
/// bucket still fills, every answer comes quickly, and /readyz stays 200.
async fn throttles_without_redis(ctx: &mut Ctx, redis: &str, timeout: &str) {
    let app = ctx
        .spawn_with(&[
            ("THROTTLE_LOGIN_FAILURES", "3/15m"),
            ("THROTTLE_AUTH_PER_IP", "6/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("REDIS_URL", redis),
            ("REDIS_TIMEOUT", timeout),
        ])
        .await;
    let response = timed(login_from(
        &app,
        &unique_ip(),
        "nobody@example.com",
        PASSWORD,
    ))
    .await;
    no_account(&response);
    let created = timed(
        app.post(
            "/register/",
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("X-Forwarded-For", &unique_ip()),
        ),
    )
    .await;
    created.assert_status(201);
    assert_eq!(created.body["user"]["email"], "jae@example.com");
    for _ in 0..3 {
        no_account(
            &timed(login_from(
                &app,
                &unique_ip(),
                "jae@example.com",
                "wrong-password-1",
            ))
            .await,
        );
    }
    throttled_body(&timed(login_from(&app, &unique_ip(), "jae@example.com", PASSWORD)).await);
    // the per-IP bucket, in memory too
    let ip = unique_ip();
    for i in 0..6 {
        let someone = format!("nobody{i}@example.com");
        no_account(&timed(login_from(&app, &ip, &someone, PASSWORD)).await);
    }
    throttled_body(&timed(login_from(&app, &ip, "nobody6@example.com", PASSWORD)).await);
    app.get("/readyz", Req::default())
        .await
        .assert(200, json!({"status": "ok", "database": "ok"}));
    let metrics = app.get("/metrics", Req::default()).await;
    metrics.assert_status(200);
}

async fn unreachable_redis_still_throttles_in_memory_and_quickly(mut ctx: Ctx) {
    throttles_without_redis(&mut ctx, "redis://127.0.0.1:1/", "500ms").await;
}

/// A "Redis" that accepts connections and never answers.
fn silent_redis() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => held.push(stream),
                Err(_) => return,
            }
        }
    });
    url
}

async fn a_silent_redis_still_throttles_within_the_timeout(mut ctx: Ctx) {
    let redis = silent_redis();
    throttles_without_redis(&mut ctx, &redis, "300ms").await;
}
