//! The email endpoints (`flows::email`), in dj-rest-auth's shapes: password
//! reset and its confirmation, email verification and its resend.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::flows::email as flows;
use crate::forms::{Body, EmailForm, PasswordResetConfirmForm, VerifyEmailForm};
use crate::openapi::shared::{BodyRefused, Throttled, Unavailable, example};
use crate::state::State;
use crate::views::{BadRequestView, ErrorView};

/// `{"detail": ...}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetailView {
    #[schema(example = "ok")]
    pub detail: String,
}

fn detail(message: &str) -> DetailView {
    DetailView {
        detail: message.to_owned(),
    }
}

/// Ask for a password reset email.
///
/// `POST /auth/password/reset/`: the same answer whatever the address.
#[utoipa::path(post, path = "/auth/password/reset/", tag = "email",
    request_body(content((EmailForm = "application/json"), (EmailForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The same answer whatever the address: an email is sent only to an active user with a usable password, at most THROTTLE_PASSWORD_RESET per address", body = DetailView),
        (status = 400, description = "Not an email address", body = BadRequestView),
        Throttled,
        (status = 503, description = "Email delivery is not configured (production without SMTP_URL), or the database is unavailable", body = ErrorView),
        BodyRefused))]
pub async fn password_reset(state: State, body: Body<EmailForm>) -> Result<HttpResponse, ApiError> {
    if state.settings.is_production() && state.settings.email.smtp.is_none() {
        return Ok(HttpResponse::ServiceUnavailable().json(detail(flows::NOT_CONFIGURED)));
    }
    flows::request_password_reset(&state, body).await?;
    Ok(HttpResponse::Ok().json(detail(flows::RESET_SENT)))
}

/// Set a new password with the emailed link.
///
/// `POST /auth/password/reset/confirm/`: every session ends.
#[utoipa::path(post, path = "/auth/password/reset/confirm/", tag = "email",
    request_body(content((PasswordResetConfirmForm = "application/json"), (PasswordResetConfirmForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Password set; every session of the user ended; no tokens", body = DetailView),
        (status = 400, description = "`{\"uid\": [\"Invalid value\"]}`, `{\"token\": [\"Invalid value\"]}` (wrong, expired, used, or older than the last password change), or the new password refused (under `new_password2`)", body = BadRequestView),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn password_reset_confirm(
    state: State,
    body: Body<PasswordResetConfirmForm>,
) -> Result<HttpResponse, ApiError> {
    flows::confirm_password_reset(&state, body).await?;
    Ok(HttpResponse::Ok().json(detail(flows::RESET_DONE)))
}

/// Confirm an email address with the emailed key.
///
/// `POST /auth/registration/verify-email/`.
#[utoipa::path(post, path = "/auth/registration/verify-email/", tag = "email",
    request_body(content((VerifyEmailForm = "application/json"), (VerifyEmailForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The address is verified (the latest key may be used again)", body = DetailView),
        (status = 400, description = "No key", body = BadRequestView),
        (status = 404, description = "A wrong or expired key, or one superseded by a newer key or a change of address", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unavailable,
        BodyRefused))]
pub async fn verify_email(
    state: State,
    body: Body<VerifyEmailForm>,
) -> Result<HttpResponse, ApiError> {
    flows::verify_email(&state, body).await?;
    Ok(HttpResponse::Ok().json(detail("ok")))
}

/// Send the verification email again.
///
/// `POST /auth/registration/resend-email/`.
#[utoipa::path(post, path = "/auth/registration/resend-email/", tag = "email",
    request_body(content((EmailForm = "application/json"), (EmailForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The same answer whatever the address: an active unverified user gets a new verification email (same per-address limit as reset)", body = DetailView),
        (status = 400, description = "Not an email address", body = BadRequestView),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn resend_email(state: State, body: Body<EmailForm>) -> Result<HttpResponse, ApiError> {
    flows::resend_verification(&state, body).await?;
    Ok(HttpResponse::Ok().json(detail("ok")))
}
