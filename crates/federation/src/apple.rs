//! Apple's client secret: not a fixed string but an ES256 JWT signed with
//! the team's `.p8` key, made with jsonwebtoken (contract: "Details of the
//! provider rules"). Its `aud` is Apple's issuer even when
//! `SOCIAL_APPLE_ISSUER` points elsewhere, as Apple requires.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

/// The audience Apple expects of every client secret.
pub const APPLE_AUDIENCE: &str = "https://appleid.apple.com";

/// How long a made secret is good for. Apple allows six months; one is made
/// per code exchange, so minutes are plenty.
const LIFETIME_SECONDS: i64 = 300;

/// `SOCIAL_APPLE_TEAM_ID`, `_KEY_ID` and the parsed `_PRIVATE_KEY`.
#[derive(Clone)]
pub struct AppleKey {
    team_id: String,
    key_id: String,
    key: EncodingKey,
}

impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("key", &"Secret(***)")
            .finish()
    }
}

#[derive(Serialize)]
struct SecretClaims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

impl AppleKey {
    /// `private_key_pem`: the `.p8` file's PEM (PKCS#8, P-256). Err names
    /// what is wrong with it, never its content.
    pub fn new(team_id: &str, key_id: &str, private_key_pem: &[u8]) -> Result<AppleKey, String> {
        let key = EncodingKey::from_ec_pem(private_key_pem)
            .map_err(|_| "is not a PEM P-256 private key (Apple's .p8 file)".to_owned())?;
        let apple = AppleKey {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            key,
        };
        // A key that parses but cannot sign would fail every login later.
        apple.client_secret("latchkey.start-up.check", 0)?;
        Ok(apple)
    }

    /// The client secret for `client_id` at `now` (Unix seconds).
    pub fn client_secret(&self, client_id: &str, now: i64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = SecretClaims {
            iss: &self.team_id,
            iat: now,
            exp: now + LIFETIME_SECONDS,
            aud: APPLE_AUDIENCE,
            sub: client_id,
        };
        encode(&header, &claims, &self.key).map_err(|_| "could not sign with the key".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    use serde_json::Value;

    use super::*;

    // A P-256 key made for these tests only (openssl ecparam -genkey
    // -name prime256v1 | openssl pkcs8 -topk8 -nocrypt).
    const PRIVATE: &str = include_str!("../testdata/apple_test_key.p8");
    const PUBLIC: &str = include_str!("../testdata/apple_test_key.pub.pem");

    #[test]
    fn the_secret_is_an_es256_jwt_apple_would_accept() {
        let key = AppleKey::new("TEAM123456", "KEY1234567", PRIVATE.as_bytes()).unwrap();
        let secret = key.client_secret("com.example.web", 1_800_000_000).unwrap();
        let header = decode_header(&secret).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[APPLE_AUDIENCE]);
        validation.set_issuer(&["TEAM123456"]);
        validation.validate_exp = false;
        let claims = decode::<Value>(
            &secret,
            &DecodingKey::from_ec_pem(PUBLIC.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "com.example.web");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_000 + LIFETIME_SECONDS);
    }

    #[test]
    fn a_key_that_is_not_a_p256_pem_is_refused_without_echoing_it() {
        let error =
            AppleKey::new("T", "K", b"-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap_err();
        assert!(!error.contains("not a key"));
        let debug = format!("{:?}", AppleKey::new("T", "K", PRIVATE.as_bytes()).unwrap());
        assert!(debug.contains("Secret(***)") && !debug.contains("PRIVATE"));
    }
}
