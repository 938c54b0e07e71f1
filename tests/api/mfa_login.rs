//! The login's second step (issue 22; "Logging in with a second factor" and
//! "Details of the second-factor rules", v3, and `docs/api.md`'s `POST
//! /auth/mfa/verify/`): a TOTP user's password login and sliding login
//! answer `mfa_required` with an `mfa_token` and nothing else (an inactive
//! one `no_active_account`, a pending secret no second step); `POST
//! /auth/mfa/verify/` with pyotp's code or a recovery code then answers as
//! the first factor would have, at `aal` 2, and sends a notice for a
//! recovery code; the token is single use, dies after 5 wrong codes and
//! expires; wrong codes are failed logins; a step counts once per user,
//! across re-enrolment; a password change, a deactivation, a logout
//! everywhere, a deletion or an address no longer verified since the
//! password step refuse the second (Hardening v3); only `verify/` is in the
//! per-IP bucket. Codes come from pyotp 2.12.0 (the enrolment helper's
//! `latchkey_tests::mfa_enrol`), so these are `django:` tests (the venv).

use std::time::Duration;

use latchkey_tests::app::Req;
use latchkey_tests::mfa_enrol::{
    Authenticator, Enrolled, assert_throttled, confirm_with, login_with_totp, mfa_token_for,
    mfa_token_of, notices, paths, start_enrolment, verify_mfa,
};
use latchkey_tests::smtp::SmtpServer;
use latchkey_tests::{Ctx, PASSWORD, Response, TestApp, TestUser, payload, tests};
use serde_json::{Value, json};

tests![
    django:
    a_totp_users_password_login_answers_mfa_required_and_starts_no_session,
    a_totp_users_sliding_login_answers_mfa_required,
    a_wrong_password_of_a_totp_user_is_still_no_active_account,
    the_mfa_token_names_the_user_and_the_first_factor_for_mfa_token_lifetime,
    verify_with_a_totp_code_answers_as_the_password_login_would,
    verify_after_a_sliding_login_answers_a_sliding_token,
    the_mfa_token_stops_working_once_used,
    recovery_codes_complete_the_login_once_each_in_any_case_and_spacing,
    a_recovery_code_completes_a_sliding_login,
    a_wrong_code_is_400_and_the_right_one_still_logs_in,
    wrong_codes_are_failed_logins_and_past_the_limit_even_the_right_code_is_429,
    a_right_password_answering_mfa_required_does_not_reset_the_failure_count,
    a_completed_login_resets_the_failure_count,
    five_wrong_codes_end_the_mfa_token,
    wrong_recovery_codes_spend_the_same_five_tries,
    the_step_used_at_confirm_is_refused_at_verify,
    a_step_used_at_verify_is_refused_at_the_next_login,
    the_last_step_survives_disabling_and_enrolling_again,
    verify_is_in_the_per_ip_bucket_and_the_other_mfa_routes_are_not,
    an_expired_mfa_token_is_401_and_spends_nothing,
    a_deactivated_totp_user_gets_no_active_account_not_mfa_required,
    a_pending_secret_asks_for_no_second_factor,
    a_password_change_between_the_steps_refuses_the_second_and_spends_no_step,
    deactivation_between_the_steps_refuses_the_second,
    logout_everywhere_between_the_steps_refuses_the_second,
    a_user_deleted_between_the_steps_makes_the_mfa_token_invalid,
    an_address_no_longer_verified_under_mandatory_refuses_the_second_step,
    a_recovery_code_login_sends_the_notice_and_a_totp_login_none,
];

const NO_ACCOUNT: &str = "No active account found with the given credentials";

fn no_active_account() -> Value {
    json!({"detail": NO_ACCOUNT, "code": "no_active_account"})
}

fn amr_aal(token: &str) -> (Value, Value) {
    let claims = payload(token);
    (claims["amr"].clone(), claims["aal"].clone())
}

fn pwd_otp() -> (Value, Value) {
    (json!(["pwd", "otp"]), json!(2))
}

fn pwd_rec() -> (Value, Value) {
    (json!(["pwd", "rec"]), json!(2))
}

// The second step's helpers that the login, input and race tests share,
// on top of the enrolment helper's `latchkey_tests::mfa_enrol`.

/// How long a code handed out by [`earliest_code`] stays accepted at
/// least.
const MARGIN_MS: i64 = 3000;

