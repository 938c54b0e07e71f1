//! Email (v2): password reset, email verification, and the outbox behind
//! them, against a real SMTP server process (`tests/smtp/capture.py`,
//! aiosmtpd) whose files the tests read back. Every test runs on SQLite and
//! PostgreSQL; the two-instance exactly-once test on PostgreSQL only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use latchkey_persistence::outbox::{NewOutboxEmail, OutboxEmail};
use latchkey_persistence::{StoreError, User, UserChanges, db_now, write_transaction};
use latchkey_tests::app::Req;
use latchkey_tests::binary::{ServedBinary, open, run_latchkey};
use latchkey_tests::smtp::{SmtpServer, link, param};
use latchkey_tests::{Backend, Ctx, PASSWORD, TEST_SECRET, TestApp, tests};
use serde_json::{Value, json};

tests![
    reset_sends_a_multipart_email_whose_link_resets_the_password,
    reset_answers_the_same_whatever_the_address,
    reset_refuses_what_is_not_an_email_address,
    reset_and_resend_share_a_limit_per_address,
    confirm_refuses_a_bad_uid_or_token,
    confirm_checks_the_new_password_without_using_the_token_up,
    a_token_works_once,
    a_token_expires,
    a_token_dies_when_the_password_changes,
    a_reset_ends_every_session_and_clears_failed_logins,
    reset_in_production_without_smtp_is_503,
    production_refuses_verification_without_smtp_and_insecure_smtp_off_loopback,
    development_without_smtp_logs_the_email_and_the_request_log_shows_no_token,
    temporary_refusals_are_retried_until_delivered,
    a_permanent_refusal_is_not_retried,
    after_email_max_attempts_the_email_fails,
    queued_mail_survives_a_restart_and_goes_out_when_smtp_is_back,
    sent_rows_are_pruned_after_the_retention,
    optional_verification_sends_a_key_that_verifies_the_address,
    mandatory_verification_holds_tokens_until_the_address_is_verified,
    a_newer_key_or_an_expired_one_is_not_found,
    resend_answers_ok_whatever_the_address,
    an_email_change_is_verified_again,
    flush_expired_tokens_clears_reset_and_verification_state,
    the_email_routes_take_both_slash_forms_and_the_per_ip_bucket,
    the_openapi_description_lists_the_email_routes,
    a_reset_request_writes_the_same_rows_whether_or_not_the_address_has_an_account,
    a_slow_smtp_server_outliving_the_lease_still_sends_each_email_once,
];

tests![postgres_only: two_instances_send_fifty_resets_exactly_once];

const WAIT: Duration = Duration::from_secs(20);
const NEW_PASSWORD: &str = "a-brand-new-horse-77";

/// A server that sends to `smtp`, with links under `http://latchkey.test`.
async fn mail_app(ctx: &mut Ctx, smtp: &SmtpServer, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut overrides = vec![
        ("SMTP_URL", url.as_str()),
        ("PUBLIC_URL", "http://latchkey.test"),
        ("EMAIL_RETRY_MAX", "1s"),
    ];
    overrides.extend_from_slice(extra);
    ctx.spawn_with(&overrides).await
}

async fn reset(app: &TestApp, email: &str) -> latchkey_tests::Response {
    app.post_json("/auth/password/reset/", json!({ "email": email }))
        .await
}

async fn confirm(
    app: &TestApp,
    uid: &str,
    token: &str,
    p1: &str,
    p2: &str,
) -> latchkey_tests::Response {
    app.post_json(
        "/auth/password/reset/confirm/",
        json!({ "uid": uid, "token": token, "new_password1": p1, "new_password2": p2 }),
    )
    .await
}

fn sent_detail() -> Value {
    json!({ "detail": "Password reset e-mail has been sent." })
}

fn done_detail() -> Value {
    json!({ "detail": "Password has been reset with the new password." })
}

