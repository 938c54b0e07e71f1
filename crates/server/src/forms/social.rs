//! Sign-in with a provider: the exchange's and the native route's bodies.
//! Neither derives `Debug`: they hold one-time codes and provider tokens.

use utoipa::ToSchema;

use super::Form;
use crate::body::Fields;
use crate::error::{ApiError, FieldErrors};

/// `POST /auth/social/exchange/`.
#[derive(ToSchema)]
pub struct SocialCodeForm {
    /// From the callback's `#social_code=` fragment.
    pub social_code: String,
}

impl Form for SocialCodeForm {
    type Context = ();
    type Error = ApiError;

    fn parse(fields: &Fields, _: &()) -> Result<Self, ApiError> {
        Ok(SocialCodeForm {
            social_code: fields.required("social_code")?,
        })
    }
}

/// `POST /auth/social/{name}/token/`: an OpenID Connect provider's ID
/// token with its nonce, or a GitHub access token.
#[derive(ToSchema)]
pub struct NativeTokenForm {
    /// The platform SDK's ID token (OpenID Connect providers).
    pub id_token: Option<String>,
    /// Required when the ID token carries one: the claim itself, or what
    /// hashes to it by SHA-256 (hex), as Apple's SDKs send it.
    pub nonce: Option<String>,
    /// A GitHub access token (`github`).
    pub access_token: Option<String>,
}

/// What the provider takes.
pub enum NativeToken {
    IdToken {
        id_token: String,
        nonce: Option<String>,
    },
    AccessToken(String),
}

impl Form for NativeToken {
    /// Whether the provider takes ID tokens (else access tokens).
    type Context = bool;
    type Error = ApiError;

    fn parse(fields: &Fields, takes_id_tokens: &bool) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        if *takes_id_tokens {
            let id_token = fields.required_string("id_token", &mut errors);
            let nonce = fields.optional_string("nonce", &mut errors);
            match id_token {
                Some(id_token) if errors.is_empty() => Ok(NativeToken::IdToken { id_token, nonce }),
                _ => Err(ApiError::Fields(errors)),
            }
        } else {
            Ok(NativeToken::AccessToken(fields.required("access_token")?))
        }
    }
}
