//! The one error policy: every failure becomes the contract's JSON.
//!
//! - Storage returns [`StoreError`]: a taken email becomes the 400 field error,
//!   a missing row 404, a pool timeout or lost connection 503, anything else
//!   500 with the cause in the log and nothing of it in the body.
//! - Tokens fail with [`TokenError`]; how that reads depends on the endpoint
//!   (an authenticated request lists simplejwt's `messages`; the token
//!   endpoints answer `{"detail", "code"}`).
//! - Bodies that cannot be read are 400 (bad JSON), 413 or 415.
//!
//! Every 401 carries `WWW-Authenticate: Bearer realm="api"`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use latchkey_auth::TokenError;
use latchkey_persistence::StoreError;

use crate::views::{ErrorView, MfaRequiredView, TokenMessageView};

/// DRF's field errors: field name to messages, in a stable order
/// (`non_field_errors` for the others). The 400 body, and its schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else the 400.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self))
        }
    }
}

pub const EMAIL_TAKEN: &str = "user with this email already exists.";
pub const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("invalid fields: {0:?}")]
    Fields(FieldErrors),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no credentials")]
    NotAuthenticated,
    /// A bad access token on an authenticated request.
    #[error("bad access token: {0}")]
    AccessToken(TokenError),
    /// A refusal from a token endpoint or of the user behind a token.
    #[error("{detail}")]
    Unauthorized {
        detail: &'static str,
        code: &'static str,
    },
    /// A first factor passed and a second one is due: 401 `mfa_required`
    /// with the `mfa_token` that continues the login.
    #[error("a second factor is required")]
    MfaRequired {
        mfa_token: crate::views::MfaToken,
        methods: Vec<&'static str>,
    },
    #[error("permission denied")]
    PermissionDenied,
    /// A 403 that says why (`aal2_required`, `email_not_verified`).
    #[error("{detail}")]
    Forbidden {
        detail: &'static str,
        code: &'static str,
    },
    /// A 409: the request asks for what is already so.
    #[error("{0}")]
    AlreadyDone(&'static str),
    /// A 400 that says why in a `code` (`email_missing`,
    /// `last_login_method`).
    #[error("{detail}")]
    BadRequestWith {
        detail: &'static str,
        code: &'static str,
    },
    /// A 409 that says why in a `code` (`account_exists`).
    #[error("{detail}")]
    ConflictWith {
        detail: &'static str,
        code: &'static str,
    },
    /// A sign-in provider's discovery or keys cannot be fetched (503).
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(String),
    #[error("CSRF failed: {0}")]
    Csrf(String),
    #[error("not found")]
    NotFound,
    #[error("not found: {0}")]
    NotFoundWith(&'static str),
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    #[error("body too large")]
    PayloadTooLarge,
    /// The body did not arrive within `CLIENT_BODY_TIMEOUT`.
    #[error("request body timed out")]
    RequestTimeout,
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    #[error("throttled for {0} s")]
    Throttled(u64),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write lost a race it can recover from (never leaves a flow).
    #[error("conflicting write")]
    Conflict,
    /// The password-hashing queue is full (`HASHING_QUEUE`).
    #[error("password hashing queue full")]
    Overloaded,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn token_invalid_or_expired() -> Self {
        ApiError::Unauthorized {
            detail: "Token is invalid or expired",
            code: "token_not_valid",
        }
    }

    pub fn token_blacklisted() -> Self {
        ApiError::Unauthorized {
            detail: "Token is blacklisted",
            code: "token_not_valid",
        }
    }

    pub fn no_active_account() -> Self {
        ApiError::Unauthorized {
            detail: "No active account found with the given credentials",
            code: "no_active_account",
        }
    }

    pub fn aal2_required() -> Self {
        ApiError::Forbidden {
            detail: "This action needs a second factor.",
            code: "aal2_required",
        }
    }

    pub fn user_not_found() -> Self {
        ApiError::Unauthorized {
            detail: "User not found",
            code: "user_not_found",
        }
    }

    pub fn user_inactive() -> Self {
        ApiError::Unauthorized {
            detail: "User is inactive",
            code: "user_inactive",
        }
    }

    /// The body [`ResponseError::error_response`] sends, as JSON: what the
    /// OpenAPI description shows as each error's example.
    pub fn body(&self) -> serde_json::Value {
        let body = match self {
            ApiError::Fields(errors) => serde_json::to_value(errors),
            ApiError::MfaRequired { mfa_token, methods } => {
                serde_json::to_value(MfaRequiredView::new(mfa_token, methods))
            }
            other => serde_json::to_value(other.detail_view()),
        };
        body.unwrap_or_default()
    }

    /// The `{"detail", "code"?, "messages"?}` body of every error but the
    /// field errors, as the view whose schema `/openapi.json` shows.
    fn detail_view(&self) -> ErrorView {
        let detail = |text: &str| ErrorView {
            detail: text.to_owned(),
            code: None,
            messages: None,
        };
        match self {
            ApiError::Fields(_) => detail("Invalid input."),
            ApiError::BadRequest(text) => detail(text),
            ApiError::NotAuthenticated => detail(NOT_PROVIDED),
            ApiError::AccessToken(error) => ErrorView {
                detail: "Given token not valid for any token type".into(),
                code: Some("token_not_valid".into()),
                messages: Some(vec![TokenMessageView {
                    token_class: "AccessToken".into(),
                    token_type: "access".into(),
                    message: error.message().into(),
                }]),
            },
            ApiError::Unauthorized { detail: text, code }
            | ApiError::Forbidden { detail: text, code }
            | ApiError::BadRequestWith { detail: text, code }
            | ApiError::ConflictWith { detail: text, code } => ErrorView {
                code: Some((*code).into()),
                ..detail(text)
            },
            ApiError::MfaRequired { .. } => ErrorView {
                code: Some("mfa_required".into()),
                ..detail("Multi-factor authentication is required.")
            },
            ApiError::PermissionDenied => detail(PERMISSION_DENIED),
            ApiError::AlreadyDone(text) => detail(text),
            ApiError::Csrf(reason) => detail(&format!("CSRF Failed: {reason}")),
            ApiError::NotFound => detail("Not found."),
            ApiError::NotFoundWith(text) => detail(text),
            ApiError::MethodNotAllowed(method) => {
                detail(&format!("Method \"{method}\" not allowed."))
            }
            ApiError::PayloadTooLarge => detail("Request body is too large."),
            ApiError::RequestTimeout => detail("The request body did not arrive in time."),
            ApiError::UnsupportedMediaType(media) => {
                detail(&format!("Unsupported media type \"{media}\" in request."))
            }
            ApiError::Throttled(wait) => detail(&format!(
                "Request was throttled. Expected available in {wait} second{}.",
                if *wait == 1 { "" } else { "s" }
            )),
            ApiError::Unavailable(_) => detail("The database is unavailable. Try again shortly."),
            ApiError::ProviderUnavailable(_) => ErrorView {
                code: Some("provider_unavailable".into()),
                ..detail("The sign-in provider cannot be reached. Try again shortly.")
            },
            ApiError::Overloaded => {
                detail("The server is busy checking passwords. Try again shortly.")
            }
            ApiError::Internal(_) | ApiError::Conflict => detail("A server error occurred."),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Fields(_) | ApiError::BadRequest(_) | ApiError::BadRequestWith { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotAuthenticated
            | ApiError::AccessToken(_)
            | ApiError::Unauthorized { .. }
            | ApiError::MfaRequired { .. } => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied | ApiError::Forbidden { .. } | ApiError::Csrf(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::AlreadyDone(_) | ApiError::ConflictWith { .. } => StatusCode::CONFLICT,
            ApiError::NotFound | ApiError::NotFoundWith(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Overloaded | ApiError::ProviderUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) | ApiError::Conflict => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            ApiError::Unavailable(cause) => log::warn!("database unavailable: {cause}"),
            ApiError::ProviderUnavailable(cause) => {
                log::warn!("sign-in provider unavailable: {cause}")
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            ));
        }
        if let ApiError::MfaRequired { .. } = self {
            // it carries an mfa_token
            response.insert_header((header::CACHE_CONTROL, "no-store"));
        }
        if let ApiError::Throttled(wait) = self {
            response.insert_header((header::RETRY_AFTER, wait.to_string()));
        }
        if matches!(
            self,
            ApiError::Unavailable(_) | ApiError::ProviderUnavailable(_)
        ) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        if let ApiError::Overloaded = self {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still come: the connection cannot be reused.
            response.force_close();
        }
        match self {
            ApiError::Fields(errors) => response.json(errors),
            ApiError::MfaRequired { mfa_token, methods } => {
                response.json(MfaRequiredView::new(mfa_token, methods))
            }
            other => response.json(other.detail_view()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => ApiError::Fields(FieldErrors::single("email", EMAIL_TAKEN)),
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`ApiError::body`] (the OpenAPI examples) is what is sent.
    #[actix_web::test]
    async fn the_body_of_an_error_is_the_body_sent() {
        let errors = [
            ApiError::Fields(FieldErrors::single("email", "This field is required.")),
            ApiError::BadRequest("JSON parse error - EOF".into()),
            ApiError::NotAuthenticated,
            ApiError::AccessToken(TokenError::Expired),
            ApiError::token_invalid_or_expired(),
            ApiError::no_active_account(),
            ApiError::MfaRequired {
                mfa_token: crate::views::MfaToken("header.payload.signature".into()),
                methods: vec!["totp", "recovery_code"],
            },
            ApiError::PermissionDenied,
            ApiError::aal2_required(),
            ApiError::AlreadyDone("TOTP is already enabled."),
            ApiError::Csrf("CSRF token missing.".into()),
            ApiError::NotFound,
            ApiError::NotFoundWith("Invalid page."),
            ApiError::MethodNotAllowed("PUT".into()),
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::UnsupportedMediaType("text/plain".into()),
            ApiError::Throttled(1),
            ApiError::Throttled(60),
            ApiError::Unavailable("down".into()),
            ApiError::Overloaded,
            ApiError::Internal("cause".into()),
        ];
        for error in errors {
            let bytes = actix_web::body::to_bytes(error.error_response().into_body())
                .await
                .unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(error.body(), sent, "{error:?}");
        }
    }
}
