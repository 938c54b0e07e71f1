//! Sessions you can see and end (v2), black-box on both backends: `sid` in
//! every token, logout that ends the whole session of any of its tokens,
//! `GET /auth/sessions/`, `DELETE /auth/sessions/{id}/`, logout everywhere
//! with no same-second gap, password change, tokens without `sid`,
//! deactivation, deletion, reuse detection and several instances.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use latchkey_tests::app::Req;
use latchkey_tests::{
    Ctx, PASSWORD, Response, TEST_SECRET, TestApp, TestUser, forge, now, paths, payload, tests,
};
use serde_json::{Value, json};

tests![
    every_token_carries_the_sid_of_its_session,
    a_session_list_id_is_the_sid_of_its_tokens,
    logout_by_the_refresh_token_ends_the_whole_session,
    logout_by_a_bearer_access_token_alone_ends_the_whole_session,
    logout_by_cookies_ends_the_whole_session,
    logout_by_a_sliding_token_ends_the_sliding_session,
    logout_ends_the_session_of_the_refresh_token_when_both_are_sent,
    cookie_logout_without_the_csrf_header_is_403_and_the_session_stays_live,
    the_session_list_shows_exactly_the_contract_fields,
    a_user_agent_is_cut_to_256_characters_and_none_is_null,
    sessions_are_listed_most_recently_used_first_and_a_refresh_moves_one_up,
    sessions_started_in_the_same_second_are_listed_latest_first,
    current_marks_only_the_session_of_the_authenticating_token,
    a_sliding_session_is_listed_and_moves_with_each_sliding_refresh,
    the_session_list_needs_credentials_and_is_not_cached,
    ending_one_session_refuses_its_tokens_and_leaves_the_others,
    ending_the_current_session_by_id_refuses_its_own_tokens,
    another_users_session_id_is_404_and_that_session_stays_live,
    an_unknown_or_already_ended_session_id_is_404,
    ending_a_session_by_cookie_needs_the_csrf_header,
    logout_everywhere_ends_tokens_issued_in_the_same_second,
    a_password_change_ends_every_other_session_and_lists_only_the_new_one,
    tokens_without_sid_are_accepted_and_bound_by_tokens_valid_after,
    a_token_whose_sid_names_no_session_is_invalid,
    deactivation_ends_every_session_even_after_reactivation,
    deletion_ends_every_session_of_the_user,
    reuse_detection_ends_the_session_and_its_current_access_token,
    a_session_ended_through_one_instance_is_refused_by_another,
];

const EMAIL: &str = "jae@example.com";
const AGENT: &str = "latchkey-test/1";
const NEW_PASSWORD: &str = "a-new-passphrase-42";

/// The 401 of an access token of an ended session (or a bad one).
fn invalid_access() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
    })
}

/// The 401 of a refresh token of an ended session.
fn blacklisted() -> Value {
    json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
}

/// The other 401 of the token endpoints.
fn invalid_or_expired() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

fn not_found() -> Value {
    json!({"detail": "Not found."})
}

fn csrf_missing() -> Value {
    json!({"detail": "CSRF Failed: CSRF token missing."})
}

#[track_caller]
fn assert_one_of(response: &Response, status: u16, bodies: &[Value]) {
    assert!(
        response.status == status && bodies.contains(&response.body),
        "expected {status} with one of {bodies:?}, got {} {}",
        response.status,
        response.text
    );
}

#[track_caller]
fn assert_no_content(response: &Response) {
    assert_eq!(
        (response.status, response.text.as_str()),
        (204, ""),
        "expected an empty 204"
    );
}

/// The ids of a session list, in its order.
fn ids(response: &Response) -> Vec<Value> {
    response.body["results"]
        .as_array()
        .expect("results is a list")
        .iter()
        .map(|s| s["id"].clone())
        .collect()
}

fn parse_time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp string"))
        .expect("an RFC 3339 timestamp")
}

fn with_agent(req: Req, agent: Option<&str>) -> Req {
    match agent {
        Some(agent) => req.with_header("User-Agent", agent),
        None => req,
    }
}

async fn register_with(app: &TestApp, email: &str, agent: Option<&str>) -> TestUser {
    let req = with_agent(
        Req::json(json!({"email": email, "password": PASSWORD})),
        agent,
    );
    let response = app.post(paths::REGISTER, req).await;
    response.assert_status(201);
    TestUser::of(app, &response)
}

