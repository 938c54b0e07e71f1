//! Nothing of a second factor in clear where an operator or an attacker
//! with the files could read it (Second factor, v3: secrets sealed,
//! recovery codes stored only as a keyed hash, no secret, code or
//! `mfa_token` in a log): after enrolment, its confirmation and logins
//! through both steps, the SQLite file (and its WAL) and a `pg_dump` of the
//! PostgreSQL database hold neither the TOTP secret (base32 as shown, in
//! either case, hex, or its raw bytes) nor any recovery code (as shown, in
//! either case, without dashes); and `latchkey serve` under
//! `RUST_LOG=trace` writes none of them, nor an `mfa_token`. Codes come
//! from pyotp (`latchkey_tests::mfa_enrol`), so these are Django tests (the
//! venv); each runs on both backends.

use std::path::Path;
use std::process::Command;

use latchkey_tests::app::{Req, Response};
use latchkey_tests::mfa_enrol::{
    Authenticator, ServedBinary, incorrect_recovery_code, login_with_recovery_code,
    login_with_totp, mfa_token_of, pyotp_parse_uri, recovery_codes_of, start_enrolment,
};
use latchkey_tests::{Backend, Ctx, PASSWORD, TEST_SECRET, TestApp, tests};
use serde_json::{Value, json};

tests![
    django:
    neither_database_holds_the_secret_nor_a_recovery_code,
    the_trace_log_holds_no_secret_recovery_code_or_mfa_token,
];

/// What must never be found in clear.
struct Secrets {
    /// Texts, matched in any case: the secret's base32 and hex, each
    /// recovery code as shown and without its dashes.
    texts: Vec<String>,
    /// The secret's raw bytes.
    raw: Vec<u8>,
}

impl Secrets {
    fn of_secret(url: &str) -> Secrets {
        let parsed = pyotp_parse_uri(url);
        let hex = parsed["secret_hex"].as_str().unwrap().to_owned();
        let raw = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        Secrets {
            texts: vec![parsed["secret"].as_str().unwrap().to_owned(), hex],
            raw,
        }
    }

    fn add_codes(&mut self, codes: &[String]) {
        for code in codes {
            self.texts.push(code.clone());
            self.texts.push(code.replace('-', ""));
        }
    }

    /// Panics naming the first secret found in `haystack` (`what` says
    /// where).
    #[track_caller]
    fn assert_absent(&self, haystack: &[u8], what: &str) {
        for text in &self.texts {
            assert!(!contains_ignoring_case(haystack, text), "{text} in {what}");
        }
        assert!(
            !haystack.windows(self.raw.len()).any(|w| w == self.raw),
            "the secret's raw bytes in {what}"
        );
    }
}

