//! Token issue and verification, HS256, RS256, ES256 and EdDSA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use latchkey_auth::{JwtSettings, KeyConfig, KeySet, TokenCodec, TokenType};

fn codec(algorithm: Algorithm, pem: Option<&str>) -> TokenCodec {
    let signing_pem = pem.map(|name| {
        std::fs::read(format!(
            "{}/../../tests/fixtures/keys/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    });
    let keys = KeySet::new(&KeyConfig {
        algorithm,
        secret: b"bench-secret-key-0123456789abcdef0123456789".to_vec(),
        signing_pem,
        verifying_pems: vec![],
    })
    .unwrap();
    TokenCodec::new(keys, JwtSettings::default())
}

fn tokens(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp();
    let assurance = latchkey_domain::Assurance::password();
    for (name, codec) in [
        ("hs256", codec(Algorithm::HS256, None)),
        ("rs256", codec(Algorithm::RS256, Some("rs256.pem"))),
        ("es256", codec(Algorithm::ES256, Some("es256.pem"))),
        ("eddsa", codec(Algorithm::EdDSA, Some("eddsa.pem"))),
    ] {
        c.bench_function(&format!("{name}/issue_access"), |b| {
            b.iter(|| codec.issue(TokenType::Access, 42, "s1", &assurance, now))
        });
        let token = codec
            .issue(TokenType::Access, 42, "s1", &assurance, now)
            .token;
        c.bench_function(&format!("{name}/verify_access"), |b| {
            b.iter(|| {
                codec
                    .verify(&token, &[TokenType::Access, TokenType::Sliding], now)
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
