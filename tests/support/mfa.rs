//! The second factor as a client sees it (issue 22): enrolling TOTP through
//! the routes, codes computed by pyotp 2.12.0 (`tests/django/totp_code.py`,
//! in the Django venv: tests using this are `django:` tests), never by
//! latchkey's code, and the login's second step.
//!
//! Codes follow the replay rule: a user's step counts once, by any route,
//! so an [`Authenticator`] hands out each step once, in increasing order,
//! and only a step the server accepts now (the current step, the one before
//! or the one after) with a margin from the boundary where it stops being
//! accepted; it waits for the next step when none is left.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{Req, Response, TestApp};
use crate::user::TestUser;
use crate::{PASSWORD, django};

/// The second factor's routes.
pub mod paths {
    /// `POST` begins TOTP enrolment, `DELETE` disables TOTP.
    pub const TOTP: &str = "/auth/mfa/totp/";
    pub const TOTP_CONFIRM: &str = "/auth/mfa/totp/confirm/";
    /// `GET`: the caller's second factors.
    pub const MFA: &str = "/auth/mfa/";
    pub const RECOVERY_CODES: &str = "/auth/mfa/recovery-codes/";
    /// The login's second step.
    pub const VERIFY: &str = "/auth/mfa/verify/";

    /// Staff: remove user `id`'s second factor.
    pub fn user_mfa(id: i64) -> String {
        format!("/list/{id}/mfa/")
    }
}

/// RFC 6238's step as Google Authenticator reads it, and latchkey's.
pub const STEP: i64 = 30;

/// How long before the end of its last accepted instant a code is still
/// handed out: the request that carries it must reach the server within
/// this.
pub const MARGIN: f64 = 3.0;

/// How long after a step's first accepted instant a code for it is handed
/// out, when the test had to wait for it.
const SETTLE: f64 = 0.5;

/// Now in Unix seconds, with the fraction.
fn now() -> f64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since.as_secs_f64()
}

