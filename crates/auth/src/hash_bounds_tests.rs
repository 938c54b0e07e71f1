//! The contract's "Hardening (v3)": a stored hash past the bounds never
//! matches and costs one configured verification (each bound just inside
//! and just outside), and a wrong password costs at least one configured
//! verification whatever the stored format. Costs are counted with
//! `PasswordHasher::verification_counts`, not timed.
//!
//! The expensive vectors at the fixed floors (PBKDF2 10,000,000 iterations,
//! scrypt N·r·p = 2^24) were made by Python's `hashlib` (OpenSSL), not by
//! latchkey:
//!
//! ```python
//! hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, 10_000_000, 32)
//! hashlib.scrypt(PASSWORD, salt=SALT, n=16384, r=8, p=128, dklen=64, maxmem=0)
//! ```
//!
//! encoded as Django encodes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{
    HashProblem, HasherConfig, HasherKind, PasswordHasher, Verification, VerificationCounts,
};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use latchkey_domain::Password;
use md5::{Digest, Md5};

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "correct horse battery stapler";

const PBKDF2_AT_FLOOR: &str =
    "pbkdf2_sha256$10000000$hashboundsSalt0123456a$Ffo/GvXTqWsQ81IoyiEJCeSa458scpJ0uXNXn7y23kI=";
const PBKDF2_PAST_FLOOR: &str =
    "pbkdf2_sha256$10000001$hashboundsSalt0123456a$+FYmIRdO8nph39GBMbhESNKOi3Cuv2pI2jLI9rDtFW8=";
const SCRYPT_AT_BOUND: &str = "scrypt$16384$hashboundsSalt0123456a$8$128$abm3fuJUpV43fHy2ghhfg+DgEyjqSUhLMPNexL4GA+sG/i7T1Cx5aoMiMM9SWkakj3xcMRW9FZW32G9rYFYCQQ==";
const SCRYPT_PAST_BOUND: &str = "scrypt$16384$hashboundsSalt0123456a$8$129$uXosjIbaCKi2brARPfi/HA8RQTjIpZC1fMpZ5UqxZn5MTxBfWIs5AQUG4OSx6nZMOv+hoX3lMO+Y3AO3OAjEoQ==";

/// The cheapest configuration the settings allow, so that each dummy
/// verification is fast; the bounds then sit at their floors.
fn config(kind: HasherKind) -> HasherConfig {
    HasherConfig {
        kind,
        bcrypt_cost: 4,
        pbkdf2_iterations: 1_000,
        argon2_memory_kib: 1_024,
        argon2_iterations: 1,
        argon2_parallelism: 1,
    }
}

fn hasher(config: HasherConfig) -> PasswordHasher {
    PasswordHasher::with_config(config).unwrap()
}

/// A hash of `raw` made by latchkey under `config`.
fn made(config: HasherConfig, raw: &str) -> String {
    let password = Password::parse_unvalidated_with_limit(raw, 4096).unwrap();
    hasher(config).hash(&password).unwrap()
}

fn argon2_made(memory_kib: u32, iterations: u32, parallelism: u32) -> String {
    made(
        HasherConfig {
            kind: HasherKind::Argon2id,
            argon2_memory_kib: memory_kib,
            argon2_iterations: iterations,
            argon2_parallelism: parallelism,
            ..config(HasherKind::Argon2id)
        },
        PASSWORD,
    )
}

/// Checks `raw` against `stored` and returns what the check did.
fn counted(hasher: &PasswordHasher, raw: &str, stored: &str) -> (Verification, VerificationCounts) {
    let before = hasher.verification_counts();
    let verification = hasher.check(raw, stored);
    let after = hasher.verification_counts();
    (
        verification,
        VerificationCounts {
            stored: after.stored - before.stored,
            dummy: after.dummy - before.dummy,
        },
    )
}

fn counts(stored: u64, dummy: u64) -> VerificationCounts {
    VerificationCounts { stored, dummy }
}

fn out_of_bounds(what: &'static str, value: u64, limit: u64) -> Option<HashProblem> {
    Some(HashProblem::OutOfBounds { what, value, limit })
}

/// The right password against a hash just inside the bounds: it matches,
/// is verified once, and `stored_hash_problem` has nothing to say.
fn assert_inside(hasher: &PasswordHasher, stored: &str) {
    assert_eq!(hasher.stored_hash_problem(stored), None, "{stored}");
    let (verification, done) = counted(hasher, PASSWORD, stored);
    assert!(verification.matches, "{stored}");
    assert!(!verification.out_of_bounds && !verification.unknown_format);
    assert_eq!(done, counts(1, 0), "{stored}");
}

