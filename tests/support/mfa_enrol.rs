//! The second factor from a client's side, for the enrolment, management
//! and secrecy tests: its routes, an authenticator app that computes codes
//! with pyotp 2.12.0 (`tests/django/totp_code.py`, never latchkey's own
//! TOTP) and keeps to the replay rule, enrolment through the routes, the
//! second step of a login, and `latchkey serve` (the real binary) with its
//! output kept.
//!
//! Codes: the server accepts the step before, the current one and the one
//! after, and each step once per user. An [`Authenticator`] only ever sends
//! the current step or the next one: the current step's code stays
//! acceptable until the end of the step after it, and the next one's from
//! now on, so no code is sent near a boundary where it could fall out of
//! the window. A third code within one step waits for the next step.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{Response, TestApp};
use crate::{PASSWORD, TestUser, django};

/// The second factor's paths.
pub mod paths {
    /// `GET`: the caller's second factors.
    pub const MFA: &str = "/auth/mfa/";
    /// `POST` starts (or restarts) enrolment, `DELETE` disables TOTP.
    pub const TOTP: &str = "/auth/mfa/totp/";
    pub const CONFIRM: &str = "/auth/mfa/totp/confirm/";
    pub const RECOVERY_CODES: &str = "/auth/mfa/recovery-codes/";
    pub const VERIFY: &str = "/auth/mfa/verify/";

    /// Staff: `DELETE` removes user `id`'s second factor.
    pub fn user_mfa(id: i64) -> String {
        format!("/list/{id}/mfa/")
    }
}

/// `{"code": ["Incorrect code."]}`.
pub fn incorrect_code() -> Value {
    json!({"code": ["Incorrect code."]})
}

/// `{"recovery_code": ["Incorrect code."]}`.
pub fn incorrect_recovery_code() -> Value {
    json!({"recovery_code": ["Incorrect code."]})
}

/// The `aal2_required` 403 body.
pub fn aal2_required() -> Value {
    json!({"detail": "This action needs a second factor.", "code": "aal2_required"})
}

/// The v2 `current_password` 400 for a wrong password.
pub fn wrong_current_password() -> Value {
    json!({"current_password": ["Your old password was entered incorrectly. Please enter it again."]})
}

/// `{"<field>": ["This field is required."]}`.
pub fn required(field: &str) -> Value {
    json!({ field: ["This field is required."] })
}

/// Unix time in milliseconds.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `tests/django/totp_code.py` with `args`: its JSON answer.
fn totp_code_py(args: &[String]) -> Value {
    let output = Command::new(django::python())
        .arg(django::project().join("totp_code.py"))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "totp_code.py {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What pyotp's `parse_uri` reads from an otpauth URL (`{"type", "name",
/// "issuer", "secret", "secret_hex", "digits", "period", "digest"}`); fails
/// the test when pyotp refuses it.
pub fn pyotp_parse_uri(url: &str) -> Value {
    totp_code_py(&["--parse-uri".into(), url.into()])
}

/// A TOTP device as an authenticator app holds it, with the steps it has
/// sent codes for (so it never sends a step twice).
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// `--base32 SECRET` or `--hex KEY`.
    secret_args: [String; 2],
    pub digits: u32,
    pub step: i64,
    pub t0: i64,
    /// The last step counter a code was sent for (accepted or not).
    pub last: Option<i64>,
}

impl Authenticator {
    /// latchkey's own devices: base32, 6 digits, 30 s, t0 0.
    pub fn new(secret_base32: &str) -> Authenticator {
        Authenticator {
            secret_args: ["--base32".into(), secret_base32.into()],
            digits: 6,
            step: 30,
            t0: 0,
            last: None,
        }
    }

    /// A django-otp device: hex key and its own digits, step and t0.
    pub fn django_otp(key_hex: &str, digits: u32, step: i64, t0: i64) -> Authenticator {
        Authenticator {
            secret_args: ["--hex".into(), key_hex.into()],
            digits,
            step,
            t0,
            last: None,
        }
    }

    /// The step counter of this instant.
    pub fn counter_now(&self) -> i64 {
        (now_ms() - self.t0 * 1000).div_euclid(self.step * 1000)
    }

