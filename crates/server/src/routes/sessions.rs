//! Sessions: logout everywhere, password change, sliding tokens, the JWKS.

use crate::requests::{LoginRequest, PasswordChangeRequest, TokenRequest};
use crate::views::{BadRequestView, ErrorView, MessageView, PasswordChangedView, SlidingView};
use actix_web::{HttpRequest, HttpResponse};

use super::tokens::{clearing_cookies, no_store, token_pair, with_tokens};
use crate::authn::{CredentialSource, CurrentUser};
use crate::body::Fields;
use crate::error::{ApiError, FieldErrors};
use crate::flows::accounts;
use crate::flows::sessions;
use crate::flows::tokens as token_flows;
use crate::state::State;
use crate::state::unix_now;

/// `DELETE /auth/sessions/`: log out everywhere.
#[utoipa::path(delete, path = "/auth/sessions/", tag = "sessions",
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 202, description = "Every session of the user revoked, cookies cleared", body = MessageView),
        (status = 401, description = "No or bad credentials", body = ErrorView),
        (status = 403, description = "CSRF failed (cookie)", body = ErrorView)))]
pub async fn logout_everywhere(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    sessions::logout_everywhere(&state, &user).await?;
    let mut response = HttpResponse::Accepted();
    clearing_cookies(&mut response, &state);
    response.insert_header(no_store());
    Ok(response.json(MessageView {
        message: "Logout success".into(),
    }))
}

/// `POST /auth/password/`.
#[utoipa::path(post, path = "/auth/password/", tag = "sessions",
    request_body(content((PasswordChangeRequest = "application/json"), (PasswordChangeRequest = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Password changed; other sessions revoked; a new token pair", body = PasswordChangedView),
        (status = 400, description = "Wrong old password or weak new one", body = BadRequestView),
        (status = 401, description = "No or bad credentials", body = ErrorView),
        (status = 403, description = "CSRF failed (cookie)", body = ErrorView),
        (status = 429, description = "Throttled", body = ErrorView)))]
pub async fn change_password(
    state: State,
    req: HttpRequest,
    user: CurrentUser,
    fields: Fields,
) -> Result<HttpResponse, ApiError> {
    let (_, pair) = sessions::change_password(&state, &user, fields).await?;
    let mut response = HttpResponse::Ok();
    if user.source == CredentialSource::Cookie {
        with_tokens(
            &mut response,
            &state,
            &req,
            &pair.access,
            Some(&pair.refresh),
            false,
        );
    } else {
        response.insert_header(no_store());
    }
    Ok(response.json(PasswordChangedView {
        message: "Password changed".into(),
        token: token_pair(&pair),
    }))
}

/// `POST /auth/sliding/`: credentials for a sliding token.
#[utoipa::path(post, path = "/auth/sliding/", tag = "sessions",
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "A sliding token", body = SlidingView),
        (status = 400, description = "Field errors", body = BadRequestView),
        (status = 401, description = "No active account found with the given credentials", body = ErrorView),
        (status = 429, description = "Throttled", body = ErrorView)))]
pub async fn obtain_sliding(state: State, fields: Fields) -> Result<HttpResponse, ApiError> {
    let user = accounts::sliding_login(&state, fields).await?;
    let token = sessions::issue_sliding(&state, user.id);
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(SlidingView { token: token.token }))
}

/// `POST /auth/sliding/refresh/`.
#[utoipa::path(post, path = "/auth/sliding/refresh/", tag = "sessions",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The sliding token with a new expiry", body = SlidingView),
        (status = 400, description = "No token", body = BadRequestView),
        (status = 401, description = "Token is invalid or expired", body = ErrorView),
        (status = 429, description = "Throttled", body = ErrorView)))]
pub async fn refresh_sliding(state: State, fields: Fields) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let token = fields.required_string("token", &mut errors);
    errors.into_result()?;
    let claims = state
        .codec
        .verify_sliding_refresh(&token.unwrap_or_default(), unix_now())
        .map_err(token_flows::refused)?;
    let token = sessions::slide(&state, claims).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(SlidingView { token: token.token }))
}

/// `GET /.well-known/jwks.json`: the public verifying keys (none under HMAC).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sessions",
    responses((status = 200, description = "A JWK Set: `{\"keys\": [...]}`", body = Object)))]
pub async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.codec.keys().jwks())
}
