//! Signing and verifying keys: an HMAC secret, or PEM keys for RS256, ES256
//! and EdDSA, each asymmetric key named by its RFC 7638 thumbprint (`kid`).

use std::str::FromStr;

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
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
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => {
                return Err(KeyError::Invalid(format!(
                    "unsupported ALGORITHM {other:?}"
                )));
            }
        }
        .map_err(|e| invalid("SIGNING_KEY_FILE is not a valid PEM private key", e))?;
        let own_jwk = named(public_jwk_from_pem(
            public_half(pem, algorithm)?.as_bytes(),
            algorithm,
        )?);
        let mut keys = vec![own_jwk];
        for pem in &config.verifying_pems {
            let jwk = named(public_jwk_from_pem(pem, algorithm)?);
            if !keys.iter().any(|k| k.common.key_id == jwk.common.key_id) {
                keys.push(jwk);
            }
        }
        let verifying = keys
            .iter()
            .map(|jwk| {
                Ok(VerifyingKey {
                    kid: jwk.common.key_id.clone(),
                    key: DecodingKey::from_jwk(jwk)
                        .map_err(|e| invalid("cannot use a verifying key", e))?,
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        let signing_kid = keys[0].common.key_id.clone();
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

/// Names a JWK by its RFC 7638 thumbprint and marks it for signatures.
fn named(mut jwk: Jwk) -> Jwk {
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PEM public key of a PEM private key (PKCS#8, or PKCS#1 for RSA).
fn public_half(private_pem: &[u8], algorithm: Algorithm) -> Result<String, KeyError> {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let text = std::str::from_utf8(private_pem)
        .map_err(|e| invalid("SIGNING_KEY_FILE is not PEM text", e))?;
    let not_private = |e: &dyn std::fmt::Display| {
        invalid("SIGNING_KEY_FILE is not a PEM private key for ALGORITHM", e)
    };
    let not_encodable = |e: &dyn std::fmt::Display| invalid("cannot encode the public key", e);
    match algorithm {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(text)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(text))
                .map_err(|e| not_private(&e))?;
            key.to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| not_encodable(&e))
        }
        Algorithm::ES256 => {
            let key = p256::SecretKey::from_pkcs8_pem(text).map_err(|e| not_private(&e))?;
            key.public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| not_encodable(&e))
        }
        Algorithm::EdDSA => {
            let key =
                ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(|e| not_private(&e))?;
            key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| not_encodable(&e))
        }
        other => Err(KeyError::Invalid(format!(
            "unsupported ALGORITHM {other:?}"
        ))),
    }
}

/// The JWK of a PEM public key (SubjectPublicKeyInfo) for `algorithm`.
fn public_jwk_from_pem(pem: &[u8], algorithm: Algorithm) -> Result<Jwk, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text =
        std::str::from_utf8(pem).map_err(|e| invalid("a verifying key is not PEM text", e))?;
    let not_public = |e: &dyn std::fmt::Display| {
        invalid("a verifying key is not a PEM public key for ALGORITHM", e)
    };
    let parameters = match algorithm {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPublicKey::from_public_key_pem(text).map_err(|e| not_public(&e))?;
            AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(&key.n().to_bytes_be()),
                e: b64(&key.e().to_bytes_be()),
            })
        }
        Algorithm::ES256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let key = p256::PublicKey::from_public_key_pem(text).map_err(|e| not_public(&e))?;
            let point = key.to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyError::Invalid(
                    "an ES256 verifying key has no coordinates".into(),
                ));
            };
            AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(x),
                y: b64(y),
            })
        }
        Algorithm::EdDSA => {
            let key = ed25519_dalek::VerifyingKey::from_public_key_pem(text)
                .map_err(|e| not_public(&e))?;
            AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(key.as_bytes()),
            })
        }
        other => {
            return Err(KeyError::Invalid(format!(
                "verifying keys are not supported for {other:?}"
            )));
        }
    };
    Ok(Jwk {
        common: CommonParameters {
            key_algorithm: KeyAlgorithm::from_str(&format!("{algorithm:?}")).ok(),
            ..CommonParameters::default()
        },
        algorithm: parameters,
    })
}
