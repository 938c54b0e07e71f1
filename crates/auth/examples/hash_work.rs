//! Measures the time per unit of work of each hash family, to check the
//! constants of `src/hashers/cost.rs` on this machine:
//! `cargo run --release -p latchkey-auth --example hash_work [RUNS]`.
//! Each figure is the median of RUNS checks of the right password (so no
//! dummy verification is added) divided by the hash's units of work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use latchkey_auth::{HasherConfig, HasherKind, PasswordHasher};
use latchkey_domain::Password;

const PASSWORD: &str = "correct horse battery staple";

fn made(config: HasherConfig) -> String {
    PasswordHasher::with_config(config)
        .unwrap()
        .hash(&Password::parse_unvalidated_with_limit(PASSWORD, 4096).unwrap())
        .unwrap()
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let base = HasherConfig::default();
    let path = format!(
        "{}/../../tests/fixtures/django_hashes/vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let django = |name: &str| {
        doc["bench"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["hasher"] == name)
            .unwrap()["encoded"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // (label, stored hash, units of work, the constant in cost.rs)
    let cases: Vec<(&str, String, f64, f64)> = vec![
        (
            "bcrypt 12, per round (2^cost)",
            made(base),
            4096.0,
            80_000.0,
        ),
        (
            "pbkdf2_sha256 1,000,000, per iteration",
            django("pbkdf2_sha256"),
            1e6,
            140.0,
        ),
        (
            "pbkdf2_sha1 1,000,000, per iteration",
            django("pbkdf2_sha1"),
            1e6,
            140.0,
        ),
        (
            "argon2id 19456 KiB t=2 p=1, per block pass (m·t)",
            made(HasherConfig {
                kind: HasherKind::Argon2id,
                ..base
            }),
            19_456.0 * 2.0,
            700.0,
        ),
        (
            "argon2 102400 KiB t=2 p=8 (Django), per block pass",
            django("argon2"),
            102_400.0 * 2.0,
            700.0,
        ),
        (
            "scrypt 2^14·8·5 (Django), per N·r·p",
            django("scrypt"),
            16_384.0 * 8.0 * 5.0,
            300.0,
        ),
    ];
    let checker = PasswordHasher::new(4).unwrap();
    println!("| work unit | measured ns | cost.rs ns | one check ms |");
    println!("|---|---|---|---|");
    for (label, stored, units, constant) in cases {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                assert!(checker.check(PASSWORD, &stored).matches, "{label}");
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[runs / 2];
        println!(
            "| {label} | {:.0} | {constant:.0} | {:.1} |",
            median * 1e9 / units,
            median * 1e3
        );
    }
}
