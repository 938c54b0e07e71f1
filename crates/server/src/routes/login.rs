//! Logging in (`flows::login`): for a token pair and cookies, or for a
//! sliding token. Neither authenticates the request, so a stale header or
//! cookie sent along is ignored.

use actix_web::{HttpRequest, HttpResponse};

use super::mfa::mfa_required_example;
use super::responses::{no_store, session_response};
use crate::error::ApiError;
use crate::flows::login;
use crate::flows::tokens::Client;
use crate::forms::{Body, LoginForm};
use crate::openapi::shared::{BodyRefused, InvalidFields, Throttled, Unavailable, example};
use crate::state::State;
use crate::views::{ErrorView, SessionView, SlidingView};

/// Log in.
///
/// `POST /auth/`: the user, a new session, its tokens and cookies.
#[utoipa::path(post, path = "/auth/", tag = "tokens",
    request_body(content((LoginForm = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in: the user, tokens, and the cookies", body = SessionView),
        InvalidFields,
        (status = 401, description = "No active account found with the given credentials; or, for a user with a second factor, `mfa_required` with the `mfa_token` to send to `POST /auth/mfa/verify/`", body = ErrorView,
            examples(("no_active_account" = (value = json!(example(&ApiError::no_active_account())))),
                     ("mfa_required" = (value = json!(mfa_required_example()))))),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn login(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let (user, pair) = login::password::login(&state, body, client).await?;
    Ok(session_response(
        HttpResponse::Ok(),
        &state,
        &req,
        &user,
        "login success",
        &pair,
    ))
}

/// Log in for a sliding token.
///
/// `POST /auth/sliding/`.
#[utoipa::path(post, path = "/auth/sliding/", tag = "sessions",
    request_body(content((LoginForm = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "A sliding token", body = SlidingView),
        InvalidFields,
        (status = 401, description = "No active account found with the given credentials; or, for a user with a second factor, `mfa_required` with the `mfa_token` to send to `POST /auth/mfa/verify/`", body = ErrorView,
            examples(("no_active_account" = (value = json!(example(&ApiError::no_active_account())))),
                     ("mfa_required" = (value = json!(mfa_required_example()))))),
        Throttled,
        BodyRefused))]
pub async fn obtain_sliding(
    state: State,
    client: Client,
    body: Body<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let token = login::password::sliding_login(&state, body, client).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(SlidingView { token: token.token }))
}
