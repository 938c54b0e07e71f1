//! Property tests over the two parsers that meet untrusted bytes first: the
//! request-body parser and the token decoder. Whatever comes in, they never
//! panic, and every refusal is a 4xx — never a 5xx. Bounded (a few hundred
//! cases each) so CI runs them in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::body::parse_body;
use crate::error::ApiError;
use actix_web::ResponseError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_auth::{Claims, JwtSettings, KeyConfig, KeySet, TokenCodec, TokenError, TokenType};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const SECRET: &[u8] = b"a-fuzzing-secret-that-is-long-enough-for-hs256";

fn codec(leeway: i64) -> TokenCodec {
    let keys = KeySet::new(&KeyConfig {
        algorithm: Algorithm::HS256,
        secret: SECRET.to_vec(),
        signing_pem: None,
        verifying_pems: vec![],
    })
    .unwrap();
    TokenCodec::new(
        keys,
        JwtSettings {
            leeway,
            ..JwtSettings::default()
        },
    )
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[track_caller]
fn assert_4xx(error: &ApiError) {
    let status = error.status_code();
    assert!(status.is_client_error(), "{error:?} answers {status}");
}

/// The two ways the server turns a token refusal into a response: the
/// authenticated request's 401 and the token endpoints' 401.
#[track_caller]
fn assert_token_refusal_is_4xx(error: TokenError) {
    assert_4xx(&ApiError::AccessToken(error));
    assert_4xx(&ApiError::token_invalid_or_expired());
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `header.payload.signature` over arbitrary header and payload bytes,
/// signed with the codec's key: the decoder sees a good signature over
/// whatever the parts say.
fn signed_raw(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", base64url(header), base64url(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

// ------------------------------------------------------------ strategies

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        Just(Value::String("\u{0}".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Content types: the accepted ones, their variants, and noise.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("APPLICATION/JSON".to_owned())),
        Just(Some("application/vnd.api+json".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some(
            "application/x-www-form-urlencoded; charset=latin-1".to_owned()
        )),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        Just(Some(String::new())),
        Just(Some(";;;".to_owned())),
        Just(Some("\u{fffd}".to_owned())),
        ".{0,40}".prop_map(Some),
        "[a-z]{1,8}/[a-z+.-]{1,12}(;[ a-z=-]{0,20})?".prop_map(Some),
    ]
}

/// JSON text: valid, truncated, or with bytes changed.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    (
        json_value(),
        0usize..3,
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(value, mutation, at, byte)| {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                match mutation {
                    0 => {}
                    1 => bytes.truncate(at),
                    _ => bytes[at] = byte,
                }
            }
            bytes
        })
}

/// Form text: pairs with escapes, stray `%`, `+`, `=`, `&` and NULs.
fn form_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[a-z_]{0,8}".prop_map(String::from),
        Just("%".to_owned()),
        Just("%00".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%zz".to_owned()),
        Just("+".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just(";".to_owned()),
        ".{0,4}".prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat().into_bytes())
}

/// A claim value: well-formed numbers at the edges, and the wrong types.
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-4_000_000_000i64..4_000_000_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-4.0e9f64..4.0e9).prop_map(Value::from),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        ".{0,12}".prop_map(Value::String),
        "-?[0-9]{1,20}".prop_map(Value::String),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([1])),
        Just(json!({"a": 1})),
    ]
}

fn token_type_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["access", "refresh", "sliding"]).prop_map(Value::from),
        1 => ".{0,10}".prop_map(Value::String),
        1 => claim_value(),
    ]
}

/// A claim that may be left out.
fn maybe(strategy: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 4 => strategy.prop_map(Some)]
}

const CLAIM_NAMES: [&str; 9] = [
    "token_type",
    "exp",
    "iat",
    "nbf",
    "refresh_exp",
    "jti",
    "user_id",
    "aud",
    "sid",
];

/// Claims near a valid token's (so the clock checks are reached and often
/// passed), with up to three claims replaced by arbitrary values or left
/// out.
fn forged_claims(now: i64) -> impl Strategy<Value = Map<String, Value>> {
    let whole = move |low: i64, high: i64| (low..high).prop_map(move |d| Value::from(now + d));
    let offset = move |low: i64, high: i64| {
        prop_oneof![
            1 => whole(low, high),
            1 => (low as f64..high as f64).prop_map(move |d| Value::from(now as f64 + d)),
        ]
    };
    (
        token_type_value(),
        whole(-100, 4000),
        whole(-4000, 100),
        maybe(offset(-4000, 200)),
        whole(-100, 100_000),
        prop::collection::vec(
            (
                0..CLAIM_NAMES.len(),
                prop::option::weighted(0.8, claim_value()),
            ),
            0..=3,
        ),
    )
        .prop_map(move |(token_type, exp, iat, nbf, refresh_exp, changes)| {
            let mut claims = Map::new();
            claims.insert("token_type".into(), token_type);
            claims.insert("exp".into(), exp);
            claims.insert("iat".into(), iat);
            if let Some(nbf) = nbf {
                claims.insert("nbf".into(), nbf);
            }
            claims.insert("refresh_exp".into(), refresh_exp);
            claims.insert("jti".into(), Value::from("f".repeat(32)));
            claims.insert("user_id".into(), Value::from(7));
            for (claim, value) in changes {
                let name = CLAIM_NAMES[claim].to_owned();
                match value {
                    Some(value) => claims.insert(name, value),
                    None => claims.remove(&name),
                };
            }
            claims
        })
}