    /// pyotp's codes of step counters `counters`, in order.
    pub fn codes_at(&self, counters: &[i64]) -> Vec<String> {
        let mut args: Vec<String> = self.secret_args.to_vec();
        args.extend([
            "--digits".into(),
            self.digits.to_string(),
            "--step".into(),
            self.step.to_string(),
            "--t0".into(),
            self.t0.to_string(),
        ]);
        for counter in counters {
            args.extend(["--counter".into(), counter.to_string()]);
        }
        let listed = totp_code_py(&args);
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["code"].as_str().unwrap().to_owned())
            .collect()
    }

    /// pyotp's code of step counter `counter`.
    pub fn code_at(&self, counter: i64) -> String {
        self.codes_at(&[counter]).remove(0)
    }

    /// The code of the earliest step after every step sent so far that is
    /// the current step or the next one (waiting for the next step when
    /// both are spent), and marks it sent.
    pub async fn next_code(&mut self) -> String {
        loop {
            let now = self.counter_now();
            let candidate = self.last.map_or(now, |last| (last + 1).max(now));
            if candidate <= now + 1 {
                self.last = Some(candidate);
                return self.code_at(candidate);
            }
            // Both spent: wait for the step after the current one to begin.
            let next_start_ms = (self.t0 + (now + 1) * self.step) * 1000;
            let wait = (next_start_ms - now_ms()).max(0) + 200;
            actix_web::rt::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }

    /// A code of the device's length that is none of the codes the server
    /// could accept around now (two steps either side).
    pub fn wrong_code(&self) -> String {
        let now = self.counter_now();
        let around = self.codes_at(&[now - 2, now - 1, now, now + 1, now + 2]);
        let modulus = 10u64.pow(self.digits);
        let mut candidate: u64 = around[2].parse().unwrap();
        loop {
            candidate = (candidate + 1) % modulus;
            let code = format!("{candidate:0width$}", width = self.digits as usize);
            if !around.contains(&code) {
                return code;
            }
        }
    }
}

/// A user with TOTP enabled through the routes: the session the
/// confirmation started (at `aal` 2), the device, the recovery codes shown
/// and what enrolment showed.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub user: TestUser,
    pub totp: Authenticator,
    pub recovery_codes: Vec<String>,
    pub secret: String,
    pub otpauth_url: String,
}

/// `POST /auth/mfa/totp/` as `user` with [`PASSWORD`], asserting the 200:
/// the secret and the otpauth URL.
pub async fn start_enrolment(user: &TestUser) -> (String, String) {
    let started = user
        .post(paths::TOTP, json!({"current_password": PASSWORD}))
        .await;
    started.assert_status(200);
    let secret = started.body["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("a secret: {}", started.text))
        .to_owned();
    let url = started.body["otpauth_url"]
        .as_str()
        .unwrap_or_else(|| panic!("an otpauth_url: {}", started.text))
        .to_owned();
    (secret, url)
}

/// Enrols `user` (start and confirm with pyotp's code), asserting both
/// 200s.
pub async fn enrol(user: &TestUser) -> Enrolled {
    let (secret, otpauth_url) = start_enrolment(user).await;
    let mut totp = Authenticator::new(&secret);
    let code = totp.next_code().await;
    confirm_with(user, totp, &code, secret, otpauth_url).await
}

/// Confirms the pending secret with `code` (200 asserted): the enrolled
/// user, holding the new session's tokens and the recovery codes.
pub async fn confirm_with(
    user: &TestUser,
    totp: Authenticator,
    code: &str,
    secret: String,
    otpauth_url: String,
) -> Enrolled {
    let confirmed = user.post(paths::CONFIRM, json!({"code": code})).await;
    confirmed.assert_status(200);
    Enrolled {
        user: user.with_tokens_of(&confirmed),
        totp,
        recovery_codes: recovery_codes_of(&confirmed),
        secret,
        otpauth_url,
    }
}

/// Registers `email` with [`PASSWORD`] and enrols them.
pub async fn enrolled_user(app: &TestApp, email: &str) -> Enrolled {
    enrol(&app.user(email).await).await
}

/// The `recovery_codes` of a response.
#[track_caller]
pub fn recovery_codes_of(response: &Response) -> Vec<String> {
    response.body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("recovery_codes in {}", response.text))
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

/// Whether `code` is shown as the contract says: `xxxx-xxxx-xxxx`, each
/// `x` from the base32 alphabet, lowercase.
pub fn is_shown_recovery_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 3
        && groups.iter().all(|group| {
            group.len() == 4
                && group
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        })
}

