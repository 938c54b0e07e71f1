//! Asymmetric keys: RS256, ES256 and EdDSA round trips, the JWKS checked
//! with an independent JWT implementation (jwt-simple, not latchkey's
//! jsonwebtoken), key rotation, and algorithm confusion refused.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use jwt_simple::prelude::*;
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TestApp, now, tests};
use serde_json::{Value, json};

tests![
    rs256_tokens_verify_against_the_published_jwks,
    es256_tokens_verify_against_the_published_jwks,
    eddsa_tokens_verify_against_the_published_jwks,
    an_hs256_token_signed_with_the_public_key_is_refused,
    an_embedded_jwk_header_is_never_trusted,
    rotated_keys_keep_old_tokens_valid_and_are_published,
    a_signing_key_may_be_given_inline,
];

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&b64(token.split('.').next().unwrap())).unwrap()
}

type Claims = JWTClaims<std::collections::HashMap<String, Value>>;

/// Verifies `token` with the JWKS key of its `kid`, using jwt-simple.
fn verify_independently(jwks: &Value, token: &str) -> Claims {
    let kid = header(token)["kid"]
        .as_str()
        .expect("kid in header")
        .to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .expect("kid published");
    assert_eq!(jwk["use"], "sig");
    match jwk["kty"].as_str().unwrap() {
        "RSA" => RS256PublicKey::from_components(
            &b64(jwk["n"].as_str().unwrap()),
            &b64(jwk["e"].as_str().unwrap()),
        )
        .unwrap()
        .verify_token(token, None)
        .unwrap(),
        "EC" => {
            assert_eq!(jwk["crv"], "P-256");
            let mut point = vec![4u8];
            point.extend(b64(jwk["x"].as_str().unwrap()));
            point.extend(b64(jwk["y"].as_str().unwrap()));
            ES256PublicKey::from_bytes(&point)
                .unwrap()
                .verify_token(token, None)
                .unwrap()
        }
        "OKP" => {
            assert_eq!(jwk["crv"], "Ed25519");
            Ed25519PublicKey::from_bytes(&b64(jwk["x"].as_str().unwrap()))
                .unwrap()
                .verify_token(token, None)
                .unwrap()
        }
        other => panic!("unexpected key type {other}"),
    }
}

async fn round_trip(ctx: &mut Ctx, algorithm: &str, key: &str) -> TestApp {
    let key_file = fixture(key);
    let app = ctx
        .spawn_with(&[("ALGORITHM", algorithm), ("SIGNING_KEY_FILE", &key_file)])
        .await;
    let registered = app.registered("jae@example.com").await;
    let access = registered.access();
    assert_eq!(header(&access)["alg"], algorithm);
    app.me(&access).await.assert_status(200);
    app.refresh_token(&registered.refresh())
        .await
        .assert_status(200);
    let jwks = app.get("/.well-known/jwks.json", Req::default()).await;
    jwks.assert_status(200);
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
    assert!(!jwks.text.contains("\"d\""), "no private parts published");
    let claims = verify_independently(&jwks.body, &access);
    assert_eq!(claims.custom["token_type"], "access");
    assert_eq!(claims.custom["user_id"], registered.body["user"]["id"]);
    verify_independently(&jwks.body, &registered.refresh());
    app
}

async fn rs256_tokens_verify_against_the_published_jwks(mut ctx: Ctx) {
    let app = round_trip(&mut ctx, "RS256", "rs256.pem").await;
    let jwks = app.get("/.well-known/jwks.json", Req::default()).await;
    assert_eq!(jwks.body["keys"][0]["alg"], "RS256");
}

async fn es256_tokens_verify_against_the_published_jwks(mut ctx: Ctx) {
    round_trip(&mut ctx, "ES256", "es256.pem").await;
}

async fn eddsa_tokens_verify_against_the_published_jwks(mut ctx: Ctx) {
    round_trip(&mut ctx, "EdDSA", "eddsa.pem").await;
}

fn invalid() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
    })
}

fn claims_for(id: &Value) -> Value {
    json!({"token_type": "access", "exp": now() + 600, "iat": now(), "jti": "a".repeat(32), "user_id": id})
}

async fn an_hs256_token_signed_with_the_public_key_is_refused(mut ctx: Ctx) {
    let key_file = fixture("rs256.pem");
    let app = ctx
        .spawn_with(&[("ALGORITHM", "RS256"), ("SIGNING_KEY_FILE", &key_file)])
        .await;
    let id = app.registered("jae@example.com").await.body["user"]["id"].clone();
    let public_pem = std::fs::read(fixture("rs256.pub.pem")).unwrap();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims_for(&id),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    app.me(&forged).await.assert(401, invalid());
}

async fn an_embedded_jwk_header_is_never_trusted(mut ctx: Ctx) {
    let key_file = fixture("es256.pem");
    let app = ctx
        .spawn_with(&[("ALGORITHM", "ES256"), ("SIGNING_KEY_FILE", &key_file)])
        .await;
    let id = app.registered("jae@example.com").await.body["user"]["id"].clone();
    // The attacker signs with a key of their own and names it in the header.
    let attacker = fixture("rs256-old.pem");
    let attacker_key = EncodingKey::from_rsa_pem(&std::fs::read(attacker).unwrap()).unwrap();
    let mut forged_header = Header::new(Algorithm::RS256);
    forged_header.jwk =
        Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker_key, Algorithm::RS256).unwrap());
    forged_header.jku = Some("http://127.0.0.1:9/jwks.json".into());
    let forged = jsonwebtoken::encode(&forged_header, &claims_for(&id), &attacker_key).unwrap();
    app.me(&forged).await.assert(401, invalid());
}

async fn rotated_keys_keep_old_tokens_valid_and_are_published(mut ctx: Ctx) {
    let old_key = fixture("rs256-old.pem");
    let old = ctx
        .spawn_with(&[("ALGORITHM", "RS256"), ("SIGNING_KEY_FILE", &old_key)])
        .await;
    let registered = old.registered("jae@example.com").await;
    let old_access = registered.access();

    let new_key = fixture("rs256.pem");
    let old_public = fixture("rs256-old.pub.pem");
    let rotated = ctx
        .spawn_on(
            &old.database_url.clone(),
            &[
                ("ALGORITHM", "RS256"),
                ("SIGNING_KEY_FILE", &new_key),
                ("VERIFYING_KEY_FILES", &old_public),
            ],
        )
        .await;
    rotated.me(&old_access).await.assert_status(200);
    let jwks = rotated.get("/.well-known/jwks.json", Req::default()).await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2);
    verify_independently(&jwks.body, &old_access);
    let fresh = rotated.login("jae@example.com", PASSWORD).await.access();
    assert_ne!(header(&fresh)["kid"], header(&old_access)["kid"]);
    verify_independently(&jwks.body, &fresh);

    let without_old = ctx
        .spawn_on(
            &old.database_url.clone(),
            &[("ALGORITHM", "RS256"), ("SIGNING_KEY_FILE", &new_key)],
        )
        .await;
    without_old.me(&old_access).await.assert(401, invalid());
}

async fn a_signing_key_may_be_given_inline(mut ctx: Ctx) {
    let pem = std::fs::read_to_string(fixture("eddsa.pem")).unwrap();
    let app = ctx
        .spawn_with(&[("ALGORITHM", "EdDSA"), ("SIGNING_KEY", &pem)])
        .await;
    let registered = app.registered("jae@example.com").await;
    assert_eq!(header(&registered.access())["alg"], "EdDSA");
    app.me(&registered.access()).await.assert_status(200);
}
