//! The parts of responses several endpoints share: `no-store`, the token
//! cookies and the `csrftoken`, the session answer of register and login.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use latchkey_auth::cookies::CSRF_COOKIE_NAME;
use latchkey_auth::csrf::new_csrf_token;
use latchkey_auth::{IssuedToken, TokenType};
use latchkey_persistence::User;

use crate::flows::tokens::TokenPair;
use crate::http::extract::CredentialSource;
use crate::state::State;
use crate::views::{SessionView, TokenPairView, UserView};

/// `Cache-Control: no-store`, on every response that carries tokens.
pub fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

/// What a response that sets tokens does with the `csrftoken` cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfCookie {
    /// A fresh one (a login starts a new browser session).
    Rotate,
    /// The client's own, or a fresh one if it has none.
    Keep,
}

/// Sets the token cookies and the `csrftoken`, and forbids caching.
pub fn with_tokens(
    builder: &mut HttpResponseBuilder,
    state: &State,
    req: &HttpRequest,
    access: &IssuedToken,
    refresh: Option<&IssuedToken>,
    csrf: CsrfCookie,
) {
    let policy = &state.settings.cookies;
    builder.insert_header(no_store());
    builder.cookie(policy.access_cookie(&access.token, state.codec.lifetime(TokenType::Access)));
    if let Some(refresh) = refresh {
        builder.cookie(
            policy.refresh_cookie(&refresh.token, state.codec.lifetime(TokenType::Refresh)),
        );
    }
    let existing = req
        .cookie(CSRF_COOKIE_NAME)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty());
    let csrf = match (existing, csrf) {
        (Some(value), CsrfCookie::Keep) => value,
        _ => new_csrf_token(),
    };
    builder.cookie(policy.csrf_cookie(&csrf));
}

/// A new session for a signed-in caller (a password change, a TOTP
/// confirmation): its cookies when the request came by cookie (the
/// caller's `csrftoken` kept), else only `no-store`.
pub fn new_session_for(
    state: &State,
    req: &HttpRequest,
    source: CredentialSource,
    pair: &TokenPair,
) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    if source == CredentialSource::Cookie {
        with_tokens(
            &mut response,
            state,
            req,
            &pair.access,
            Some(&pair.refresh),
            CsrfCookie::Keep,
        );
    } else {
        response.insert_header(no_store());
    }
    response
}

pub fn token_pair(pair: &TokenPair) -> TokenPairView {
    TokenPairView {
        access: pair.access.token.clone(),
        refresh: pair.refresh.token.clone(),
    }
}

/// Register's and login's answer: the user, the tokens, and the cookies
/// with a fresh `csrftoken`.
pub fn session_response(
    mut response: HttpResponseBuilder,
    state: &State,
    req: &HttpRequest,
    user: &User,
    message: &str,
    pair: &TokenPair,
) -> HttpResponse {
    with_tokens(
        &mut response,
        state,
        req,
        &pair.access,
        Some(&pair.refresh),
        CsrfCookie::Rotate,
    );
    response.json(SessionView {
        user: UserView::from(user),
        message: message.to_owned(),
        token: token_pair(pair),
    })
}

/// Clears both token cookies.
pub fn clearing_cookies(builder: &mut HttpResponseBuilder, state: &State) {
    let policy = &state.settings.cookies;
    builder.cookie(policy.clearing(&policy.access_name));
    builder.cookie(policy.clearing(&policy.refresh_name));
}
