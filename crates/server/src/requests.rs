//! The request bodies, as the OpenAPI description shows them. Bodies are
//! read field by field (`body::Fields`) to give DRF's messages, so these
//! types only describe what the flows read.
#![allow(dead_code)]

use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "jae@example.com", format = "email", max_length = 254)]
    email: String,
    /// 8 characters at least, at most 72 bytes in UTF-8; not common, not
    /// entirely numeric, not too similar to the email.
    #[schema(example = "correct-horse-battery-9", min_length = 8, max_length = 72)]
    password: String,
    /// When sent, must equal `password`.
    password2: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "jae@example.com")]
    email: String,
    #[schema(example = "correct-horse-battery-9")]
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token. A browser may send the `refresh` cookie (and the
    /// CSRF header) instead of a body.
    refresh: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    old_password: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct UserCreateRequest {
    email: String,
    password: String,
    password2: Option<String>,
    is_active: Option<bool>,
    is_staff: Option<bool>,
    /// Only a superuser may set it.
    is_superuser: Option<bool>,
}

/// Every field optional for PATCH; PUT requires `email`. Read-only and
/// unknown fields are ignored.
#[derive(Deserialize, ToSchema)]
pub struct UserUpdateRequest {
    email: Option<String>,
    password: Option<String>,
    is_active: Option<bool>,
    is_staff: Option<bool>,
    is_superuser: Option<bool>,
}