/// The code of the step before the current one when this user has sent no
/// later step and the server accepts it for [`MARGIN_MS`] more; else
/// [`Authenticator::next_code`] (the current step, then the next). Three
/// codes in one step, where `next_code` alone gives two and then waits for
/// the next step.
pub(crate) async fn earliest_code(totp: &mut Authenticator) -> String {
    let current = totp.counter_now();
    let previous = current - 1;
    let accepted_until_ms = (totp.t0 + (current + 1) * totp.step) * 1000;
    let left_ms = accepted_until_ms - chrono::Utc::now().timestamp_millis();
    if totp.last.is_none_or(|last| last < previous) && left_ms > MARGIN_MS {
        totp.last = Some(previous);
        return totp.code_at(previous);
    }
    totp.next_code().await
}

/// The code of the last step sent: a replay.
pub(crate) fn last_code(totp: &Authenticator) -> String {
    totp.code_at(totp.last.expect("a step was sent"))
}

/// Confirms the pending `secret` as `user` with [`earliest_code`]
/// (asserting the 200). `totp` is the user's app: steps it sent before
/// stay sent.
pub(crate) async fn confirmed(
    user: &TestUser,
    mut totp: Authenticator,
    secret: String,
    otpauth_url: String,
) -> Enrolled {
    let code = earliest_code(&mut totp).await;
    confirm_with(user, totp, &code, secret, otpauth_url).await
}

/// Registers `email` with [`PASSWORD`] and enables TOTP through the
/// routes, confirmed with the earliest step accepted (so the test has the
/// two next ones without waiting).
pub(crate) async fn enrolled(app: &TestApp, email: &str) -> Enrolled {
    let user = app.user(email).await;
    let (secret, otpauth_url) = start_enrolment(&user).await;
    let totp = Authenticator::new(&secret);
    confirmed(&user, totp, secret, otpauth_url).await
}

/// `POST /auth/` with [`PASSWORD`], which must answer `mfa_required`.
pub(crate) async fn password_step(app: &TestApp, email: &str) -> String {
    mfa_token_for(app, email, PASSWORD).await
}

/// `POST /auth/sliding/` with [`PASSWORD`], which must answer
/// `mfa_required`.
pub(crate) async fn sliding_password_step(app: &TestApp, email: &str) -> String {
    mfa_token_of(&app.sliding(email, PASSWORD).await)
}

/// `POST /auth/mfa/verify/ {"mfa_token", "code"}`.
pub(crate) async fn verify_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    verify_mfa(app, mfa_token, json!({ "code": code })).await
}

/// `POST /auth/mfa/verify/ {"mfa_token", "recovery_code"}`.
pub(crate) async fn verify_recovery_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    verify_mfa(app, mfa_token, json!({ "recovery_code": code })).await
}

/// A wrong code's 400, under `field` (`code` or `recovery_code`).
pub(crate) fn incorrect(field: &str) -> Value {
    json!({ field: ["Incorrect code."] })
}

/// A spent, expired, forged or foreign `mfa_token`'s 401.
pub(crate) fn token_not_valid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

/// A `Set-Cookie` line without its value and expiry date: what the cookie
/// is (name, path, flags, lifetime), whichever token it carries.
fn cookie_shape(line: &str) -> String {
    line.split(';')
        .map(str::trim)
        .enumerate()
        .filter(|(_, part)| !part.to_ascii_lowercase().starts_with("expires="))
        .map(|(n, part)| {
            if n == 0 {
                part.split_once('=')
                    .map_or(part, |(name, _)| name)
                    .to_owned()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn cookie_shapes(response: &Response) -> Vec<String> {
    let mut shapes: Vec<String> = response
        .set_cookies()
        .iter()
        .map(|line| cookie_shape(line))
        .collect();
    shapes.sort();
    shapes
}

/// The sessions `user`'s token lists: `(id, amr, aal, current)` of each.
async fn sessions_of(app: &TestApp, access: &str) -> Vec<(String, Value, Value, Value)> {
    let listed = app.sessions(access).await;
    listed.assert_status(200);
    listed.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["amr"].clone(),
                s["aal"].clone(),
                s["current"].clone(),
            )
        })
        .collect()
}

async fn a_totp_users_password_login_answers_mfa_required_and_starts_no_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    let before = sessions_of(&app, &jae.user.access).await;
    let login = app.login("jae@example.com", PASSWORD).await;
    // The whole body, WWW-Authenticate, no access or refresh cookie; it
    // carries a token, so no cache keeps it.
    let mfa_token = mfa_token_of(&login);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    // Also with the email typed differently, and a second time: a new token.
    let again = app.login("  JAE@Example.com", PASSWORD).await;
    assert_ne!(mfa_token_of(&again), mfa_token);
    assert_eq!(sessions_of(&app, &jae.user.access).await, before);
}