async fn login_with(app: &TestApp, email: &str, agent: Option<&str>) -> TestUser {
    let req = with_agent(
        Req::json(json!({"email": email, "password": PASSWORD})),
        agent,
    );
    let response = app.post(paths::AUTH, req).await;
    response.assert_status(200);
    TestUser::of(app, &response)
}

async fn sliding_login(app: &TestApp, email: &str, agent: Option<&str>) -> String {
    let req = with_agent(
        Req::json(json!({"email": email, "password": PASSWORD})),
        agent,
    );
    let response = app.post(paths::SLIDING, req).await;
    response.assert_status(200);
    response.sliding()
}

/// The ids of the caller's listed sessions, in the listed order.
async fn listed_ids(app: &TestApp, token: &str) -> Vec<String> {
    let response = app.sessions(token).await;
    response.assert_status(200);
    response.body["results"]
        .as_array()
        .expect("results is a list")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every token of the session is refused at once: the access token on an
/// authenticated path and on verify, the refresh token on refresh.
async fn assert_ended(app: &TestApp, session: &TestUser) {
    app.me(&session.access).await.assert(401, invalid_access());
    app.sessions(&session.access)
        .await
        .assert(401, invalid_access());
    let verified = app.verify(&session.access).await;
    assert_one_of(&verified, 401, &[blacklisted(), invalid_or_expired()]);
    app.refresh_token(&session.refresh)
        .await
        .assert(401, blacklisted());
}

/// On another instance than the one that revoked: the contract gives it
/// 50 ms (p99) to hear of the revocation; this waits at most a second for
/// the first refusal, then every check must refuse.
async fn assert_ended_elsewhere(app: &TestApp, session: &TestUser) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while app.me(&session.access).await.status == 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "another instance still accepts the session a second after it ended"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ended(app, session).await;
}

/// The session's access token authenticates (without touching its refresh
/// token, which a check by refresh would rotate).
async fn assert_live(app: &TestApp, session: &TestUser, email: &str) {
    let me = app.me(&session.access).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], email, "{}", me.text);
    app.verify(&session.access).await.assert(200, json!({}));
}

/// Waits until the clock has left the second `second` (never longer than a
/// second): for the whole-second `iat`/`tokens_valid_after` rule.
async fn after_second(second: i64) {
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while now() <= second {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn every_token_carries_the_sid_of_its_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let first = app.user(EMAIL).await;
    assert!(
        first.sid().as_str().is_some_and(|s| !s.is_empty()),
        "register's access token has a sid: {:?}",
        payload(&first.access)
    );
    assert_eq!(payload(&first.refresh)["sid"], first.sid());

    let login = app.logged_in(EMAIL).await;
    assert!(login.sid().is_string(), "{:?}", payload(&login.access));
    assert_eq!(payload(&login.refresh)["sid"], login.sid());
    assert_ne!(login.sid(), first.sid(), "a login starts a new session");

    // refresh: the new pair stays in the original session, twice over
    let refreshed = app.refresh_token(&first.refresh).await;
    refreshed.assert_status(200);
    let access = refreshed.body["access"].as_str().unwrap();
    let refresh = refreshed.body["refresh"].as_str().unwrap();
    assert_eq!(payload(access)["sid"], first.sid());
    assert_eq!(payload(refresh)["sid"], first.sid());
    let again = app.refresh_token(refresh).await;
    again.assert_status(200);
    assert_eq!(
        payload(again.body["access"].as_str().unwrap())["sid"],
        first.sid()
    );
    assert_eq!(
        payload(again.body["refresh"].as_str().unwrap())["sid"],
        first.sid()
    );

    // password change: a new session, in both tokens
    let changed = login.change_password(PASSWORD, NEW_PASSWORD).await;
    changed.assert_status(200);
    assert_eq!(changed.body["message"], "Password changed");
    let changed = login.with_tokens_of(&changed);
    assert!(changed.sid().is_string(), "{:?}", payload(&changed.access));
    assert_eq!(payload(&changed.refresh)["sid"], changed.sid());
    assert_ne!(changed.sid(), login.sid());
    assert_ne!(changed.sid(), first.sid());

    // sliding: the token carries a sid, and a sliding refresh keeps it
    let sliding = app.sliding(EMAIL, NEW_PASSWORD).await;
    sliding.assert_status(200);
    let token = sliding.body["token"].as_str().unwrap();
    let sid = payload(token)["sid"].clone();
    assert!(
        sid.as_str().is_some_and(|s| !s.is_empty()),
        "{:?}",
        payload(token)
    );
    assert_ne!(sid, changed.sid(), "a sliding login starts a new session");
    let slid = app.sliding_refresh(token).await;
    slid.assert_status(200);
    assert_eq!(payload(slid.body["token"].as_str().unwrap())["sid"], sid);
}

async fn a_session_list_id_is_the_sid_of_its_tokens(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let first = app.user(EMAIL).await;
    let second = app.logged_in(EMAIL).await;
    let sliding = sliding_login(&app, EMAIL, None).await;
    let mut ids = listed_ids(&app, &first.access).await;
    ids.sort();
    let mut sids = vec![
        first.session_id(),
        second.session_id(),
        payload(&sliding)["sid"].as_str().unwrap().to_owned(),
    ];
    sids.sort();
    assert_eq!(ids, sids);
}

async fn logout_by_the_refresh_token_ends_the_whole_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let ended = app.user(EMAIL).await;
    let other = app.logged_in(EMAIL).await;
    assert_live(&app, &ended, EMAIL).await;
    let response = app.logout(&ended.refresh).await;
    response.assert(202, json!({"message": "Logout success"}));
    assert_ended(&app, &ended).await;
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
    app.refresh_token(&other.refresh).await.assert_status(200);
}

