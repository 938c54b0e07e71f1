//! The one way a request is authenticated: the `Authorization` header
//! (actix-web-httpauth's Bearer parsing, plus any other `AUTH_HEADER_TYPES`),
//! else the access cookie; the token verified once, the user loaded once,
//! CSRF and `Origin` checked for cookie-authenticated unsafe requests. The
//! result goes into the request's extensions as an [`AuthOutcome`];
//! handlers ask for it with the `CurrentUser` extractor
//! (`crate::http::extract`).

use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::header::Header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use actix_web_httpauth::headers::authorization::{Authorization, Bearer};
use latchkey_auth::cookies::CSRF_COOKIE_NAME;
use latchkey_auth::csrf::{CSRF_HEADER, check_csrf};
use latchkey_auth::{Claims, Refusal, Strictness, TokenError, TokenType, check_holder};
use latchkey_persistence::{SessionState, User};

use crate::error::ApiError;
use crate::flows::tokens::holder;
use crate::http::extract::{AuthOutcome, CredentialSource, CurrentUser};
use crate::state::{AppState, State, unix_now};

/// Middleware for the protected scopes.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let outcome = match req.app_data::<web::Data<AppState>>() {
        Some(state) => resolve(state, req.request()).await,
        None => AuthOutcome::Failed {
            error: ApiError::Internal("application state missing".into()),
            may_refresh_from_cookie: false,
        },
    };
    req.extensions_mut().insert(outcome);
    next.call(req).await
}

/// The credentials on a request: `Ok(None)` when there are none.
pub fn credentials(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<(String, CredentialSource)>, ApiError> {
    let types = &state.settings.http.auth_header_types;
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        if types.iter().any(|t| t == "Bearer")
            && let Ok(parsed) = Authorization::<Bearer>::parse(req)
        {
            let token = parsed.into_scheme().token().trim().to_owned();
            return single_token(token).map(|t| Some((t, CredentialSource::Header)));
        }
        let text = value.to_str().unwrap_or_default();
        let mut parts = text.splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        if types.iter().any(|t| t == scheme) {
            let token = parts.next().unwrap_or_default().trim().to_owned();
            return single_token(token).map(|t| Some((t, CredentialSource::Header)));
        }
        // Another scheme (e.g. Basic) is not ours: as simplejwt, ignore it.
    }
    Ok(req
        .cookie(&state.settings.cookies.access_name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .map(|v| (v, CredentialSource::Cookie)))
}

fn single_token(token: String) -> Result<String, ApiError> {
    if token.is_empty() || token.contains(' ') {
        Err(ApiError::Unauthorized {
            detail: "Authorization header must contain two space-delimited values",
            code: "bad_authorization_header",
        })
    } else {
        Ok(token)
    }
}

async fn resolve(state: &State, req: &HttpRequest) -> AuthOutcome {
    let failed = |error: ApiError, may_refresh_from_cookie: bool| AuthOutcome::Failed {
        error,
        may_refresh_from_cookie,
    };
    let (token, source) = match credentials(state, req) {
        Ok(Some(found)) => found,
        Ok(None) => return failed(ApiError::NotAuthenticated, true),
        Err(error) => return failed(error, false),
    };
    let claims =
        match state
            .codec
            .verify(&token, &[TokenType::Access, TokenType::Sliding], unix_now())
        {
            Ok(claims) => claims,
            Err(error) => {
                let expired_cookie =
                    source == CredentialSource::Cookie && error == TokenError::Expired;
                return failed(ApiError::AccessToken(error), expired_cookie);
            }
        };
    let user_id = claims.user_id;
    let user = match state.auth_cache.get(user_id, claims.sid.as_deref()) {
        Ok(known) => Some(known),
        Err(pending) => {
            let sid = claims.sid.clone();
            let found = match state
                .with_conn(move |conn, _| {
                    Ok(User::find_with_session(conn, user_id, sid.as_deref())?)
                })
                .await
            {
                Ok(found) => found,
                Err(error) => return failed(error, false),
            };
            if let Some((user, session)) = &found {
                state
                    .auth_cache
                    .fill(pending, user, claims.sid.as_deref(), *session);
            }
            found
        }
    };
    let user = match check_user(user, &claims) {
        Ok(user) => user,
        Err(error) => return failed(error, false),
    };
    if source == CredentialSource::Cookie
        && let Err(error) = check_cookie_request(req)
    {
        return failed(error, false);
    }
    AuthOutcome::Authenticated(Rc::new(CurrentUser {
        user,
        claims,
        source,
    }))
}

/// The user behind a verified access token must exist and be active, the
/// token's session (when it names one) must be live, and a token without one
/// must not predate the user's `tokens_valid_after` ([`check_holder`]).
pub fn check_user(found: Option<(User, SessionState)>, claims: &Claims) -> Result<User, ApiError> {
    let session = found
        .as_ref()
        .map_or(SessionState::NotNamed, |(_, session)| *session);
    let holder = found.as_ref().map(|(user, _)| holder(user));
    match check_holder(holder, session, claims, Strictness::Request) {
        Ok(()) => found
            .map(|(user, _)| user)
            .ok_or_else(ApiError::user_not_found),
        Err(Refusal::NoUser) => Err(ApiError::user_not_found()),
        Err(Refusal::Inactive) => Err(ApiError::user_inactive()),
        Err(Refusal::Revoked | Refusal::UnknownSession | Refusal::EndedSession) => {
            Err(ApiError::AccessToken(TokenError::Invalid))
        }
    }
}

/// CSRF (double submit) for a request that a cookie authenticates; safe
/// methods need none. (`Origin` is checked for every unsafe request, by
/// [`crate::http::origin`].)
pub fn check_cookie_request(req: &HttpRequest) -> Result<(), ApiError> {
    if !crate::http::origin::is_unsafe(req.method()) {
        return Ok(());
    }
    let cookie = req.cookie(CSRF_COOKIE_NAME);
    let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    check_csrf(cookie.as_ref().map(|c| c.value()), header)
        .map_err(|failure| ApiError::Csrf(failure.reason().to_owned()))
}