async fn a_totp_users_sliding_login_answers_mfa_required(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    let before = sessions_of(&app, &jae.user.access).await;
    let login = app.sliding("jae@example.com", PASSWORD).await;
    mfa_token_of(&login);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    assert_eq!(sessions_of(&app, &jae.user.access).await, before);
}

async fn a_wrong_password_of_a_totp_user_is_still_no_active_account(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    enrolled(&app, "jae@example.com").await;
    for response in [
        app.login("jae@example.com", "not-the-password-1").await,
        app.sliding("jae@example.com", "not-the-password-1").await,
        app.login("nobody@example.com", PASSWORD).await,
    ] {
        response.assert_unauthorized(no_active_account());
        assert_eq!(response.set_cookie("access"), None, "{}", response.request);
        assert_eq!(response.set_cookie("refresh"), None, "{}", response.request);
    }
}

async fn the_mfa_token_names_the_user_and_the_first_factor_for_mfa_token_lifetime(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    let first = password_step(&app, "jae@example.com").await;
    let claims = payload(&first);
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["aal", "amr", "exp", "iat", "jti", "token_type", "user_id"],
        "{claims}"
    );
    assert_eq!(claims["token_type"], "mfa");
    assert_eq!(claims["user_id"], jae.user.id);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["aal"], 1);
    assert!(
        claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()),
        "{claims}"
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((latchkey_tests::now() - iat).abs() <= 2, "{claims}");
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 300, "{claims}");
    // A sliding login's token is the same kind; each login's jti is its own.
    let sliding = payload(&sliding_password_step(&app, "jae@example.com").await);
    assert_eq!(sliding["token_type"], "mfa");
    assert_eq!(sliding["amr"], json!(["pwd"]));
    assert_ne!(sliding["jti"], claims["jti"]);

    let short = ctx.spawn_with(&[("MFA_TOKEN_LIFETIME", "2m")]).await;
    enrolled(&short, "kim@example.com").await;
    let claims = payload(&password_step(&short, "kim@example.com").await);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120,
        "{claims}"
    );
}

async fn verify_with_a_totp_code_answers_as_the_password_login_would(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    // What a password login answers, from a user without a second factor.
    app.user("plain@example.com").await;
    let plain = app.login("plain@example.com", PASSWORD).await;
    plain.assert_status(200);

    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let code = jae.totp.next_code().await;
    let verified = verify_code(&app, &mfa_token, &code).await;
    verified.assert_status(200);
    let (access, refresh) = (verified.access(), verified.refresh());
    // The user as GET /auth/ shows them (last_login aside: a cached user
    // may show the one before this login), the message, the pair.
    let me = app.me(&access).await;
    me.assert_status(200);
    let mut user = me.body.clone();
    user["last_login"] = verified.body["user"]["last_login"].clone();
    verified.assert(
        200,
        json!({
            "user": user,
            "message": "login success",
            "token": {"access": access, "refresh": refresh},
        }),
    );
    assert_eq!(verified.body["user"]["email"], "jae@example.com");
    assert!(
        verified.body["user"]["last_login"].is_string(),
        "{}",
        verified.text
    );
    let keys =
        |body: &Value| -> Vec<String> { body.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&verified.body["user"]), keys(&plain.body["user"]));
    // The same cookies as a password login, carrying this login's tokens.
    assert_eq!(cookie_shapes(&verified), cookie_shapes(&plain));
    assert_eq!(verified.cookie_value("access"), Some(access.clone()));
    assert_eq!(verified.cookie_value("refresh"), Some(refresh.clone()));
    assert_eq!(
        verified.header("cache-control"),
        plain.header("cache-control")
    );

    assert_eq!(amr_aal(&access), pwd_otp());
    assert_eq!(amr_aal(&refresh), pwd_otp());
    assert_eq!(payload(&access)["user_id"], jae.user.id);
    // The session is listed, current, with its amr and aal; the password
    // step added none.
    let sid = payload(&access)["sid"].as_str().unwrap().to_owned();
    let listed = sessions_of(&app, &access).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.contains(&(sid, json!(["pwd", "otp"]), json!(2), json!(true))),
        "{listed:?}"
    );
    // A refresh keeps them.
    let refreshed = app.refresh_token(&refresh).await;
    refreshed.assert_status(200);
    assert_eq!(
        amr_aal(refreshed.body["access"].as_str().unwrap()),
        pwd_otp()
    );
}