async fn logout_by_a_bearer_access_token_alone_ends_the_whole_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let first = app.user(EMAIL).await;
    let other = app.logged_in(EMAIL).await;
    // rotate once: the logout by the session's first access token must end
    // the refresh token that replaced the one it came with, too
    let rotated = app.refresh_token(&first.refresh).await;
    rotated.assert_status(200);
    let latest = first.with_tokens_of(&rotated);
    assert_live(&app, &first, EMAIL).await;
    let response = first.logout().await;
    response.assert(202, json!({"message": "Logout success"}));
    assert_ended(&app, &latest).await;
    app.me(&first.access).await.assert(401, invalid_access());
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
    app.refresh_token(&other.refresh).await.assert_status(200);
}

async fn logout_by_cookies_ends_the_whole_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let ended = app.user(EMAIL).await;
    let other = app.logged_in(EMAIL).await;
    let csrf = ended.csrf.clone().expect("a csrftoken cookie");
    let cookies = || {
        Req::default()
            .with_cookie("access", &ended.access)
            .with_cookie("refresh", &ended.refresh)
            .with_cookie("csrftoken", &csrf)
    };
    let response = app
        .logout_with(cookies().with_header("X-CSRFToken", &csrf))
        .await;
    response.assert(202, json!({"message": "Logout success"}));
    for name in ["access", "refresh"] {
        let cookie = response.set_cookie(name).expect("the cookie is cleared");
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
    }
    assert_ended(&app, &ended).await;
    // the old access cookie no longer authenticates either
    app.get(
        paths::AUTH,
        Req::default().with_cookie("access", &ended.access),
    )
    .await
    .assert(401, invalid_access());
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
}

async fn logout_by_a_sliding_token_ends_the_sliding_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let other = app.user(EMAIL).await;
    let token = sliding_login(&app, EMAIL, None).await;
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], EMAIL);
    let response = app.logout_with(Req::bearer(&token)).await;
    response.assert(202, json!({"message": "Logout success"}));
    app.me(&token).await.assert(401, invalid_access());
    let verified = app.verify(&token).await;
    assert_one_of(&verified, 401, &[blacklisted(), invalid_or_expired()]);
    let slid = app.sliding_refresh(&token).await;
    assert_one_of(&slid, 401, &[blacklisted(), invalid_or_expired()]);
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
}

async fn logout_ends_the_session_of_the_refresh_token_when_both_are_sent(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let by_header = app.user(EMAIL).await;
    let by_body = app.logged_in(EMAIL).await;
    let response = app
        .logout_with(Req::bearer(&by_header.access).with_json(json!({"refresh": by_body.refresh})))
        .await;
    response.assert(202, json!({"message": "Logout success"}));
    assert_ended(&app, &by_body).await;
    assert_live(&app, &by_header, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &by_header.access).await,
        vec![by_header.session_id()]
    );
}

