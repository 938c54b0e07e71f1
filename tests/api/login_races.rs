//! A login racing a password change or reset (finding D1 of the
//! 2026-12-07 security review). The contract: "A login (any first factor)
//! starts its session only if, in the same write transaction, the user's
//! stored password hash is still the one it verified and nothing revoked
//! the user in between […]. So a login racing a password change or reset
//! never leaves a live session, and never writes the old password back."
//!
//! Each trial registers a fresh user, then sends logins with the old
//! password from OS threads over connections opened beforehand — a burst
//! 40 ms apart around one revocation, or one attacker logging in again and
//! again — while the owner changes or resets the password. A second after
//! the revocation answered, every token any of those logins got is tried:
//! none may work. Then only the new password may log in. Password checks
//! cost bcrypt 10 here, as in the review, so a login's check spans the
//! revocation. `LATCHKEY_LOGIN_RACE_TRIALS` sets the trials (default 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use latchkey_tests::smtp::{SmtpServer, link, param};
use latchkey_tests::{Ctx, PASSWORD, TestApp, tests};
use serde_json::{Value, json};

use crate::races::{Answer, Raw, exchange};

tests![
    logins_racing_a_password_change_leave_no_session,
    logins_racing_a_password_reset_leave_no_session,
    logins_due_for_an_upgrade_racing_a_password_change_never_write_the_old_password_back,
    sliding_logins_racing_a_password_change_leave_no_session,
    an_attacker_logging_in_through_a_reset_keeps_no_session,
];

const NEW_PASSWORD: &str = "a-brand-new-horse-77";
/// The review's cost: a check takes tens of milliseconds.
const SLOW: &[(&str, &str)] = &[("BCRYPT_COST", "10")];
const LOGINS: u64 = 16;
const SPACING: Duration = Duration::from_millis(40);
/// Early in the burst, between two logins: the logins after it read the user
/// before it commits (it waits for its hashing behind theirs) and end after.
const EARLY: Duration = Duration::from_millis(140);
/// Right after the first login: the logins that read the hash before the
/// first upgrade was written each carry an upgrade of the old password,
/// and one whose hashing queues behind the change's ends after it.
const FIRST: Duration = Duration::from_millis(20);

fn trials() -> usize {
    std::env::var("LATCHKEY_LOGIN_RACE_TRIALS")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|trials| *trials > 0)
        .unwrap_or(3)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Revocation {
    /// `POST /auth/password/` with the owner's access token.
    Change,
    /// `POST /auth/password/reset/confirm/` with the emailed link.
    Reset,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Login {
    Pair,
    Sliding,
}

async fn logins_racing_a_password_change_leave_no_session(mut ctx: Ctx) {
    let app = ctx.spawn_with(SLOW).await;
    burst_trials(&app, None, Revocation::Change, Login::Pair, &app, EARLY).await;
}

async fn logins_racing_a_password_reset_leave_no_session(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp).await;
    burst_trials(
        &app,
        Some(&smtp),
        Revocation::Reset,
        Login::Pair,
        &app,
        EARLY,
    )
    .await;
}

/// Registered at bcrypt 4, logging in at 10: every login's check carries
/// an upgrade of the hash, made from the old password.
async fn logins_due_for_an_upgrade_racing_a_password_change_never_write_the_old_password_back(
    mut ctx: Ctx,
) {
    let cheap = ctx.spawn().await;
    let url = cheap.database_url.clone();
    let app = ctx.spawn_on(&url, SLOW).await;
    burst_trials(&app, None, Revocation::Change, Login::Pair, &cheap, FIRST).await;
}

async fn sliding_logins_racing_a_password_change_leave_no_session(mut ctx: Ctx) {
    let app = ctx.spawn_with(SLOW).await;
    burst_trials(&app, None, Revocation::Change, Login::Sliding, &app, EARLY).await;
}

