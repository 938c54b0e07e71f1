//! Sessions: logout everywhere, password change, sliding tokens, the JWKS.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::tokens::{clearing_cookies, with_tokens};
use crate::authn::{CredentialSource, CurrentUser};
use crate::body::Fields;
use crate::error::{ApiError, FieldErrors};
use crate::flows::accounts::{self, web_data::State};
use crate::flows::sessions;
use crate::flows::tokens as token_flows;
use crate::state::unix_now;

fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

/// `DELETE /auth/sessions/`: log out everywhere.
pub async fn logout_everywhere(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    sessions::logout_everywhere(&state, &user).await?;
    let mut response = HttpResponse::Accepted();
    clearing_cookies(&mut response, &state);
    response.insert_header(no_store());
    Ok(response.json(json!({ "message": "Logout success" })))
}

/// `POST /auth/password/`.
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
    Ok(response.json(json!({
        "message": "Password changed",
        "token": { "access": pair.access.token, "refresh": pair.refresh.token },
    })))
}

/// `POST /auth/sliding/`: credentials for a sliding token.
pub async fn obtain_sliding(state: State, fields: Fields) -> Result<HttpResponse, ApiError> {
    let user = accounts::authenticate_credentials(&state, &fields).await?;
    let token = sessions::issue_sliding(&state, user.id);
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(json!({ "token": token.token })))
}

/// `POST /auth/sliding/refresh/`.
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
        .json(json!({ "token": token.token })))
}

/// `GET /.well-known/jwks.json`: the public verifying keys (none under HMAC).
pub async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.codec.keys().jwks())
}