async fn cookie_logout_without_the_csrf_header_is_403_and_the_session_stays_live(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user(EMAIL).await;
    let csrf = session.csrf.clone().expect("a csrftoken cookie");
    app.logout_with(
        Req::default()
            .with_cookie("access", &session.access)
            .with_cookie("refresh", &session.refresh)
            .with_cookie("csrftoken", &csrf),
    )
    .await
    .assert(403, csrf_missing());
    app.logout_with(session.cookies())
        .await
        .assert(403, csrf_missing());
    assert_live(&app, &session, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &session.access).await,
        vec![session.session_id()]
    );
    app.refresh_token(&session.refresh).await.assert_status(200);
}

async fn the_session_list_shows_exactly_the_contract_fields(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = register_with(&app, EMAIL, Some(AGENT)).await;
    let response = app.sessions(&session.access).await;
    response.assert_status(200);
    assert_eq!(
        response
            .body
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["results"],
        "{}",
        response.text
    );
    let results = response.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", response.text);
    let item = &results[0];
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec![
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip",
        "current",
        // v3: how the session was authenticated (How a login completes).
        "amr",
        "aal",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "{}", response.text);
    assert_eq!(item["id"], session.sid());
    assert_eq!(item["user_agent"], AGENT);
    assert_eq!(item["ip"], "127.0.0.1");
    assert_eq!(item["current"], true);
    let created = parse_time(&item["created_at"]);
    let used = parse_time(&item["last_used_at"]);
    let expires = parse_time(&item["expires_at"]);
    assert!(used >= created, "{}", response.text);
    // the session's current refresh token expires then (whole seconds)
    let exp = payload(&session.refresh)["exp"].as_i64().unwrap();
    assert_eq!(expires.timestamp(), exp, "{}", response.text);
    let iat = payload(&session.refresh)["iat"].as_i64().unwrap();
    assert!(
        (created.timestamp() - iat).abs() <= 1,
        "created_at is the start: {}",
        response.text
    );
}

async fn a_user_agent_is_cut_to_256_characters_and_none_is_null(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let long: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let with_long = register_with(&app, EMAIL, Some(&long)).await;
    let without = login_with(&app, EMAIL, None).await;
    let with_short = login_with(&app, EMAIL, Some(AGENT)).await;
    let response = app.sessions(&with_short.access).await;
    response.assert_status(200);
    let agent_of = |sid: &Value| {
        response.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["id"] == sid)
            .unwrap_or_else(|| panic!("session {sid} listed: {}", response.text))["user_agent"]
            .clone()
    };
    assert_eq!(agent_of(&with_long.sid()), json!(long[..256]));
    assert_eq!(agent_of(&without.sid()), Value::Null);
    assert_eq!(agent_of(&with_short.sid()), json!(AGENT));
    // the agent of the request that started the session, not of a later one
    let refreshed = app
        .post(
            paths::REFRESH,
            with_agent(
                Req::json(json!({"refresh": without.refresh})),
                Some("someone-else/2"),
            ),
        )
        .await;
    refreshed.assert_status(200);
    let again = app.sessions(&with_short.access).await;
    let agent = again.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == without.sid())
        .unwrap()["user_agent"]
        .clone();
    assert_eq!(agent, Value::Null, "{}", again.text);
}

