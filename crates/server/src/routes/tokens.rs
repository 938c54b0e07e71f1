//! The tokens (`flows::tokens`): who am I (refreshing from the cookie when
//! the access token is gone), refresh, verify, and the keys that verify
//! them. Refresh and verify never authenticate the request, so a stale
//! header or cookie sent along with them is ignored.

use actix_web::{HttpRequest, HttpResponse};

use super::responses::{CsrfCookie, no_store, with_tokens};

use crate::error::ApiError;
use crate::flows::tokens::{self as token_flows, Client, Refreshed};
use crate::forms::{Body, RefreshForm, TokenForm, required};
use crate::http::authn::check_cookie_request;
use crate::http::extract::AuthOutcome;
use crate::net::client_ip::client_ip;
use crate::openapi::shared::{
    BodyRefused, CsrfFailed, Throttled, Unauthenticated, Unavailable, example,
};
use crate::state::State;
use crate::views::{BadRequestView, ErrorView, RefreshView, UserView};

#[utoipa::path(get, path = "/auth/", tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The current user (new cookies when refreshed on the server)", body = UserView),
        Unauthenticated,
        Throttled,
        Unavailable))]
/// Who am I?
///
/// `GET /auth/`: the current user; when the access cookie is gone or expired
/// and the refresh cookie is good, refreshes on the server and sets the new
/// cookies.
pub async fn current_user(
    state: State,
    req: HttpRequest,
    client: Client,
    outcome: AuthOutcome,
) -> Result<HttpResponse, ApiError> {
    let error = match outcome {
        AuthOutcome::Authenticated(current) => {
            return Ok(HttpResponse::Ok().json(UserView::from(&current.user)));
        }
        AuthOutcome::Failed {
            error,
            may_refresh_from_cookie,
        } => {
            if !may_refresh_from_cookie {
                return Err(error);
            }
            error
        }
    };
    let Some(refresh_token) = refresh_cookie(&state, &req) else {
        return Err(error);
    };
    // A refresh on the server is an auth request like `POST /auth/refresh/`:
    // it takes its place in the same per-IP bucket.
    if let Some(ip) = client_ip(&req, &state.settings.http.trusted_proxies) {
        state.throttle.hit_ip(ip).await?;
    }
    // A refresh cookie that does not refresh leaves the access token's
    // refusal as the answer; only an outage is told as itself.
    let refreshed = token_flows::refresh_token(&state, &refresh_token, client)
        .await
        .map_err(|refresh_error| match refresh_error {
            ApiError::Unavailable(_) | ApiError::Internal(_) => refresh_error,
            _ => error,
        })?;
    let mut response = HttpResponse::Ok();
    with_tokens(
        &mut response,
        &state,
        &req,
        &refreshed.access,
        refreshed.refresh.as_ref(),
        CsrfCookie::Keep,
    );
    Ok(response.json(UserView::from(&refreshed.user)))
}

pub(super) fn refresh_cookie(state: &State, req: &HttpRequest) -> Option<String> {
    req.cookie(&state.settings.cookies.refresh_name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Where a refresh token came from: a cookie makes the request
/// cookie-authenticated (its answer sets cookies too).
pub(super) enum Presented {
    Body(String),
    Cookie(String),
}

/// The refresh token of a refresh or logout request: the body's `refresh`,
/// else the cookie, for which CSRF is checked. (These two routes read their
/// form themselves: where the token came from decides the cookies of the
/// answer and whether CSRF applies.)
pub(super) fn presented_refresh(
    state: &State,
    req: &HttpRequest,
    body: &Body<RefreshForm>,
) -> Result<Option<Presented>, ApiError> {
    if let RefreshForm {
        refresh: Some(token),
    } = body.parse(&())?
    {
        return Ok(Some(Presented::Body(token)));
    }
    match refresh_cookie(state, req) {
        Some(token) => {
            check_cookie_request(req)?;
            Ok(Some(Presented::Cookie(token)))
        }
        None => Ok(None),
    }
}

/// Refresh: a new access token (and refresh token).
///
/// `POST /auth/refresh/`.
#[utoipa::path(post, path = "/auth/refresh/", tag = "tokens",
    request_body(content((RefreshForm = "application/json"), (RefreshForm = "application/x-www-form-urlencoded"))),
    security((), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "A new access token (and, with rotation, refresh token)", body = RefreshView),
        (status = 400, description = "No refresh token", body = BadRequestView),
        (status = 401, description = "Token is invalid or expired, or blacklisted", body = ErrorView, example = json!(example(&ApiError::token_invalid_or_expired()))),
        CsrfFailed,
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn refresh(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<RefreshForm>,
) -> Result<HttpResponse, ApiError> {
    let (token, from_cookie) = match presented_refresh(&state, &req, &body)? {
        Some(Presented::Body(token)) => (token, false),
        Some(Presented::Cookie(token)) => (token, true),
        None => return Err(required("refresh")),
    };
    let Refreshed {
        access, refresh, ..
    } = token_flows::refresh_token(&state, &token, client).await?;
    let body = RefreshView {
        access: access.token.clone(),
        refresh: refresh.as_ref().map(|r| r.token.clone()),
    };
    let mut response = HttpResponse::Ok();
    if from_cookie {
        with_tokens(
            &mut response,
            &state,
            &req,
            &access,
            refresh.as_ref(),
            CsrfCookie::Keep,
        );
    } else {
        response.insert_header(no_store());
    }
    Ok(response.json(body))
}

/// Check a token.
///
/// `POST /auth/verify/`.
#[utoipa::path(post, path = "/auth/verify/", tag = "tokens",
    request_body(content((TokenForm = "application/json"), (TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The token is good: `{}`", body = Object),
        (status = 400, description = "No token", body = BadRequestView),
        (status = 401, description = "Token is invalid or expired, or blacklisted", body = ErrorView, example = json!(example(&ApiError::token_invalid_or_expired()))),
        Unavailable,
        BodyRefused))]
pub async fn verify(state: State, body: Body<TokenForm>) -> Result<HttpResponse, ApiError> {
    token_flows::verify(&state, body).await?;
    Ok(HttpResponse::Ok().json(serde_json::Map::new()))
}

/// The public keys that verify tokens.
///
/// `GET /.well-known/jwks.json`: none under HMAC.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sessions",
    responses((status = 200, description = "A JWK Set: `{\"keys\": [...]}`", body = Object)))]
pub async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.codec.keys().jwks())
}
