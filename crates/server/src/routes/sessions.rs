//! Sessions (`flows::sessions`): log out, here or everywhere, list and end
//! them, change the password (a new session), slide a sliding token.

use crate::forms::{Body, PasswordChangeForm, RefreshForm, TokenForm};
use crate::openapi::shared::{
    BodyRefused, CsrfFailed, Throttled, Unauthenticated, Unavailable, example,
};
use crate::views::{
    BadRequestView, ErrorView, MessageView, PasswordChangedView, SessionItemView, SessionListView,
    SlidingView,
};
use actix_web::{HttpRequest, HttpResponse, web};
use latchkey_auth::TokenType;

use super::responses::{clearing_cookies, new_session_for, no_store, token_pair};
use super::tokens::{Presented, presented_refresh};
use crate::error::ApiError;
use crate::flows::sessions;
use crate::flows::tokens::Client;
use crate::http::authn::{check_cookie_request, credentials};
use crate::http::extract::{CredentialSource, CurrentUser};
use crate::state::State;

/// Log out everywhere.
///
/// `DELETE /auth/sessions/`: every session of the user ends.
#[utoipa::path(delete, path = "/auth/sessions/", tag = "sessions",
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 202, description = "Every session of the user revoked, cookies cleared", body = MessageView),
        Unauthenticated,
        CsrfFailed))]
pub async fn logout_everywhere(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    sessions::logout_everywhere(&state, &user.user).await?;
    let mut response = HttpResponse::Accepted();
    clearing_cookies(&mut response, &state);
    response.insert_header(no_store());
    Ok(response.json(MessageView {
        message: "Logout success".into(),
    }))
}

/// Change your password.
///
/// `POST /auth/password/`: every session ends and a new one starts.
#[utoipa::path(post, path = "/auth/password/", tag = "sessions",
    request_body(content((PasswordChangeForm = "application/json"), (PasswordChangeForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Password changed; other sessions revoked; a new token pair", body = PasswordChangedView),
        (status = 400, description = "Wrong old password or weak new one", body = BadRequestView),
        Unauthenticated,
        CsrfFailed,
        Throttled,
        BodyRefused))]
pub async fn change_password(
    state: State,
    req: HttpRequest,
    user: CurrentUser,
    client: Client,
    body: Body<PasswordChangeForm>,
) -> Result<HttpResponse, ApiError> {
    let (_, pair) =
        sessions::change_password(&state, &user.user, &user.claims, body, client).await?;
    Ok(
        new_session_for(&state, &req, user.source, &pair).json(PasswordChangedView {
            message: "Password changed".into(),
            token: token_pair(&pair),
        }),
    )
}

/// Slide a sliding token.
///
/// `POST /auth/sliding/refresh/`: a new expiry while `refresh_exp` has not passed.
#[utoipa::path(post, path = "/auth/sliding/refresh/", tag = "sessions",
    request_body(content((TokenForm = "application/json"), (TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The sliding token with a new expiry", body = SlidingView),
        (status = 400, description = "No token", body = BadRequestView),
        (status = 401, description = "Token is invalid or expired", body = ErrorView, example = json!(example(&ApiError::token_invalid_or_expired()))),
        Throttled,
        BodyRefused))]
pub async fn refresh_sliding(
    state: State,
    body: Body<TokenForm>,
) -> Result<HttpResponse, ApiError> {
    let token = sessions::slide(&state, body).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(SlidingView { token: token.token }))
}

/// List your sessions.
///
/// `GET /auth/sessions/`: the live ones, most recently used first.
#[utoipa::path(get, path = "/auth/sessions/", tag = "sessions",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, most recently used first", body = SessionListView),
        Unauthenticated,
        Unavailable))]
pub async fn list_sessions(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let sessions = sessions::list_sessions(&state, &user.user, &user.claims).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(SessionListView {
            results: sessions
                .iter()
                .map(|listed| SessionItemView::new(&listed.session, listed.current))
                .collect(),
        }))
}

/// End one of your sessions.
///
/// `DELETE /auth/sessions/{id}/`: its tokens are refused from the next request on.
#[utoipa::path(delete, path = "/auth/sessions/{id}/", tag = "sessions",
    params(("id" = String, Path, description = "The session's id (the `sid` claim)")),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 204, description = "The session ended: each of its tokens is refused from now on"),
        Unauthenticated,
        CsrfFailed,
        (status = 404, description = "Not a live session of the caller's", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unavailable))]
pub async fn end_session(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::end_one_session(&state, &user.user, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().insert_header(no_store()).finish())
}

#[utoipa::path(delete, path = "/auth/", tag = "tokens",
    description = "The refresh token to blacklist comes from the body's `refresh` or the `refresh` cookie (then the CSRF header is needed); without one the answer is still 202.",
    security((), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 202, description = "Logged out: cookies cleared, the session blacklisted", body = MessageView),
        (status = 400, description = "A body that cannot be read", body = BadRequestView),
        CsrfFailed,
        BodyRefused,
        Unavailable))]
/// Log out.
///
/// `DELETE /auth/`: ends the session of the token presented (refresh, else access or sliding)
/// (body or cookie) and clears the cookies; 202 even without tokens.
pub async fn logout(
    state: State,
    req: HttpRequest,
    body: Body<RefreshForm>,
) -> Result<HttpResponse, ApiError> {
    const REFRESH: &[TokenType] = &[TokenType::Refresh];
    const ACCESS: &[TokenType] = &[TokenType::Access, TokenType::Sliding];
    let presented = match presented_refresh(&state, &req, &body)? {
        Some(Presented::Body(token) | Presented::Cookie(token)) => Some((token, REFRESH)),
        None => match credentials(&state, &req) {
            Ok(Some((token, source))) => {
                if source == CredentialSource::Cookie {
                    check_cookie_request(&req)?;
                }
                Some((token, ACCESS))
            }
            _ => None,
        },
    };
    sessions::logout(&state, presented).await?;
    let mut response = HttpResponse::Accepted();
    clearing_cookies(&mut response, &state);
    response.insert_header(no_store());
    Ok(response.json(MessageView {
        message: "Logout success".into(),
    }))
}
