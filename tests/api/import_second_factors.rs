//! `latchkey import-django` carrying second factors over, from Django
//! databases made by the REAL django-otp 1.7.5 and django-allauth 65.21.1
//! (`make_django_db.py --scenario mfa`): confirmed TOTP devices, django-otp's
//! static tokens and allauth's TOTP and recovery codes. Logging in with them
//! is a later change; these tests look at storage: each secret opens, under
//! the keys derived from the `SECRET_KEY` the import ran with, to Django's;
//! pyotp's code (`tests/django/totp_code.py`) of a step after Django's
//! `last_t` is accepted and the `last_t` step refused; every unused code
//! is stored hashed and used once; nothing is stored in clear. Each test
//! runs on both latchkey backends.

use std::path::Path;
use std::process::Command;

use latchkey_auth::recovery_codes::{keyed_hash, normalise_as_stored};
use latchkey_auth::sealing::{MfaKeys, Sealed};
use latchkey_auth::totp::{TotpParams, base32, check};
use latchkey_persistence::{RecoveryCodes, TotpDevice, db_now};
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::{Backend, Ctx, django, tests};
use serde_json::Value;

use crate::import_django::{DJANGO_SECRET_KEY, DjangoDb, other, stderr, stdout};

tests![
    django:
    imports_totp_devices_and_recovery_codes_sealed_and_hashed,
    a_rerun_adds_nothing_never_lowers_a_step_nor_revives_a_used_code,
    a_dry_run_from_the_other_backend_says_would_import_and_writes_nothing,
    an_unparsable_secret_is_listed_with_its_user_id,
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
