//! The responses many operations share, described once: each operation's
//! `responses(..)` lists its own statuses and names these sets for the rest.
//! The bodies are the views that [`crate::error::ApiError`] serialises, and
//! each example is the body the server sends for one such error ([`example`],
//! checked against the rendered response by the tests below).

use latchkey_auth::csrf::CsrfFailure;
use serde_json::Value;
use utoipa::IntoResponses;

use crate::body::REQUIRED;
use crate::error::{ApiError, FieldErrors};
use crate::views::{BadRequestView, ErrorView};

/// The example of a response: the body the server sends for `error`.
pub fn example(error: &ApiError) -> Value {
    error.body()
}

fn unavailable() -> ApiError {
    ApiError::Unavailable("the database does not answer".into())
}

fn unauthenticated() -> ApiError {
    ApiError::NotAuthenticated
}

fn csrf_failed() -> ApiError {
    ApiError::Csrf(CsrfFailure::HeaderMissing.reason().into())
}

fn throttled() -> ApiError {
    ApiError::Throttled(60)
}

fn invalid_fields() -> ApiError {
    ApiError::Fields(FieldErrors::single("email", REQUIRED))
}

/// 503: the database does not answer (`Retry-After: 5`).
#[derive(IntoResponses)]
#[response(status = 503, description = "Database unavailable (`Retry-After: 5`)",
    example = json!(example(&unavailable())))]
pub struct Unavailable(pub ErrorView);

/// 401 on an authenticated operation: no credentials, a bad token, or a
/// user or session that may no longer use it.
#[derive(IntoResponses)]
#[response(status = 401, description = "No or bad credentials",
    example = json!(example(&unauthenticated())))]
pub struct Unauthenticated(pub ErrorView);

/// 403: a cookie-authenticated unsafe request without the right
/// `X-CSRFToken`, or from a foreign `Origin`.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "CSRF failed (cookie, or a foreign Origin)",
    example = json!(example(&csrf_failed()))
)]
pub struct CsrfFailed(pub ErrorView);

/// 403 on the user viewset.
#[derive(IntoResponses)]
#[response(status = 403, description = "Permission denied, or CSRF failed",
    example = json!(example(&ApiError::PermissionDenied)))]
pub struct Forbidden(pub ErrorView);

/// 429 with `Retry-After`: the per-IP bucket, or the account's failed logins.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "Throttled (`Retry-After` gives the seconds to wait)",
    example = json!(example(&throttled()))
)]
pub struct Throttled(pub ErrorView);

/// 400: DRF's field errors, or `{"detail"}` for a body that is not JSON.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "Field errors, or a body that cannot be read",
    example = json!(example(&invalid_fields()))
)]
pub struct InvalidFields(pub BadRequestView);

/// What any operation that reads a body may answer before reading it as its
/// form.
#[derive(IntoResponses)]
pub enum BodyRefused {
    #[response(
        status = 408,
        description = "The body did not arrive within CLIENT_BODY_TIMEOUT",
        example = json!(example(&ApiError::RequestTimeout))
    )]
    TimedOut(ErrorView),
    #[response(status = 413, description = "Body larger than MAX_BODY_SIZE",
        example = json!(example(&ApiError::PayloadTooLarge)))]
    TooLarge(ErrorView),
    #[response(status = 415, description = "Neither JSON nor form-encoded",
        example = json!(example(&ApiError::UnsupportedMediaType("text/plain".into()))))]
    UnsupportedMediaType(ErrorView),
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use utoipa::openapi::{RefOr, Response};

    use super::*;

    /// The status and body the server sends for `error`.
    async fn sent(error: &ApiError) -> (String, Value) {
        let response = error.error_response();
        let status = response.status().as_u16().to_string();
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn examples<R: IntoResponses>() -> Vec<(String, Value)> {
        R::responses()
            .into_iter()
            .map(|(status, response)| {
                let RefOr::T(Response { content, .. }) = response else {
                    panic!("{status}: a reference");
                };
                let RefOr::T(json) = &content["application/json"] else {
                    panic!("{status}: a reference");
                };
                (status, json.example.clone().expect("an example"))
            })
            .collect()
    }

    /// The set's examples are the bodies sent for `errors`, status by status.
    async fn described_as_sent<R: IntoResponses>(errors: &[ApiError]) {
        let mut sent_bodies = Vec::new();
        for error in errors {
            sent_bodies.push(sent(error).await);
        }
        sent_bodies.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(examples::<R>(), sent_bodies);
    }

    #[actix_web::test]
    async fn each_shared_response_shows_the_body_the_server_sends() {
        described_as_sent::<Unavailable>(&[unavailable()]).await;
        described_as_sent::<Unauthenticated>(&[unauthenticated()]).await;
        described_as_sent::<CsrfFailed>(&[csrf_failed()]).await;
        described_as_sent::<Forbidden>(&[ApiError::PermissionDenied]).await;
        described_as_sent::<Throttled>(&[throttled()]).await;
        described_as_sent::<InvalidFields>(&[invalid_fields()]).await;
        described_as_sent::<BodyRefused>(&[
            ApiError::RequestTimeout,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType("text/plain".into()),
        ])
        .await;
    }

    #[actix_web::test]
    async fn no_two_statuses_share_an_example() {
        let mut seen = std::collections::BTreeMap::new();
        let all = [
            examples::<Unavailable>(),
            examples::<Unauthenticated>(),
            examples::<Throttled>(),
            examples::<BodyRefused>(),
        ];
        for (status, example) in all.into_iter().flatten() {
            if let Some(other) = seen.insert(example.to_string(), status.clone()) {
                panic!("{status} and {other} show the same example: {example}");
            }
        }
    }
}
