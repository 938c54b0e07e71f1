//! One verification per stored-hash format, at the default parameters:
//! latchkey's bcrypt (cost 12) and argon2id (19456 KiB, t=2, p=1), and each
//! Django hasher at Django 5.2's defaults (hashes made by Django itself,
//! `tests/fixtures/django_hashes/vectors.json`, key `bench`). Flat sampling,
//! ten samples: the whole run takes a few minutes on one core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use latchkey_auth::{HasherConfig, HasherKind, PasswordHasher};
use latchkey_domain::Password;

const PASSWORD: &str = "correct horse battery staple";

fn hashers(c: &mut Criterion) {
    let path = format!(
        "{}/../../tests/fixtures/django_hashes/vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut cases: Vec<(String, String)> = Vec::new();
    for kind in [
        HasherKind::Bcrypt,
        HasherKind::Argon2id,
        HasherKind::DjangoPbkdf2Sha256,
    ] {
        let hasher = PasswordHasher::with_config(HasherConfig {
            kind,
            ..HasherConfig::default()
        })
        .unwrap();
        let hash = hasher
            .hash(&Password::parse_unvalidated(PASSWORD).unwrap())
            .unwrap();
        cases.push((format!("latchkey_{kind}"), hash));
    }
    for item in doc["bench"].as_array().unwrap() {
        assert_eq!(item["password"], PASSWORD);
        cases.push((
            format!("django_{}", item["hasher"].as_str().unwrap()),
            item["encoded"].as_str().unwrap().to_owned(),
        ));
    }

    // The verifying hasher's own settings only matter for the dummy hash.
    let hasher = PasswordHasher::new(12).unwrap();
    let mut group = c.benchmark_group("verify");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, hash) in &cases {
        assert!(hasher.check(PASSWORD, hash).matches, "{name}");
        group.bench_function(name.as_str(), |b| b.iter(|| hasher.check(PASSWORD, hash)));
    }
    group.finish();
}

criterion_group!(benches, hashers);
criterion_main!(benches);
