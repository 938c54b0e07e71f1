//! The second factor (`flows::mfa`, `flows::login::second_factor`):
//! enrolling TOTP, the recovery codes, turning it off, the login's second
//! step, and the staff reset. Only the second step is in the per-IP bucket.

use actix_web::{HttpRequest, HttpResponse, web};

use super::responses::{new_session_for, no_store, session_response, token_pair};
use crate::error::ApiError;
use crate::flows::login::second_factor::{self, Completed};
use crate::flows::mfa;
use crate::flows::tokens::Client;
use crate::forms::Body;
use crate::forms::mfa::{
    MfaVerify, MfaVerifyForm, TotpCodeForm, TotpDisable, TotpDisableForm, TotpStartForm,
};
use crate::http::extract::CurrentUser;
use crate::openapi::shared::{
    BodyRefused, CsrfFailed, Forbidden, InvalidFields, Throttled, Unauthenticated, Unavailable,
    example,
};
use crate::state::State;
use crate::views::{
    BadRequestView, ErrorView, MfaStatusView, RecoveryCodeCountView, RecoveryCodesView,
    SessionView, SlidingView, TotpConfirmedView, TotpEnrolmentView, TotpStatusView, timestamp,
};

fn aal2_required() -> serde_json::Value {
    example(&ApiError::aal2_required())
}

/// Your second factors.
///
/// `GET /auth/mfa/`: TOTP, the unused recovery codes, the passkeys.
#[utoipa::path(get, path = "/auth/mfa/", tag = "mfa",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's second factors", body = MfaStatusView),
        Unauthenticated,
        Unavailable))]
pub async fn status(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let status = mfa::status(&state, &user.user).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(MfaStatusView {
            totp: TotpStatusView {
                enabled: status.totp_enabled_at.is_some(),
                enabled_at: status.totp_enabled_at.map(timestamp),
            },
            recovery_codes: RecoveryCodeCountView {
                unused: status.unused_recovery_codes,
            },
            passkeys: status.passkeys,
        }))
}