fn accepted_types() -> impl Strategy<Value = Vec<TokenType>> {
    let all = vec![TokenType::Access, TokenType::Refresh, TokenType::Sliding];
    prop_oneof![Just(all.clone()), prop::sample::subsequence(all, 0..=3),]
}

/// What an accepted token must satisfy, whatever the codec's path: its
/// `nbf`, when present, is a number not in the future beyond the leeway,
/// and its `iat` is not in the future beyond the leeway either (whole
/// seconds: one second of grace).
fn assert_clock_claims(payload: &Map<String, Value>, claims: &Claims, now: i64, leeway: i64) {
    let grace = leeway.max(1);
    assert!(
        claims.iat <= now + grace,
        "accepted a future iat {} at {now}",
        claims.iat
    );
    if let Some(nbf) = payload.get("nbf") {
        let nbf = nbf
            .as_f64()
            .unwrap_or_else(|| panic!("accepted a non-numeric nbf {nbf}"));
        assert!(
            nbf <= (now + leeway) as f64,
            "accepted nbf {nbf} at {now} with leeway {leeway}"
        );
    }
}

// ------------------------------------------------------------- the body

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_with_any_content_type_parse_or_are_a_4xx(
        content_type in content_type(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Err(error) = parse_body(content_type.as_deref(), &body) {
            assert_4xx(&error);
        }
    }

    #[test]
    fn json_ish_bodies_parse_or_are_a_4xx(
        content_type in content_type(),
        body in json_ish(),
    ) {
        if let Err(error) = parse_body(content_type.as_deref(), &body) {
            assert_4xx(&error);
        }
    }

    #[test]
    fn form_ish_bodies_parse_or_are_a_4xx(
        content_type in content_type(),
        body in form_ish(),
    ) {
        if let Err(error) = parse_body(content_type.as_deref(), &body) {
            assert_4xx(&error);
        }
    }

    #[test]
    fn a_json_object_is_read_field_for_field(
        fields in prop::collection::btree_map("[a-z_\u{0}]{0,10}", json_value(), 0..8),
        content_type in prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ]),
    ) {
        let object: Map<String, Value> = fields.into_iter().collect();
        let body = serde_json::to_vec(&Value::Object(object.clone())).unwrap();
        let parsed = parse_body(Some(content_type), &body)
            .unwrap_or_else(|e| panic!("a JSON object was refused: {e:?}"));
        // field for field what serde_json reads from the same text (its
        // float parsing is not an exact round trip of every f64)
        let expected: Value = serde_json::from_slice(&body).unwrap();
        prop_assert!(parsed.0.keys().eq(object.keys()));
        prop_assert_eq!(Value::Object(parsed.0), expected);
    }

    #[test]
    fn json_that_is_not_an_object_is_a_400(value in json_value()) {
        prop_assume!(!value.is_object());
        let body = serde_json::to_vec(&value).unwrap();
        prop_assume!(!body.iter().all(u8::is_ascii_whitespace));
        let error = parse_body(Some("application/json"), &body).unwrap_err();
        prop_assert_eq!(error.status_code().as_u16(), 400);
    }

    #[test]
    fn deep_nesting_is_a_4xx_not_a_stack_overflow(
        depth in 100usize..20_000,
        open in prop::sample::select(vec!["[", "{\"a\":"]),
    ) {
        let body = open.repeat(depth);
        let error = parse_body(Some("application/json"), body.as_bytes()).unwrap_err();
        assert_4xx(&error);
    }

    #[test]
    fn an_unknown_media_type_is_a_415(
        media in "[a-z]{1,8}/[a-z]{1,8}",
        body in "[a-z=&]{1,40}",
    ) {
        prop_assume!(media != "application/json" && media != "application/x-www-form-urlencoded");
        let error = parse_body(Some(&media), body.as_bytes()).unwrap_err();
        prop_assert_eq!(error.status_code().as_u16(), 415);
    }
}