/// Asserts the `mfa_required` 401 (the whole body, `WWW-Authenticate`, no
/// auth cookie) and returns its `mfa_token`.
#[track_caller]
pub fn mfa_token_of(response: &Response) -> String {
    let token = response.body["mfa_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: an mfa_token in {}", response.request, response.text))
        .to_owned();
    response.assert_unauthorized(json!({
        "detail": "Multi-factor authentication is required.",
        "code": "mfa_required",
        "mfa_token": token,
        "methods": ["totp", "recovery_code"],
    }));
    assert_eq!(response.set_cookie("access"), None, "{}", response.text);
    assert_eq!(response.set_cookie("refresh"), None, "{}", response.text);
    token
}

/// `POST /auth/` with these credentials, which must answer `mfa_required`:
/// its `mfa_token`.
pub async fn mfa_token_for(app: &TestApp, email: &str, password: &str) -> String {
    mfa_token_of(&app.login(email, password).await)
}

/// `POST /auth/mfa/verify/` with `body` (to which the `mfa_token` is
/// added).
pub async fn verify_mfa(app: &TestApp, mfa_token: &str, mut body: Value) -> Response {
    body["mfa_token"] = json!(mfa_token);
    app.post_json(paths::VERIFY, body).await
}

/// A login through both steps with a TOTP code: the session, asserting
/// the 200.
pub async fn login_with_totp(app: &TestApp, email: &str, totp: &mut Authenticator) -> TestUser {
    let token = mfa_token_for(app, email, PASSWORD).await;
    let code = totp.next_code().await;
    let done = verify_mfa(app, &token, json!({"code": code})).await;
    done.assert_status(200);
    TestUser::of(app, &done)
}

/// A login through both steps with a recovery code: the session, asserting
/// the 200.
pub async fn login_with_recovery_code(app: &TestApp, email: &str, code: &str) -> TestUser {
    let token = mfa_token_for(app, email, PASSWORD).await;
    let done = verify_mfa(app, &token, json!({"recovery_code": code})).await;
    done.assert_status(200);
    TestUser::of(app, &done)
}

/// `GET /auth/mfa/` as `user`.
pub async fn mfa_status(user: &TestUser) -> Response {
    user.get(paths::MFA).await
}

/// The 429 of a locked account: DRF's text with the `Retry-After` it names.
#[track_caller]
pub fn assert_throttled(response: &Response) {
    let wait = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("{}: no Retry-After: {}", response.request, response.text))
        .to_owned();
    response.assert(
        429,
        json!({"detail": format!("Request was throttled. Expected available in {wait} seconds.")}),
    );
}

/// The sentences of the five security notices.
pub mod notices {
    pub const SUBJECT: &str = "Security notice";
    pub const ENABLED: &str = "Two-factor authentication (TOTP) was enabled on your account.";
    pub const DISABLED: &str = "Two-factor authentication (TOTP) was disabled on your account.";
    pub const REMOVED_BY_ADMIN: &str =
        "Two-factor authentication was removed from your account by an administrator.";
    pub const RECOVERY_CODE_USED: &str = "A recovery code was used on your account.";
    pub const NEW_RECOVERY_CODES: &str =
        "New recovery codes were generated for your account; the earlier ones no longer work.";
}

pub use crate::binary::ServedBinary;

/// The 401 of an access token whose session has ended.
pub fn ended_access() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
    })
}

/// Asserts that `session` has ended: its access token and its refresh
/// token are refused.
pub async fn assert_ended(app: &TestApp, session: &TestUser) {
    session.me().await.assert_unauthorized(ended_access());
    app.refresh_token(&session.refresh)
        .await
        .assert_unauthorized(json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
}

/// Asserts that `session` is live: its access token reads the user.
pub async fn assert_live(session: &TestUser) {
    let me = session.me().await;
    me.assert_status(200);
    assert_eq!(me.body["id"], session.id, "{}", me.text);
}

/// `(amr, aal)` of a token.
pub fn assurance(token: &str) -> (Value, Value) {
    let payload = crate::payload(token);
    (payload["amr"].clone(), payload["aal"].clone())
}