/// The review's reproduction 1: one attacker, one login at a time, while the
/// owner confirms a reset.
async fn an_attacker_logging_in_through_a_reset_keeps_no_session(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let app = mail_app(&mut ctx, &smtp).await;
    let mut failures = Vec::new();
    let mut logins = 0;
    for trial in 0..trials() {
        let email = format!("attacked-{trial}@example.com");
        app.registered(&email).await;
        let (uid, token) = reset_link(&app, &smtp, &email).await;
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (port, stop) = (app.port, Arc::clone(&stop));
            let login = login_request(Login::Pair, &email, PASSWORD);
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let (mut stream, bytes) = login.prepare(port);
                    answers.push(exchange(&mut stream, &bytes));
                }
                answers
            })
        };
        actix_web::rt::time::sleep(Duration::from_millis(300 + 150 * trial as u64)).await;
        let confirmed = reset_confirm(&uid, &token);
        let port = app.port;
        let answer = actix_web::rt::task::spawn_blocking(move || {
            let (mut stream, bytes) = confirmed.prepare(port);
            exchange(&mut stream, &bytes)
        })
        .await
        .unwrap();
        assert_eq!(answer.status, 200, "reset confirm: {}", answer.text);
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Release);
        let answers = actix_web::rt::task::spawn_blocking(move || attacker.join().unwrap())
            .await
            .unwrap();
        logins += answers.iter().filter(|a| a.status == 200).count();
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        failures.extend(live_sessions(&app, Login::Pair, &answers, trial).await);
        failures.extend(only_the_new_password_logs_in(&app, &email, trial).await);
    }
    eprintln!(
        "login race summary: sequential attacker through a reset on {}: {logins} old-password \
         logins answered 200; failures: {failures:?}",
        app.backend
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

async fn mail_app(ctx: &mut Ctx, smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    let mut overrides = vec![
        ("SMTP_URL", url.as_str()),
        ("PUBLIC_URL", "http://latchkey.test"),
    ];
    overrides.extend_from_slice(SLOW);
    ctx.spawn_with(&overrides).await
}

/// `trials()` bursts of logins around one revocation each, sent at
/// `revoke_at` into the burst. Users are registered through `registrar` (a
/// server with a cheaper hasher, for hashes due for an upgrade), logged in
/// through `app`.
async fn burst_trials(
    app: &TestApp,
    smtp: Option<&SmtpServer>,
    revocation: Revocation,
    login: Login,
    registrar: &TestApp,
    revoke_at: Duration,
) {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut logins = 0;
    for trial in 0..trials() {
        let email = format!("burst-{trial}@example.com");
        let registered = registrar.registered(&email).await;
        let revoke = match revocation {
            Revocation::Change => Raw::new("POST", "/auth/password/")
                .bearer(&registered.access())
                .json(json!({"old_password": PASSWORD, "new_password": NEW_PASSWORD})),
            Revocation::Reset => {
                let smtp = smtp.expect("an SMTP server for a reset");
                let (uid, token) = reset_link(app, smtp, &email).await;
                reset_confirm(&uid, &token)
            }
        };
        let request = login_request(login, &email, PASSWORD);
        let port = app.port;
        let (answers, revoked) =
            actix_web::rt::task::spawn_blocking(move || burst(port, &request, &revoke, revoke_at))
                .await
                .unwrap();
        assert_eq!(revoked.status, 200, "the revocation: {}", revoked.text);
        logins += answers.iter().filter(|a| a.status == 200).count();
        for answer in &answers {
            assert!(
                answer.status == 200 || answer.status == 401,
                "a racing login answered {}: {}",
                answer.status,
                answer.text
            );
        }
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        failures.extend(live_sessions(app, login, &answers, trial).await);
        failures.extend(only_the_new_password_logs_in(app, &email, trial).await);
    }
    eprintln!(
        "login race summary: {} logins around a {} on {}, {} trials: {logins} old-password \
         logins answered 200; failures: {failures:?} ({:.1} s)",
        if login == Login::Sliding {
            "sliding"
        } else {
            "pair"
        },
        if revocation == Revocation::Change {
            "password change"
        } else {
            "password reset"
        },
        app.backend,
        trials(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

fn login_request(login: Login, email: &str, password: &str) -> Raw {
    let path = match login {
        Login::Pair => "/auth/",
        Login::Sliding => "/auth/sliding/",
    };
    Raw::new("POST", path).json(json!({"email": email, "password": password}))
}

fn reset_confirm(uid: &str, token: &str) -> Raw {
    Raw::new("POST", "/auth/password/reset/confirm/").json(json!({
        "uid": uid,
        "token": token,
        "new_password1": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
    }))
}

async fn reset_link(app: &TestApp, smtp: &SmtpServer, email: &str) -> (String, String) {
    let before = smtp.messages().len();
    app.post_json("/auth/password/reset/", json!({ "email": email }))
        .await
        .assert_status(200);
    let messages = smtp.wait_for(before + 1, Duration::from_secs(20)).await;
    let link = link(&messages[before]);
    (param(&link, "uid"), param(&link, "token"))
}

/// `LOGINS` logins `SPACING` apart and the revocation at `revoke_at`, each
/// on a thread and a connection of its own, opened beforehand.
fn burst(port: u16, login: &Raw, revocation: &Raw, revoke_at: Duration) -> (Vec<Answer>, Answer) {
    let start = Instant::now() + Duration::from_millis(50);
    let at = move |offset: Duration| {
        let due = start + offset;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    };
    let logins: Vec<_> = (0..LOGINS)
        .map(|n| {
            let (mut stream, bytes) = login.prepare(port);
            std::thread::spawn(move || {
                at(SPACING * n as u32);
                exchange(&mut stream, &bytes)
            })
        })
        .collect();
    let revoking = {
        let (mut stream, bytes) = revocation.prepare(port);
        std::thread::spawn(move || {
            at(revoke_at);
            exchange(&mut stream, &bytes)
        })
    };
    let answers = logins.into_iter().map(|t| t.join().unwrap()).collect();
    (answers, revoking.join().unwrap())
}

/// Every token a 200 login got must be refused now: by `GET /auth/`, and
/// by refresh (or sliding refresh).
async fn live_sessions(
    app: &TestApp,
    login: Login,
    answers: &[Answer],
    trial: usize,
) -> Vec<String> {
    let mut live = Vec::new();
    for (n, answer) in answers.iter().enumerate().filter(|(_, a)| a.status == 200) {
        let (access, refreshed) = match login {
            Login::Pair => {
                let access = token(&answer.body, "access");
                let refresh = token(&answer.body, "refresh");
                (access, app.refresh_token(&refresh).await)
            }
            Login::Sliding => {
                let sliding = token(&answer.body, "token");
                (sliding.clone(), app.sliding_refresh(&sliding).await)
            }
        };
        let me = app.me(&access).await;
        if me.status != 401 || refreshed.status != 401 {
            live.push(format!(
                "trial {trial}, login {n}: GET /auth/ {}, refresh {}",
                me.status, refreshed.status
            ));
        }
    }
    live
}

/// A login's token, wherever its body keeps it (`token.access` of `POST
/// /auth/`, `token` of the sliding login).
fn token(body: &Value, name: &str) -> String {
    body["token"][name]
        .as_str()
        .or(body[name].as_str())
        .unwrap_or_else(|| panic!("no {name} token in {body}"))
        .to_owned()
}

async fn only_the_new_password_logs_in(app: &TestApp, email: &str, trial: usize) -> Vec<String> {
    let mut wrong = Vec::new();
    let old = app.login(email, PASSWORD).await;
    if old.status != 401 {
        wrong.push(format!(
            "trial {trial}: the OLD password logs in: {}",
            old.status
        ));
    }
    let new = app.login(email, NEW_PASSWORD).await;
    if new.status != 200 {
        wrong.push(format!(
            "trial {trial}: the new password does not log in: {} {}",
            new.status, new.body["code"]
        ));
    }
    wrong
}