async fn verify_after_a_sliding_login_answers_a_sliding_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.user("plain@example.com").await;
    let plain = app.sliding("plain@example.com", PASSWORD).await;
    plain.assert_status(200);

    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = sliding_password_step(&app, "jae@example.com").await;
    let code = jae.totp.next_code().await;
    let verified = verify_code(&app, &mfa_token, &code).await;
    verified.assert_status(200);
    let token = verified.sliding();
    verified.assert(200, json!({ "token": token }));
    assert_eq!(cookie_shapes(&verified), cookie_shapes(&plain));
    let claims = payload(&token);
    assert_eq!(claims["token_type"], "sliding");
    assert_eq!(claims["user_id"], jae.user.id);
    assert_eq!(amr_aal(&token), pwd_otp());
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    let sid = claims["sid"].as_str().unwrap().to_owned();
    assert!(
        sessions_of(&app, &token).await.contains(&(
            sid,
            json!(["pwd", "otp"]),
            json!(2),
            json!(true)
        )),
        "the sliding session is listed at aal 2"
    );
    let slid = app.sliding_refresh(&token).await;
    slid.assert_status(200);
    assert_eq!(amr_aal(&slid.sliding()), pwd_otp());
}

async fn the_mfa_token_stops_working_once_used(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_status(200);
    // Spent: refused before any code is read, a right one or a recovery
    // code, which stays unused.
    let next = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &next)
        .await
        .assert_unauthorized(token_not_valid());
    let recovery = jae.recovery_codes[0].clone();
    verify_recovery_code(&app, &mfa_token, &recovery)
        .await
        .assert_unauthorized(token_not_valid());
    let fresh = password_step(&app, "jae@example.com").await;
    verify_code(&app, &fresh, &next).await.assert_status(200);
    let fresh = password_step(&app, "jae@example.com").await;
    verify_recovery_code(&app, &fresh, &recovery)
        .await
        .assert_status(200);
}

/// `xxxx-xxxx-xxxx` typed otherwise: upper case, without dashes, with
/// spaces.
fn as_typed(code: &str, how: usize) -> String {
    match how {
        0 => code.to_owned(),
        1 => code.to_uppercase(),
        2 => code.replace('-', ""),
        3 => code.replace('-', " "),
        _ => format!(
            " {} ",
            code.to_uppercase()
                .chars()
                .filter(|c| *c != '-')
                .flat_map(|c| [c, ' '])
                .collect::<String>()
        ),
    }
}

async fn recovery_codes_complete_the_login_once_each_in_any_case_and_spacing(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    assert_eq!(jae.recovery_codes.len(), 10, "{:?}", jae.recovery_codes);
    for (how, code) in jae.recovery_codes.iter().take(5).enumerate() {
        let typed = as_typed(code, how);
        let mfa_token = password_step(&app, "jae@example.com").await;
        let verified = verify_recovery_code(&app, &mfa_token, &typed).await;
        verified.assert_status(200);
        assert_eq!(verified.body["message"], "login success", "{typed:?}");
        assert_eq!(amr_aal(&verified.access()), pwd_rec(), "{typed:?}");
        assert_eq!(amr_aal(&verified.refresh()), pwd_rec(), "{typed:?}");
        let sid = payload(&verified.access())["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            sessions_of(&app, &verified.access()).await.contains(&(
                sid,
                json!(["pwd", "rec"]),
                json!(2),
                json!(true)
            )),
            "{typed:?}"
        );
        // Used: refused however it is typed.
        for again in [code.clone(), typed] {
            let mfa_token = password_step(&app, "jae@example.com").await;
            verify_recovery_code(&app, &mfa_token, &again)
                .await
                .assert(400, incorrect("recovery_code"));
        }
    }
    let status = jae.user.get(paths::MFA).await;
    status.assert_status(200);
    assert_eq!(status.body["recovery_codes"], json!({"unused": 5}));
}