fn contains_ignoring_case(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every byte the database holds: the SQLite file with its WAL and shared
/// memory, or a `pg_dump` of the PostgreSQL database.
fn database_bytes(app: &TestApp) -> Vec<u8> {
    match app.backend {
        Backend::Sqlite => {
            let path = app.database_url.trim_start_matches("sqlite://");
            let mut bytes = std::fs::read(path).unwrap();
            for suffix in ["-wal", "-shm", "-journal"] {
                let side = format!("{path}{suffix}");
                if Path::new(&side).exists() {
                    bytes.extend(std::fs::read(&side).unwrap());
                }
            }
            bytes
        }
        Backend::Postgres => {
            let output = Command::new("pg_dump")
                .args(["--no-owner", "--dbname", &app.database_url])
                .output()
                .expect("pg_dump runs");
            assert!(
                output.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("totp"),
                "the dump has the second factor's tables"
            );
            output.stdout
        }
    }
}

async fn neither_database_holds_the_secret_nor_a_recovery_code(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    let (secret, url) = start_enrolment(&user).await;
    let mut secrets = Secrets::of_secret(&url);
    // Pending.
    secrets.assert_absent(&database_bytes(&app), "the database (pending)");
    let mut totp = Authenticator::new(&secret);
    let code = totp.next_code().await;
    let confirmed = user
        .post(
            latchkey_tests::mfa_enrol::paths::CONFIRM,
            json!({"code": code}),
        )
        .await;
    confirmed.assert_status(200);
    let codes = recovery_codes_of(&confirmed);
    secrets.add_codes(&codes);
    secrets.assert_absent(&database_bytes(&app), "the database (confirmed)");

    login_with_recovery_code(&app, "jae@example.com", &codes[0]).await;
    login_with_totp(&app, "jae@example.com", &mut totp).await;

    secrets.assert_absent(&database_bytes(&app), "the database (after logins)");
}

/// A request to the served binary as `token`'s bearer (or none).
async fn send(
    served: &ServedBinary,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Response {
    let mut req = Req::json(body);
    if let Some(token) = token {
        req = req.with_bearer(token);
    }
    served.request(method, path, req).await
}

async fn the_trace_log_holds_no_secret_recovery_code_or_mfa_token(mut ctx: Ctx) {
    use latchkey_tests::mfa_enrol::paths;
    let dir = tempfile::tempdir().unwrap();
    let url = ctx.migrated_database();
    let served = ServedBinary::start(
        dir.path(),
        &[
            ("SECRET_KEY", TEST_SECRET),
            ("DATABASE_URL", url.as_str()),
            ("BCRYPT_COST", "4"),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let login = json!({"email": "jae@example.com", "password": PASSWORD});
    let registered = send(&served, "POST", "/register/", None, login.clone()).await;
    registered.assert_status(201);
    let access = registered.access();
    let started = send(
        &served,
        "POST",
        paths::TOTP,
        Some(&access),
        json!({"current_password": PASSWORD}),
    )
    .await;
    started.assert_status(200);
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    let mut secrets = Secrets::of_secret(started.body["otpauth_url"].as_str().unwrap());
    let mut totp = Authenticator::new(&secret);
    let code = totp.next_code().await;
    let confirmed = send(
        &served,
        "POST",
        paths::CONFIRM,
        Some(&access),
        json!({"code": code}),
    )
    .await;
    confirmed.assert_status(200);
    let codes = recovery_codes_of(&confirmed);
    secrets.add_codes(&codes);

    // Both steps: a wrong code, a recovery code; then a TOTP code.
    let mut mfa_tokens = Vec::new();
    let first = mfa_token_of(&send(&served, "POST", "/auth/", None, login.clone()).await);
    let wrong = send(
        &served,
        "POST",
        paths::VERIFY,
        None,
        json!({"mfa_token": first, "recovery_code": "aaaa-bbbb-cccc"}),
    )
    .await;
    wrong.assert(400, incorrect_recovery_code());
    let done = send(
        &served,
        "POST",
        paths::VERIFY,
        None,
        json!({"mfa_token": first, "recovery_code": codes[0]}),
    )
    .await;
    done.assert_status(200);
    // The spent token again (refused).
    send(
        &served,
        "POST",
        paths::VERIFY,
        None,
        json!({"mfa_token": first, "recovery_code": codes[1]}),
    )
    .await
    .assert_status(401);
    mfa_tokens.push(first);
    let second = mfa_token_of(&send(&served, "POST", "/auth/", None, login.clone()).await);
    let code = totp.next_code().await;
    let session = send(
        &served,
        "POST",
        paths::VERIFY,
        None,
        json!({"mfa_token": second, "code": code}),
    )
    .await;
    session.assert_status(200);
    mfa_tokens.push(second);
    // A new set, then off with a recovery code of it.
    let code = totp.next_code().await;
    let renewed = send(
        &served,
        "POST",
        paths::RECOVERY_CODES,
        Some(&session.access()),
        json!({"code": code}),
    )
    .await;
    renewed.assert_status(200);
    let new_codes = recovery_codes_of(&renewed);
    secrets.add_codes(&new_codes);
    send(
        &served,
        "DELETE",
        paths::TOTP,
        Some(&session.access()),
        json!({"current_password": PASSWORD, "code": new_codes[0]}),
    )
    .await
    .assert_status(204);

    let output = served.output();
    assert!(output.contains("TRACE"), "trace logging is on: {output}");
    for route in [
        paths::TOTP,
        paths::CONFIRM,
        paths::VERIFY,
        paths::RECOVERY_CODES,
    ] {
        assert!(output.contains(route), "the request log names {route}");
    }
    secrets.assert_absent(output.as_bytes(), "the server's output");
    for token in &mfa_tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!output.contains(token.as_str()), "an mfa_token in the log");
        assert!(
            !output.contains(signature),
            "an mfa_token's signature in the log"
        );
    }
}
