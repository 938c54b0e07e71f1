//! ID token checks (oidc.rs) against tokens signed here with jsonwebtoken:
//! the RSA keys are the test fixtures (`tests/fixtures/keys`), the P-256
//! keys are made per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::core::CoreJsonWebKeySet;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::oidc::{
    ExpectedNonce, IdTokenError, IdTokenRules, SigningAlgorithm, VerifiedIdToken, verify_id_token,
};

const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;
const ISSUER: &str = "https://op.example.com";
const CLIENT_ID: &str = "web-client";
const NONCE: &str = "n-0S6_WzA2Mj";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A signing key with the JWK the provider would publish for it.
struct Key {
    kid: &'static str,
    algorithm: Algorithm,
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

fn rsa_key(kid: &'static str, fixture_name: &str) -> Key {
    let private_pem = fixture(&format!("{fixture_name}.pem"));
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&private_pem).unwrap();
    let jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    Key {
        kid,
        algorithm: Algorithm::RS256,
        private_pem,
        public_pem: fixture(&format!("{fixture_name}.pub.pem")),
        jwk,
    }
}

fn ec_key(kid: &'static str) -> Key {
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
    let public_pem = {
        use p256::pkcs8::EncodePublicKey;
        secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    Key {
        kid,
        algorithm: Algorithm::ES256,
        private_pem: secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem,
        jwk,
    }
}

fn key_set(keys: &[&Key]) -> CoreJsonWebKeySet {
    let keys: Vec<Value> = keys.iter().map(|key| key.jwk.clone()).collect();
    serde_json::from_value(json!({ "keys": keys })).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "248289761001",
        "iat": NOW,
        "exp": NOW + 600,
        "nonce": NONCE,
        "email": "jane@example.com",
        "email_verified": true,
    })
}

fn with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.to_owned());
    let encoding_key = match key.algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding_key).unwrap()
}

/// The provider: an RSA and an EC key, discovery listing RS256 and ES256.
struct Provider {
    rsa: Key,
    ec: Key,
    keys: CoreJsonWebKeySet,
    algorithms: Vec<SigningAlgorithm>,
    other_client_ids: Vec<String>,
    apple: bool,
}

impl Provider {
    fn new() -> Provider {
        let rsa = rsa_key("rsa-1", "rs256");
        let ec = ec_key("ec-1");
        let keys = key_set(&[&rsa, &ec]);
        Provider {
            rsa,
            ec,
            keys,
            algorithms: vec![
                SigningAlgorithm::RsaSsaPkcs1V15Sha256,
                SigningAlgorithm::EcdsaP256Sha256,
            ],
            other_client_ids: vec!["ios-client".to_owned()],
            apple: false,
        }
    }

    fn rules(&self) -> IdTokenRules<'_> {
        IdTokenRules {
            issuer: ISSUER,
            client_id: CLIENT_ID,
            other_client_ids: &self.other_client_ids,
            algorithms: &self.algorithms,
            keys: &self.keys,
            string_email_verified: self.apple,
            leeway: LEEWAY,
        }
    }

    fn browser(&self, token: &str) -> Result<VerifiedIdToken, IdTokenError> {
        verify_id_token(token, &self.rules(), ExpectedNonce::Flow(NONCE), NOW)
    }

    fn native(&self, token: &str, nonce: Option<&str>) -> Result<VerifiedIdToken, IdTokenError> {
        verify_id_token(token, &self.rules(), ExpectedNonce::Native(nonce), NOW)
    }
}

fn jane(email_verified: bool) -> VerifiedIdToken {
    VerifiedIdToken {
        subject: "248289761001".to_owned(),
        email: Some("jane@example.com".to_owned()),
        email_verified,
        exp: NOW + 600,
    }
}

// ---------------------------------------------------------------- good tokens

#[test]
fn good_rs256_token_gives_subject_email_and_exp() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &claims());

    assert_eq!(provider.browser(&token), Ok(jane(true)));
}

#[test]
fn good_es256_token_gives_subject_email_and_exp() {
    let provider = Provider::new();
    let token = sign(&provider.ec, &claims());

    assert_eq!(provider.browser(&token), Ok(jane(true)));
}

#[test]
fn token_without_email_gives_none_and_unverified() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"email": null, "email_verified": null})),
    );

    let verified = provider.browser(&token).unwrap();

    assert_eq!(verified.email, None);
    assert!(!verified.email_verified);
}

// ------------------------------------------------------------ iss and aud

#[test]
fn wrong_issuer_is_refused() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"iss": "https://evil.example.com"})),
    );

    assert_eq!(provider.browser(&token), Err(IdTokenError::WrongIssuer));
}

