//! Issuing and verifying tokens as simplejwt does, with our own clock checks
//! so jsonwebtoken's default 60 s leeway never applies.

use std::collections::HashSet;

use jsonwebtoken::{Header, Validation};
use latchkey_domain::Assurance;
use serde_json::{Map, Value};

use crate::claims::ClaimNames;
use crate::{Claims, KeySet, TokenError, TokenType};

/// Lifetimes and claim settings (`SIMPLE_JWT`'s names), in seconds.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub access_lifetime: i64,
    pub refresh_lifetime: i64,
    pub sliding_lifetime: i64,
    pub sliding_refresh_lifetime: i64,
    /// `MFA_TOKEN_LIFETIME`: how long a login waits for its second factor.
    pub mfa_lifetime: i64,
    pub leeway: i64,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub user_id_claim: String,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            access_lifetime: 30 * 60,
            refresh_lifetime: 7 * 24 * 3600,
            sliding_lifetime: 5 * 60,
            sliding_refresh_lifetime: 24 * 3600,
            mfa_lifetime: 5 * 60,
            leeway: 0,
            audience: None,
            issuer: None,
            user_id_claim: "user_id".into(),
        }
    }
}

/// A freshly signed token and what it says.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

pub struct TokenCodec {
    keys: KeySet,
    settings: JwtSettings,
    names: ClaimNames,
    validation: Validation,
}