/// Django's `urlsafe_base64_encode(force_bytes(pk))`.
fn django_uid(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

/// Registers, requests a reset, and returns (user id, uid, token, message).
async fn reset_link(app: &TestApp, smtp: &SmtpServer, email: &str) -> (i64, String, String) {
    let before = smtp.messages().len();
    let id = app.registered(email).await.body["user"]["id"]
        .as_i64()
        .unwrap();
    reset(app, email).await.assert(200, sent_detail());
    let messages = smtp.wait_for(before + 1, WAIT).await;
    let link = link(&messages[before]);
    (id, param(&link, "uid"), param(&link, "token"))
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", Req::default()).await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn set_user(app: &TestApp, id: i64, changes: UserChanges) {
    let db = open(&app.database_url);
    let mut conn = db.get().unwrap();
    User::update(&mut conn, id, &changes).unwrap();
}

fn outbox(app: &TestApp) -> Vec<OutboxEmail> {
    let db = open(&app.database_url);
    let mut conn = db.get().unwrap();
    OutboxEmail::all(&mut conn).unwrap()
}

/// No email beyond the `count` that came will ever be sent: an email is
/// only sent for a row of the outbox, written in the same transaction as
/// the request that asks for it, so once every row is settled (sent or
/// failed; a reset request for no account is deleted) and `count` messages
/// came, no other can. Read from the outbox instead of watching the SMTP
/// server for a while.
async fn assert_no_more_email(app: &TestApp, smtp: &SmtpServer, count: usize) {
    wait_until("every outbox row settled", || {
        outbox(app).iter().all(|row| row.status != "queued")
    })
    .await;
    assert_eq!(
        smtp.messages().len(),
        count,
        "messages: {:?}",
        smtp.messages()
    );
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- reset

async fn reset_sends_a_multipart_email_whose_link_resets_the_password(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    let response = reset(&app, "  JAE@Example.com ").await;
    response.assert(200, sent_detail());
    assert!(response.set_cookies().is_empty());
    let messages = smtp.wait_for(1, WAIT).await;
    let message = &messages[0];
    assert_eq!(message["from"], "latchkey <no-reply@localhost>");
    assert_eq!(message["to"], "jae@example.com");
    assert_eq!(message["rcpt_tos"], json!(["jae@example.com"]));
    assert_eq!(message["content_type"], "multipart/alternative");
    assert!(!message["subject"].as_str().unwrap().is_empty());
    let html = message["html"].as_str().unwrap();
    let link = link(message);
    assert!(
        link.starts_with("http://latchkey.test/demo/#reset?uid="),
        "{link}"
    );
    let uid = param(&link, "uid");
    let token = param(&link, "token");
    assert_eq!(uid, django_uid(id));
    assert!(html.contains(&token), "the HTML part has the link too");
    for raw in smtp.raw_messages() {
        assert!(!raw.contains(PASSWORD), "never a password in an email");
    }
    let done = confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD).await;
    done.assert(200, done_detail());
    assert!(done.set_cookies().is_empty(), "no tokens, no cookies");
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(401);
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
    assert_eq!(metric(&app, "latchkey_emails_sent_total").await, 1.0);
    assert_eq!(metric(&app, "latchkey_emails_failed_total").await, 0.0);
    assert_eq!(metric(&app, "latchkey_email_outbox_queued").await, 0.0);
    // The sent row keeps no body (its link was single-use anyway).
    let rows = outbox(&app);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "sent");
    assert!(rows[0].text_body.is_empty() && rows[0].html_body.is_empty());
}

async fn reset_answers_the_same_whatever_the_address(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    let inactive = app.registered("gone@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    set_user(
        &app,
        inactive,
        UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        },
    );
    let unusable = app.registered("unusable@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    set_user(
        &app,
        unusable,
        UserChanges {
            password_hash: Some("!abcdefghijklmnopqrstuvwxyz0123456789ABCD".into()),
            ..UserChanges::default()
        },
    );
    app.registered("real@example.com").await;
    for email in [
        "nobody@example.com",
        "gone@example.com",
        "unusable@example.com",
        "real@example.com",
    ] {
        reset(&app, email).await.assert(200, sent_detail());
    }
    let messages = smtp.wait_for(1, WAIT).await;
    assert_no_more_email(&app, &smtp, 1).await;
    assert_eq!(messages[0]["to"], "real@example.com");
    // The requests for the other addresses were resolved to nothing.
    let rows = outbox(&app);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].recipient.as_str(), rows[0].status.as_str()),
        ("real@example.com", "sent")
    );
}

async fn reset_refuses_what_is_not_an_email_address(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    reset(&app, "not-an-address")
        .await
        .assert(400, json!({ "email": ["Enter a valid email address."] }));
    app.post_json("/auth/password/reset/", json!({}))
        .await
        .assert(400, json!({ "email": ["This field is required."] }));
    app.post_json("/auth/registration/resend-email/", json!({ "email": "x@" }))
        .await
        .assert(400, json!({ "email": ["Enter a valid email address."] }));
}

async fn reset_and_resend_share_a_limit_per_address(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(
        &mut ctx,
        &smtp,
        &[
            ("THROTTLE_PASSWORD_RESET", "3/1h"),
            ("EMAIL_VERIFICATION", "optional"),
        ],
    )
    .await;
    // register's verification email does not count
    app.registered("jae@example.com").await;
    smtp.wait_for(1, WAIT).await;
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    app.post_json(
        "/auth/registration/resend-email/",
        json!({ "email": "JAE@example.com" }),
    )
    .await
    .assert(200, json!({ "detail": "ok" }));
    reset(&app, "Jae@Example.com")
        .await
        .assert(200, sent_detail());
    smtp.wait_for(4, WAIT).await;
    // past the limit: the same answers, no email
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    app.post_json(
        "/auth/registration/resend-email/",
        json!({ "email": "jae@example.com" }),
    )
    .await
    .assert(200, json!({ "detail": "ok" }));
    assert_no_more_email(&app, &smtp, 4).await;
    // another address has a counter of its own
    app.registered("other@example.com").await;
    reset(&app, "other@example.com")
        .await
        .assert(200, sent_detail());
    smtp.wait_for(6, WAIT).await;
}