async fn a_recovery_code_completes_a_sliding_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = sliding_password_step(&app, "jae@example.com").await;
    let verified = verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[3]).await;
    verified.assert_status(200);
    let token = verified.sliding();
    verified.assert(200, json!({ "token": token }));
    assert_eq!(payload(&token)["token_type"], "sliding");
    assert_eq!(amr_aal(&token), pwd_rec());
}

async fn a_wrong_code_is_400_and_the_right_one_still_logs_in(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let wrong = jae.totp.wrong_code();
    verify_code(&app, &mfa_token, &wrong)
        .await
        .assert(400, incorrect("code"));
    verify_recovery_code(&app, &mfa_token, "aaaa-bbbb-cccc")
        .await
        .assert(400, incorrect("recovery_code"));
    let code = jae.totp.next_code().await;
    let verified = verify_code(&app, &mfa_token, &code).await;
    verified.assert_status(200);
    assert_eq!(amr_aal(&verified.access()), pwd_otp());
}

async fn wrong_codes_are_failed_logins_and_past_the_limit_even_the_right_code_is_429(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    app.user("kim@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let wrong = jae.totp.wrong_code();
    verify_code(&app, &mfa_token, &wrong)
        .await
        .assert(400, incorrect("code"));
    verify_recovery_code(&app, &mfa_token, "aaaa-bbbb-cccc")
        .await
        .assert(400, incorrect("recovery_code"));
    verify_code(&app, &mfa_token, &wrong)
        .await
        .assert(400, incorrect("code"));
    // Three failures: the account is locked, for the right code too, and
    // for the password.
    let code = jae.totp.next_code().await;
    assert_throttled(&verify_code(&app, &mfa_token, &code).await);
    assert_throttled(&verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0]).await);
    assert_throttled(&app.login("jae@example.com", PASSWORD).await);
    // Another account is not.
    app.login("kim@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn a_right_password_answering_mfa_required_does_not_reset_the_failure_count(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    enrolled(&app, "jae@example.com").await;
    for _ in 0..2 {
        app.login("jae@example.com", "not-the-password-1")
            .await
            .assert_unauthorized(no_active_account());
    }
    for _ in 0..2 {
        password_step(&app, "jae@example.com").await;
        sliding_password_step(&app, "jae@example.com").await;
    }
    // Still two failures: one more locks the account.
    app.login("jae@example.com", "not-the-password-1")
        .await
        .assert_unauthorized(no_active_account());
    assert_throttled(&app.login("jae@example.com", PASSWORD).await);
}

async fn a_completed_login_resets_the_failure_count(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    app.login("jae@example.com", "not-the-password-1")
        .await
        .assert_unauthorized(no_active_account());
    let mfa_token = password_step(&app, "jae@example.com").await;
    let wrong = jae.totp.wrong_code();
    verify_code(&app, &mfa_token, &wrong)
        .await
        .assert(400, incorrect("code"));
    // Two failures; the right code is the third attempt.
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_status(200);
    // Counted from zero again: two failures, and the password still passes
    // (without the reset, the second would have been refused).
    for _ in 0..2 {
        app.login("jae@example.com", "not-the-password-1")
            .await
            .assert_unauthorized(no_active_account());
    }
    let mfa_token = password_step(&app, "jae@example.com").await;
    // A recovery code's completed login resets it too.
    verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0])
        .await
        .assert_status(200);
    for _ in 0..2 {
        app.login("jae@example.com", "not-the-password-1")
            .await
            .assert_unauthorized(no_active_account());
    }
    password_step(&app, "jae@example.com").await;
}

async fn five_wrong_codes_end_the_mfa_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let wrong = jae.totp.wrong_code();
    for _ in 0..5 {
        verify_code(&app, &mfa_token, &wrong)
            .await
            .assert(400, incorrect("code"));
    }
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(token_not_valid());
    verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0])
        .await
        .assert_unauthorized(token_not_valid());
    // The dead token used no step and no code: a new login takes both.
    let fresh = password_step(&app, "jae@example.com").await;
    verify_code(&app, &fresh, &code).await.assert_status(200);
    let fresh = password_step(&app, "jae@example.com").await;
    verify_recovery_code(&app, &fresh, &jae.recovery_codes[0])
        .await
        .assert_status(200);
}