/// A fresh random `jti`: 32 hex digits, as simplejwt's `uuid4().hex`.
pub fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `id` has the form of [`new_jti`] (sessions are named the same
/// way): anything else names nothing latchkey issued.
pub fn is_issued_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TokenCodec {
    pub fn new(keys: KeySet, settings: JwtSettings) -> Self {
        let mut validation = Validation::new(keys.algorithm);
        validation.algorithms = vec![keys.algorithm];
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let names = ClaimNames {
            user_id_claim: settings.user_id_claim.clone(),
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
        };
        TokenCodec {
            keys,
            settings,
            names,
            validation,
        }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn lifetime(&self, token_type: TokenType) -> i64 {
        match token_type {
            TokenType::Access => self.settings.access_lifetime,
            TokenType::Refresh => self.settings.refresh_lifetime,
            TokenType::Sliding => self.settings.sliding_lifetime,
            TokenType::Mfa => self.settings.mfa_lifetime,
        }
    }

    /// A new token of this type for the user in session `sid`, authenticated
    /// as `assurance` says, issued at `now` (Unix seconds).
    pub fn issue(
        &self,
        token_type: TokenType,
        user_id: i64,
        sid: &str,
        assurance: &Assurance,
        now: i64,
    ) -> IssuedToken {
        let claims = Claims {
            token_type,
            exp: now.saturating_add(self.lifetime(token_type)),
            iat: now,
            jti: new_jti(),
            user_id,
            sid: Some(sid.to_owned()),
            refresh_exp: (token_type == TokenType::Sliding)
                .then_some(now.saturating_add(self.settings.sliding_refresh_lifetime)),
            assurance: assurance.clone(),
        };
        self.sign(claims)
    }

    /// The `mfa_token` of a login whose first factor (`assurance`) passed
    /// and whose second is due: named by the ceremony's `jti`, no session.
    pub fn issue_mfa(
        &self,
        user_id: i64,
        jti: &str,
        assurance: &Assurance,
        now: i64,
    ) -> IssuedToken {
        self.sign(Claims {
            token_type: TokenType::Mfa,
            exp: now.saturating_add(self.settings.mfa_lifetime),
            iat: now,
            jti: jti.to_owned(),
            user_id,
            sid: None,
            refresh_exp: None,
            assurance: assurance.clone(),
        })
    }

    /// Signs known claims: the same claims give the same token, which is how
    /// a refresh inside the reuse interval hands back the token the first
    /// refresh issued without storing token text.
    pub fn sign(&self, claims: Claims) -> IssuedToken {
        let mut header = Header::new(self.keys.algorithm);
        header.kid = self.keys.signing_kid.clone();
        let payload = claims.to_payload(&self.names);
        // Encoding a JSON map with a key that KeySet::new accepted cannot
        // fail: the only errors are malformed keys and unserialisable claims.
        #[allow(clippy::expect_used)]
        let token = jsonwebtoken::encode(&header, &payload, &self.keys.signing)
            .expect("a JSON map signs with a key KeySet::new accepted");
        IssuedToken { token, claims }
    }

    /// Verifies signature, algorithm, audience, issuer, expiry and type, in
    /// simplejwt's order (an expired token of the wrong type is "expired").
    /// `accepted` lists the types this use takes.
    pub fn verify(
        &self,
        token: &str,
        accepted: &[TokenType],
        now: i64,
    ) -> Result<Claims, TokenError> {
        let payload = self.decode_payload(token)?;
        match payload.get("exp") {
            Some(exp) => {
                let exp = exp.as_i64().ok_or(TokenError::Invalid)?;
                if exp <= now.saturating_sub(self.settings.leeway) {
                    return Err(TokenError::Expired);
                }
            }
            None => return Err(TokenError::Invalid),
        }
        self.check_audience_and_issuer(&payload)?;
        let claims = Claims::from_payload(&payload, &self.names)?;
        self.check_not_before(&payload, &claims, now)?;
        if !accepted.contains(&claims.token_type) {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    /// A sliding token presented for refresh: its `exp` may have passed, its
    /// `refresh_exp` may not.
    pub fn verify_sliding_refresh(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let payload = self.decode_payload(token)?;
        self.check_audience_and_issuer(&payload)?;
        let claims = Claims::from_payload(&payload, &self.names)?;
        self.check_not_before(&payload, &claims, now)?;
        if claims.token_type != TokenType::Sliding {
            return Err(TokenError::WrongType);
        }
        match claims.refresh_exp {
            Some(refresh_exp) if refresh_exp > now.saturating_sub(self.settings.leeway) => {
                Ok(claims)
            }
            Some(_) => Err(TokenError::Expired),
            None => Err(TokenError::Invalid),
        }
    }

    /// The sliding token's successor: same `jti` and `refresh_exp`, issued
    /// now with a new `exp`, carrying its session's `assurance`.
    pub fn slide(&self, claims: &Claims, assurance: &Assurance, now: i64) -> IssuedToken {
        self.sign(Claims {
            exp: now.saturating_add(self.settings.sliding_lifetime),
            iat: now,
            assurance: assurance.clone(),
            ..claims.clone()
        })
    }

    fn decode_payload(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != self.keys.algorithm {
            return Err(TokenError::Invalid);
        }
        // `kid` only chooses among the keys configured here; `jku`, `x5u` and
        // `jwk` are never followed.
        let candidates = self
            .keys
            .verifying
            .iter()
            .filter(|key| header.kid.is_none() || key.kid.is_none() || key.kid == header.kid);
        for key in candidates {
            if let Ok(data) =
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation)
            {
                return Ok(data.claims);
            }
        }
        Err(TokenError::Invalid)
    }

    /// A token is not good before its `nbf` (a JSON number, fractions
    /// allowed as RFC 7519's NumericDate allows them) nor before its `iat`,
    /// each within the leeway. The `iat` bound is at least one second: a
    /// token issued in the next second by another instance's clock is fine.
    fn check_not_before(
        &self,
        payload: &Map<String, Value>,
        claims: &Claims,
        now: i64,
    ) -> Result<(), TokenError> {
        let leeway = self.settings.leeway;
        if let Some(nbf) = payload.get("nbf") {
            let nbf = nbf.as_f64().ok_or(TokenError::Invalid)?;
            if !nbf.is_finite() || nbf > (now.saturating_add(leeway)) as f64 {
                return Err(TokenError::Invalid);
            }
        }
        if claims.iat > now.saturating_add(leeway.max(1)) {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    fn check_audience_and_issuer(&self, payload: &Map<String, Value>) -> Result<(), TokenError> {
        let audience_ok = match (&self.names.audience, payload.get("aud")) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(_), None) => false,
            (Some(expected), Some(Value::String(aud))) => aud == expected,
            (Some(expected), Some(Value::Array(auds))) => {
                auds.iter().any(|a| a.as_str() == Some(expected))
            }
            (Some(_), Some(_)) => false,
        };
        let issuer_ok = match (&self.names.issuer, payload.get("iss")) {
            (None, _) => true,
            (Some(expected), Some(Value::String(iss))) => iss == expected,
            (Some(_), _) => false,
        };
        if audience_ok && issuer_ok {
            Ok(())
        } else {
            Err(TokenError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyConfig;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

    #[test]
    fn issued_ids_are_32_lowercase_hex_digits() {
        assert!(is_issued_id(&new_jti()));
        for id in [
            "",
            "\0",
            "a\0b",
            &"A".repeat(32),
            &"g".repeat(32),
            &"a".repeat(31),
            &"a".repeat(33),
        ] {
            assert!(!is_issued_id(id), "{id:?}");
        }
    }

    const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";
    const NOW: i64 = 1_800_000_000;

    fn codec_with(settings: JwtSettings) -> TokenCodec {
        let keys = KeySet::new(&KeyConfig {
            algorithm: Algorithm::HS256,
            secret: SECRET.to_vec(),
            signing_pem: None,
            verifying_pems: vec![],
        })
        .unwrap();
        TokenCodec::new(keys, settings)
    }

    fn codec() -> TokenCodec {
        codec_with(JwtSettings::default())
    }

    fn forge(alg: Algorithm, secret: &[u8], payload: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &payload,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn issued_access_token_verifies_with_simplejwt_claims() {
        let codec = codec();
        let issued = codec.issue(TokenType::Access, 7, "s1", &Assurance::password(), NOW);
        let claims = codec
            .verify(&issued.token, &[TokenType::Access], NOW + 10)
            .unwrap();
        assert_eq!(claims.user_id, 7);
        assert_eq!(claims.exp, NOW + 1800);
        assert_eq!(claims.iat, NOW);
        assert_eq!(claims.jti.len(), 32);
        let payload: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(&issued.token)
            .unwrap()
            .claims;
        assert_eq!(payload["user_id"], json!(7));
        assert_eq!(payload["token_type"], json!("access"));
    }

    #[test]
    fn every_token_gets_its_own_jti() {
        let codec = codec();
        let a = codec.issue(TokenType::Refresh, 1, "s1", &Assurance::password(), NOW);
        let b = codec.issue(TokenType::Refresh, 1, "s1", &Assurance::password(), NOW);
        assert_ne!(a.claims.jti, b.claims.jti);
    }

    #[test]
    fn expiry_has_no_hidden_leeway() {
        let codec = codec();
        let issued = codec.issue(TokenType::Access, 1, "s1", &Assurance::password(), NOW);
        let exp = issued.claims.exp;
        assert_eq!(
            codec.verify(&issued.token, &[TokenType::Access], exp),
            Err(TokenError::Expired)
        );
        assert_eq!(
            codec.verify(&issued.token, &[TokenType::Access], exp + 5),
            Err(TokenError::Expired)
        );
        assert!(
            codec
                .verify(&issued.token, &[TokenType::Access], exp - 1)
                .is_ok()
        );
    }

    #[test]
    fn configured_leeway_is_honoured() {
        let codec = codec_with(JwtSettings {
            leeway: 30,
            ..JwtSettings::default()
        });
        let issued = codec.issue(TokenType::Access, 1, "s1", &Assurance::password(), NOW);
        assert!(
            codec
                .verify(&issued.token, &[TokenType::Access], issued.claims.exp + 5)
                .is_ok()
        );
        assert_eq!(
            codec.verify(&issued.token, &[TokenType::Access], issued.claims.exp + 90),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn types_are_checked_both_ways() {
        let codec = codec();
        let access = codec.issue(TokenType::Access, 1, "s1", &Assurance::password(), NOW);
        let refresh = codec.issue(TokenType::Refresh, 1, "s1", &Assurance::password(), NOW);
        assert_eq!(
            codec.verify(&access.token, &[TokenType::Refresh], NOW),
            Err(TokenError::WrongType)
        );
        assert_eq!(
            codec.verify(&refresh.token, &[TokenType::Access], NOW),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn a_token_without_type_has_no_type() {
        let token = forge(
            Algorithm::HS256,
            SECRET,
            json!({"exp": NOW + 60, "iat": NOW, "jti": "x", "user_id": 1}),
        );
        assert_eq!(
            codec().verify(&token, &[TokenType::Access], NOW),
            Err(TokenError::NoType)
        );
    }

    #[test]
    fn user_id_as_a_decimal_string_is_accepted() {
        let token = forge(
            Algorithm::HS256,
            SECRET,
            json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "x", "user_id": "42"}),
        );
        assert_eq!(
            codec()
                .verify(&token, &[TokenType::Access], NOW)
                .unwrap()
                .user_id,
            42
        );
    }

    #[test]
    fn malformed_claims_are_invalid() {
        for payload in [
            json!({"token_type": "access", "exp": "soon", "iat": NOW, "jti": "x", "user_id": 1}),
            json!({"token_type": "access", "iat": NOW, "jti": "x", "user_id": 1}),
            json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "x", "user_id": "1x"}),
            json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "x"}),
        ] {
            let token = forge(Algorithm::HS256, SECRET, payload.clone());
            assert_eq!(
                codec().verify(&token, &[TokenType::Access], NOW),
                Err(TokenError::Invalid),
                "{payload}"
            );
        }
    }

    #[test]
    fn another_algorithm_or_key_is_invalid() {
        let payload =
            json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "x", "user_id": 1});
        let hs512 = forge(Algorithm::HS512, SECRET, payload.clone());
        assert_eq!(
            codec().verify(&hs512, &[TokenType::Access], NOW),
            Err(TokenError::Invalid)
        );
        let other_key = forge(Algorithm::HS256, b"another-secret", payload);
        assert_eq!(
            codec().verify(&other_key, &[TokenType::Access], NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn alg_none_is_invalid() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"token_type":"access","exp":{},"iat":{NOW},"jti":"x","user_id":1}}"#,
                NOW + 60
            ))
        );
        assert_eq!(
            codec().verify(&token, &[TokenType::Access], NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn audience_and_issuer_are_enforced_when_configured() {
        let strict = codec_with(JwtSettings {
            audience: Some("app".into()),
            issuer: Some("latchkey".into()),
            ..JwtSettings::default()
        });
        let issued = strict.issue(TokenType::Access, 1, "s1", &Assurance::password(), NOW);
        assert!(
            strict
                .verify(&issued.token, &[TokenType::Access], NOW)
                .is_ok()
        );
        let plain = codec().issue(TokenType::Access, 1, "s1", &Assurance::password(), NOW);
        assert_eq!(
            strict.verify(&plain.token, &[TokenType::Access], NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            codec().verify(&issued.token, &[TokenType::Access], NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn sub_claim_is_a_string() {
        let codec = codec_with(JwtSettings {
            user_id_claim: "sub".into(),
            ..JwtSettings::default()
        });
        let issued = codec.issue(TokenType::Access, 9, "s1", &Assurance::password(), NOW);
        let payload: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(&issued.token)
            .unwrap()
            .claims;
        assert_eq!(payload["sub"], json!("9"));
        assert_eq!(
            codec
                .verify(&issued.token, &[TokenType::Access], NOW)
                .unwrap()
                .user_id,
            9
        );
    }

    #[test]
    fn signing_the_same_claims_gives_the_same_token() {
        let codec = codec();
        let issued = codec.issue(TokenType::Refresh, 3, "s1", &Assurance::password(), NOW);
        assert_eq!(codec.sign(issued.claims.clone()).token, issued.token);
    }

    #[test]
    fn an_expired_sliding_token_slides_until_refresh_exp() {
        let codec = codec();
        let issued = codec.issue(TokenType::Sliding, 3, "s1", &Assurance::password(), NOW);
        let later = NOW + 3600;
        assert_eq!(
            codec.verify(&issued.token, &[TokenType::Sliding], later),
            Err(TokenError::Expired)
        );
        let claims = codec.verify_sliding_refresh(&issued.token, later).unwrap();
        let slid = codec.slide(&claims, &claims.assurance, later);
        assert_eq!(slid.claims.jti, issued.claims.jti);
        assert_eq!(slid.claims.refresh_exp, issued.claims.refresh_exp);
        assert!(
            codec
                .verify(&slid.token, &[TokenType::Sliding], later + 1)
                .is_ok()
        );
        assert_eq!(
            codec.verify_sliding_refresh(&issued.token, NOW + 24 * 3600),
            Err(TokenError::Expired)
        );
        let access = codec.issue(TokenType::Access, 3, "s1", &Assurance::password(), NOW);
        assert_eq!(
            codec.verify_sliding_refresh(&access.token, NOW),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn nbf_must_be_a_number_not_in_the_future() {
        let claims = |nbf: Value| json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "x", "user_id": 1, "nbf": nbf});
        for (nbf, ok) in [
            (json!(NOW), true),
            (json!(NOW as f64 - 0.5), true),
            (json!(NOW + 1), false),
            (json!(NOW + 3600), false),
            (json!("soon"), false),
            (json!(null), false),
        ] {
            let token = forge(Algorithm::HS256, SECRET, claims(nbf.clone()));
            assert_eq!(
                codec().verify(&token, &[TokenType::Access], NOW).is_ok(),
                ok,
                "{nbf}"
            );
        }
        let lenient = codec_with(JwtSettings {
            leeway: 30,
            ..JwtSettings::default()
        });
        let token = forge(Algorithm::HS256, SECRET, claims(json!(NOW + 20)));
        assert!(lenient.verify(&token, &[TokenType::Access], NOW).is_ok());
    }

    #[test]
    fn a_future_iat_is_refused_on_the_sliding_refresh_too() {
        let token = forge(
            Algorithm::HS256,
            SECRET,
            json!({"token_type": "sliding", "exp": NOW + 60, "iat": NOW + 3600, "jti": "x", "user_id": 1, "refresh_exp": NOW + 7200}),
        );
        assert_eq!(
            codec().verify_sliding_refresh(&token, NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            codec().verify(&token, &[TokenType::Sliding], NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn sliding_tokens_carry_refresh_exp() {
        let codec = codec();
        let issued = codec.issue(TokenType::Sliding, 3, "s1", &Assurance::password(), NOW);
        assert_eq!(issued.claims.refresh_exp, Some(NOW + 24 * 3600));
        let claims = codec
            .verify(&issued.token, &[TokenType::Sliding], NOW)
            .unwrap();
        assert_eq!(claims.refresh_exp, Some(NOW + 24 * 3600));
    }

    #[test]
    fn tokens_carry_amr_and_aal_and_read_them_back() {
        use latchkey_domain::{Aal, Method};
        let codec = codec();
        let assurance = Assurance::password().and(Method::Totp, false);
        let issued = codec.issue(TokenType::Refresh, 3, "s1", &assurance, NOW);
        let payload: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(&issued.token)
            .unwrap()
            .claims;
        assert_eq!(payload["amr"], json!(["pwd", "otp"]));
        assert_eq!(payload["aal"], json!(2));
        let claims = codec
            .verify(&issued.token, &[TokenType::Refresh], NOW)
            .unwrap();
        assert_eq!(claims.assurance.amr, vec![Method::Password, Method::Totp]);
        assert_eq!(claims.assurance.aal, Aal::Two);
    }

    #[test]
    fn a_token_without_amr_and_aal_is_aal1_and_a_malformed_one_is_invalid() {
        use latchkey_domain::Aal;
        let base =
            json!({"token_type": "access", "exp": NOW + 60, "iat": NOW, "jti": "j", "user_id": 1});
        let token = forge(Algorithm::HS256, SECRET, base.clone());
        let claims = codec().verify(&token, &[TokenType::Access], NOW).unwrap();
        assert!(claims.assurance.amr.is_empty());
        assert_eq!(claims.assurance.aal, Aal::One);
        for (name, value) in [
            ("aal", json!(3)),
            ("aal", json!("2")),
            ("aal", json!(0)),
            ("amr", json!("pwd")),
            ("amr", json!(["pwd", "sms"])),
            ("amr", json!([1])),
        ] {
            let mut payload = base.clone();
            payload[name] = value.clone();
            let token = forge(Algorithm::HS256, SECRET, payload);
            assert_eq!(
                codec().verify(&token, &[TokenType::Access], NOW),
                Err(TokenError::Invalid),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn an_mfa_token_is_no_other_kind_of_token() {
        let codec = codec();
        let issued = codec.issue_mfa(4, "ceremony-jti", &Assurance::password(), NOW);
        let claims = codec.verify(&issued.token, &[TokenType::Mfa], NOW).unwrap();
        assert_eq!(claims.token_type, TokenType::Mfa);
        assert_eq!((claims.user_id, claims.jti.as_str()), (4, "ceremony-jti"));
        assert_eq!(claims.exp, NOW + 300);
        assert_eq!(claims.sid, None);
        for kinds in [
            &[TokenType::Access, TokenType::Sliding][..],
            &[TokenType::Refresh],
            &[TokenType::Access, TokenType::Refresh, TokenType::Sliding],
        ] {
            assert_eq!(
                codec.verify(&issued.token, kinds, NOW),
                Err(TokenError::WrongType)
            );
        }
        assert_eq!(
            codec.verify(&issued.token, &[TokenType::Mfa], NOW + 300),
            Err(TokenError::Expired)
        );
    }
}
