//! The responses many operations share, described once: each operation's
//! `responses(..)` lists its own statuses and names these sets for the rest.
//! The bodies are the views that [`crate::error::ApiError`] serialises.

use utoipa::IntoResponses;

use crate::views::{BadRequestView, ErrorView};

/// 503: the database does not answer (`Retry-After: 5`).
#[derive(IntoResponses)]
#[response(status = 503, description = "Database unavailable (`Retry-After: 5`)")]
pub struct Unavailable(pub ErrorView);

/// 401 on an authenticated operation: no credentials, a bad token, or a
/// user or session that may no longer use it.
#[derive(IntoResponses)]
#[response(status = 401, description = "No or bad credentials")]
pub struct Unauthenticated(pub ErrorView);

/// 403: a cookie-authenticated unsafe request without the right
/// `X-CSRFToken`, or from a foreign `Origin`.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "CSRF failed (cookie, or a foreign Origin)"
)]
pub struct CsrfFailed(pub ErrorView);

/// 403 on the user viewset.
#[derive(IntoResponses)]
#[response(status = 403, description = "Permission denied, or CSRF failed")]
pub struct Forbidden(pub ErrorView);

/// 429 with `Retry-After`: the per-IP bucket, or the account's failed logins.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "Throttled (`Retry-After` gives the seconds to wait)"
)]
pub struct Throttled(pub ErrorView);

/// 400: DRF's field errors, or `{"detail"}` for a body that is not JSON.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "Field errors, or a body that cannot be read"
)]
pub struct InvalidFields(pub BadRequestView);

/// What any operation that reads a body may answer before reading it as its
/// form.
#[derive(IntoResponses)]
pub enum BodyRefused {
    #[response(
        status = 408,
        description = "The body did not arrive within CLIENT_BODY_TIMEOUT"
    )]
    TimedOut(ErrorView),
    #[response(status = 413, description = "Body larger than MAX_BODY_SIZE")]
    TooLarge(ErrorView),
    #[response(status = 415, description = "Neither JSON nor form-encoded")]
    UnsupportedMediaType(ErrorView),
}
