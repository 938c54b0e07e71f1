//! ID tokens of sign-in providers (OpenID Connect): is this token, signed by
//! one of the provider's keys, for us, and what does it say about the user.
//!
//! Plain functions over a key set the caller already holds (the federation
//! crate fetches discovery and the JWKS); no I/O here. Every check of the
//! signature, `iss`, `aud`, `exp`, `iat` and `nonce` is openidconnect's
//! `IdTokenVerifier`; this module only configures it as the contract says
//! and reads `email_verified` itself (see [`VerifiedIdToken`]). The one
//! token the crate cannot read, one whose `email_verified` is neither a
//! boolean nor `"true"`/`"false"`, is checked by jsonwebtoken against the
//! same rules instead (`odd_email_verified`): the contract counts such a
//! value as unverified, never as a reason to refuse the token.
//!
//! Any [`IdTokenError`] means the same to a client: 401
//! `provider_token_invalid` (native `/token/`) or `provider_error` (browser
//! callback). The reasons are there for logs and tests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{
    Audience, ClaimsVerificationError, ClientId, IssuerUrl, JwsSigningAlgorithm, Nonce,
    SignatureVerificationError,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use openidconnect::core::CoreJwsSigningAlgorithm as SigningAlgorithm;

/// What a provider's ID tokens are checked against.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenRules<'a> {
    /// The issuer exactly as discovery names it (`SOCIAL_<N>_ISSUER`).
    pub issuer: &'a str,
    /// `SOCIAL_<N>_CLIENT_ID`.
    pub client_id: &'a str,
    /// `SOCIAL_<N>_CLIENT_IDS`: more audiences accepted (native apps).
    pub other_client_ids: &'a [String],
    /// Discovery's `id_token_signing_alg_values_supported`. Only its
    /// asymmetric entries are accepted: never `none`, never an HMAC (whose
    /// "key" would be public).
    pub algorithms: &'a [SigningAlgorithm],
    /// The provider's keys (its `jwks_uri`).
    pub keys: &'a CoreJsonWebKeySet,
    /// Whether `"email_verified": "true"` (a string) counts as verified:
    /// Apple's tokens send it so; for every other provider only JSON `true`.
    pub string_email_verified: bool,
    /// latchkey's `LEEWAY`, seconds, for `exp` and `iat`.
    pub leeway: i64,
}

/// Which nonce the token must carry.
#[derive(Clone, Copy, Debug)]
pub enum ExpectedNonce<'a> {
    /// Browser flow: the nonce the flow sent; the claim must equal it.
    Flow(&'a str),
    /// Native `/token/`: the nonce the app posted, if any. A token with a
    /// `nonce` claim needs one, and the claim must equal it or its SHA-256
    /// in lowercase hex (as Apple's SDKs send it). A token without the claim
    /// passes only when none was posted: a posted nonce the token does not
    /// carry is not bound to it.
    Native(Option<&'a str>),
}

/// What latchkey takes from a verified ID token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdToken {
    /// `sub`, always a string.
    pub subject: String,
    pub email: Option<String>,
    /// Only the JSON `true` counts (and the string `"true"` when
    /// [`IdTokenRules::string_email_verified`]); anything else, absent
    /// included, is `false`.
    pub email_verified: bool,
    /// `exp`, Unix seconds (the accepted token is recorded until then).
    pub exp: i64,
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the token is not a well-formed ID token")]
    Malformed,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("nonce mismatch")]
    NonceMismatch,
    #[error("nonce missing")]
    NonceMissing,
    #[error("unsupported signing algorithm")]
    UnsupportedAlgorithm,
    #[error("no key of the provider's matches the token's kid and algorithm")]
    UnknownKey,
}

// Messages our own closures hand to the crate, recognised on the way back.
const ISSUED_IN_FUTURE: &str = "issued in the future";
const NONCE_MISSING: &str = "nonce missing";
const NONCE_MISMATCH: &str = "nonce mismatch";