#[test]
fn issuer_with_a_trailing_slash_is_another_issuer() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"iss": format!("{ISSUER}/")})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::WrongIssuer));
}

#[test]
fn wrong_audience_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"aud": "another-app"})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::WrongAudience));
}

#[test]
fn missing_audience_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"aud": null})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::WrongAudience));
}

#[test]
fn audience_of_one_of_the_other_client_ids_alone_is_accepted() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"aud": "ios-client"})));

    assert_eq!(provider.native(&token, Some(NONCE)), Ok(jane(true)));
}

#[test]
fn audiences_of_the_client_id_and_an_other_client_id_are_accepted() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"aud": ["ios-client", CLIENT_ID]})),
    );

    assert_eq!(provider.browser(&token), Ok(jane(true)));
}

#[test]
fn an_untrusted_audience_beside_the_client_id_is_refused() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"aud": [CLIENT_ID, "another-app"]})),
    );

    assert_eq!(provider.browser(&token), Err(IdTokenError::WrongAudience));
}

#[test]
fn an_untrusted_audience_beside_an_other_client_id_is_refused() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"aud": ["another-app", "ios-client"]})),
    );

    assert_eq!(
        provider.native(&token, Some(NONCE)),
        Err(IdTokenError::WrongAudience)
    );
}

// ------------------------------------------------------------ exp and iat

#[test]
fn token_expired_beyond_the_leeway_is_refused() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"exp": NOW - LEEWAY - 1, "iat": NOW - 600})),
    );

    assert_eq!(provider.browser(&token), Err(IdTokenError::Expired));
}

#[test]
fn token_expired_exactly_the_leeway_ago_is_refused() {
    // As latchkey's own tokens: expired once `exp <= now - LEEWAY`.
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"exp": NOW - LEEWAY, "iat": NOW - 600})),
    );

    assert_eq!(provider.browser(&token), Err(IdTokenError::Expired));
}

#[test]
fn token_expired_within_the_leeway_is_accepted() {
    let provider = Provider::new();
    let token = sign(
        &provider.rsa,
        &with(json!({"exp": NOW - LEEWAY + 1, "iat": NOW - 600})),
    );

    let verified = provider.browser(&token).unwrap();

    assert_eq!(verified.exp, NOW - LEEWAY + 1);
}

#[test]
fn token_expired_without_leeway_is_refused() {
    let provider = Provider::new();
    let rules = IdTokenRules {
        leeway: 0,
        ..provider.rules()
    };
    let token = sign(&provider.rsa, &with(json!({"exp": NOW, "iat": NOW - 600})));

    assert_eq!(
        verify_id_token(&token, &rules, ExpectedNonce::Flow(NONCE), NOW),
        Err(IdTokenError::Expired)
    );
}

#[test]
fn token_issued_beyond_the_leeway_ahead_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"iat": NOW + LEEWAY + 1})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::IssuedInFuture));
}

#[test]
fn token_issued_within_the_leeway_ahead_is_accepted() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"iat": NOW + LEEWAY})));

    assert_eq!(provider.browser(&token), Ok(jane(true)));
}

#[test]
fn token_without_iat_is_malformed() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"iat": null})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::Malformed));
}

// ------------------------------------------------------------------ nonce

#[test]
fn browser_token_with_another_nonce_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"nonce": "someone-elses"})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::NonceMismatch));
}

#[test]
fn browser_token_without_nonce_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"nonce": null})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::NonceMissing));
}

#[test]
fn browser_token_with_the_hashed_nonce_is_refused() {
    // The SHA-256 form is the native SDKs' (Apple's); the browser flow sends
    // the nonce itself and the provider echoes it.
    let provider = Provider::new();
    let hashed = hex(&Sha256::digest(NONCE.as_bytes()));
    let token = sign(&provider.rsa, &with(json!({"nonce": hashed})));

    assert_eq!(provider.browser(&token), Err(IdTokenError::NonceMismatch));
}

#[test]
fn native_token_with_the_posted_nonce_is_accepted() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &claims());

    assert_eq!(provider.native(&token, Some(NONCE)), Ok(jane(true)));
}

#[test]
fn native_token_with_the_sha256_hex_of_the_posted_nonce_is_accepted() {
    let provider = Provider::new();
    let hashed = hex(&Sha256::digest(NONCE.as_bytes()));
    let token = sign(&provider.ec, &with(json!({"nonce": hashed})));

    assert_eq!(provider.native(&token, Some(NONCE)), Ok(jane(true)));
}

#[test]
fn native_token_with_another_nonce_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &claims());

    assert_eq!(
        provider.native(&token, Some("not-the-nonce")),
        Err(IdTokenError::NonceMismatch)
    );
}

