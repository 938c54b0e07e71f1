//! The email endpoints, in dj-rest-auth's shapes: password reset and its
//! confirmation, email verification and its resend; and `POST /register/`
//! under `EMAIL_VERIFICATION=mandatory` (no tokens until the address is
//! verified).

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::tokens;
use crate::email::Verification;
use crate::error::ApiError;
use crate::flows::email as flows;
use crate::flows::tokens::Client;
use crate::forms::{Body, EmailForm, PasswordResetConfirmForm, RegisterForm, VerifyEmailForm};
use crate::openapi::shared::{BodyRefused, Throttled, Unavailable};
use crate::state::State;
use crate::views::{BadRequestView, ErrorView, UserView};

/// `{"detail": ...}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetailView {
    #[schema(example = "ok")]
    pub detail: String,
}

/// Register under `EMAIL_VERIFICATION=mandatory`: the user and a message,
/// no tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisteredView {
    pub user: UserView,
    #[schema(example = "Verification e-mail sent.")]
    pub message: String,
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
        (status = 404, description = "A wrong or expired key, or one superseded by a newer key or a change of address", body = ErrorView),
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

/// `POST /register/`: under `EMAIL_VERIFICATION=mandatory` the user and
/// "Verification e-mail sent.", without tokens or cookies; otherwise the
/// usual answer of [`tokens::register`] (documented there).
pub async fn register(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<RegisterForm>,
) -> Result<HttpResponse, ApiError> {
    if state.settings.email.verification != Verification::Mandatory {
        return tokens::register(state, req, client, body).await;
    }
    let user = crate::flows::accounts::register_without_session(&state, body).await?;
    Ok(HttpResponse::Created().json(RegisteredView {
        user: UserView::from(&user),
        message: flows::VERIFICATION_SENT.to_owned(),
    }))
}