/// Verifies `token` by `rules` at `now` (Unix seconds).
pub fn verify_id_token(
    token: &str,
    rules: &IdTokenRules<'_>,
    nonce: ExpectedNonce<'_>,
    now: i64,
) -> Result<VerifiedIdToken, IdTokenError> {
    let id_token: CoreIdToken = match token.parse() {
        Ok(parsed) => parsed,
        Err(_) if has_odd_email_verified(token) => {
            return odd_email_verified::verify(token, rules, nonce, now);
        }
        Err(_) => return Err(IdTokenError::Malformed),
    };
    let issuer = IssuerUrl::new(rules.issuer.to_owned()).map_err(|_| IdTokenError::WrongIssuer)?;
    let algorithms: Vec<SigningAlgorithm> = rules
        .algorithms
        .iter()
        .filter(|alg| is_asymmetric(alg))
        .cloned()
        .collect();
    let now_minus_leeway = timestamp(now.saturating_sub(rules.leeway))?;
    let latest_iat = timestamp(now.saturating_add(rules.leeway))?;

    // openidconnect wants its client id among the token's audiences and asks
    // the other-audience function only about the rest; a native app's token
    // may name only one of `_CLIENT_IDS`. So each accepted id is tried as
    // the crate's client id in turn: the audience check comes before the
    // signature's, so a miss costs no signature check.
    let accepted =
        |aud: &str| aud == rules.client_id || rules.other_client_ids.iter().any(|id| id == aud);
    let mut outcome = Err(IdTokenError::WrongAudience);
    for client_id in
        std::iter::once(rules.client_id).chain(rules.other_client_ids.iter().map(String::as_str))
    {
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(client_id.to_owned()),
            issuer.clone(),
            rules.keys.clone(),
        )
        .set_allowed_algs(algorithms.iter().cloned())
        .set_other_audience_verifier_fn(|aud: &Audience| accepted(aud.as_str()))
        // The crate counts a token expired once `time_fn() >= exp`.
        .set_time_fn(move || now_minus_leeway)
        .set_issue_time_verifier_fn(move |iat| {
            if iat > latest_iat {
                Err(ISSUED_IN_FUTURE.to_owned())
            } else {
                Ok(())
            }
        });
        outcome = id_token
            .claims(&verifier, |claim: Option<&Nonce>| check_nonce(nonce, claim))
            .map_err(reason);
        if !matches!(outcome, Err(IdTokenError::WrongAudience)) {
            break;
        }
    }
    let claims = outcome?;

    Ok(VerifiedIdToken {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|email| email.as_str().to_owned()),
        email_verified: email_verified(token, rules.string_email_verified),
        exp: claims.expiration().timestamp(),
    })
}

fn check_nonce(expected: ExpectedNonce<'_>, claim: Option<&Nonce>) -> Result<(), String> {
    let missing = || Err(NONCE_MISSING.to_owned());
    let mismatch = || Err(NONCE_MISMATCH.to_owned());
    match (expected, claim) {
        (ExpectedNonce::Flow(_), None) => missing(),
        (ExpectedNonce::Flow(sent), Some(claim)) => {
            if equal(claim.secret(), sent) {
                Ok(())
            } else {
                mismatch()
            }
        }
        (ExpectedNonce::Native(None), None) => Ok(()),
        (ExpectedNonce::Native(None), Some(_)) => missing(),
        (ExpectedNonce::Native(Some(_)), None) => mismatch(),
        (ExpectedNonce::Native(Some(posted)), Some(claim)) => {
            let hashed = hex(&Sha256::digest(posted.as_bytes()));
            // Both compared, so the time taken does not say which matched.
            let plain = equal(claim.secret(), posted);
            let hashed = equal(claim.secret(), &hashed);
            if plain | hashed { Ok(()) } else { mismatch() }
        }
    }
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn is_asymmetric(alg: &SigningAlgorithm) -> bool {
    !alg.uses_shared_secret() && *alg != SigningAlgorithm::None
}

fn timestamp(seconds: i64) -> Result<DateTime<Utc>, IdTokenError> {
    DateTime::from_timestamp(seconds, 0).ok_or(IdTokenError::Expired)
}

fn reason(error: ClaimsVerificationError) -> IdTokenError {
    match error {
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenError::WrongIssuer,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenError::WrongAudience,
        ClaimsVerificationError::Expired(message) if message == ISSUED_IN_FUTURE => {
            IdTokenError::IssuedInFuture
        }
        ClaimsVerificationError::Expired(_) => IdTokenError::Expired,
        ClaimsVerificationError::InvalidNonce(message) if message == NONCE_MISSING => {
            IdTokenError::NonceMissing
        }
        ClaimsVerificationError::InvalidNonce(_) => IdTokenError::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(error) => match error {
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => IdTokenError::UnsupportedAlgorithm,
            SignatureVerificationError::NoMatchingKey
            | SignatureVerificationError::AmbiguousKeyId(_) => IdTokenError::UnknownKey,
            _ => IdTokenError::BadSignature,
        },
        _ => IdTokenError::Malformed,
    }
}

/// The token's payload as JSON, unverified.
fn payload(token: &str) -> Option<serde_json::Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
}

/// `email_verified` as the contract counts it, read from the token's payload
/// (called only once its signature has been verified).
fn email_verified(token: &str, string_booleans: bool) -> bool {
    email_verified_in(payload(token).as_ref(), string_booleans)
}

fn email_verified_in(claims: Option<&serde_json::Value>, string_booleans: bool) -> bool {
    match claims.and_then(|claims| claims.get("email_verified")) {
        Some(serde_json::Value::Bool(verified)) => *verified,
        Some(serde_json::Value::String(text)) => string_booleans && text == "true",
        _ => false,
    }
}

/// Whether a verified token states `email_verified` at all: when it does
/// not, the contract reads it from userinfo.
pub fn states_email_verified(token: &str) -> bool {
    payload(token)
        .as_ref()
        .and_then(|claims| claims.get("email_verified"))
        .is_some_and(|value| !value.is_null())
}

