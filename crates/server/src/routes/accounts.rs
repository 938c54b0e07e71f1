//! Accounts (`flows::accounts`): `POST /register/`, one handler for both of
//! its answers.

use actix_web::{HttpRequest, HttpResponse};

use super::responses::session_response;
use crate::error::ApiError;
use crate::flows::accounts::{self, Registered};
use crate::flows::email::VERIFICATION_SENT;
use crate::flows::tokens::Client;
use crate::forms::{Body, RegisterForm};
use crate::openapi::shared::{BodyRefused, InvalidFields, Throttled, Unavailable};
use crate::state::State;
use crate::views::{RegisterView, RegisteredView, UserView};

/// Create an account.
///
/// `POST /register/`: the user, a session, its tokens and cookies; under
/// `EMAIL_VERIFICATION=mandatory`, the user and "Verification e-mail sent.",
/// without tokens or cookies.
#[utoipa::path(post, path = "/register/", tag = "tokens",
    request_body(content((RegisterForm = "application/json"), (RegisterForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Registered: the user, tokens, and the access/refresh/csrftoken cookies (`SessionView`); under `EMAIL_VERIFICATION=mandatory` the user and \"Verification e-mail sent.\", no tokens or cookies (`RegisteredView`)", body = RegisterView),
        InvalidFields,
        BodyRefused,
        Throttled,
        Unavailable))]
pub async fn register(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<RegisterForm>,
) -> Result<HttpResponse, ApiError> {
    match accounts::register(&state, body, client).await? {
        Registered::WithSession(user, pair) => Ok(session_response(
            HttpResponse::Created(),
            &state,
            &req,
            &user,
            "register success",
            &pair,
        )),
        Registered::AwaitingVerification(user) => {
            Ok(HttpResponse::Created().json(RegisteredView {
                user: UserView::from(&user),
                message: VERIFICATION_SENT.to_owned(),
            }))
        }
    }
}