/// "After 5 wrong codes": a wrong recovery code is one of them.
async fn wrong_recovery_codes_spend_the_same_five_tries(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let wrong = jae.totp.wrong_code();
    for n in 0..5 {
        if n % 2 == 0 {
            verify_recovery_code(&app, &mfa_token, "aaaa-bbbb-cccc")
                .await
                .assert(400, incorrect("recovery_code"));
        } else {
            verify_code(&app, &mfa_token, &wrong)
                .await
                .assert(400, incorrect("code"));
        }
    }
    verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0])
        .await
        .assert_unauthorized(token_not_valid());
    // Four wrong codes leave the fifth try.
    let fresh = password_step(&app, "jae@example.com").await;
    for _ in 0..4 {
        verify_recovery_code(&app, &fresh, "aaaa-bbbb-cccc")
            .await
            .assert(400, incorrect("recovery_code"));
    }
    verify_recovery_code(&app, &fresh, &jae.recovery_codes[0])
        .await
        .assert_status(200);
}

async fn the_step_used_at_confirm_is_refused_at_verify(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let confirmed_with = last_code(&jae.totp);
    verify_code(&app, &mfa_token, &confirmed_with)
        .await
        .assert(400, incorrect("code"));
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_status(200);
}

async fn a_step_used_at_verify_is_refused_at_the_next_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    login_with_totp(&app, "jae@example.com", &mut jae.totp).await;
    let used = last_code(&jae.totp);
    // Another login, pair or sliding: the same step is refused.
    let mfa_token = password_step(&app, "jae@example.com").await;
    verify_code(&app, &mfa_token, &used)
        .await
        .assert(400, incorrect("code"));
    let sliding = sliding_password_step(&app, "jae@example.com").await;
    verify_code(&app, &sliding, &used)
        .await
        .assert(400, incorrect("code"));
    let code = jae.totp.next_code().await;
    verify_code(&app, &sliding, &code).await.assert_status(200);
}

async fn the_last_step_survives_disabling_and_enrolling_again(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae: Enrolled = enrolled(&app, "jae@example.com").await;
    let session: TestUser = login_with_totp(&app, "jae@example.com", &mut jae.totp).await;
    let last = jae.totp.last.unwrap();
    // Disabled (with a recovery code: the last step is used).
    session
        .send(
            "DELETE",
            paths::TOTP,
            session
                .bearer()
                .with_json(json!({"current_password": PASSWORD, "code": jae.recovery_codes[0]})),
        )
        .await
        .assert_status(204);
    let plain = app.login("jae@example.com", PASSWORD).await;
    plain.assert_status(200);
    // Enrolled again, with a new secret: its codes of the used steps are
    // refused at confirm (the last one is still inside the window), the
    // next step enables it.
    let again = TestUser::of(&app, &plain);
    let (secret, otpauth_url) = start_enrolment(&again).await;
    assert_ne!(secret, jae.secret);
    // The same app, the same user's steps, a new secret.
    let mut totp = Authenticator::new(&secret);
    totp.last = jae.totp.last;
    for counter in [last - 1, last] {
        let code = totp.code_at(counter);
        again
            .post(paths::CONFIRM, json!({ "code": code }))
            .await
            .assert(400, incorrect("code"));
    }
    let mut jae = confirmed(&again, totp, secret, otpauth_url).await;
    // confirm/ used its step: refused at verify, the next accepted.
    let mfa_token = password_step(&app, "jae@example.com").await;
    let confirmed_with = last_code(&jae.totp);
    assert!(jae.totp.last.unwrap() > last);
    verify_code(&app, &mfa_token, &confirmed_with)
        .await
        .assert(400, incorrect("code"));
    let code = jae.totp.next_code().await;
    let verified = verify_code(&app, &mfa_token, &code).await;
    verified.assert_status(200);
    assert_eq!(amr_aal(&verified.access()), pwd_otp());
}

/// `req` from client address `ip` (the server trusts 127.0.0.1 as a proxy).
fn from(ip: &str, req: Req) -> Req {
    req.with_header("X-Forwarded-For", ip)
}