/// The right password against a hash just outside: it never matches, the
/// stored hash is not computed, one dummy verification runs instead, and
/// the problem is reported.
fn assert_outside(hasher: &PasswordHasher, stored: &str, problem: Option<HashProblem>) {
    assert_eq!(hasher.stored_hash_problem(stored), problem, "{stored}");
    let (verification, done) = counted(hasher, PASSWORD, stored);
    assert_eq!(
        verification,
        Verification {
            out_of_bounds: true,
            ..Verification::default()
        },
        "{stored}"
    );
    assert_eq!(done, counts(0, 1), "{stored}");
}

#[test]
fn pbkdf2_at_ten_million_iterations_matches_and_one_more_never_does() {
    let hasher = hasher(config(HasherKind::Bcrypt));
    assert_inside(&hasher, PBKDF2_AT_FLOOR);
    let problem = out_of_bounds("PBKDF2 iterations", 10_000_001, 10_000_000);
    assert_outside(&hasher, PBKDF2_PAST_FLOOR, problem);
    assert_outside(
        &hasher,
        &PBKDF2_PAST_FLOOR.replace("pbkdf2_sha256$", "pbkdf2_sha1$"),
        problem,
    );
    // The vector is genuine: where ten times the configured iterations is
    // above the floor, the bound follows it and the same hash matches.
    let raised = hasher_with(|c| c.pbkdf2_iterations = 1_000_001);
    assert_inside(&raised, PBKDF2_PAST_FLOOR);
}

fn hasher_with(change: impl FnOnce(&mut HasherConfig)) -> PasswordHasher {
    let mut config = config(HasherKind::Bcrypt);
    change(&mut config);
    hasher(config)
}

#[test]
fn the_pbkdf2_bound_is_ten_times_the_configured_iterations_above_the_floor() {
    let hasher = hasher_with(|c| c.pbkdf2_iterations = 2_000_000);
    let with = |n: u32| format!("pbkdf2_sha256${n}$salt$AAAA");
    assert_eq!(hasher.stored_hash_problem(&with(20_000_000)), None);
    assert_eq!(
        hasher.stored_hash_problem(&with(20_000_001)),
        out_of_bounds("PBKDF2 iterations", 20_000_001, 20_000_000)
    );
    assert_eq!(
        hasher.stored_hash_problem(&with(u32::MAX)),
        out_of_bounds("PBKDF2 iterations", u32::MAX.into(), 20_000_000)
    );
}

#[test]
fn bcrypt_at_cost_14_matches_and_15_never_does() {
    // BCRYPT_COST 4: the bound is max(4 + 2, 14).
    let hasher = hasher(config(HasherKind::Bcrypt));
    let at_bound = bcrypt::hash(PASSWORD, 14).unwrap();
    assert_inside(&hasher, &at_bound);
    assert_inside(&hasher, &format!("bcrypt${at_bound}"));
    let past = bcrypt::hash(PASSWORD, 15).unwrap();
    let problem = out_of_bounds("bcrypt cost", 15, 14);
    assert_outside(&hasher, &past, problem);
    assert_outside(&hasher, &format!("bcrypt${past}"), problem);
    assert_outside(&hasher, &format!("bcrypt_sha256${past}"), problem);
    // Cost 31, the most bcrypt allows, would take days.
    let worst = past.replacen("$15$", "$31$", 1);
    assert_outside(&hasher, &worst, out_of_bounds("bcrypt cost", 31, 14));
}

#[test]
fn the_bcrypt_bound_is_the_configured_cost_plus_two_above_14() {
    let with =
        |cost: u32| format!("$2b${cost:02}$abcdefghijklmnopqrstuuJ1zT1XV1EQbbp1b1o8pcpF8cpCqJ8G2");
    let hasher = hasher_with(|c| c.bcrypt_cost = 13);
    assert_eq!(hasher.stored_hash_problem(&with(15)), None);
    assert_eq!(
        hasher.stored_hash_problem(&with(16)),
        out_of_bounds("bcrypt cost", 16, 15)
    );
    let hasher = hasher_with(|c| c.bcrypt_cost = 12);
    assert_eq!(hasher.stored_hash_problem(&with(14)), None);
    assert_eq!(
        hasher.stored_hash_problem(&with(15)),
        out_of_bounds("bcrypt cost", 15, 14)
    );
}