/// Start enrolling TOTP.
///
/// `POST /auth/mfa/totp/`: a pending secret, to show as a QR code; calling
/// again replaces it. `current_password` is required when the user has a
/// usable password.
#[utoipa::path(post, path = "/auth/mfa/totp/", tag = "mfa",
    request_body(content((TotpStartForm = "application/json"), (TotpStartForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The pending secret and its otpauth:// URL", body = TotpEnrolmentView),
        InvalidFields,
        Unauthenticated,
        (status = 403, description = "An unverified email (when EMAIL_VERIFICATION is not none), or CSRF failed", body = ErrorView,
            example = json!(example(&ApiError::Forbidden { detail: "Verify your email address first.", code: "email_not_verified" }))),
        (status = 409, description = "TOTP is already enabled", body = ErrorView, example = json!(example(&ApiError::AlreadyDone(mfa::ALREADY_ENABLED)))),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn start_totp(
    state: State,
    user: CurrentUser,
    body: Body<TotpStartForm>,
) -> Result<HttpResponse, ApiError> {
    let enrolment = mfa::start_totp(&state, &user.user, body).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(TotpEnrolmentView {
            secret: enrolment.secret,
            otpauth_url: enrolment.otpauth_url,
        }))
}

/// Confirm TOTP.
///
/// `POST /auth/mfa/totp/confirm/`: a code of the pending secret enables
/// TOTP; the first recovery codes (shown once); every session ends and the
/// caller's continues as a new one at `aal` 2.
#[utoipa::path(post, path = "/auth/mfa/totp/confirm/", tag = "mfa",
    request_body(content((TotpCodeForm = "application/json"), (TotpCodeForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "TOTP enabled: the recovery codes and the new session's tokens (and cookies when the request came by cookie)", body = TotpConfirmedView),
        (status = 400, description = "An incorrect code, or no pending secret", body = BadRequestView,
            example = json!(example(&ApiError::from(mfa::codes::Incorrect("code"))))),
        Unauthenticated,
        CsrfFailed,
        (status = 409, description = "TOTP is already enabled", body = ErrorView, example = json!(example(&ApiError::AlreadyDone(mfa::ALREADY_ENABLED)))),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn confirm_totp(
    state: State,
    req: HttpRequest,
    user: CurrentUser,
    client: Client,
    body: Body<TotpCodeForm>,
) -> Result<HttpResponse, ApiError> {
    let (recovery_codes, pair) =
        mfa::confirm_totp(&state, &user.user, &user.claims, body, client).await?;
    Ok(
        new_session_for(&state, &req, user.source, &pair).json(TotpConfirmedView {
            recovery_codes,
            token: token_pair(&pair),
        }),
    )
}

/// New recovery codes.
///
/// `POST /auth/mfa/recovery-codes/`: a TOTP code buys a new set (shown
/// once); the earlier set stops working.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes/", tag = "mfa",
    request_body(content((TotpCodeForm = "application/json"), (TotpCodeForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The new set", body = RecoveryCodesView),
        (status = 400, description = "An incorrect code, or TOTP not enabled", body = BadRequestView,
            example = json!(example(&ApiError::from(mfa::codes::Incorrect("code"))))),
        Unauthenticated,
        (status = 403, description = "The session is below aal 2, or CSRF failed", body = ErrorView, example = json!(aal2_required())),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn replace_recovery_codes(
    state: State,
    user: CurrentUser,
    body: Body<TotpCodeForm>,
) -> Result<HttpResponse, ApiError> {
    let recovery_codes =
        mfa::replace_recovery_codes(&state, &user.user, &user.claims, body).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(RecoveryCodesView { recovery_codes }))
}

/// Turn TOTP off.
///
/// `DELETE /auth/mfa/totp/`: with the password (when the user has one) and
/// a TOTP or recovery code; the recovery codes go too. No session ends.
#[utoipa::path(delete, path = "/auth/mfa/totp/", tag = "mfa",
    request_body(content((TotpDisableForm = "application/json"), (TotpDisableForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 204, description = "TOTP and the recovery codes removed"),
        (status = 400, description = "An incorrect code or password, or TOTP not enabled", body = BadRequestView,
            example = json!(example(&ApiError::from(mfa::codes::Incorrect("code"))))),
        Unauthenticated,
        (status = 403, description = "The session is below aal 2, or CSRF failed", body = ErrorView, example = json!(aal2_required())),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn disable_totp(
    state: State,
    user: CurrentUser,
    body: Body<TotpDisable>,
) -> Result<HttpResponse, ApiError> {
    mfa::disable_totp(&state, &user.user, &user.claims, body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Complete a login with a second factor.
///
/// `POST /auth/mfa/verify/`: the `mfa_token` of the `mfa_required` answer
/// and a TOTP code or a recovery code; answers as the first factor would
/// have (the login's body and cookies, or the sliding login's token).
#[utoipa::path(post, path = "/auth/mfa/verify/", tag = "mfa",
    request_body(content((MfaVerifyForm = "application/json"), (MfaVerifyForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in: as `POST /auth/` (the user, tokens and cookies), or `{\"token\"}` after `POST /auth/sliding/`", body = SessionView),
        (status = 400, description = "An incorrect code (a failed login of the account), or missing fields", body = BadRequestView,
            example = json!(example(&ApiError::from(mfa::codes::Incorrect("code"))))),
        (status = 401, description = "A spent, expired or forged mfa_token", body = ErrorView, example = json!(example(&ApiError::token_invalid_or_expired()))),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn verify(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<MfaVerify>,
) -> Result<HttpResponse, ApiError> {
    Ok(match second_factor::verify(&state, body, client).await? {
        Completed::Pair(done) => {
            let (user, pair) = *done;
            session_response(
                HttpResponse::Ok(),
                &state,
                &req,
                &user,
                "login success",
                &pair,
            )
        }
        Completed::Sliding(token) => HttpResponse::Ok()
            .insert_header(no_store())
            .json(SlidingView { token: token.token }),
    })
}

/// Remove a user's second factor (staff).
///
/// `DELETE /list/{id}/mfa/`: their TOTP and recovery codes go (a lost
/// phone), and every session of theirs ends. The rule of deactivating them.
#[utoipa::path(delete, path = "/list/{id}/mfa/", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 204, description = "Removed, and their sessions ended"),
        Forbidden,
        (status = 404, description = "Not found", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unauthenticated,
        Unavailable))]
pub async fn reset_by_staff(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    mfa::reset_by_staff(&state, &user.user, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The `mfa_required` answer's schema, for the login routes.
pub fn mfa_required_example() -> serde_json::Value {
    example(&ApiError::MfaRequired {
        mfa_token: crate::views::MfaToken("eyJhbGciOi…".into()),
        methods: vec!["totp", "recovery_code"],
    })
}