/// Whether the payload holds an `email_verified` that openidconnect cannot
/// parse (it takes a boolean, or with `accept-string-booleans` the strings
/// `"true"` and `"false"`, and refuses the whole token for anything else).
fn has_odd_email_verified(token: &str) -> bool {
    match payload(token)
        .as_ref()
        .and_then(|c| c.get("email_verified"))
    {
        None | Some(serde_json::Value::Bool(_) | serde_json::Value::Null) => false,
        Some(serde_json::Value::String(text)) => text != "true" && text != "false",
        Some(_) => true,
    }
}

/// The contract counts an `email_verified` other than `true` as unverified
/// and never refuses a token for it ("yes", `1`, `"True"`), where
/// openidconnect refuses to parse the token at all. Such a token is checked
/// by jsonwebtoken instead, against the same rules: a signature by one of
/// the provider's keys with an algorithm discovery lists (asymmetric only),
/// `iss`, `aud`, `exp` and `iat` with the leeway, and the nonce.
mod odd_email_verified {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    use openidconnect::Nonce;

    use super::{
        ExpectedNonce, IdTokenError, IdTokenRules, SigningAlgorithm, VerifiedIdToken, check_nonce,
        email_verified_in, is_asymmetric,
    };

    pub(super) fn verify(
        token: &str,
        rules: &IdTokenRules<'_>,
        nonce: ExpectedNonce<'_>,
        now: i64,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let header = decode_header(token).map_err(|_| IdTokenError::Malformed)?;
        let listed = rules
            .algorithms
            .iter()
            .filter(|alg| is_asymmetric(alg))
            .filter_map(algorithm)
            .any(|alg| alg == header.alg);
        if !listed {
            return Err(IdTokenError::UnsupportedAlgorithm);
        }
        let keys: JwkSet = serde_json::to_value(rules.keys)
            .and_then(serde_json::from_value)
            .map_err(|_| IdTokenError::UnknownKey)?;
        let usable = |jwk: &&jsonwebtoken::jwk::Jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|alg| alg.to_string() == format!("{:?}", header.alg))
        };
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid).filter(|jwk| usable(jwk)),
            None => {
                let mut candidates = keys.keys.iter().filter(usable);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
        .ok_or(IdTokenError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = rules.leeway.max(0) as u64;
        validation.set_issuer(&[rules.issuer]);
        let mut audiences = vec![rules.client_id.to_owned()];
        audiences.extend(rules.other_client_ids.iter().cloned());
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                match error.kind() {
                    ErrorKind::InvalidSignature => IdTokenError::BadSignature,
                    ErrorKind::ExpiredSignature => IdTokenError::Expired,
                    ErrorKind::InvalidIssuer => IdTokenError::WrongIssuer,
                    ErrorKind::InvalidAudience => IdTokenError::WrongAudience,
                    ErrorKind::InvalidAlgorithm => IdTokenError::UnsupportedAlgorithm,
                    _ => IdTokenError::Malformed,
                }
            })?
            .claims;
        let exp = claims["exp"]
            .as_i64()
            .filter(|exp| chrono::DateTime::from_timestamp(*exp, 0).is_some())
            .ok_or(IdTokenError::Malformed)?;
        if exp.saturating_add(rules.leeway) <= now {
            return Err(IdTokenError::Expired);
        }
        let iat = claims["iat"].as_i64().ok_or(IdTokenError::Malformed)?;
        if iat > now.saturating_add(rules.leeway) {
            return Err(IdTokenError::IssuedInFuture);
        }
        let claimed_nonce = claims["nonce"].as_str().map(|n| Nonce::new(n.to_owned()));
        check_nonce(nonce, claimed_nonce.as_ref()).map_err(|why| {
            if why == super::NONCE_MISSING {
                IdTokenError::NonceMissing
            } else {
                IdTokenError::NonceMismatch
            }
        })?;
        Ok(VerifiedIdToken {
            subject: claims["sub"]
                .as_str()
                .ok_or(IdTokenError::Malformed)?
                .to_owned(),
            email: claims["email"].as_str().map(str::to_owned),
            email_verified: email_verified_in(Some(&claims), rules.string_email_verified),
            exp,
        })
    }

    /// jsonwebtoken's name for an asymmetric JWS algorithm.
    fn algorithm(alg: &SigningAlgorithm) -> Option<Algorithm> {
        Some(match alg {
            SigningAlgorithm::RsaSsaPkcs1V15Sha256 => Algorithm::RS256,
            SigningAlgorithm::RsaSsaPkcs1V15Sha384 => Algorithm::RS384,
            SigningAlgorithm::RsaSsaPkcs1V15Sha512 => Algorithm::RS512,
            SigningAlgorithm::RsaSsaPssSha256 => Algorithm::PS256,
            SigningAlgorithm::RsaSsaPssSha384 => Algorithm::PS384,
            SigningAlgorithm::RsaSsaPssSha512 => Algorithm::PS512,
            SigningAlgorithm::EcdsaP256Sha256 => Algorithm::ES256,
            SigningAlgorithm::EcdsaP384Sha384 => Algorithm::ES384,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
            _ => return None,
        })
    }
}