/// pyotp's codes of a base32 secret (6 digits, 30 s steps, t0 0) at step
/// counters `counters`.
pub fn pyotp_codes(secret: &str, counters: &[i64]) -> HashMap<i64, String> {
    let mut command = Command::new(django::python());
    command
        .arg(django::project().join("totp_code.py"))
        .args(["--base32", secret]);
    for counter in counters {
        command.args(["--counter", &counter.to_string()]);
    }
    let output = command.output().expect("python runs totp_code.py");
    assert!(
        output.status.success(),
        "totp_code.py: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["counter"].as_i64().unwrap(),
                entry["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What pyotp reads from an `otpauth://` URL (`totp_code.py --parse-uri`),
/// or its refusal (`{"error": …}`).
pub fn pyotp_parse_uri(url: &str) -> Value {
    let output = Command::new(django::python())
        .arg(django::project().join("totp_code.py"))
        .args(["--parse-uri", url])
        .output()
        .expect("python runs totp_code.py");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "totp_code.py --parse-uri: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A user's authenticator app: the secret, and the steps already handed
/// out (the user's, across secrets: see [`Authenticator::reenrolled`]).
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub secret: String,
    pub otpauth_url: String,
    /// The last step counter a code was handed out for.
    last: Option<i64>,
    codes: HashMap<i64, String>,
}

impl Authenticator {
    pub fn new(secret: &str, otpauth_url: &str) -> Authenticator {
        Authenticator {
            secret: secret.to_owned(),
            otpauth_url: otpauth_url.to_owned(),
            last: None,
            codes: HashMap::new(),
        }
    }

    /// The same user's app with a new secret (enrolled again): the steps
    /// used under the old one stay used.
    pub fn reenrolled(&self, secret: &str, otpauth_url: &str) -> Authenticator {
        Authenticator {
            last: self.last,
            ..Authenticator::new(secret, otpauth_url)
        }
    }

    /// The code of step `counter`.
    pub fn code_of(&mut self, counter: i64) -> String {
        if !self.codes.contains_key(&counter) {
            // The steps around it too: one python run for the next few.
            let counters: Vec<i64> = (counter - 2..=counter + 3).collect();
            self.codes.extend(pyotp_codes(&self.secret, &counters));
        }
        self.codes[&counter].clone()
    }

    /// The step counter of now.
    pub fn current_counter() -> i64 {
        (now() / STEP as f64).floor() as i64
    }

    /// The next step this user has not used that the server accepts now
    /// with [`MARGIN`] to spare, waiting for it if none is: `(counter,
    /// code)`. The step then counts as used.
    pub async fn next_step(&mut self) -> (i64, String) {
        loop {
            let t = now();
            // The earliest step still accepted MARGIN from now: step s is
            // accepted while the clock is in steps s-1, s and s+1.
            let mut counter = ((t + MARGIN) / STEP as f64).floor() as i64 - 1;
            if let Some(last) = self.last {
                counter = counter.max(last + 1);
            }
            let accepted_from = ((counter - 1) * STEP) as f64;
            if accepted_from > t {
                let wait = accepted_from + SETTLE - t;
                actix_web::rt::time::sleep(Duration::from_secs_f64(wait)).await;
                continue;
            }
            let code = self.code_of(counter);
            if now() + MARGIN >= ((counter + 2) * STEP) as f64 {
                continue; // python was slow: pick again
            }
            self.last = Some(counter);
            return (counter, code);
        }
    }

    /// [`Authenticator::next_step`]'s code.
    pub async fn next_code(&mut self) -> String {
        self.next_step().await.1
    }

    /// The code of the last step handed out: a replay.
    pub fn last_code(&mut self) -> String {
        let last = self.last.expect("a step was handed out");
        self.code_of(last)
    }

    /// The last step counter handed out.
    pub fn last_counter(&self) -> Option<i64> {
        self.last
    }

    /// Six digits that are the code of no step the server could accept
    /// around now: a wrong code.
    pub fn wrong_code(&mut self) -> String {
        let current = Authenticator::current_counter();
        let near: Vec<String> = (current - 3..=current + 3)
            .map(|counter| self.code_of(counter))
            .collect();
        (0..)
            .map(|n: u32| format!("{:06}", (n * 137_137) % 1_000_000))
            .find(|candidate| !near.contains(candidate))
            .unwrap()
    }
}

/// A user with TOTP enabled through the routes.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The session `confirm/` started (`aal` 2).
    pub user: TestUser,
    pub authenticator: Authenticator,
    /// The set `confirm/` showed, as shown (`xxxx-xxxx-xxxx`).
    pub recovery_codes: Vec<String>,
    /// `confirm/`'s response.
    pub confirmed: Response,
}

/// `POST /auth/mfa/totp/ {"current_password"}` as `user` (asserting the
/// 200): the app with the pending secret.
pub async fn begin_totp(user: &TestUser, password: &str) -> Authenticator {
    let begun = user
        .post(paths::TOTP, json!({"current_password": password}))
        .await;
    begun.assert_status(200);
    Authenticator::new(
        begun.body["secret"].as_str().expect("a secret"),
        begun.body["otpauth_url"].as_str().expect("an otpauth_url"),
    )
}

/// `POST /auth/mfa/totp/confirm/ {"code"}` as `user`.
pub async fn confirm_totp(user: &TestUser, code: &str) -> Response {
    user.post(paths::TOTP_CONFIRM, json!({ "code": code }))
        .await
}

/// Enables TOTP for `user` (whose password is [`PASSWORD`]) through the
/// routes, confirmed with pyotp's code.
pub async fn enrol(user: &TestUser) -> Enrolled {
    let authenticator = begin_totp(user, PASSWORD).await;
    finish_enrolment(user, authenticator).await
}

/// Enables TOTP again for a user who had it (`before`'s steps stay used).
pub async fn enrol_again(user: &TestUser, before: &Authenticator) -> Enrolled {
    let fresh = begin_totp(user, PASSWORD).await;
    let authenticator = before.reenrolled(&fresh.secret, &fresh.otpauth_url);
    finish_enrolment(user, authenticator).await
}

/// Confirms the pending secret `authenticator` holds with its next code
/// (asserting the 200).
pub async fn finish_enrolment(user: &TestUser, mut authenticator: Authenticator) -> Enrolled {
    let code = authenticator.next_code().await;
    let confirmed = confirm_totp(user, &code).await;
    confirmed.assert_status(200);
    let recovery_codes = confirmed.body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        user: user.with_tokens_of(&confirmed),
        authenticator,
        recovery_codes,
        confirmed,
    }
}

/// Registers `email` with [`PASSWORD`] and enables TOTP.
pub async fn enrolled(app: &TestApp, email: &str) -> Enrolled {
    let user = app.user(email).await;
    enrol(&user).await
}

/// The `mfa_required` 401 of a first factor, for `mfa_token`.
pub fn mfa_required(mfa_token: &str) -> Value {
    json!({
        "detail": "Multi-factor authentication is required.",
        "code": "mfa_required",
        "mfa_token": mfa_token,
        "methods": ["totp", "recovery_code"],
    })
}

/// A wrong code's 400, under `field` (`code` or `recovery_code`).
pub fn incorrect(field: &str) -> Value {
    json!({ field: ["Incorrect code."] })
}

/// A spent, expired or forged `mfa_token`, or a token of another type.
pub fn token_not_valid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

/// The `mfa_token` of a `mfa_required` answer, after asserting the whole
/// answer: the body, `WWW-Authenticate`, no token cookie.
#[track_caller]
pub fn mfa_token_of(response: &Response) -> String {
    let token = response.body["mfa_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no mfa_token in {}", response.request, response.text))
        .to_owned();
    response.assert_unauthorized(mfa_required(&token));
    for cookie in ["access", "refresh"] {
        assert_eq!(
            response.set_cookie(cookie),
            None,
            "{}: a {cookie} cookie with mfa_required",
            response.request
        );
    }
    token
}

/// `POST /auth/` with [`PASSWORD`], asserting `mfa_required`: its
/// `mfa_token`.
pub async fn password_step(app: &TestApp, email: &str) -> String {
    mfa_token_of(&app.login(email, PASSWORD).await)
}

/// `POST /auth/sliding/` with [`PASSWORD`], asserting `mfa_required`.
pub async fn sliding_password_step(app: &TestApp, email: &str) -> String {
    mfa_token_of(&app.sliding(email, PASSWORD).await)
}

/// `POST /auth/mfa/verify/` with `body`.
pub async fn verify(app: &TestApp, body: Value) -> Response {
    app.post(paths::VERIFY, Req::json(body)).await
}

/// `POST /auth/mfa/verify/ {"mfa_token", "code"}`.
pub async fn verify_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    verify(app, json!({"mfa_token": mfa_token, "code": code})).await
}

/// `POST /auth/mfa/verify/ {"mfa_token", "recovery_code"}`.
pub async fn verify_recovery_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    verify(app, json!({"mfa_token": mfa_token, "recovery_code": code})).await
}

/// A complete login of an enrolled user: the password, then the next code
/// (asserting the 200): the session.
pub async fn logged_in_with_totp(app: &TestApp, enrolled: &mut Enrolled) -> TestUser {
    let mfa_token = password_step(app, &enrolled.user.email).await;
    let code = enrolled.authenticator.next_code().await;
    let verified = verify_code(app, &mfa_token, &code).await;
    TestUser::of(app, &verified)
}
