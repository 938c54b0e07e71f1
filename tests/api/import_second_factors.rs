//! `latchkey import-django` carrying second factors over, from Django
//! databases made by the REAL django-otp 1.7.5 and django-allauth 65.21.1
//! (`make_django_db.py --scenario mfa`): confirmed TOTP devices, django-otp's
//! static tokens and allauth's TOTP and recovery codes. Logging in with them
//! is a later change; these tests look at storage: each secret opens, under
//! the keys derived from the `SECRET_KEY` the import ran with, to Django's;
//! pyotp's code (`tests/django/totp_code.py`) of a step after Django's
//! `last_t` is accepted and the `last_t` step refused; every unused code
//! is stored hashed and used once; nothing is stored in clear. Then
//! through the server, as the users themselves: `POST /auth/` asks them
//! for the second step, which their authenticator app's codes (pyotp's for
//! their device: 8 digits, 60 s steps, a non-zero t0 included) and their
//! unused codes complete, while used codes, the step Django last accepted
//! (django-otp's `last_t`) and a step twice are refused, a pending device
//! asks for nothing and a skipped user does not exist; the tokens Django
//! issued to a TOTP user, and the session adopted from its refresh token,
//! are at `aal` 1 and meet the `aal2_required` gate; a user whose Django
//! password is unusable enrols and disables TOTP without a
//! `current_password`. Each test runs on both latchkey backends.

use std::path::Path;
use std::process::Command;

use latchkey_auth::recovery_codes::{keyed_hash, normalise_as_stored};
use latchkey_auth::sealing::{MfaKeys, Sealed};
use latchkey_auth::totp::{TotpParams, base32, check};
use latchkey_persistence::{RecoveryCodes, TotpDevice, db_now};
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::mfa_enrol::{
    Authenticator, aal2_required, assurance, incorrect_code, incorrect_recovery_code,
    mfa_token_for, paths, verify_mfa,
};
use latchkey_tests::{Backend, Ctx, Response, TestApp, django, tests};
use serde_json::{Value, json};

use crate::import_django::{DJANGO_SECRET_KEY, DjangoDb, other, stderr, stdout};

tests![
    django:
    imports_totp_devices_and_recovery_codes_sealed_and_hashed,
    a_rerun_adds_nothing_never_lowers_a_step_nor_revives_a_used_code,
    a_dry_run_from_the_other_backend_says_would_import_and_writes_nothing,
    an_unparsable_secret_is_listed_with_its_user_id,
    imported_users_log_in_with_their_devices_and_unused_codes,
    used_codes_the_used_step_and_pending_or_skipped_users_devices_are_refused,
    the_tokens_django_issued_to_a_totp_user_are_aal1_and_gated,
    a_user_without_a_usable_password_enrols_and_disables_without_one,
];

const MFA_LINE: &str = "imported 21 second factors (6 TOTP devices, 15 recovery codes)";
const MFA_SUMMARY: &str = "imported 8 users (1 skipped), 0 tokens, 0 blacklisted";

fn mfa_database(backend: Backend) -> (DjangoDb, Value) {
    let db = DjangoDb::create(backend);
    let made = db.django(&["--scenario", "mfa"], None);
    (db, made)
}

/// Runs `import-django --from …` with Django's SECRET_KEY, which the MFA
/// keys then derive from (no MFA_ENCRYPTION_KEY is set).
fn import_mfa(url: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["import-django", "--from"];
    all.extend_from_slice(args);
    run_latchkey(
        dir.path(),
        &all,
        &[("DATABASE_URL", url), ("SECRET_KEY", DJANGO_SECRET_KEY)],
        None,
    )
}

fn keys() -> MfaKeys {
    MfaKeys::derive(DJANGO_SECRET_KEY.as_bytes(), &[])
}

#[track_caller]
fn assert_lines(output: &std::process::Output, expected: &[&str]) {
    assert!(
        output.status.success(),
        "import failed: {}\n{}",
        stderr(output),
        stdout(output)
    );
    let out = stdout(output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "stderr: {}", stderr(output));
}