async fn sessions_are_listed_most_recently_used_first_and_a_refresh_moves_one_up(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    // a second apart, so the order shows whatever the stored precision
    // (same-second starts: the next test)
    let a = register_with(&app, EMAIL, Some(AGENT)).await;
    after_second(now()).await;
    let b = login_with(&app, EMAIL, Some(AGENT)).await;
    after_second(now()).await;
    let c = login_with(&app, EMAIL, Some(AGENT)).await;
    let before = app.sessions(&a.access).await;
    before.assert_status(200);
    assert_eq!(
        ids(&before),
        vec![c.sid(), b.sid(), a.sid()],
        "{}",
        before.text
    );
    let a_before = before.body["results"][2].clone();
    after_second(now()).await;
    let refreshed = app.refresh_token(&a.refresh).await;
    refreshed.assert_status(200);
    let new_refresh = refreshed.body["refresh"].as_str().unwrap();
    let after = app.sessions(&a.access).await;
    after.assert_status(200);
    assert_eq!(
        ids(&after),
        vec![a.sid(), c.sid(), b.sid()],
        "{}",
        after.text
    );
    let a_after = &after.body["results"][0];
    assert_eq!(a_after["created_at"], a_before["created_at"]);
    assert!(
        parse_time(&a_after["last_used_at"]) > parse_time(&a_before["last_used_at"]),
        "a refresh moves last_used_at: {} then {}",
        before.text,
        after.text
    );
    assert_eq!(
        parse_time(&a_after["expires_at"]).timestamp(),
        payload(new_refresh)["exp"].as_i64().unwrap(),
        "expires_at moves with rotation: {}",
        after.text
    );
    assert!(parse_time(&a_after["expires_at"]) > parse_time(&a_before["expires_at"]));
    let results = after.body["results"].as_array().unwrap();
    for pair in results.windows(2) {
        assert!(
            parse_time(&pair[0]["last_used_at"]) >= parse_time(&pair[1]["last_used_at"]),
            "{}",
            after.text
        );
    }
}

async fn sessions_started_in_the_same_second_are_listed_latest_first(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered(EMAIL).await;
    // one after the other, each answered before the next is sent, most
    // likely within one second
    after_second(now()).await;
    let a = login_with(&app, EMAIL, Some(AGENT)).await;
    let b = login_with(&app, EMAIL, Some(AGENT)).await;
    let c = login_with(&app, EMAIL, Some(AGENT)).await;
    let listed = app.sessions(&a.access).await;
    listed.assert_status(200);
    assert_eq!(
        ids(&listed)[..3],
        [c.sid(), b.sid(), a.sid()],
        "the latest used first, even within one second: {}",
        listed.text
    );
}

async fn current_marks_only_the_session_of_the_authenticating_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let a = app.user(EMAIL).await;
    let b = app.logged_in(EMAIL).await;
    let sliding = sliding_login(&app, EMAIL, None).await;
    let sliding_sid = payload(&sliding)["sid"].clone();
    let current_of = |r: &Response| -> Vec<Value> {
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .map(|s| s["id"].clone())
            .collect()
    };
    let check = |r: &Response, sid: &Value| {
        r.assert_status(200);
        assert_eq!(r.body["results"].as_array().unwrap().len(), 3, "{}", r.text);
        assert_eq!(current_of(r), vec![sid.clone()], "{}", r.text);
        for s in r.body["results"].as_array().unwrap() {
            assert!(s["current"].is_boolean(), "{}", r.text);
        }
    };
    check(&app.sessions(&a.access).await, &a.sid());
    check(&app.sessions(&b.access).await, &b.sid());
    check(&app.sessions(&sliding).await, &sliding_sid);
    // by the access cookie (a GET needs no CSRF header)
    let by_cookie = app
        .get(
            paths::SESSIONS,
            Req::default().with_cookie("access", &b.access),
        )
        .await;
    check(&by_cookie, &b.sid());
    // a refreshed access token belongs to the same session
    let refreshed = app.refresh_token(&a.refresh).await;
    refreshed.assert_status(200);
    check(
        &app.sessions(refreshed.body["access"].as_str().unwrap())
            .await,
        &a.sid(),
    );
}

async fn a_sliding_session_is_listed_and_moves_with_each_sliding_refresh(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let other = register_with(&app, EMAIL, None).await;
    let token = sliding_login(&app, EMAIL, Some(AGENT)).await;
    let claims = payload(&token);
    let find = |r: &Response| {
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == claims["sid"])
            .unwrap_or_else(|| panic!("the sliding session is listed: {}", r.text))
            .clone()
    };
    let before = app.sessions(&other.access).await;
    before.assert_status(200);
    let item = find(&before);
    assert_eq!(item["user_agent"], AGENT);
    assert_eq!(item["ip"], "127.0.0.1");
    assert_eq!(item["current"], false);
    assert_eq!(
        parse_time(&item["expires_at"]).timestamp(),
        claims["refresh_exp"].as_i64().unwrap(),
        "a sliding session expires at its refresh_exp: {}",
        before.text
    );
    after_second(now()).await;
    let slid = app.sliding_refresh(&token).await;
    slid.assert_status(200);
    let after = app.sessions(&other.access).await;
    after.assert_status(200);
    let moved = find(&after);
    assert!(
        parse_time(&moved["last_used_at"]) > parse_time(&item["last_used_at"]),
        "a sliding refresh moves last_used_at: {} then {}",
        before.text,
        after.text
    );
    assert_eq!(
        after.body["results"][0]["id"], claims["sid"],
        "{}",
        after.text
    );
}

