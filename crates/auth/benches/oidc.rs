//! A provider's ID token checked by `oidc::verify_id_token` over a key set
//! already held (the federation crate's cached JWKS; no network), RS256 and
//! ES256, the set holding 1 or 5 keys of the token's kind (the signing key
//! and others under other kids, as Google, Apple and Microsoft publish 2–8).
//! Tokens are signed here with jsonwebtoken, as `src/oidc_tests.rs` does.
//!
//! For comparison, in the same run: jsonwebtoken's own `decode` of the same
//! ID token with the same public key (signature and `exp` only: what the
//! cryptography costs without openidconnect's work around it), and
//! latchkey's access-token verification (`TokenCodec::verify`, as the
//! `tokens` bench measures it) for HS256, RS256 and ES256.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latchkey_auth::oidc::{ExpectedNonce, IdTokenRules, SigningAlgorithm, verify_id_token};
use latchkey_auth::{JwtSettings, KeyConfig, KeySet, TokenCodec, TokenType};
use openidconnect::core::CoreJsonWebKeySet;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

const ISSUER: &str = "https://op.example.com";
const CLIENT_ID: &str = "web-client";
const NONCE: &str = "n-0S6_WzA2Mj";
const LEEWAY: i64 = 30;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A signing key with the JWK a provider would publish for it.
struct Key {
    algorithm: Algorithm,
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

fn rsa_key(kid: &str, private: rsa::RsaPrivateKey) -> Key {
    let jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    });
    Key {
        algorithm: Algorithm::RS256,
        private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        jwk,
    }
}

/// The first RSA key is the test fixture; the others (kids of keys that do
/// not sign here) are made now, 2048 bits as the fixture.
fn rsa_keys(count: usize) -> Vec<Key> {
    let mut keys = vec![rsa_key(
        "rsa-0",
        rsa::RsaPrivateKey::from_pkcs8_pem(&fixture("rs256.pem")).unwrap(),
    )];
    for i in 1..count {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        keys.push(rsa_key(&format!("rsa-{i}"), private));
    }
    keys
}

fn ec_key(kid: &str) -> Key {
    let secret = loop {
        if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break secret;
        }
    };
    let point = secret.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC",
        "use": "sig",
        "crv": "P-256",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    Key {
        algorithm: Algorithm::ES256,
        private_pem: secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        jwk,
    }
}

fn key_set(keys: &[Key]) -> CoreJsonWebKeySet {
    let keys: Vec<Value> = keys.iter().map(|key| key.jwk.clone()).collect();
    serde_json::from_value(json!({ "keys": keys })).unwrap()
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.jwk["kid"].as_str().unwrap().to_owned());
    let encoding_key = match key.algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding_key).unwrap()
}

fn id_token_claims(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "248289761001",
        "iat": now,
        "exp": now + 600,
        "nonce": NONCE,
        "email": "jane@example.com",
        "email_verified": true,
    })
}

fn id_tokens(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp();
    let claims = id_token_claims(now);
    let algorithms = [
        SigningAlgorithm::RsaSsaPkcs1V15Sha256,
        SigningAlgorithm::EcdsaP256Sha256,
    ];
    let other_client_ids = vec!["ios-client".to_owned()];
    let rsa = rsa_keys(5);
    let ec: Vec<Key> = (0..5).map(|i| ec_key(&format!("ec-{i}"))).collect();

    let mut group = c.benchmark_group("verify_id_token");
    for (name, keys) in [("rs256", &rsa), ("es256", &ec)] {
        // The last key of the set signs (a set is searched whole anyway).
        for count in [1, 5] {
            let held = &keys[..count];
            let signer = &held[count - 1];
            let token = sign(signer, &claims);
            let set = key_set(held);
            let rules = IdTokenRules {
                issuer: ISSUER,
                client_id: CLIENT_ID,
                other_client_ids: &other_client_ids,
                algorithms: &algorithms,
                keys: &set,
                string_email_verified: false,
                leeway: LEEWAY,
            };
            let nonce = ExpectedNonce::Native(Some(NONCE));
            let verified = verify_id_token(&token, &rules, nonce, now).unwrap();
            assert!(verified.email_verified);
            group.bench_function(BenchmarkId::new(name, format!("{count}_keys")), |b| {
                b.iter(|| verify_id_token(&token, &rules, nonce, now).unwrap())
            });
        }
    }
    group.finish();

    // The signature alone, with jsonwebtoken (key parsed once, outside).
    let mut group = c.benchmark_group("jsonwebtoken_decode_id_token");
    for (name, key) in [("rs256", &rsa[0]), ("es256", &ec[0])] {
        let token = sign(key, &claims);
        let decoding_key = match key.algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap(),
            _ => DecodingKey::from_ec_pem(key.public_pem.as_bytes()).unwrap(),
        };
        let mut validation = Validation::new(key.algorithm);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[ISSUER]);
        jsonwebtoken::decode::<Value>(&token, &decoding_key, &validation).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| jsonwebtoken::decode::<Value>(&token, &decoding_key, &validation).unwrap())
        });
    }
    group.finish();
}

fn codec(algorithm: Algorithm, pem: Option<&str>) -> TokenCodec {
    let keys = KeySet::new(&KeyConfig {
        algorithm,
        secret: b"bench-secret-key-0123456789abcdef0123456789".to_vec(),
        signing_pem: pem.map(|name| fixture(name).into_bytes()),
        verifying_pems: vec![],
    })
    .unwrap();
    TokenCodec::new(keys, JwtSettings::default())
}

/// latchkey's own access tokens, as the `tokens` bench verifies them.
fn access_tokens(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp();
    let assurance = latchkey_domain::Assurance::password();
    let mut group = c.benchmark_group("verify_access_token");
    for (name, codec) in [
        ("hs256", codec(Algorithm::HS256, None)),
        ("rs256", codec(Algorithm::RS256, Some("rs256.pem"))),
        ("es256", codec(Algorithm::ES256, Some("es256.pem"))),
    ] {
        let token = codec
            .issue(TokenType::Access, 42, "s1", &assurance, now)
            .token;
        group.bench_function(name, |b| {
            b.iter(|| {
                codec
                    .verify(&token, &[TokenType::Access, TokenType::Sliding], now)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, id_tokens, access_tokens);
criterion_main!(benches);