async fn verify_is_in_the_per_ip_bucket_and_the_other_mfa_routes_are_not(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "3/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    // From 127.0.0.1: three requests of the bucket (two registers, a
    // login), and the enrolment, which is not in it.
    let mut jae = enrolled(&app, "jae@example.com").await;
    let staff = app.staff("staff@example.com").await;
    let client = "10.7.7.7";
    let login = app
        .post(
            "/auth/",
            from(
                client,
                Req::json(json!({"email": "jae@example.com", "password": PASSWORD})),
            ),
        )
        .await;
    let mfa_token = mfa_token_of(&login);
    let wrong = jae.totp.wrong_code();
    for _ in 0..2 {
        app.post(
            paths::VERIFY,
            from(
                client,
                Req::json(json!({"mfa_token": mfa_token, "code": wrong})),
            ),
        )
        .await
        .assert(400, incorrect("code"));
    }
    // The login and two verifies: the bucket is full.
    let code = jae.totp.next_code().await;
    assert_throttled(
        &app.post(
            paths::VERIFY,
            from(
                client,
                Req::json(json!({"mfa_token": mfa_token, "code": code})),
            ),
        )
        .await,
    );
    // The other MFA routes answer that client as usual.
    let user = &jae.user;
    let as_client = |body: Option<Value>| {
        let req = from(client, user.bearer());
        match body {
            Some(body) => req.with_json(body),
            None => req,
        }
    };
    for _ in 0..3 {
        let status = user.send("GET", paths::MFA, as_client(None)).await;
        status.assert_status(200);
        assert_eq!(status.body["totp"]["enabled"], true, "{}", status.text);
    }
    user.send(
        "POST",
        paths::TOTP,
        as_client(Some(json!({"current_password": PASSWORD}))),
    )
    .await
    .assert(409, json!({"detail": "TOTP is already enabled."}));
    user.send(
        "POST",
        paths::RECOVERY_CODES,
        as_client(Some(json!({"code": wrong}))),
    )
    .await
    .assert(400, incorrect("code"));
    user.send(
        "DELETE",
        paths::TOTP,
        as_client(Some(json!({"current_password": PASSWORD, "code": wrong}))),
    )
    .await
    .assert(400, incorrect("code"));
    // The throttled verify spent neither the token nor the step: from
    // another client they log in.
    let verified = app
        .post(
            paths::VERIFY,
            from(
                "10.8.8.8",
                Req::json(json!({"mfa_token": mfa_token, "code": code})),
            ),
        )
        .await;
    verified.assert_status(200);
    assert_eq!(amr_aal(&verified.access()), pwd_otp());
    // Staff's reset is not in the bucket either.
    staff
        .send(
            "DELETE",
            &paths::user_mfa(jae.user.id),
            from(client, staff.bearer()),
        )
        .await
        .assert_status(204);
}

async fn an_expired_mfa_token_is_401_and_spends_nothing(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("MFA_TOKEN_LIFETIME", "2s")]).await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let claims = payload(&mfa_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        2,
        "{claims}"
    );
    // Within its lifetime a wrong code is an ordinary wrong code.
    let wrong = jae.totp.wrong_code();
    verify_code(&app, &mfa_token, &wrong)
        .await
        .assert(400, incorrect("code"));
    actix_web::rt::time::sleep(Duration::from_millis(3200)).await;
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(token_not_valid());
    verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0])
        .await
        .assert_unauthorized(token_not_valid());
    let fresh = password_step(&app, "jae@example.com").await;
    verify_code(&app, &fresh, &code).await.assert_status(200);
}

async fn a_deactivated_totp_user_gets_no_active_account_not_mfa_required(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let jae = enrolled(&app, "jae@example.com").await;
    app.deactivate(&admin, jae.user.id).await;
    for response in [
        app.login("jae@example.com", PASSWORD).await,
        app.sliding("jae@example.com", PASSWORD).await,
    ] {
        response.assert_unauthorized(no_active_account());
    }
}

async fn a_pending_secret_asks_for_no_second_factor(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    start_enrolment(&jae).await;
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["message"], "login success");
    assert_eq!(amr_aal(&login.access()), (json!(["pwd"]), json!(1)));
}

const NEW_PASSWORD: &str = "a-brand-new-horse-77";

/// Hardening (v3): verify starts its session only if nothing revoked the
/// user since the password step; the refused attempt rolls back, so its
/// step is not used.
async fn a_password_change_between_the_steps_refuses_the_second_and_spends_no_step(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    jae.user
        .change_password(PASSWORD, NEW_PASSWORD)
        .await
        .assert_status(200);
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(no_active_account());
    let login = app.login("jae@example.com", NEW_PASSWORD).await;
    let fresh = mfa_token_of(&login);
    verify_code(&app, &fresh, &code).await.assert_status(200);
}