async fn the_session_list_needs_credentials_and_is_not_cached(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.get(paths::SESSIONS, Req::default())
        .await
        .assert_unauthorized(json!({"detail": "Authentication credentials were not provided."}));
    app.sessions("garbage").await.assert(401, invalid_access());
    let session = app.user(EMAIL).await;
    // a refresh token is not an access token
    let wrong = app.sessions(&session.refresh).await;
    wrong.assert_status(401);
    assert_eq!(wrong.body["code"], "token_not_valid", "{}", wrong.text);
    let listed = app.sessions(&session.access).await;
    listed.assert_status(200);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    assert_eq!(listed.body["results"][0]["id"], session.sid());
}

async fn ending_one_session_refuses_its_tokens_and_leaves_the_others(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let caller = app.user(EMAIL).await;
    let ended = app.logged_in(EMAIL).await;
    let untouched = app.logged_in(EMAIL).await;
    assert_live(&app, &ended, EMAIL).await;
    assert_no_content(&app.end_session(&caller.access, &ended.session_id()).await);
    assert_ended(&app, &ended).await;
    for session in [&caller, &untouched] {
        assert_live(&app, session, EMAIL).await;
    }
    let mut ids = listed_ids(&app, &caller.access).await;
    ids.sort();
    let mut expected = vec![caller.session_id(), untouched.session_id()];
    expected.sort();
    assert_eq!(ids, expected);
    app.refresh_token(&untouched.refresh)
        .await
        .assert_status(200);
    app.refresh_token(&caller.refresh).await.assert_status(200);
}

async fn ending_the_current_session_by_id_refuses_its_own_tokens(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let caller = app.user(EMAIL).await;
    let other = app.logged_in(EMAIL).await;
    assert_no_content(&app.end_session(&caller.access, &caller.session_id()).await);
    assert_ended(&app, &caller).await;
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
}

async fn another_users_session_id_is_404_and_that_session_stays_live(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user(EMAIL).await;
    let kim = app.user("kim@example.com").await;
    let response = app.end_session(&kim.access, &jae.session_id()).await;
    response.assert(404, not_found());
    assert_live(&app, &jae, EMAIL).await;
    assert_eq!(listed_ids(&app, &jae.access).await, vec![jae.session_id()]);
    // nor does kim see it in her own list
    assert_eq!(listed_ids(&app, &kim.access).await, vec![kim.session_id()]);
    app.refresh_token(&jae.refresh).await.assert_status(200);
    assert_live(&app, &kim, "kim@example.com").await;
}

async fn an_unknown_or_already_ended_session_id_is_404(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let caller = app.user(EMAIL).await;
    let ended = app.logged_in(EMAIL).await;
    for unknown in [
        "no-such-session".to_owned(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "1".to_owned(),
        format!("{}x", caller.session_id()),
    ] {
        app.end_session(&caller.access, &unknown)
            .await
            .assert(404, not_found());
    }
    assert_no_content(&app.end_session(&caller.access, &ended.session_id()).await);
    app.end_session(&caller.access, &ended.session_id())
        .await
        .assert(404, not_found());
    // ended by logout: also not a live session
    let logged_out = app.logged_in(EMAIL).await;
    app.logout(&logged_out.refresh).await.assert_status(202);
    app.end_session(&caller.access, &logged_out.session_id())
        .await
        .assert(404, not_found());
    assert_live(&app, &caller, EMAIL).await;
}

async fn ending_a_session_by_cookie_needs_the_csrf_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let caller = app.user(EMAIL).await;
    let target = app.logged_in(EMAIL).await;
    let path = paths::session(&target.session_id());
    app.request("DELETE", &path, caller.cookies())
        .await
        .assert(403, csrf_missing());
    assert_live(&app, &target, EMAIL).await;
    let mut ids = listed_ids(&app, &caller.access).await;
    ids.sort();
    let mut expected = vec![caller.session_id(), target.session_id()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_no_content(
        &app.request("DELETE", &path, caller.cookies_with_csrf())
            .await,
    );
    assert_ended(&app, &target).await;
    assert_live(&app, &caller, EMAIL).await;
}

async fn logout_everywhere_ends_tokens_issued_in_the_same_second(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered(EMAIL).await;
    // start at the beginning of a second, so the logins and the logout
    // below most likely share it
    after_second(now()).await;
    let first = app.logged_in(EMAIL).await;
    let second = app.logged_in(EMAIL).await;
    let response = second.logout_everywhere().await;
    let called = now();
    response.assert(202, json!({"message": "Logout success"}));
    if payload(&first.access)["iat"].as_i64() != Some(called) {
        eprintln!("note: the logins and the logout did not share a second");
    }
    for session in [&first, &second] {
        app.me(&session.access).await.assert(401, invalid_access());
    }
    // and still in the next second
    after_second(called).await;
    for session in [&first, &second] {
        assert_ended(&app, session).await;
    }
    // a new login works
    let fresh = login_with(&app, EMAIL, None).await;
    assert_live(&app, &fresh, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &fresh.access).await,
        vec![fresh.session_id()]
    );
}

