//! Signing and verifying keys: an HMAC secret, or PEM keys for RS256, ES256
//! and EdDSA, each asymmetric key named by its RFC 7638 thumbprint (`kid`).

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::KeyError;

/// Key material as configuration provides it.
#[derive(Clone)]
pub struct KeyConfig {
    pub algorithm: Algorithm,
    /// The HMAC secret (`SIGNING_KEY`, default `SECRET_KEY`).
    pub secret: Vec<u8>,
    /// PEM private key for asymmetric algorithms (`SIGNING_KEY_FILE`).
    pub signing_pem: Option<Vec<u8>>,
    /// PEM public keys also accepted for verification (`VERIFYING_KEY_FILE`,
    /// `VERIFYING_KEY_FILES`): the keys of a rotation.
    pub verifying_pems: Vec<Vec<u8>>,
}

pub(crate) struct VerifyingKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
}

/// The keys in force, built once at start-up.
pub struct KeySet {
    pub(crate) algorithm: Algorithm,
    pub(crate) signing: EncodingKey,
    pub(crate) signing_kid: Option<String>,
    pub(crate) verifying: Vec<VerifyingKey>,
    public_jwks: JwkSet,
}

pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

fn invalid(what: &str, error: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid(format!("{what}: {error}"))
}

impl KeySet {
    pub fn new(config: &KeyConfig) -> Result<Self, KeyError> {
        let algorithm = config.algorithm;
        if is_hmac(algorithm) {
            if config.secret.is_empty() {
                return Err(KeyError::Invalid("the HMAC signing key is empty".into()));
            }
            return Ok(KeySet {
                algorithm,
                signing: EncodingKey::from_secret(&config.secret),
                signing_kid: None,
                verifying: vec![VerifyingKey {
                    kid: None,
                    key: DecodingKey::from_secret(&config.secret),
                }],
                public_jwks: JwkSet { keys: Vec::new() },
            });
        }
        let pem = config.signing_pem.as_deref().ok_or_else(|| {
            KeyError::Invalid(format!(
                "ALGORITHM {algorithm:?} needs a PEM private key in SIGNING_KEY_FILE"
            ))
        })?;
        let signing = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                EncodingKey::from_rsa_pem(pem)
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => {
                return Err(KeyError::Invalid(format!(
                    "unsupported ALGORITHM {other:?}"
                )));
            }
        }
        .map_err(|e| invalid("SIGNING_KEY_FILE is not a valid PEM private key", e))?;
        let own_jwk = public_jwk(&signing, algorithm)?;
        let signing_kid = own_jwk.common.key_id.clone();
        let mut verifying = vec![VerifyingKey {
            kid: signing_kid.clone(),
            key: DecodingKey::from_jwk(&own_jwk)
                .map_err(|e| invalid("cannot derive the verifying key", e))?,
        }];
        let mut keys = vec![own_jwk];
        for pem in &config.verifying_pems {
            let key = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
                _ => DecodingKey::from_rsa_pem(pem),
            }
            .map_err(|e| invalid("a verifying key is not a valid PEM public key", e))?;
            let kid = fingerprint(pem);
            verifying.push(VerifyingKey {
                kid: Some(kid),
                key,
            });
        }
        keys.retain(|jwk| jwk.is_supported());
        Ok(KeySet {
            algorithm,
            signing,
            signing_kid,
            verifying,
            public_jwks: JwkSet { keys },
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public keys as a JWK Set; empty under HMAC, whose secret is never
    /// published.
    pub fn jwks(&self) -> &JwkSet {
        &self.public_jwks
    }
}

/// The JWK of a private key's public half, with its thumbprint as `kid`.
fn public_jwk(key: &EncodingKey, algorithm: Algorithm) -> Result<Jwk, KeyError> {
    let mut jwk = Jwk::from_encoding_key(key, algorithm)
        .map_err(|e| invalid("cannot derive the public key", e))?;
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
    Ok(jwk)
}

/// A stable name for a configured public key.
fn fingerprint(pem: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(pem);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}