#[test]
fn argon2_at_256_mib_matches_and_one_kib_more_never_does() {
    // ARGON2_MEMORY_KIB 1024: the bound is max(256 MiB, 4 × 1024 KiB).
    let hasher = hasher(config(HasherKind::Bcrypt));
    let at_bound = argon2_made(262_144, 1, 1);
    assert_inside(&hasher, &at_bound);
    let past = argon2_made(262_145, 1, 1);
    let problem = out_of_bounds("argon2 memory (KiB)", 262_145, 262_144);
    assert_outside(&hasher, &past, problem);
    assert_outside(&hasher, &format!("argon2{past}"), problem);
    assert_outside(
        &hasher,
        &format!("argon2{}", past.replacen("$argon2id$", "$argon2i$", 1)),
        problem,
    );
    // Above the floor the bound is four times the configured memory.
    let raised = hasher_with(|c| c.argon2_memory_kib = 65_537);
    assert_inside(&raised, &past);
    let with = |m: u32| format!("$argon2id$v=19$m={m},t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g");
    assert_eq!(
        raised.stored_hash_problem(&with(262_149)),
        out_of_bounds("argon2 memory (KiB)", 262_149, 262_148)
    );
    // The review's 4 GiB.
    assert_eq!(
        hasher.stored_hash_problem(&with(4 * 1024 * 1024)),
        out_of_bounds("argon2 memory (KiB)", 4 * 1024 * 1024, 262_144)
    );
}

#[test]
fn argon2_with_t_16_matches_and_t_17_never_does() {
    let hasher = hasher(config(HasherKind::Bcrypt));
    assert_inside(&hasher, &argon2_made(1_024, 16, 1));
    let past = argon2_made(1_024, 17, 1);
    assert_outside(
        &hasher,
        &past,
        out_of_bounds("argon2 iterations (t)", 17, 16),
    );
    // latchkey's own hashes always verify: a configured t above 16 raises
    // the bound to it.
    let raised = hasher_with(|c| c.argon2_iterations = 17);
    assert_inside(&raised, &past);
}

