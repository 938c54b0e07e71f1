//! Hashes made by Django 5.2 itself (`tests/fixtures/django_hashes`, made by
//! `make_vectors.py` beside it) are checked as Django checks them, and the
//! hashes latchkey writes as `django_pbkdf2_sha256` are accepted by Django's
//! own `check_password` (the rollback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{HasherConfig, HasherKind, PasswordHasher};
use latchkey_domain::Password;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/django_hashes")
}

/// Cheap settings so that an unusable hash's dummy verification is fast;
/// verification itself reads every parameter from the stored string.
fn hasher(kind: HasherKind) -> PasswordHasher {
    PasswordHasher::with_config(HasherConfig {
        kind,
        bcrypt_cost: 4,
        pbkdf2_iterations: 1_000,
        argon2_memory_kib: 1_024,
        argon2_iterations: 1,
        argon2_parallelism: 1,
    })
    .unwrap()
}

#[test]
fn every_django_made_vector_is_checked_as_django_checks_it() {
    let text = std::fs::read_to_string(fixtures().join("vectors.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc["django"]
            .as_str()
            .unwrap()
            .split('.')
            .take(2)
            .collect::<Vec<_>>(),
        ["5", "2"]
    );
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 50);
    let hasher = hasher(HasherKind::Bcrypt);
    let mut hashers_seen = std::collections::BTreeSet::new();
    let timing = std::env::var_os("LATCHKEY_HASH_TIMING").is_some();
    for v in vectors {
        let name = v["hasher"].as_str().unwrap();
        let password = v["password"].as_str().unwrap();
        let encoded = v["encoded"].as_str().unwrap();
        let wrong = v["wrong_password"].as_str().unwrap();
        let label = format!(
            "{name} {:?} {}",
            v.get("note"),
            &encoded[..encoded.len().min(40)]
        );
        let started = std::time::Instant::now();
        let right = hasher.check(password, encoded);
        assert_eq!(
            right.matches,
            v["right"].as_bool().unwrap(),
            "right password: {label}"
        );
        // At Django's default work factors (seconds each in a debug build)
        // only the right password; the wrong ones are proven on the cheap.
        let default_cost = v["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("Django 5.2 default"));
        if !default_cost {
            assert_eq!(
                hasher.check(wrong, encoded).matches,
                v["wrong"].as_bool().unwrap(),
                "wrong password: {label}"
            );
        }
        if right.matches {
            hashers_seen.insert(name);
            // Django's formats are never the configured bcrypt format, but
            // a password over 72 bytes cannot be rehashed as bcrypt.
            assert_eq!(right.needs_upgrade, password.len() <= 72, "{label}");
        }
        // Whatever Django refuses (an error, an algorithm it no longer
        // has) is an unknown format, except the unusable password and a
        // password too long for a well-formed bcrypt hash.
        let unknown =
            !v["right"].as_bool().unwrap() && name != "unusable" && !encoded.starts_with("bcrypt$");
        assert_eq!(right.unknown_format, unknown, "{label}");
        assert_eq!(right.unusable, name == "unusable", "{label}");
        if timing {
            eprintln!("{:>8.1} ms  {label}", started.elapsed().as_secs_f64() * 1e3);
        }
    }
    assert_eq!(
        hashers_seen.into_iter().collect::<Vec<_>>(),
        [
            "argon2i",
            "argon2id",
            "bcrypt",
            "bcrypt_sha256",
            "md5",
            "pbkdf2_sha1",
            "pbkdf2_sha256",
            "scrypt"
        ]
    );
}

#[test]
fn a_django_vector_altered_by_one_character_never_matches() {
    let text = std::fs::read_to_string(fixtures().join("vectors.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let hasher = hasher(HasherKind::Bcrypt);
    for v in doc["vectors"].as_array().unwrap() {
        let default_cost = v["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("Django 5.2 default"));
        if !v["right"].as_bool().unwrap() || default_cost {
            continue;
        }
        let password = v["password"].as_str().unwrap();
        let encoded = v["encoded"].as_str().unwrap();
        // The last character of the hash, and a trailing extra one.
        let mut altered = encoded.to_owned();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!hasher.verify(password, &altered), "{altered}");
        assert!(
            !hasher.verify(password, &format!("{encoded}A")),
            "{encoded}A"
        );
        assert!(
            !hasher.verify(password, &encoded.to_uppercase()),
            "{encoded}"
        );
    }
}

/// The Django tests' venv, made from PyPI on first use by
/// `tests/django/setup.sh` (idempotent, locked against parallel runs). A
/// venv that cannot be made fails the test: it never passes without Django.
fn django_python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/django/setup.sh");
    let venv = std::env::var_os("LATCHKEY_DJANGO_VENV")
        .map_or_else(|| "/tmp/latchkey-django-venv".into(), PathBuf::from);
    let status = Command::new("bash")
        .arg(&script)
        .env("LATCHKEY_DJANGO_VENV", &venv)
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "bash {} failed ({status}): this test needs Django from PyPI in {}",
        script.display(),
        venv.display()
    );
    venv.join("bin").join("python")
}

#[test]
fn django_accepts_the_hashes_latchkey_writes_for_a_rollback() {
    let python = django_python();
    let mut items = Vec::new();
    let cheap = hasher(HasherKind::DjangoPbkdf2Sha256);
    let default = PasswordHasher::with_config(HasherConfig {
        kind: HasherKind::DjangoPbkdf2Sha256,
        ..HasherConfig::default()
    })
    .unwrap();
    let passwords = [
        "correct horse battery staple".to_owned(),
        "pässwörd-日本語-🔑".to_owned(),
        "k".repeat(72),
        "0123456789".repeat(10),
        "long passphrase ".repeat(256),
    ];
    for raw in &passwords {
        let password = Password::parse_unvalidated_with_limit(raw, 4096).unwrap();
        let hash = cheap.hash(&password).unwrap();
        assert!(hash.starts_with("pbkdf2_sha256$1000$"));
        assert!(cheap.verify(raw, &hash));
        items.push(serde_json::json!({"password": raw, "encoded": hash}));
    }
    let password = Password::parse_unvalidated_with_limit(&passwords[1], 4096).unwrap();
    let hash = default.hash(&password).unwrap();
    assert!(hash.starts_with("pbkdf2_sha256$1000000$"));
    items.push(serde_json::json!({"password": passwords[1], "encoded": hash}));

    let dir = std::env::temp_dir().join(format!("latchkey-rollback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latchkey_hashes.json");
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    let output = Command::new(python)
        .arg(fixtures().join("make_vectors.py"))
        .arg("--check")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("accepted all {}", items.len())),
        "{stdout}"
    );
}