async fn deactivation_between_the_steps_refuses_the_second(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let sliding = sliding_password_step(&app, "jae@example.com").await;
    app.deactivate(&admin, jae.user.id).await;
    let code = jae.totp.next_code().await;
    for token in [&mfa_token, &sliding] {
        verify_code(&app, token, &code)
            .await
            .assert_unauthorized(no_active_account());
    }
    verify_recovery_code(&app, &mfa_token, &jae.recovery_codes[0])
        .await
        .assert_unauthorized(no_active_account());
}

async fn logout_everywhere_between_the_steps_refuses_the_second(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    // Revocation has whole-second precision.
    latchkey_tests::after_the_second_of(&mfa_token).await;
    jae.user
        .logout_everywhere()
        .await
        .assert(202, json!({"message": "Logout success"}));
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(no_active_account());
    let fresh = password_step(&app, "jae@example.com").await;
    verify_code(&app, &fresh, &code).await.assert_status(200);
}

async fn a_user_deleted_between_the_steps_makes_the_mfa_token_invalid(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let admin = app.superuser("admin@example.com").await;
    let mut jae = enrolled(&app, "jae@example.com").await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    admin.delete(jae.user.id).await.assert_status(204);
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(token_not_valid());
}

/// Sets user `id`'s `email_verified` in storage, as the link (or an email
/// change) would.
fn set_verified(app: &TestApp, id: i64, verified: bool) {
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    latchkey_persistence::User::update(
        &mut conn,
        id,
        &latchkey_persistence::UserChanges {
            email_verified: Some(verified),
            ..latchkey_persistence::UserChanges::default()
        },
    )
    .unwrap();
}

/// How a login completes (v3): the verified gate comes before the second
/// factor, and verify checks it again.
async fn an_address_no_longer_verified_under_mandatory_refuses_the_second_step(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("EMAIL_VERIFICATION", "mandatory")]).await;
    let id = app.registered("jae@example.com").await.body["user"]["id"]
        .as_i64()
        .unwrap();
    set_verified(&app, id, true);
    let user = app.logged_in("jae@example.com").await;
    let (secret, otpauth_url) = start_enrolment(&user).await;
    let mut jae = confirmed(&user, Authenticator::new(&secret), secret, otpauth_url).await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    set_verified(&app, id, false);
    let code = jae.totp.next_code().await;
    verify_code(&app, &mfa_token, &code)
        .await
        .assert_unauthorized(
            json!({"detail": "E-mail is not verified.", "code": "email_not_verified"}),
        );
    // Unverified, the password step itself says so, before any mfa_token.
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_unauthorized(
            json!({"detail": "E-mail is not verified.", "code": "email_not_verified"}),
        );
}

/// "Using a recovery code […] send[s] the user an email (through the
/// outbox), saying what happened and when, with no code or secret in it";
/// a TOTP login sends nothing.
async fn a_recovery_code_login_sends_the_notice_and_a_totp_login_none(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = ctx
        .spawn_with(&[
            ("SMTP_URL", url.as_str()),
            ("PUBLIC_URL", "http://latchkey.test"),
        ])
        .await;
    let wait = Duration::from_secs(20);
    let mut jae = enrolled(&app, "jae@example.com").await;
    // Enabling TOTP sent its own notice.
    let sent = smtp.wait_for(1, wait).await.len();
    login_with_totp(&app, "jae@example.com", &mut jae.totp).await;
    smtp.assert_count_stays(sent, Duration::from_millis(1500))
        .await;
    let mfa_token = password_step(&app, "jae@example.com").await;
    let code = jae.recovery_codes[0].clone();
    verify_recovery_code(&app, &mfa_token, &code)
        .await
        .assert_status(200);
    let messages = smtp.wait_for(sent + 1, wait).await;
    assert_eq!(messages.len(), sent + 1, "{messages:#?}");
    let notice = &messages[sent];
    assert_eq!(notice["to"], "jae@example.com");
    assert_eq!(notice["subject"], notices::SUBJECT);
    let text = notice["text"].as_str().unwrap();
    let html = notice["html"].as_str().unwrap_or_default();
    assert!(text.contains(notices::RECOVERY_CODE_USED), "{text}");
    let bare = code.replace('-', "");
    for secret in [
        code.as_str(),
        bare.as_str(),
        &bare.to_uppercase(),
        &mfa_token,
        &jae.secret,
    ] {
        assert!(
            !text.contains(secret) && !html.contains(secret),
            "the notice holds {secret:?}: {text}"
        );
    }
}