#[test]
fn native_token_carrying_a_nonce_needs_one_posted() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &claims());

    assert_eq!(
        provider.native(&token, None),
        Err(IdTokenError::NonceMissing)
    );
}

#[test]
fn native_token_without_nonce_and_none_posted_is_accepted() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"nonce": null})));

    assert_eq!(provider.native(&token, None), Ok(jane(true)));
}

#[test]
fn native_token_without_the_posted_nonce_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"nonce": null})));

    assert_eq!(
        provider.native(&token, Some(NONCE)),
        Err(IdTokenError::NonceMismatch)
    );
}

// ------------------------------------------------- algorithms, keys, signature

#[test]
fn unsigned_token_alg_none_is_refused() {
    let provider = Provider::new();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rsa-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let token = format!("{header}.{payload}.");

    assert_eq!(
        provider.browser(&token),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn unsigned_token_is_refused_even_when_discovery_lists_none() {
    let mut provider = Provider::new();
    provider.algorithms.push(SigningAlgorithm::None);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let token = format!("{header}.{payload}.");

    assert_eq!(
        provider.browser(&token),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn hs256_token_keyed_with_the_public_key_is_refused() {
    let provider = Provider::new();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".to_owned());
    let key = EncodingKey::from_secret(provider.rsa.public_pem.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();

    assert_eq!(
        provider.browser(&token),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn hs256_token_is_refused_even_when_discovery_lists_hs256() {
    let mut provider = Provider::new();
    provider.algorithms.push(SigningAlgorithm::HmacSha256);
    let key = EncodingKey::from_secret(provider.ec.public_pem.as_bytes());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &key).unwrap();

    assert_eq!(
        provider.browser(&token),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn token_signed_with_an_algorithm_discovery_does_not_list_is_refused() {
    let mut provider = Provider::new();
    provider.algorithms = vec![SigningAlgorithm::RsaSsaPkcs1V15Sha256];
    let token = sign(&provider.ec, &claims());

    assert_eq!(
        provider.browser(&token),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn token_with_an_unknown_kid_is_refused() {
    let provider = Provider::new();
    let stranger = Key {
        kid: "rotated-away",
        ..rsa_key("x", "rs256")
    };
    let token = sign(&stranger, &claims());

    assert_eq!(provider.browser(&token), Err(IdTokenError::UnknownKey));
}

#[test]
fn token_naming_a_key_of_another_type_is_refused() {
    // ES256 over the kid of the RSA key: no key fits both.
    let provider = Provider::new();
    let forger = Key {
        kid: "rsa-1",
        ..ec_key("x")
    };
    let token = sign(&forger, &claims());

    assert_eq!(provider.browser(&token), Err(IdTokenError::UnknownKey));
}

#[test]
fn token_signed_by_a_foreign_key_under_a_known_kid_is_refused() {
    let provider = Provider::new();
    let forger = Key {
        kid: "ec-1",
        ..ec_key("x")
    };
    let token = sign(&forger, &claims());

    assert_eq!(provider.browser(&token), Err(IdTokenError::BadSignature));
}

#[test]
fn token_signed_by_another_rsa_key_under_a_known_kid_is_refused() {
    let provider = Provider::new();
    let forger = Key {
        kid: "rsa-1",
        ..rsa_key("x", "rs256-old")
    };
    let token = sign(&forger, &claims());

    assert_eq!(provider.browser(&token), Err(IdTokenError::BadSignature));
}

#[test]
fn token_with_a_changed_payload_is_refused() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(with(json!({"sub": "1"})).to_string());
    let token = format!("{}.{forged}.{}", parts[0], parts[2]);

    assert_eq!(provider.browser(&token), Err(IdTokenError::BadSignature));
}

#[test]
fn garbage_is_malformed() {
    let provider = Provider::new();

    assert_eq!(
        provider.browser("not.a.token"),
        Err(IdTokenError::Malformed)
    );
    assert_eq!(provider.browser(""), Err(IdTokenError::Malformed));
}

// --------------------------------------------------------- email_verified

fn email_verified(provider: &Provider, value: Value) -> Result<bool, IdTokenError> {
    let token = sign(&provider.rsa, &with(json!({ "email_verified": value })));
    provider
        .browser(&token)
        .map(|verified| verified.email_verified)
}

#[test]
fn email_verified_true_counts() {
    assert_eq!(email_verified(&Provider::new(), json!(true)), Ok(true));
}

#[test]
fn email_verified_false_does_not_count() {
    assert_eq!(email_verified(&Provider::new(), json!(false)), Ok(false));
}

#[test]
fn email_verified_absent_does_not_count() {
    let provider = Provider::new();
    let token = sign(&provider.rsa, &with(json!({"email_verified": null})));

    assert_eq!(provider.browser(&token), Ok(jane(false)));
}

#[test]
fn email_verified_string_true_counts_for_apple() {
    let provider = Provider {
        apple: true,
        ..Provider::new()
    };

    assert_eq!(email_verified(&provider, json!("true")), Ok(true));
}

#[test]
fn email_verified_string_true_does_not_count_for_other_providers() {
    assert_eq!(email_verified(&Provider::new(), json!("true")), Ok(false));
}

#[test]
fn email_verified_string_false_does_not_count_for_apple() {
    let provider = Provider {
        apple: true,
        ..Provider::new()
    };

    assert_eq!(email_verified(&provider, json!("false")), Ok(false));
}

#[test]
fn email_verified_boolean_true_counts_for_apple() {
    let provider = Provider {
        apple: true,
        ..Provider::new()
    };

    assert_eq!(email_verified(&provider, json!(true)), Ok(true));
}

#[test]
fn email_verified_other_values_count_as_unverified_and_never_fail_the_token() {
    // openidconnect refuses to parse these at all; the contract reads them
    // as not verified, and the token is checked by the same rules otherwise.
    for apple in [false, true] {
        let provider = Provider {
            apple,
            ..Provider::new()
        };
        for value in [
            json!(1),
            json!("yes"),
            json!("TRUE"),
            json!("True"),
            json!({"v": true}),
            json!([true]),
        ] {
            assert_eq!(
                email_verified(&provider, value.clone()),
                Ok(false),
                "{value}"
            );
            let token = sign(&provider.ec, &with(json!({ "email_verified": value })));
            assert_eq!(provider.browser(&token), Ok(jane(false)), "ES256 {value}");
        }
    }
}

#[test]
fn a_token_with_an_odd_email_verified_still_meets_every_rule() {
    let provider = Provider::new();
    let odd = |changes: Value| {
        let mut claims = with(changes);
        claims["email_verified"] = json!("yes");
        claims
    };
    let refused = |claims: Value| provider.browser(&sign(&provider.rsa, &claims));

    assert_eq!(
        refused(odd(json!({"iss": "https://evil.example.com"}))),
        Err(IdTokenError::WrongIssuer)
    );
    assert_eq!(
        refused(odd(json!({"aud": "another-client"}))),
        Err(IdTokenError::WrongAudience)
    );
    assert_eq!(
        refused(odd(json!({"exp": NOW - LEEWAY}))),
        Err(IdTokenError::Expired)
    );
    assert_eq!(
        refused(odd(json!({"iat": NOW + LEEWAY + 1}))),
        Err(IdTokenError::IssuedInFuture)
    );
    assert_eq!(
        refused(odd(json!({"nonce": "another"}))),
        Err(IdTokenError::NonceMismatch)
    );
    assert_eq!(
        refused(odd(json!({"nonce": null}))),
        Err(IdTokenError::NonceMissing)
    );
    assert_eq!(
        refused(odd(json!({"iat": null}))),
        Err(IdTokenError::Malformed)
    );
    assert_eq!(
        refused(odd(json!({"exp": NOW - LEEWAY + 1}))).map(|t| t.email_verified),
        Ok(false)
    );
    assert_eq!(
        provider
            .native(&sign(&provider.rsa, &odd(json!({}))), Some(NONCE))
            .map(|t| t.email_verified),
        Ok(false)
    );
    // An audience of the other client ids alone.
    assert!(refused(odd(json!({"aud": "ios-client"}))).is_ok());

    // Signed by a key the provider does not have, or with a forged payload.
    let stranger = rsa_key("rsa-1", "rs256-old");
    assert_eq!(
        refused_with(&provider, &stranger, odd(json!({}))),
        Err(IdTokenError::BadSignature)
    );
    let token = sign(&provider.rsa, &odd(json!({})));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(odd(json!({"sub": "1"})).to_string());
    assert_eq!(
        provider.browser(&format!("{}.{forged}.{}", parts[0], parts[2])),
        Err(IdTokenError::BadSignature)
    );
    // An unknown kid, and an algorithm discovery does not list.
    let unknown = rsa_key("nobody", "rs256");
    assert_eq!(
        refused_with(&provider, &unknown, odd(json!({}))),
        Err(IdTokenError::UnknownKey)
    );
    let only_ec = Provider {
        algorithms: vec![SigningAlgorithm::EcdsaP256Sha256],
        ..Provider::new()
    };
    assert_eq!(
        only_ec.browser(&sign(&only_ec.rsa, &odd(json!({})))),
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

fn refused_with(
    provider: &Provider,
    key: &Key,
    claims: Value,
) -> Result<VerifiedIdToken, IdTokenError> {
    provider.browser(&sign(key, &claims))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