fn entry<'a>(made: &'a Value, email: &str) -> &'a Value {
    made["second_factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {made}"))
}

fn user_id(made: &Value, email: &str) -> i64 {
    entry(made, email)["user_id"].as_i64().unwrap()
}

fn device(url: &str, user_id: i64) -> Option<TotpDevice> {
    let db = open(url);
    let mut conn = db.get().unwrap();
    TotpDevice::find(&mut conn, user_id).unwrap()
}

fn unused_codes(url: &str, user_id: i64) -> i64 {
    let db = open(url);
    let mut conn = db.get().unwrap();
    RecoveryCodes::unused(&mut conn, user_id).unwrap()
}

/// Uses up `code` (as typed) the way a login will: its keyed hash under
/// the current key.
fn use_up(url: &str, user_id: i64, code: &str) -> bool {
    let keys = keys();
    let key = keys.recovery_code_keys().next().unwrap();
    let hash = keyed_hash(key, &normalise_as_stored(code).unwrap());
    let db = open(url);
    let mut conn = db.get().unwrap();
    RecoveryCodes::use_up(&mut conn, user_id, &[hash], db_now()).unwrap()
}

fn opened_secret(row: &TotpDevice) -> Vec<u8> {
    let sealed = Sealed {
        key_id: row.secret_key_id.clone().unwrap(),
        blob: row.secret_sealed.clone().unwrap(),
    };
    keys().open(row.user_id, &sealed).unwrap().secret
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// pyotp's code of step `counter` (counted from t0) of a hex key:
/// (code, the step's start).
fn pyotp_code(key_hex: &str, params: &TotpParams, counter: i64) -> (String, i64) {
    let output = Command::new(django::python())
        .arg(django::project().join("totp_code.py"))
        .args(["--hex", key_hex])
        .args(["--digits", &params.digits.to_string()])
        .args(["--step", &params.step.to_string()])
        .args(["--t0", &params.t0.to_string()])
        .args(["--counter", &counter.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        listed[0]["code"].as_str().unwrap().to_owned(),
        listed[0]["step_start"].as_i64().unwrap(),
    )
}

fn params(row: &TotpDevice) -> TotpParams {
    TotpParams {
        digits: u32::try_from(row.digits).unwrap(),
        step: i64::from(row.step),
        t0: row.t0,
    }
}

/// The Django TOTP device (key in hex, last_t) a user was imported with.
fn django_device(made: &Value, email: &str) -> (String, i64) {
    let e = entry(made, email);
    if let Some(otp) = e["otp_totp"].as_array().and_then(|d| d.first()) {
        return (
            otp["key"].as_str().unwrap().to_owned(),
            otp["last_t"].as_i64().unwrap(),
        );
    }
    let secret = e["allauth_totp"]["secret"].as_str().unwrap();
    (hex(&latchkey_auth::totp::from_base32(secret).unwrap()), -1)
}

/// The unused and used recovery codes Django has for a user.
fn django_codes(made: &Value, email: &str) -> (Vec<String>, Vec<String>) {
    let e = entry(made, email);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut unused = Vec::new();
    let mut used = Vec::new();
    for device in e["otp_static"].as_array().unwrap() {
        for token in device["tokens"].as_array().unwrap() {
            let code = token["token"].as_str().unwrap().to_owned();
            if token["used"] == true {
                used.push(code);
            } else {
                unused.push(code);
            }
        }
    }
    if !e["allauth_recovery_codes"].is_null() {
        unused.extend(strings(&e["allauth_recovery_codes"]["unused"]));
        used.extend(strings(&e["allauth_recovery_codes"]["used"]));
    }
    (unused, used)
}

const IMPORTED_TOTP: [&str; 6] = [
    "otp@example.com",
    "otp8@example.com",
    "otp-used@example.com",
    "otp-short@example.com",
    "allauth@example.com",
    "allauth-mig@example.com",
];
const WITH_CODES: [&str; 3] = [
    "otp@example.com",
    "allauth@example.com",
    "allauth-mig@example.com",
];

/// The bytes of a SQLite database and its WAL.
fn sqlite_bytes(url: &str) -> Vec<u8> {
    let path = url.trim_start_matches("sqlite://");
    let mut bytes = std::fs::read(path).unwrap();
    let wal = format!("{path}-wal");
    if Path::new(&wal).exists() {
        bytes.extend(std::fs::read(&wal).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

async fn imports_totp_devices_and_recovery_codes_sealed_and_hashed(mut ctx: Ctx) {
    let (django, made) = mfa_database(ctx.backend);
    let url = ctx.new_database();

    let output = import_mfa(&url, &[&django.url]);

    assert_lines(&output, &[MFA_LINE, MFA_SUMMARY]);
    for email in IMPORTED_TOTP {
        let id = user_id(&made, email);
        let row = device(&url, id).unwrap_or_else(|| panic!("a device for {email}"));
        assert!(row.enabled_at.is_some(), "{email}");
        let secret = opened_secret(&row);
        let (key_hex, last_t) = django_device(&made, email);
        assert_eq!(hex(&secret), key_hex, "{email}");
        let params = params(&row);
        let expected_last = (last_t >= 0).then(|| params.t0 + last_t * params.step);
        assert_eq!(row.last_step_at, expected_last, "{email}");
        // A step after last_t (or any, for a device never used) is
        // accepted, checked in the middle of that step.
        let next = if last_t >= 0 { last_t + 1 } else { 60_000_000 };
        let (code, start) = pyotp_code(&key_hex, &params, next);
        let middle = start + params.step / 2;
        assert_eq!(
            check(&secret, &params, &code, middle, row.last_step_at),
            Ok(start),
            "{email}"
        );
        if last_t >= 0 {
            let (code, start) = pyotp_code(&key_hex, &params, last_t);
            assert!(
                check(
                    &secret,
                    &params,
                    &code,
                    start + params.step / 2,
                    row.last_step_at
                )
                .is_err(),
                "{email}: the last_t step is refused"
            );
        }
    }
    // The pending device and the skipped user's are not imported.
    let pending = user_id(&made, "otp-pending@example.com");
    let skipped = user_id(&made, "otp-skipped");
    for id in [pending, skipped] {
        assert!(device(&url, id).is_none(), "id {id}");
        assert_eq!(unused_codes(&url, id), 0, "id {id}");
    }
    assert!(
        stderr(&output).contains(&format!("skipped id {skipped}: invalid email")),
        "{}",
        stderr(&output)
    );

    // Nothing in clear: no secret (hex or base32) nor any code.
    if ctx.backend == Backend::Sqlite {
        let bytes = sqlite_bytes(&url);
        let all: Vec<&Value> = made["second_factors"].as_array().unwrap().iter().collect();
        for e in all {
            let email = e["email"].as_str().unwrap();
            for d in e["otp_totp"].as_array().unwrap() {
                for secret in [&d["key"], &d["secret_base32"]] {
                    assert!(!contains(&bytes, secret.as_str().unwrap()), "{email}");
                }
            }
            if !e["allauth_totp"].is_null() {
                let secret = e["allauth_totp"]["secret"].as_str().unwrap();
                assert!(!contains(&bytes, secret), "{email}");
                let decoded = latchkey_auth::totp::from_base32(secret).unwrap();
                assert!(!contains(&bytes, &hex(&decoded)), "{email}");
            }
            let (unused, used) = django_codes(&made, email);
            for code in unused.iter().chain(&used) {
                assert!(!contains(&bytes, code), "{email}: {code}");
            }
        }
        // base32 as latchkey writes it, too.
        for email in IMPORTED_TOTP {
            let row = device(&url, user_id(&made, email)).unwrap();
            assert!(!contains(&bytes, &base32(&opened_secret(&row))), "{email}");
        }
    }

    // Every unused code works once; used ones not at all.
    for email in WITH_CODES {
        let id = user_id(&made, email);
        let (unused, used) = django_codes(&made, email);
        assert!(!unused.is_empty() && !used.is_empty(), "{email}");
        assert_eq!(unused_codes(&url, id), unused.len() as i64, "{email}");
        for code in &used {
            assert!(!use_up(&url, id, code), "{email}: used {code}");
        }
        for code in &unused {
            assert!(use_up(&url, id, code), "{email}: {code}");
            assert!(!use_up(&url, id, code), "{email}: {code} twice");
        }
        assert_eq!(unused_codes(&url, id), 0, "{email}");
    }
}

async fn a_rerun_adds_nothing_never_lowers_a_step_nor_revives_a_used_code(mut ctx: Ctx) {
    let (django, made) = mfa_database(ctx.backend);
    let url = ctx.new_database();
    assert_lines(&import_mfa(&url, &[&django.url]), &[MFA_LINE, MFA_SUMMARY]);
    // latchkey moves on: otp-used accepts a later step, otp@ uses a code.
    let used_id = user_id(&made, "otp-used@example.com");
    let before = device(&url, used_id).unwrap().last_step_at.unwrap();
    {
        let db = open(&url);
        let mut conn = db.get().unwrap();
        assert!(TotpDevice::accept_step(&mut conn, used_id, before + 300).unwrap());
    }
    let otp_id = user_id(&made, "otp@example.com");
    let (unused, _) = django_codes(&made, "otp@example.com");
    assert!(use_up(&url, otp_id, &unused[0]));
    // Django moves on too: otp8's device accepts a later step.
    let otp8_id = user_id(&made, "otp8@example.com");
    let otp8_before = device(&url, otp8_id).unwrap();
    django.execute(&format!(
        "UPDATE otp_totp_totpdevice SET last_t = last_t + 2 WHERE user_id = {otp8_id}"
    ));

    let output = import_mfa(&url, &[&django.url]);

    assert_lines(
        &output,
        &[
            "imported 0 second factors (0 TOTP devices, 0 recovery codes)",
            MFA_SUMMARY,
        ],
    );
    assert_eq!(
        device(&url, used_id).unwrap().last_step_at,
        Some(before + 300),
        "never lowered"
    );
    assert_eq!(
        device(&url, otp8_id).unwrap().last_step_at,
        Some(otp8_before.last_step_at.unwrap() + 2 * i64::from(otp8_before.step)),
        "raised to Django's later step"
    );
    assert_eq!(unused_codes(&url, otp_id), unused.len() as i64 - 1);
    assert!(!use_up(&url, otp_id, &unused[0]), "not revived");
    // The secret is the one sealed the first time (kept, not replaced).
    assert_eq!(
        hex(&opened_secret(&device(&url, otp_id).unwrap())),
        django_device(&made, "otp@example.com").0
    );
}

async fn a_dry_run_from_the_other_backend_says_would_import_and_writes_nothing(mut ctx: Ctx) {
    let (django, made) = mfa_database(other(ctx.backend));
    let url = ctx.new_database();

    let output = import_mfa(&url, &[&django.url, "--dry-run"]);

    assert_lines(
        &output,
        &[
            "would import 21 second factors (6 TOTP devices, 15 recovery codes)",
            "would import 8 users (1 skipped), 0 tokens, 0 blacklisted",
        ],
    );
    for email in IMPORTED_TOTP {
        assert!(device(&url, user_id(&made, email)).is_none(), "{email}");
    }
    // Then for real, across backends.
    assert_lines(&import_mfa(&url, &[&django.url]), &[MFA_LINE, MFA_SUMMARY]);
    for email in IMPORTED_TOTP {
        let row = device(&url, user_id(&made, email)).unwrap();
        assert_eq!(hex(&opened_secret(&row)), django_device(&made, email).0);
    }
}

async fn an_unparsable_secret_is_listed_with_its_user_id(mut ctx: Ctx) {
    let (django, made) = mfa_database(ctx.backend);
    let otp_id = user_id(&made, "otp@example.com");
    let allauth_id = user_id(&made, "allauth@example.com");
    let otp_device_id = entry(&made, "otp@example.com")["otp_totp"][0]["id"]
        .as_i64()
        .unwrap();
    let allauth_device_id = entry(&made, "allauth@example.com")["allauth_totp"]["id"]
        .as_i64()
        .unwrap();
    django.execute(&format!(
        "UPDATE otp_totp_totpdevice SET key = 'not hex' WHERE id = {otp_device_id}; \
         UPDATE mfa_authenticator SET data = '{{\"secret\": \"not base32!\"}}' WHERE id = {allauth_device_id}"
    ));
    let url = ctx.new_database();

    let output = import_mfa(&url, &[&django.url]);

    assert_lines(
        &output,
        &[
            "imported 19 second factors (4 TOTP devices, 15 recovery codes)",
            MFA_SUMMARY,
        ],
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "unparsable second factor for id {otp_id} (otp_totp_totpdevice id {otp_device_id}: the key is not hex): not imported"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "unparsable second factor for id {allauth_id} (mfa_authenticator id {allauth_device_id}: the secret is not base32): not imported"
        )),
        "{err}"
    );
    assert!(device(&url, otp_id).is_none());
    assert!(device(&url, allauth_id).is_none());
    // Their users and codes are imported all the same.
    assert!(unused_codes(&url, otp_id) > 0);
    assert!(unused_codes(&url, allauth_id) > 0);
}

// ------------------------------------------------------- logging in

/// The password of every user of the `mfa` scenario (make_django_db.py's
/// `PASSWORDS['pbkdf2_sha256']`).
const DJANGO_PASSWORD: &str = "pbkdf2-sha256-pass-1";

/// Imports the `mfa` scenario and serves the result with Django's
/// SECRET_KEY (the MFA keys derive from it, as they did at the import).
async fn imported_mfa_app(ctx: &mut Ctx) -> (TestApp, Value) {
    let (django, made) = mfa_database(ctx.backend);
    let url = ctx.new_database();
    assert_lines(&import_mfa(&url, &[&django.url]), &[MFA_LINE, MFA_SUMMARY]);
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    (app, made)
}

/// The authenticator app of a user's Django device, having sent the step
/// Django last accepted (so it sends later ones only).
fn app_of(made: &Value, email: &str) -> Authenticator {
    let e = entry(made, email);
    if let Some(otp) = e["otp_totp"].as_array().and_then(|d| d.first()) {
        let mut device = Authenticator::django_otp(
            otp["key"].as_str().unwrap(),
            u32::try_from(otp["digits"].as_i64().unwrap()).unwrap(),
            otp["step"].as_i64().unwrap(),
            otp["t0"].as_i64().unwrap(),
        );
        let last_t = otp["last_t"].as_i64().unwrap();
        device.last = (last_t >= 0).then_some(last_t);
        return device;
    }
    let totp = &e["allauth_totp"];
    let mut device = Authenticator::new(totp["secret"].as_str().unwrap());
    device.digits = u32::try_from(totp["digits"].as_i64().unwrap()).unwrap();
    device.step = totp["period"].as_i64().unwrap();
    device
}

/// Asserts a completed login of `email` (v1's body) whose session has
/// `amr` `pwd` and `second`, at `aal` 2.
#[track_caller]
fn assert_logged_in(done: &Response, email: &str, second: &str) {
    done.assert(
        200,
        json!({
            "user": done.body["user"],
            "message": "login success",
            "token": {"access": done.access(), "refresh": done.refresh()},
        }),
    );
    assert_eq!(done.body["user"]["email"], email, "{}", done.text);
    for token in [done.access(), done.refresh()] {
        assert_eq!(
            assurance(&token),
            (json!(["pwd", second]), json!(2)),
            "{email}"
        );
    }
}

async fn imported_users_log_in_with_their_devices_and_unused_codes(mut ctx: Ctx) {
    let (app, made) = imported_mfa_app(&mut ctx).await;

    for email in IMPORTED_TOTP {
        let mut device = app_of(&made, email);
        let mfa_token = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
        let code = device.next_code().await;
        assert_eq!(code.len(), device.digits as usize);
        let done = verify_mfa(&app, &mfa_token, json!({"code": code})).await;
        assert_logged_in(&done, email, "otp");
    }
    for email in WITH_CODES {
        let (unused, _) = django_codes(&made, email);
        for code in &unused {
            let mfa_token = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
            let done = verify_mfa(&app, &mfa_token, json!({"recovery_code": code})).await;
            assert_logged_in(&done, email, "rec");
        }
    }
}

async fn used_codes_the_used_step_and_pending_or_skipped_users_devices_are_refused(mut ctx: Ctx) {
    let (app, made) = imported_mfa_app(&mut ctx).await;

    // The code Django accepted last (its step is last_t): refused; the
    // next step completes the login; then that step again is refused.
    for email in ["otp-used@example.com", "otp8@example.com"] {
        let mut device = app_of(&made, email);
        let accepted = &entry(&made, email)["otp_totp"][0]["accepted"];
        let last_t = device.last.unwrap();
        assert_eq!(accepted["counter"], last_t);
        assert!(
            last_t >= device.counter_now() - 1,
            "{email}: Django's last step {last_t} is already out of the window (now {}); the \
             database took too long to make",
            device.counter_now()
        );
        let mfa_token = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
        verify_mfa(&app, &mfa_token, json!({"code": accepted["code"]}))
            .await
            .assert(400, incorrect_code());
        let code = device.next_code().await;
        assert_logged_in(
            &verify_mfa(&app, &mfa_token, json!({"code": code})).await,
            email,
            "otp",
        );
        let again = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
        verify_mfa(&app, &again, json!({"code": code}))
            .await
            .assert(400, incorrect_code());
    }

    // Used codes (used in Django) are refused, each with its own token,
    // which an unused code then completes.
    for email in WITH_CODES {
        let (unused, used) = django_codes(&made, email);
        for (used, unused) in used.iter().zip(&unused) {
            let mfa_token = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
            verify_mfa(&app, &mfa_token, json!({"recovery_code": used}))
                .await
                .assert(400, incorrect_recovery_code());
            let done = verify_mfa(&app, &mfa_token, json!({"recovery_code": unused})).await;
            assert_logged_in(&done, email, "rec");
            // Now used in latchkey: refused too.
            let again = mfa_token_for(&app, email, DJANGO_PASSWORD).await;
            verify_mfa(&app, &again, json!({"recovery_code": unused}))
                .await
                .assert(400, incorrect_recovery_code());
        }
    }

    // A pending device asks for nothing; neither does a user without one.
    for email in ["otp-pending@example.com", "plain@example.com"] {
        let login = app.login(email, DJANGO_PASSWORD).await;
        login.assert_status(200);
        assert_eq!(login.body["user"]["email"], email);
        assert_eq!(assurance(&login.access()), (json!(["pwd"]), json!(1)));
    }
    // The skipped user is not there to log in.
    app.login("otp-skipped", DJANGO_PASSWORD)
        .await
        .assert_unauthorized(json!({
            "detail": "No active account found with the given credentials",
            "code": "no_active_account",
        }));
}

async fn the_tokens_django_issued_to_a_totp_user_are_aal1_and_gated(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(
        &[],
        Some(&json!({
            "users": [{"email": "otp@example.com"}],
            "otp_totp": [{"email": "otp@example.com", "name": "phone"}],
            "otp_static": [{"email": "otp@example.com", "name": "backup"}],
            "tokens": [{"email": "otp@example.com"}],
        })),
    );
    let url = ctx.new_database();
    assert_lines(
        &import_mfa(&url, &[&django.url]),
        &[
            "imported 6 second factors (1 TOTP devices, 5 recovery codes)",
            "imported 1 users (0 skipped), 1 tokens, 0 blacklisted",
        ],
    );
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    let id = user_id(&made, "otp@example.com");
    let access = made["tokens"][0]["access"].as_str().unwrap().to_owned();
    let refresh = made["tokens"][0]["refresh"].as_str().unwrap().to_owned();
    let mut device = app_of(&made, "otp@example.com");
    let send = |token: String, method: &'static str, path: String, body: Value| {
        let app = &app;
        async move {
            let mut req = latchkey_tests::app::Req::bearer(&token);
            if !body.is_null() {
                req = req.with_json(body);
            }
            app.request(method, &path, req).await
        }
    };

    // Django's access token works, and reads the imported second factor.
    let me = app.me(&access).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], id);
    let status = send(access.clone(), "GET", paths::MFA.into(), Value::Null).await;
    status.assert_status(200);
    assert_eq!(
        (
            &status.body["totp"]["enabled"],
            &status.body["recovery_codes"]
        ),
        (&json!(true), &json!({"unused": 5})),
        "{}",
        status.text
    );
    // The session adopted from Django's refresh token: pwd at aal 1.
    let adopted = app.refresh_token(&refresh).await;
    adopted.assert_status(200);
    let adopted_access = adopted.body["access"].as_str().unwrap().to_owned();
    assert_eq!(assurance(&adopted_access), (json!(["pwd"]), json!(1)));

    let code = device.next_code().await;
    for token in [&access, &adopted_access] {
        for (method, path, body) in [
            (
                "POST",
                paths::RECOVERY_CODES.to_owned(),
                json!({"code": code}),
            ),
            (
                "DELETE",
                paths::TOTP.to_owned(),
                json!({"current_password": DJANGO_PASSWORD, "code": code}),
            ),
            (
                "POST",
                "/auth/password/".to_owned(),
                json!({"old_password": DJANGO_PASSWORD, "new_password": "a-brand-new-horse-77"}),
            ),
            (
                "PATCH",
                format!("/list/{id}/"),
                json!({"email": "renamed@example.com", "current_password": DJANGO_PASSWORD}),
            ),
        ] {
            let response = send(token.clone(), method, path.clone(), body).await;
            assert_eq!(
                (response.status, &response.body),
                (403, &aal2_required()),
                "{method} {path}: {}",
                response.text
            );
        }
    }

    // Both steps make a session at aal 2, which passes.
    let mfa_token = mfa_token_for(&app, "otp@example.com", DJANGO_PASSWORD).await;
    let (unused, _) = django_codes(&made, "otp@example.com");
    let done = verify_mfa(&app, &mfa_token, json!({"recovery_code": unused[0]})).await;
    assert_logged_in(&done, "otp@example.com", "rec");
    let code = device.next_code().await;
    let renewed = send(
        done.access(),
        "POST",
        paths::RECOVERY_CODES.into(),
        json!({"code": code}),
    )
    .await;
    renewed.assert_status(200);
    assert_eq!(renewed.body["recovery_codes"].as_array().unwrap().len(), 10);
}