async fn confirm_refuses_a_bad_uid_or_token(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    let (id, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    let uid_invalid = json!({ "uid": ["Invalid value"] });
    let token_invalid = json!({ "token": ["Invalid value"] });
    confirm(&app, "!!", &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, uid_invalid.clone());
    confirm(
        &app,
        &django_uid(id + 1000),
        &token,
        NEW_PASSWORD,
        NEW_PASSWORD,
    )
    .await
    .assert(400, uid_invalid.clone());
    confirm(&app, "eA", &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, uid_invalid);
    confirm(&app, &uid, "not-the-token", NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, token_invalid.clone());
    // another user's token does not open this account
    let (_, other_uid, other_token) = reset_link(&app, &smtp, "other@example.com").await;
    confirm(&app, &uid, &other_token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, token_invalid);
    let _ = other_uid;
    app.post_json("/auth/password/reset/confirm/", json!({}))
        .await
        .assert(
            400,
            json!({
                "uid": ["This field is required."],
                "token": ["This field is required."],
                "new_password1": ["This field is required."],
                "new_password2": ["This field is required."],
            }),
        );
    // the real token still works
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
}

async fn confirm_checks_the_new_password_without_using_the_token_up(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    let (_, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    confirm(&app, &uid, &token, NEW_PASSWORD, "something-else-12")
        .await
        .assert(
            400,
            json!({ "new_password2": ["The two password fields didn\u{2019}t match."] }),
        );
    let weak = confirm(&app, &uid, &token, "12345678", "12345678").await;
    weak.assert_status(400);
    let messages = weak.body["new_password2"].as_array().unwrap();
    assert!(
        messages.contains(&json!("This password is entirely numeric.")),
        "{}",
        weak.text
    );
    assert!(weak.body.get("token").is_none());
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
}

async fn a_token_works_once(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    let (_, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
    confirm(
        &app,
        &uid,
        &token,
        "yet-another-pass-5",
        "yet-another-pass-5",
    )
    .await
    .assert(400, json!({ "token": ["Invalid value"] }));
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
}

async fn a_token_expires(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("PASSWORD_RESET_TIMEOUT", "1s")]).await;
    let (_, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, json!({ "token": ["Invalid value"] }));
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn a_token_dies_when_the_password_changes(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("THROTTLE_PASSWORD_RESET", "10/1h")]).await;
    // by POST /auth/password/
    let (id, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    let access = app.login("jae@example.com", PASSWORD).await.access();
    app.post(
        "/auth/password/",
        Req::bearer(&access).with_json(json!({
            "old_password": PASSWORD, "new_password": "changed-by-hand-42"
        })),
    )
    .await
    .assert_status(200);
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, json!({ "token": ["Invalid value"] }));
    // by PATCH /list/{id}/
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    let messages = smtp.wait_for(2, WAIT).await;
    let second = param(&link(&messages[1]), "token");
    let access = app
        .login("jae@example.com", "changed-by-hand-42")
        .await
        .access();
    app.request(
        "PATCH",
        &format!("/list/{id}/"),
        Req::bearer(&access).with_json(json!({
            "password": "patched-password-43", "current_password": "changed-by-hand-42"
        })),
    )
    .await
    .assert_status(200);
    confirm(&app, &uid, &second, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(400, json!({ "token": ["Invalid value"] }));
    // by another reset: the earlier of two tokens dies with the first use
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    let messages = smtp.wait_for(4, WAIT).await;
    let third = param(&link(&messages[2]), "token");
    let fourth = param(&link(&messages[3]), "token");
    confirm(&app, &uid, &fourth, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
    confirm(
        &app,
        &uid,
        &third,
        "one-more-password-8",
        "one-more-password-8",
    )
    .await
    .assert(400, json!({ "token": ["Invalid value"] }));
}

async fn a_reset_ends_every_session_and_clears_failed_logins(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("THROTTLE_LOGIN_FAILURES", "3/15m")]).await;
    let (_, uid, token) = reset_link(&app, &smtp, "jae@example.com").await;
    let first = app.login("jae@example.com", PASSWORD).await;
    let access = first.access();
    let refresh = first.refresh();
    for _ in 0..2 {
        app.login("jae@example.com", "wrong-password-1")
            .await
            .assert_status(401);
    }
    confirm(&app, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
    app.me(&access).await.assert_status(401);
    app.refresh_token(&refresh).await.assert_status(401);
    // the two failures before the reset no longer count
    for _ in 0..2 {
        app.login("jae@example.com", "wrong-password-1")
            .await
            .assert_status(401);
    }
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
}

async fn reset_in_production_without_smtp_is_503(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("LATCHKEY_ENV", "production")]).await;
    app.registered("jae@example.com").await;
    let response = reset(&app, "jae@example.com").await;
    response.assert(
        503,
        json!({ "detail": "Email delivery is not configured." }),
    );
    reset(&app, "nobody@example.com").await.assert(
        503,
        json!({ "detail": "Email delivery is not configured." }),
    );
}