/// A PHC string at `p` lanes (latchkey's settings stop at 16).
fn argon2_with_lanes(parallelism: u32) -> String {
    let params = Params::new(1_024, 1, parallelism, Some(32)).unwrap();
    let salt = b"hashbounds-salt!";
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(PASSWORD.as_bytes(), salt, &mut out)
        .unwrap();
    format!(
        "$argon2id$v=19$m=1024,t=1,p={parallelism}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

#[test]
fn argon2_with_p_16_matches_and_p_17_never_does() {
    let hasher = hasher(config(HasherKind::Bcrypt));
    assert_inside(&hasher, &argon2_with_lanes(16));
    assert_inside(&hasher, &argon2_made(1_024, 1, 16));
    assert_outside(
        &hasher,
        &argon2_with_lanes(17),
        out_of_bounds("argon2 parallelism (p)", 17, 16),
    );
}

#[test]
fn scrypt_at_n_r_p_2_to_the_24_matches_and_past_it_never_does() {
    let hasher = hasher(config(HasherKind::Bcrypt));
    assert_inside(&hasher, SCRYPT_AT_BOUND);
    assert_outside(
        &hasher,
        SCRYPT_PAST_BOUND,
        out_of_bounds("scrypt N·r·p", 16_384 * 8 * 129, 1 << 24),
    );
    // The review's n=2^15 r=1 p=600, which OpenSSL accepts.
    let with = |n: u32, r: u32, p: u32| format!("scrypt${n}$salt${r}${p}$AAAA");
    assert_eq!(
        hasher.stored_hash_problem(&with(32_768, 1, 600)),
        out_of_bounds("scrypt N·r·p", 32_768 * 600, 1 << 24)
    );
    assert_eq!(hasher.stored_hash_problem(&with(32_768, 1, 512)), None);
    // Within the bound but past OpenSSL's 32 MiB: Django cannot verify it.
    assert_eq!(
        hasher.stored_hash_problem(&with(1 << 22, 4, 1)),
        Some(HashProblem::UnknownFormat)
    );
}

#[test]
fn stored_hash_problem_only_parses() {
    let hasher = hasher(config(HasherKind::Bcrypt));
    let md5 = format!("md5$salt${}", hex_md5("salt", PASSWORD));
    for (stored, problem) in [
        ("!unusable-password-abcdefghijklmnopqrstu", None),
        (md5.as_str(), None),
        ("pbkdf2_sha256$1000$salt$AAAA", None),
        (
            "$2b$12$abcdefghijklmnopqrstuuJ1zT1XV1EQbbp1b1o8pcpF8cpCqJ8G2",
            None,
        ),
        ("", Some(HashProblem::UnknownFormat)),
        ("plain-text", Some(HashProblem::UnknownFormat)),
        (
            "sha1$salt$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            Some(HashProblem::UnknownFormat),
        ),
        ("pbkdf2_sha256$1000$$AAAA", Some(HashProblem::UnknownFormat)),
        (
            "pbkdf2_sha256$0$salt$AAAA",
            Some(HashProblem::UnknownFormat),
        ),
        (
            "$2b$03$abcdefghijklmnopqrstuuJ1zT1XV1EQbbp1b1o8pcpF8cpCqJ8G2",
            Some(HashProblem::UnknownFormat),
        ),
        (
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaGhhc2g",
            Some(HashProblem::UnknownFormat),
        ),
        (
            "pbkdf2_sha256$4294967295$salt$AAAA",
            out_of_bounds("PBKDF2 iterations", u32::MAX.into(), 10_000_000),
        ),
    ] {
        assert_eq!(hasher.stored_hash_problem(stored), problem, "{stored:?}");
        // Each problem is exactly what `check` reports.
        let verification = hasher.check(WRONG, stored);
        assert!(!verification.matches);
        assert_eq!(
            verification.unknown_format,
            problem == Some(HashProblem::UnknownFormat),
            "{stored:?}"
        );
        assert_eq!(
            verification.out_of_bounds,
            matches!(problem, Some(HashProblem::OutOfBounds { .. })),
            "{stored:?}"
        );
    }
    // Listing a million-iteration hash's problems costs no verification.
    let before = hasher.verification_counts();
    for _ in 0..1_000 {
        assert!(hasher.stored_hash_problem(PBKDF2_PAST_FLOOR).is_some());
        assert_eq!(hasher.stored_hash_problem(PBKDF2_AT_FLOOR), None);
    }
    assert_eq!(hasher.verification_counts(), before);
    assert_eq!(
        HashProblem::OutOfBounds {
            what: "bcrypt cost",
            value: 31,
            limit: 14
        }
        .to_string(),
        "with bcrypt cost 31 above the bound 14"
    );
    assert_eq!(
        HashProblem::UnknownFormat.to_string(),
        "in no format latchkey reads"
    );
}

fn hex_md5(salt: &str, raw: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(salt.as_bytes());
    md5.update(raw.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn pbkdf2(digest: &str, iterations: u32) -> String {
    let salt = "abcdefghijklmnopqrstuv";
    let key = match digest {
        "sha256" => {
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                PASSWORD.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut key,
            );
            STANDARD.encode(key)
        }
        _ => {
            let mut key = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                PASSWORD.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut key,
            );
            STANDARD.encode(key)
        }
    };
    format!("pbkdf2_{digest}${iterations}${salt}${key}")
}

fn scrypt_hash(log_n: u8, r: u32, p: u32) -> String {
    let salt = "abcdefghijklmnopqrstuv";
    let mut key = [0u8; 64];
    let params = scrypt::Params::new(log_n, r, p, 64).unwrap();
    scrypt::scrypt(PASSWORD.as_bytes(), salt.as_bytes(), &params, &mut key).unwrap();
    format!(
        "scrypt${}${salt}${r}${p}${}",
        1u32 << log_n,
        STANDARD.encode(key)
    )
}

/// A wrong password against `stored` does `expected`, and the right one
/// (when `stored` is a real hash of it) matches with no dummy at all.
fn assert_wrong_then_right(hasher: &PasswordHasher, stored: &str, expected: VerificationCounts) {
    let (verification, done) = counted(hasher, WRONG, stored);
    assert_eq!(verification, Verification::default(), "{stored}");
    assert_eq!(done, expected, "wrong password against {stored}");
    let (verification, done) = counted(hasher, PASSWORD, stored);
    assert!(verification.matches, "{stored}");
    assert_eq!(done, counts(1, 0), "right password against {stored}");
}

#[test]
fn a_wrong_password_against_a_cheaper_format_adds_one_configured_verification() {
    // bcrypt 5: every hash below costs less.
    let hasher = hasher_with(|c| c.bcrypt_cost = 5);
    let bcrypt4 = bcrypt::hash(PASSWORD, 4).unwrap();
    for stored in [
        format!("md5$salt${}", hex_md5("salt", PASSWORD)),
        pbkdf2("sha256", 1_000),
        pbkdf2("sha1", 1_000),
        bcrypt4.clone(),
        bcrypt4.replacen("$2b$", "$2a$", 1),
        format!("bcrypt${bcrypt4}"),
        argon2_made(1_024, 1, 1),
        format!("argon2{}", argon2_made(1_024, 1, 1)),
        scrypt_hash(10, 1, 1),
    ] {
        assert_wrong_then_right(&hasher, &stored, counts(1, 1));
    }
}

#[test]
fn a_wrong_password_against_a_hash_as_costly_as_configured_adds_nothing() {
    let bcrypt5 = bcrypt::hash(PASSWORD, 5).unwrap();
    let hasher = hasher_with(|c| c.bcrypt_cost = 5);
    for stored in [
        bcrypt5.clone(),
        bcrypt5.replacen("$2b$", "$2y$", 1),
        format!("bcrypt${bcrypt5}"),
        bcrypt::hash(PASSWORD, 6).unwrap(),
        // Other families that cost more than bcrypt 5.
        pbkdf2("sha256", 100_000),
        argon2_made(8_192, 1, 1),
        scrypt_hash(14, 1, 1),
    ] {
        assert_wrong_then_right(&hasher, &stored, counts(1, 0));
    }
    // A password over 72 bytes is refused by bcrypt after a computation at
    // the stored cost: that is the configured one.
    let (verification, done) = counted(&hasher, &"x".repeat(100), &bcrypt5);
    assert_eq!(verification, Verification::default());
    assert_eq!(done, counts(1, 0));
}

#[test]
fn under_argon2id_and_pbkdf2_a_weaker_hash_of_the_configured_format_adds_one() {
    let argon = hasher(HasherConfig {
        argon2_memory_kib: 2_048,
        argon2_iterations: 2,
        ..config(HasherKind::Argon2id)
    });
    assert_wrong_then_right(&argon, &argon2_made(1_024, 2, 1), counts(1, 1));
    assert_wrong_then_right(&argon, &argon2_made(2_048, 1, 1), counts(1, 1));
    assert_wrong_then_right(&argon, &argon2_made(2_048, 2, 1), counts(1, 0));
    // More lanes do the same work one after the other.
    assert_wrong_then_right(&argon, &argon2_made(2_048, 2, 2), counts(1, 0));
    assert_wrong_then_right(&argon, &argon2_made(4_096, 2, 1), counts(1, 0));
    assert_wrong_then_right(
        &argon,
        &format!("argon2{}", argon2_made(2_048, 2, 1)),
        counts(1, 0),
    );

    let django = hasher(HasherConfig {
        pbkdf2_iterations: 2_000,
        ..config(HasherKind::DjangoPbkdf2Sha256)
    });
    assert_wrong_then_right(&django, &pbkdf2("sha256", 1_999), counts(1, 1));
    assert_wrong_then_right(&django, &pbkdf2("sha256", 2_000), counts(1, 0));
    assert_wrong_then_right(&django, &pbkdf2("sha1", 2_000), counts(1, 0));
    assert_wrong_then_right(
        &django,
        &format!("md5$salt${}", hex_md5("salt", PASSWORD)),
        counts(1, 1),
    );
    // bcrypt 4 costs more than 2,000 iterations of PBKDF2.
    assert_wrong_then_right(&django, &bcrypt::hash(PASSWORD, 4).unwrap(), counts(1, 0));
}

#[test]
fn every_refusal_that_reads_no_hash_is_one_dummy_verification() {
    let hasher = hasher_with(|c| c.bcrypt_cost = 5);
    // An unknown email.
    let before = hasher.verification_counts();
    assert!(!hasher.verify_dummy(PASSWORD));
    let after = hasher.verification_counts();
    assert_eq!(
        (after.stored - before.stored, after.dummy - before.dummy),
        (0, 1)
    );
    for (stored, expected) in [
        (
            "!unusable-password-abcdefghijklmnopqrstu",
            Verification {
                unusable: true,
                ..Verification::default()
            },
        ),
        (
            "sha1$salt$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            Verification {
                unknown_format: true,
                ..Verification::default()
            },
        ),
        (
            "md5$$hash",
            Verification {
                unknown_format: true,
                ..Verification::default()
            },
        ),
        (
            PBKDF2_PAST_FLOOR,
            Verification {
                out_of_bounds: true,
                ..Verification::default()
            },
        ),
    ] {
        for raw in [PASSWORD, WRONG] {
            let (verification, done) = counted(&hasher, raw, stored);
            assert_eq!(verification, expected, "{stored}");
            assert_eq!(done, counts(0, 1), "{stored}");
        }
    }
    // Over 4096 bytes nothing is hashed, for a known or an unknown email:
    // the server refuses it before looking the user up.
    let (verification, done) = counted(&hasher, &"x".repeat(4097), SCRYPT_AT_BOUND);
    assert_eq!(verification, Verification::default());
    assert_eq!(done, counts(0, 0));
}