async fn a_user_without_a_usable_password_enrols_and_disables_without_one(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(
        &[],
        Some(&json!({
            "users": [{"email": "grace@example.com", "unusable": true}],
            "tokens": [{"email": "grace@example.com"}],
        })),
    );
    let url = ctx.new_database();
    assert_lines(
        &import_mfa(&url, &[&django.url]),
        &["imported 1 users (0 skipped), 1 tokens, 0 blacklisted"],
    );
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    let access = made["tokens"][0]["access"].as_str().unwrap().to_owned();
    let as_grace =
        |token: &str, body: Value| latchkey_tests::app::Req::bearer(token).with_json(body);

    let started = app.post(paths::TOTP, as_grace(&access, json!({}))).await;

    let secret = started.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = started.body["otpauth_url"].as_str().unwrap_or_default();
    started.assert(200, json!({"secret": secret, "otpauth_url": url}));
    let mut device = Authenticator::new(&secret);
    let code = device.next_code().await;
    let confirmed = app
        .post(paths::CONFIRM, as_grace(&access, json!({"code": code})))
        .await;
    confirmed.assert_status(200);
    assert_eq!(assurance(&confirmed.access()).1, json!(2));
    let codes = confirmed.body["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);

    app.request(
        "DELETE",
        paths::TOTP,
        as_grace(&confirmed.access(), json!({"code": codes[0]})),
    )
    .await
    .assert(204, Value::Null);
    app.get(
        paths::MFA,
        latchkey_tests::app::Req::bearer(&confirmed.access()),
    )
    .await
    .assert(
        200,
        json!({"totp": {"enabled": false}, "recovery_codes": {"unused": 0}, "passkeys": 0}),
    );
}