async fn a_password_change_ends_every_other_session_and_lists_only_the_new_one(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let a = app.user(EMAIL).await;
    let b = app.logged_in(EMAIL).await;
    let sliding = sliding_login(&app, EMAIL, None).await;
    let response = b.change_password(PASSWORD, NEW_PASSWORD).await;
    response.assert_status(200);
    assert_eq!(
        response
            .body
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["message", "token"],
        "{}",
        response.text
    );
    assert_eq!(response.body["message"], "Password changed");
    let new = b.with_tokens_of(&response);
    // at once, in the same second: no token of an ended session is usable
    for old in [&a, &b] {
        assert_ended(&app, old).await;
    }
    app.me(&sliding).await.assert(401, invalid_access());
    assert_live(&app, &new, EMAIL).await;
    let listed = app.sessions(&new.access).await;
    listed.assert_status(200);
    let results = listed.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", listed.text);
    assert_eq!(results[0]["id"], new.sid());
    assert_eq!(results[0]["current"], true);
    app.refresh_token(&new.refresh).await.assert_status(200);
}

async fn tokens_without_sid_are_accepted_and_bound_by_tokens_valid_after(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user(EMAIL).await;
    let id = jae.id;
    let sidless = |iat: i64, jti: &str| {
        forge(
            Algorithm::HS256,
            TEST_SECRET,
            &json!({"token_type": "access", "exp": now() + 600, "iat": iat, "jti": jti, "user_id": id}),
        )
    };
    let old_iat = now();
    let old = sidless(old_iat, &"a".repeat(32));
    let me = app.me(&old).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], id, "{}", me.text);
    assert_eq!(me.body["email"], EMAIL);
    // the sid-less token lists no session as current
    let listed = app.sessions(&old).await;
    listed.assert_status(200);
    assert!(
        listed.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == false),
        "{}",
        listed.text
    );
    // revoke in a later second than the token's iat
    after_second(old_iat).await;
    jae.logout_everywhere()
        .await
        .assert(202, json!({"message": "Logout success"}));
    let revoked_at = now();
    app.me(&old).await.assert(401, invalid_access());
    // a sid-less token issued in a later second than the revocation passes
    after_second(revoked_at).await;
    let new = sidless(now(), &"b".repeat(32));
    let me = app.me(&new).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], id, "{}", me.text);
    app.verify(&new).await.assert(200, json!({}));
    app.me(&old).await.assert(401, invalid_access());
}

async fn a_token_whose_sid_names_no_session_is_invalid(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user(EMAIL).await;
    let mut claims = payload(&session.access);
    claims["sid"] = json!("no-such-session");
    let forged = forge(Algorithm::HS256, TEST_SECRET, &claims);
    app.me(&forged).await.assert(401, invalid_access());
    app.sessions(&forged).await.assert(401, invalid_access());
    let mut claims = payload(&session.access);
    claims["sid"] = json!(format!("{}0", session.session_id()));
    app.me(&forge(Algorithm::HS256, TEST_SECRET, &claims))
        .await
        .assert(401, invalid_access());
    // the genuine token still works
    assert_live(&app, &session, EMAIL).await;
}