async fn production_refuses_verification_without_smtp_and_insecure_smtp_off_loopback(mut ctx: Ctx) {
    let dir = tempfile::tempdir().unwrap();
    let url = ctx.new_database();
    let base = [
        ("LATCHKEY_ENV", "production"),
        ("SECRET_KEY", TEST_SECRET),
        ("DATABASE_URL", url.as_str()),
    ];
    let run = |extra: &[(&str, &str)]| {
        let mut env = base.to_vec();
        env.extend_from_slice(extra);
        run_latchkey(dir.path(), &["migrate"], &env, None)
    };
    for mode in ["optional", "mandatory"] {
        let output = run(&[("EMAIL_VERIFICATION", mode)]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("EMAIL_VERIFICATION") && stderr.contains("SMTP_URL"),
            "{stderr}"
        );
    }
    let output = run(&[("SMTP_URL", "smtp+insecure://user:hunter2@192.0.2.1:25")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SMTP_URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the SMTP password is never printed"
    );
    // loopback is allowed; so is anything over TLS
    let public_url = ("PUBLIC_URL", "https://auth.example.com");
    assert!(
        run(&[("SMTP_URL", "smtp+insecure://127.0.0.1:25"), public_url])
            .status
            .success()
    );
    assert!(
        run(&[
            ("SMTP_URL", "smtps://u:p@192.0.2.1"),
            ("EMAIL_VERIFICATION", "mandatory"),
            public_url,
        ])
        .status
        .success()
    );
    assert!(run(&[("EMAIL_VERIFICATION", "none")]).status.success());
}

/// `latchkey serve` (the real binary) in the background, logging at
/// `info`; killed on drop.
struct Served;

impl Served {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> ServedBinary {
        let mut all = vec![("RUST_LOG", "info")];
        all.extend_from_slice(env);
        ServedBinary::start(dir, &all).await
    }
}

async fn development_without_smtp_logs_the_email_and_the_request_log_shows_no_token(mut ctx: Ctx) {
    let dir = tempfile::tempdir().unwrap();
    let url = ctx.new_database();
    let server = Served::start(
        dir.path(),
        &[
            ("SECRET_KEY", TEST_SECRET),
            ("DATABASE_URL", url.as_str()),
            ("BCRYPT_COST", "4"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{}{path}", server.base))
            .json(&body)
            .send()
    };
    assert_eq!(
        post(
            "/register/",
            json!({ "email": "jae@example.com", "password": PASSWORD })
        )
        .await
        .unwrap()
        .status(),
        201
    );
    assert_eq!(
        post(
            "/auth/password/reset/",
            json!({ "email": "jae@example.com" })
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let started = Instant::now();
    while !server.output().contains("#reset?uid=") {
        assert!(
            started.elapsed() < WAIT,
            "no email in the log: {}",
            server.output()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.output();
    assert!(log.contains("To: jae@example.com"), "{log}");
    assert!(log.contains("Subject: "), "{log}");
    assert!(log.contains("HTML part"), "{log}");
    // The reset link (the start-up lines name the server's URLs too).
    let link_start = log
        .find("#reset?uid=")
        .and_then(|at| log[..at].rfind("http://"))
        .unwrap();
    let link = log[link_start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let uid = param(&link, "uid");
    let token = param(&link, "token");
    assert_eq!(
        post(
            "/auth/password/reset/confirm/",
            json!({ "uid": uid, "token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD }),
        )
        .await
        .unwrap()
        .status(),
        200
    );
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let log = server.output();
    let requests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("latchkey::request"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("/auth/password/reset/confirm/")),
        "{log}"
    );
    for line in &requests {
        assert!(!line.contains(&token), "a token in the request log: {line}");
        assert!(!line.contains(PASSWORD) && !line.contains(NEW_PASSWORD));
    }
    assert!(
        !log.contains(PASSWORD) && !log.contains(NEW_PASSWORD),
        "no password in the log"
    );
}

// --------------------------------------------------------------- outbox

async fn temporary_refusals_are_retried_until_delivered(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    smtp.tempfail(Some(2));
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_RETRY_MAX", "5m")]).await;
    app.registered("jae@example.com").await;
    let asked = Instant::now();
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the request never waits for SMTP"
    );
    smtp.wait_for(1, WAIT).await;
    // two refusals, then the delivery: retries after 1 s, then 2 s
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let attempts = smtp.attempts();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[0].contains("451") && attempts[1].contains("451"));
    assert_no_more_email(&app, &smtp, 1).await;
    assert_eq!(metric(&app, "latchkey_emails_sent_total").await, 1.0);
    let rows = outbox(&app);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("sent", 3));
}

async fn a_permanent_refusal_is_not_retried(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    smtp.permfail();
    let app = mail_app(&mut ctx, &smtp, &[]).await;
    app.registered("jae@example.com").await;
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    wait_until("the refusal", || !smtp.attempts().is_empty()).await;
    wait_until("the failed row", || {
        outbox(&app).first().is_some_and(|r| r.status == "failed")
    })
    .await;
    smtp.clear_refusals();
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(smtp.attempts().len(), 1, "{:?}", smtp.attempts());
    assert!(smtp.messages().is_empty());
    let rows = outbox(&app);
    assert_eq!(rows[0].attempts, 1);
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550")
    );
    assert_eq!(metric(&app, "latchkey_emails_failed_total").await, 1.0);
    assert_eq!(metric(&app, "latchkey_emails_sent_total").await, 0.0);
    assert_eq!(metric(&app, "latchkey_email_outbox_queued").await, 0.0);
}

async fn after_email_max_attempts_the_email_fails(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    smtp.tempfail(None);
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_MAX_ATTEMPTS", "3")]).await;
    app.registered("jae@example.com").await;
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(&app, "latchkey_email_outbox_queued").await, 1.0);
    wait_until("the failed row", || {
        outbox(&app).first().is_some_and(|r| r.status == "failed")
    })
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(smtp.attempts().len(), 3, "{:?}", smtp.attempts());
    assert_eq!(outbox(&app)[0].attempts, 3);
    assert_eq!(metric(&app, "latchkey_emails_failed_total").await, 1.0);
    assert_eq!(metric(&app, "latchkey_email_outbox_queued").await, 0.0);
}

async fn queued_mail_survives_a_restart_and_goes_out_when_smtp_is_back(mut ctx: Ctx) {
    let mut smtp = SmtpServer::reserved();
    let url = ctx.new_database();
    let smtp_url = smtp.url();
    let settings = [
        ("SMTP_URL", smtp_url.as_str()),
        ("PUBLIC_URL", "http://latchkey.test"),
        ("EMAIL_RETRY_MAX", "1s"),
    ];
    let first = ctx.spawn_on(&url, &settings).await;
    first.registered("jae@example.com").await;
    let asked = Instant::now();
    reset(&first, "jae@example.com")
        .await
        .assert(200, sent_detail());
    assert!(asked.elapsed() < Duration::from_secs(2), "answered at once");
    // a try or two fail while SMTP is down
    wait_until("a failed try", || {
        outbox(&first).first().is_some_and(|r| r.attempts >= 1)
    })
    .await;
    assert_eq!(outbox(&first)[0].status, "queued");
    first.stop().await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let second = ctx.spawn_on(&url, &settings).await;
    smtp.resume();
    let messages = smtp.wait_for(1, WAIT).await;
    assert_no_more_email(&second, &smtp, 1).await;
    assert_eq!(messages[0]["to"], "jae@example.com");
    let token = param(&link(&messages[0]), "token");
    let uid = param(&link(&messages[0]), "uid");
    confirm(&second, &uid, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert(200, done_detail());
    let rows = outbox(&second);
    eprintln!(
        "durability ({:?}): 1 reset requested with SMTP down, latchkey restarted, SMTP started: {} email(s) delivered after {} tr(ies)",
        ctx.backend,
        messages.len(),
        rows[0].attempts
    );
    assert_eq!(rows[0].status, "sent");
}

async fn sent_rows_are_pruned_after_the_retention(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_RETENTION", "1s")]).await;
    app.registered("jae@example.com").await;
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    smtp.wait_for(1, WAIT).await;
    wait_until("the sent row to be pruned", || outbox(&app).is_empty()).await;
}

// --------------------------------------------------------- verification

async fn verify(app: &TestApp, key: &str) -> latchkey_tests::Response {
    app.post_json("/auth/registration/verify-email/", json!({ "key": key }))
        .await
}

fn not_found() -> Value {
    json!({ "detail": "Not found." })
}

async fn optional_verification_sends_a_key_that_verifies_the_address(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_VERIFICATION", "optional")]).await;
    let registered = app.registered("jae@example.com").await;
    assert_eq!(registered.body["message"], "register success");
    assert_eq!(registered.body["user"]["email_verified"], false);
    let access = registered.access();
    let messages = smtp.wait_for(1, WAIT).await;
    let link = link(&messages[0]);
    assert!(
        link.starts_with("http://latchkey.test/demo/#verify?key="),
        "{link}"
    );
    assert_eq!(messages[0]["to"], "jae@example.com");
    assert!(
        messages[0]["html"]
            .as_str()
            .unwrap()
            .contains(&param(&link, "key"))
    );
    // optional: login does not wait for it
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    let key = param(&link, "key");
    verify(&app, "wrong-key").await.assert(404, not_found());
    verify(&app, &key)
        .await
        .assert(200, json!({ "detail": "ok" }));
    assert_eq!(app.me(&access).await.body["email_verified"], true);
    // the latest key may be used again
    verify(&app, &key)
        .await
        .assert(200, json!({ "detail": "ok" }));
    app.post_json("/auth/registration/verify-email/", json!({}))
        .await
        .assert(400, json!({ "key": ["This field is required."] }));
}

async fn mandatory_verification_holds_tokens_until_the_address_is_verified(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_VERIFICATION", "mandatory")]).await;
    let registered = app.register("jae@example.com", PASSWORD).await;
    registered.assert_status(201);
    assert_eq!(registered.body["message"], "Verification e-mail sent.");
    assert_eq!(registered.body["user"]["email"], "jae@example.com");
    assert_eq!(registered.body["user"]["email_verified"], false);
    assert_eq!(
        registered
            .body
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["message", "user"]
    );
    assert!(registered.set_cookies().is_empty(), "no cookies");
    let unverified = json!({ "detail": "E-mail is not verified.", "code": "email_not_verified" });
    app.login("jae@example.com", PASSWORD)
        .await
        .assert(401, unverified.clone());
    app.post_json(
        "/auth/sliding/",
        json!({ "email": "jae@example.com", "password": PASSWORD }),
    )
    .await
    .assert(401, unverified);
    app.login("jae@example.com", "wrong-password-1")
        .await
        .assert_status(401);
    assert_eq!(
        app.login("jae@example.com", "wrong-password-1").await.body["code"],
        "no_active_account"
    );
    // a field error is still a field error
    app.register("jae@example.com", PASSWORD)
        .await
        .assert_status(400);
    let messages = smtp.wait_for(1, WAIT).await;
    verify(&app, &param(&link(&messages[0]), "key"))
        .await
        .assert(200, json!({ "detail": "ok" }));
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["email_verified"], true);
    app.post_json(
        "/auth/sliding/",
        json!({ "email": "jae@example.com", "password": PASSWORD }),
    )
    .await
    .assert_status(200);
}

async fn a_newer_key_or_an_expired_one_is_not_found(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_VERIFICATION", "optional")]).await;
    app.registered("jae@example.com").await;
    smtp.wait_for(1, WAIT).await;
    app.post_json(
        "/auth/registration/resend-email/",
        json!({ "email": "jae@example.com" }),
    )
    .await
    .assert(200, json!({ "detail": "ok" }));
    let messages = smtp.wait_for(2, WAIT).await;
    let first = param(&link(&messages[0]), "key");
    let second = param(&link(&messages[1]), "key");
    assert_ne!(first, second);
    verify(&app, &first).await.assert(404, not_found());
    verify(&app, &second)
        .await
        .assert(200, json!({ "detail": "ok" }));
    drop(app);

    let smtp = SmtpServer::start();
    let app = mail_app(
        &mut ctx,
        &smtp,
        &[
            ("EMAIL_VERIFICATION", "optional"),
            ("EMAIL_VERIFICATION_TIMEOUT", "1s"),
        ],
    )
    .await;
    app.registered("jae@example.com").await;
    let messages = smtp.wait_for(1, WAIT).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    verify(&app, &param(&link(&messages[0]), "key"))
        .await
        .assert(404, not_found());
}

async fn resend_answers_ok_whatever_the_address(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_VERIFICATION", "optional")]).await;
    let id = app.registered("verified@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    smtp.wait_for(1, WAIT).await;
    set_user(
        &app,
        id,
        UserChanges {
            email_verified: Some(true),
            ..UserChanges::default()
        },
    );
    for email in ["nobody@example.com", "verified@example.com"] {
        app.post_json(
            "/auth/registration/resend-email/",
            json!({ "email": email }),
        )
        .await
        .assert(200, json!({ "detail": "ok" }));
    }
    assert_no_more_email(&app, &smtp, 1).await;
}

async fn an_email_change_is_verified_again(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("EMAIL_VERIFICATION", "optional")]).await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    let messages = smtp.wait_for(1, WAIT).await;
    let old_key = param(&link(&messages[0]), "key");
    verify(&app, &old_key)
        .await
        .assert(200, json!({ "detail": "ok" }));
    let access = app.login("jae@example.com", PASSWORD).await.access();
    // by the user, with current_password
    let changed = app
        .request(
            "PATCH",
            &format!("/list/{id}/"),
            Req::bearer(&access).with_json(json!({
                "email": "jae@new.example.com", "current_password": PASSWORD
            })),
        )
        .await;
    changed.assert_status(200);
    assert_eq!(changed.body["email_verified"], false);
    let messages = smtp.wait_for(2, WAIT).await;
    assert_eq!(messages[1]["to"], "jae@new.example.com");
    let new_key = param(&link(&messages[1]), "key");
    // the key sent to the earlier address is superseded
    verify(&app, &old_key).await.assert(404, not_found());
    verify(&app, &new_key)
        .await
        .assert(200, json!({ "detail": "ok" }));
    assert_eq!(app.me(&access).await.body["email_verified"], true);
    // by staff
    let (_, staff) = app.user_with_flags("staff@example.com", true, false).await;
    let messages_before = smtp.wait_for(3, WAIT).await.len();
    let by_staff = app
        .request(
            "PATCH",
            &format!("/list/{id}/"),
            Req::bearer(&staff).with_json(json!({ "email": "jae@third.example.com" })),
        )
        .await;
    by_staff.assert_status(200);
    assert_eq!(by_staff.body["email_verified"], false);
    let messages = smtp.wait_for(messages_before + 1, WAIT).await;
    assert_eq!(messages[messages_before]["to"], "jae@third.example.com");
    verify(&app, &new_key).await.assert(404, not_found());
}

async fn flush_expired_tokens_clears_reset_and_verification_state(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(
        &mut ctx,
        &smtp,
        &[
            ("PASSWORD_RESET_TIMEOUT", "1s"),
            ("EMAIL_VERIFICATION", "optional"),
            ("EMAIL_VERIFICATION_TIMEOUT", "1s"),
        ],
    )
    .await;
    app.registered("jae@example.com").await;
    reset(&app, "jae@example.com")
        .await
        .assert(200, sent_detail());
    smtp.wait_for(2, WAIT).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["flush-expired-tokens"],
        &[
            ("SECRET_KEY", TEST_SECRET),
            ("DATABASE_URL", &app.database_url),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(
            "Deleted 1 expired password reset token(s) and 1 expired email verification key(s)."
        ),
        "{stdout}"
    );
}

async fn the_email_routes_take_both_slash_forms_and_the_per_ip_bucket(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp, &[("THROTTLE_AUTH_PER_IP", "3/1m")]).await;
    reset(&app, "a@example.com")
        .await
        .assert(200, sent_detail());
    app.post_json("/auth/password/reset", json!({ "email": "b@example.com" }))
        .await
        .assert(200, sent_detail());
    app.post_json(
        "/auth/registration/resend-email",
        json!({ "email": "c@example.com" }),
    )
    .await
    .assert(200, json!({ "detail": "ok" }));
    // the bucket is shared with the other auth endpoints: the fourth is 429
    let throttled = confirm(&app, "MQ", "x", NEW_PASSWORD, NEW_PASSWORD).await;
    throttled.assert_status(429);
    assert!(throttled.header("retry-after").is_some());
    let get = app.get("/auth/password/reset/", Req::default()).await;
    get.assert_status(405);
    assert!(get.header("allow").is_some_and(|a| a.starts_with("POST")));
    for path in [
        "/auth/password/reset/confirm",
        "/auth/registration/verify-email",
        "/auth/registration/resend-email/",
    ] {
        let get = app.get(path, Req::default()).await;
        assert_eq!(get.status, 405, "{path}");
    }
    // verify-email is not in the bucket (its keys cannot be guessed)
    app.post_json("/auth/registration/verify-email", json!({ "key": "nope" }))
        .await
        .assert(404, not_found());
}

async fn the_openapi_description_lists_the_email_routes(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let spec = app.get("/openapi.json", Req::default()).await.body;
    for path in [
        "/auth/password/reset/",
        "/auth/password/reset/confirm/",
        "/auth/registration/verify-email/",
        "/auth/registration/resend-email/",
    ] {
        assert!(spec["paths"][path].get("post").is_some(), "{path} missing");
    }
}

// ------------------------------------------------------- exactly once

/// Every table's row count, by table name.
fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let db = open(&app.database_url);
    let mut conn = db.get().unwrap();
    let tables = match app.backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
    };
    let tables: Vec<Table> = diesel::sql_query(tables).load(&mut **conn).unwrap();
    assert!(tables.len() > 5, "{} tables", tables.len());
    tables
        .into_iter()
        .map(|table| {
            let count: Count =
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM \"{}\"", table.name))
                    .get_result(&mut **conn)
                    .unwrap();
            (table.name, count.n)
        })
        .collect()
}