// ----------------------------------------------------------- the tokens

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_token_text_is_refused_without_a_panic(
        token in prop_oneof![
            ".{0,200}",
            "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}",
            "[A-Za-z0-9_=.-]{0,300}",
        ],
        accepted in accepted_types(),
        now in 0i64..4_000_000_000,
        leeway in 0i64..=86_400,
    ) {
        let codec = codec(leeway);
        let error = codec.verify(&token, &accepted, now).unwrap_err();
        assert_token_refusal_is_4xx(error);
        let error = codec.verify_sliding_refresh(&token, now).unwrap_err();
        assert_token_refusal_is_4xx(error);
    }

    #[test]
    fn well_signed_garbage_is_refused_without_a_panic(
        header in prop_oneof![
            Just(br#"{"alg":"HS256","typ":"JWT"}"#.to_vec()),
            Just(br#"{"alg":"HS256"}"#.to_vec()),
            Just(br#"{"alg":"HS256","crit":["exp"]}"#.to_vec()),
            Just(br#"{"alg":"HS256","kid":"../../dev/null"}"#.to_vec()),
            Just(br#"{"alg":"none"}"#.to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..120),
            json_ish(),
        ],
        accepted in accepted_types(),
        now in 0i64..4_000_000_000,
    ) {
        let token = signed_raw(&header, &payload);
        let codec = codec(0);
        if let Err(error) = codec.verify(&token, &accepted, now) {
            assert_token_refusal_is_4xx(error);
        }
        if let Err(error) = codec.verify_sliding_refresh(&token, now) {
            assert_token_refusal_is_4xx(error);
        }
    }

    #[test]
    fn forged_claims_with_the_right_key_never_panic_and_keep_the_clock_rules(
        (now, claims) in (1_000_000_000i64..3_000_000_000)
            .prop_flat_map(|now| (Just(now), forged_claims(now))),
        accepted in accepted_types(),
        leeway in prop_oneof![Just(0i64), 0i64..=86_400],
    ) {
        let token = signed(&Value::Object(claims.clone()));
        let codec = codec(leeway);
        match codec.verify(&token, &accepted, now) {
            Ok(verified) => {
                prop_assert!(accepted.contains(&verified.token_type));
                prop_assert!(verified.exp > now - leeway, "accepted an expired token");
                assert_clock_claims(&claims, &verified, now, leeway);
            }
            Err(error) => assert_token_refusal_is_4xx(error),
        }
        match codec.verify_sliding_refresh(&token, now) {
            Ok(verified) => {
                prop_assert_eq!(verified.token_type, TokenType::Sliding);
                prop_assert!(verified.refresh_exp.is_some_and(|r| r > now - leeway));
                assert_clock_claims(&claims, &verified, now, leeway);
            }
            Err(error) => assert_token_refusal_is_4xx(error),
        }
    }

    #[test]
    fn a_future_nbf_or_iat_is_refused_on_both_paths(
        now in 1_000_000_000i64..3_000_000_000,
        leeway in 0i64..=3600,
        ahead in 2i64..100_000,
        which in prop::sample::select(vec!["nbf", "iat"]),
        token_type in prop::sample::select(vec!["access", "refresh", "sliding"]),
    ) {
        let mut claims = json!({
            "token_type": token_type,
            "exp": now + 600,
            "iat": now - 10,
            "jti": "f".repeat(32),
            "user_id": 1,
            "refresh_exp": now + 86_400,
        });
        claims[which] = json!(now + leeway + ahead);
        let token = signed(&claims);
        let codec = codec(leeway);
        let all = [TokenType::Access, TokenType::Refresh, TokenType::Sliding];
        prop_assert_eq!(codec.verify(&token, &all, now), Err(TokenError::Invalid));
        if token_type == "sliding" {
            prop_assert_eq!(
                codec.verify_sliding_refresh(&token, now),
                Err(TokenError::Invalid)
            );
        }
        // and the same token without the future claim is fine
        claims[which] = json!(now - 10);
        let token = signed(&claims);
        prop_assert!(codec.verify(&token, &all, now).is_ok());
        if token_type == "sliding" {
            prop_assert!(codec.verify_sliding_refresh(&token, now).is_ok());
        }
    }

    #[test]
    fn another_hmac_algorithm_with_the_right_secret_is_refused(
        claims in forged_claims(2_000_000_000),
        algorithm in prop::sample::select(vec![Algorithm::HS384, Algorithm::HS512]),
    ) {
        let token = jsonwebtoken::encode(
            &Header::new(algorithm),
            &Value::Object(claims),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let codec = codec(0);
        let all = [TokenType::Access, TokenType::Refresh, TokenType::Sliding];
        prop_assert_eq!(codec.verify(&token, &all, 2_000_000_000), Err(TokenError::Invalid));
        prop_assert_eq!(
            codec.verify_sliding_refresh(&token, 2_000_000_000),
            Err(TokenError::Invalid)
        );
    }
}

#[test]
fn base64url_matches_the_rfc_4648_vectors() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64url(input.as_bytes()), output);
    }
    // and a token signed through it verifies like one from jsonwebtoken
    let claims = json!({"token_type": "access", "exp": 2_000_000_600i64, "iat": 2_000_000_000i64, "jti": "x", "user_id": 1});
    let token = signed_raw(
        br#"{"alg":"HS256","typ":"JWT"}"#,
        claims.to_string().as_bytes(),
    );
    assert!(
        codec(0)
            .verify(&token, &[TokenType::Access], 2_000_000_001)
            .is_ok()
    );
}