async fn deactivation_ends_every_session_even_after_reactivation(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let staff = app.staff("staff@example.com").await;
    let first = app.user(EMAIL).await;
    let second = app.logged_in(EMAIL).await;
    let deactivated = app.deactivate(&staff, first.id).await;
    assert_eq!(deactivated.body["is_active"], false);
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    for session in [&first, &second] {
        let me = app.me(&session.access).await;
        assert_one_of(&me, 401, &[invalid_access(), inactive.clone()]);
        let refreshed = app.refresh_token(&session.refresh).await;
        assert_one_of(
            &refreshed,
            401,
            &[blacklisted(), inactive.clone(), invalid_or_expired()],
        );
    }
    // the sessions were ended, not only barred while the user is inactive
    let reactivated = staff.patch(first.id, json!({"is_active": true})).await;
    reactivated.assert_status(200);
    assert_eq!(reactivated.body["is_active"], true);
    for session in [&first, &second] {
        assert_ended(&app, session).await;
    }
    let fresh = login_with(&app, EMAIL, None).await;
    assert_eq!(
        listed_ids(&app, &fresh.access).await,
        vec![fresh.session_id()]
    );
}

async fn deletion_ends_every_session_of_the_user(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let staff = app.staff("staff@example.com").await;
    let first = app.user(EMAIL).await;
    let second = app.logged_in(EMAIL).await;
    assert_no_content(&staff.delete(first.id).await);
    let gone = json!({"detail": "User not found", "code": "user_not_found"});
    for session in [&first, &second] {
        let me = app.me(&session.access).await;
        assert_one_of(&me, 401, &[invalid_access(), gone.clone()]);
        let refreshed = app.refresh_token(&session.refresh).await;
        assert_one_of(
            &refreshed,
            401,
            &[blacklisted(), gone.clone(), invalid_or_expired()],
        );
        let verified = app.verify(&session.access).await;
        assert_one_of(
            &verified,
            401,
            &[blacklisted(), gone.clone(), invalid_or_expired()],
        );
    }
    // the staff member's own session is untouched
    let me = staff.me().await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "staff@example.com");
}

async fn reuse_detection_ends_the_session_and_its_current_access_token(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "1s")])
        .await;
    let original = app.user(EMAIL).await;
    let other = app.logged_in(EMAIL).await;
    // rotate at the start of a second: 1.5 s later is more than the 1 s
    // interval ago, though less than two whole seconds on the clock
    after_second(now()).await;
    let rotated = app.refresh_token(&original.refresh).await;
    rotated.assert_status(200);
    let current = original.with_tokens_of(&rotated);
    assert_live(&app, &current, EMAIL).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    // the rotated-away token, presented after the interval
    app.refresh_token(&original.refresh)
        .await
        .assert(401, blacklisted());
    assert_ended(&app, &current).await;
    app.me(&original.access).await.assert(401, invalid_access());
    assert_live(&app, &other, EMAIL).await;
    assert_eq!(
        listed_ids(&app, &other.access).await,
        vec![other.session_id()]
    );
    app.refresh_token(&other.refresh).await.assert_status(200);
}

async fn a_session_ended_through_one_instance_is_refused_by_another(mut ctx: Ctx) {
    let a = ctx.spawn().await;
    let url = a.database_url.clone();
    let b = ctx.spawn_on(&url, &[]).await;
    let by_logout = a.user(EMAIL).await;
    let by_id = b.logged_in(EMAIL).await;
    let by_bearer = a.logged_in(EMAIL).await;
    let survivor = b.logged_in(EMAIL).await;
    // instance B has seen every one of them live
    for session in [&by_logout, &by_id, &by_bearer, &survivor] {
        assert_live(&b, session, EMAIL).await;
    }
    a.logout(&by_logout.refresh)
        .await
        .assert(202, json!({"message": "Logout success"}));
    assert_ended_elsewhere(&b, &by_logout).await;

    by_bearer
        .logout()
        .await
        .assert(202, json!({"message": "Logout success"}));
    assert_ended_elsewhere(&b, &by_bearer).await;

    assert_no_content(&a.end_session(&survivor.access, &by_id.session_id()).await);
    assert_ended_elsewhere(&b, &by_id).await;

    assert_live(&b, &survivor, EMAIL).await;
    assert_eq!(
        listed_ids(&b, &survivor.access).await,
        vec![survivor.session_id()]
    );
}