/// Makes the capture server answer each DATA only after `seconds`.
fn stall(smtp: &SmtpServer, seconds: f64) {
    std::fs::write(smtp.dir().join("stall"), seconds.to_string()).unwrap();
}

async fn a_reset_request_writes_the_same_rows_whether_or_not_the_address_has_an_account(
    mut ctx: Ctx,
) {
    let mut written = Vec::new();
    for address in ["alice@example.com", "nobody@example.com"] {
        let smtp = SmtpServer::start();
        let app = mail_app(&mut ctx, &smtp, &[]).await;
        app.registered("alice@example.com").await;
        // A first email keeps the sender in SMTP for 3 s, so the request
        // under test is seen exactly as it left the database.
        stall(&smtp, 3.0);
        reset(&app, "alice@example.com")
            .await
            .assert(200, sent_detail());
        wait_until("the sender to take the first request", || {
            outbox(&app)
                .first()
                .is_some_and(|row| row.kind == "message")
        })
        .await;
        let before = row_counts(&app);
        reset(&app, address).await.assert(200, sent_detail());
        let after = row_counts(&app);
        let rows = outbox(&app);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            (rows[1].kind.as_str(), rows[1].recipient.as_str()),
            ("password_reset", address)
        );
        let grown: BTreeMap<&String, i64> = after
            .iter()
            .filter(|(table, n)| before[*table] != **n)
            .map(|(table, n)| (table, n - before[table]))
            .collect();
        assert_eq!(
            format!("{grown:?}"),
            r#"{"email_outbox": 1}"#,
            "{address}: {before:?} -> {after:?}"
        );
        written.push(after);
        // Resolved by the sender: a second email for the account, nothing
        // for the unknown address (its row is gone).
        std::fs::remove_file(smtp.dir().join("stall")).unwrap();
        let expected = if address == "alice@example.com" { 2 } else { 1 };
        let messages = smtp.wait_for(expected, WAIT).await;
        assert_no_more_email(&app, &smtp, expected).await;
        assert!(messages.iter().all(|m| m["to"] == "alice@example.com"));
        let rows = outbox(&app);
        assert_eq!(rows.len(), expected, "{rows:?}");
        assert!(rows.iter().all(|row| row.status == "sent"), "{rows:?}");
    }
    assert_eq!(written[0], written[1], "known vs unknown address");
}

async fn a_slow_smtp_server_outliving_the_lease_still_sends_each_email_once(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    // 8 emails at 0.6 s each: a batch takes 4.8 s, the lease is 1 s.
    stall(&smtp, 0.6);
    let url = ctx.new_database();
    let smtp_url = smtp.url();
    let settings = [
        ("SMTP_URL", smtp_url.as_str()),
        ("PUBLIC_URL", "http://latchkey.test"),
        ("LATCHKEY_EMAIL_LEASE", "1s"),
    ];
    let a = ctx.spawn_on(&url, &settings).await;
    let b = ctx.spawn_on(&url, &settings).await;
    let recipients: Vec<String> = (0..8).map(|n| format!("user{n}@example.com")).collect();
    // Queued in one transaction, so the first sender to look claims them
    // all in one batch; the other claims each lease that runs out.
    {
        let db = open(&url);
        let mut conn = db.get().unwrap();
        write_transaction(&mut conn, |conn| {
            for recipient in &recipients {
                OutboxEmail::enqueue(
                    conn,
                    &NewOutboxEmail::new(recipient, "Lease test", "text", "<p>html</p>", db_now()),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    }
    let messages = smtp.wait_for(recipients.len(), WAIT).await;
    // Long enough for any second delivery of a row whose lease ran out.
    smtp.assert_count_stays(recipients.len(), Duration::from_secs(3))
        .await;
    let mut delivered: Vec<String> = messages
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    assert_eq!(delivered, recipients);
    assert_eq!(
        smtp.attempts().len(),
        recipients.len(),
        "{:?}",
        smtp.attempts()
    );
    let rows = outbox(&a);
    assert!(
        rows.iter()
            .all(|row| row.status == "sent" && row.attempts == 1),
        "{rows:?}"
    );
    drop((a, b));
}

async fn two_instances_send_fifty_resets_exactly_once(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let url = ctx.new_database();
    let smtp_url = smtp.url();
    let settings = [
        ("SMTP_URL", smtp_url.as_str()),
        ("PUBLIC_URL", "http://latchkey.test"),
        ("EMAIL_RETRY_MAX", "1s"),
    ];
    let a = ctx.spawn_on(&url, &settings).await;
    let b = ctx.spawn_on(&url, &settings).await;
    let emails: Vec<String> = (0..50).map(|n| format!("user{n}@example.com")).collect();
    for email in &emails {
        a.registered(email).await;
    }
    let requests = emails.iter().enumerate().map(|(n, email)| {
        let app = if n % 2 == 0 { &a } else { &b };
        reset(app, email)
    });
    for response in futures_util::future::join_all(requests).await {
        response.assert(200, sent_detail());
    }
    let messages = smtp.wait_for(50, Duration::from_secs(60)).await;
    smtp.assert_count_stays(50, Duration::from_secs(3)).await;
    let mut recipients: Vec<String> = messages
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_owned())
        .collect();
    recipients.sort();
    let mut expected = emails.clone();
    expected.sort();
    assert_eq!(recipients, expected, "each address exactly once");
    let sent_a = metric(&a, "latchkey_emails_sent_total").await;
    let sent_b = metric(&b, "latchkey_emails_sent_total").await;
    assert_eq!(sent_a + sent_b, 50.0);
    let rows = outbox(&a);
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r.status == "sent" && r.attempts == 1));
    eprintln!(
        "exactly once: 2 instances on one PostgreSQL, 50 resets -> {} emails at the SMTP server ({} distinct recipients); instance A sent {sent_a}, instance B sent {sent_b}; {} SMTP attempts",
        messages.len(),
        {
            let mut r = recipients.clone();
            r.dedup();
            r.len()
        },
        smtp.attempts().len()
    );
}
