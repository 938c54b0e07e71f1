//! Sign-in with a provider (`flows::login::federated`): the providers list,
//! the browser flow (authorize, callback, exchange), the native apps'
//! `/token/`, and the caller's linked providers.
//!
//! The callback is the one unsafe route outside the `Origin` rule: the
//! provider's page posts it (Apple's `form_post`), so its `Origin` is the
//! provider's. The flow's `state` and its HttpOnly cookie guard it instead.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use latchkey_federation::{NativeCredential, Provider};

use super::responses::{no_store, session_response};
use crate::error::{ApiError, FieldErrors};
use crate::flows::login::federated::{self, Callback, FLOW_LIFETIME_SECONDS, Landing};
use crate::flows::mfa::gate::require_aal2;
use crate::flows::tokens::Client;
use crate::forms::Body;
use crate::forms::social::{NativeToken, NativeTokenForm, SocialCodeForm};
use crate::http::extract::{AuthOutcome, CredentialSource, CurrentUser};
use crate::http::origin::{base_url, own_origin};
use crate::openapi::shared::{
    BodyRefused, InvalidFields, Throttled, Unauthenticated, Unavailable, example,
};
use crate::state::State;
use crate::views::{
    BadRequestView, ErrorView, LinkedIdentitiesView, LinkedIdentityView, SessionView,
    SocialProviderView, SocialProvidersView,
};

/// The cookie that binds a flow to the browser that started it.
pub const FLOW_COOKIE: &str = "latchkey_social_flow";

/// Whether `path` is a provider's callback, which the `Origin` rule leaves
/// alone.
pub fn is_callback(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/auth/social/") else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    matches!(rest.split_once('/'), Some((name, "callback")) if !name.is_empty() && !name.contains('/'))
}

fn provider(state: &State, name: &str) -> Result<Arc<Provider>, ApiError> {
    state.federation.provider(name).ok_or(ApiError::NotFound)
}

fn authorize_path(name: &str) -> String {
    format!("/auth/social/{name}/authorize/")
}

/// Sign-in providers.
///
/// `GET /auth/social/providers/`: every enabled provider (reachable or
/// not) and where a browser starts signing in with it.
#[utoipa::path(get, path = "/auth/social/providers/", tag = "social",
    responses((status = 200, description = "The enabled providers", body = SocialProvidersView)))]
pub async fn providers(state: State, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    let providers = state
        .federation
        .providers()
        .map(|provider| SocialProviderView {
            name: provider.name().to_owned(),
            authorize_url: format!("{base}{}", authorize_path(provider.name())),
        })
        .collect();
    HttpResponse::Ok().json(SocialProvidersView { providers })
}

fn not_found_example() -> serde_json::Value {
    example(&ApiError::NotFound)
}

fn provider_unavailable_example() -> serde_json::Value {
    example(&ApiError::ProviderUnavailable(String::new()))
}

/// Start signing in with a provider.
///
/// `GET /auth/social/{name}/authorize/?next=URL`: 302 to the provider, the
/// flow kept on the server and bound to an HttpOnly cookie for 10 minutes.
/// `&link=true`, with the access cookie, links the provider to the signed-in
/// user instead (`aal` 2 needed when they have TOTP).
#[utoipa::path(get, path = "/auth/social/{name}/authorize/", tag = "social",
    params(("name" = String, Path, description = "A provider of `SOCIAL_PROVIDERS`"),
        ("next" = String, Query, description = "Where the browser comes back to: an origin or prefix of `SOCIAL_REDIRECT_URLS`"),
        ("link" = Option<bool>, Query, description = "Link the provider to the user of the access cookie")),
    responses(
        (status = 302, description = "To the provider's authorization endpoint"),
        (status = 400, description = "A `next` outside `SOCIAL_REDIRECT_URLS`", body = BadRequestView,
            example = json!({"next": [NEXT_REFUSED]})),
        (status = 401, description = "`link=true` without an access cookie", body = ErrorView,
            example = json!(example(&ApiError::NotAuthenticated))),
        (status = 403, description = "`link=true` for a TOTP user at `aal` 1", body = ErrorView,
            example = json!(example(&ApiError::aal2_required()))),
        (status = 404, description = "No such provider", body = ErrorView, example = json!(not_found_example())),
        (status = 503, description = "The provider's discovery cannot be fetched", body = ErrorView,
            example = json!(provider_unavailable_example()))))]
pub async fn authorize(
    state: State,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&state, &name)?;
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let next = match param("next") {
        None | Some("") => return Err(crate::forms::required("next")),
        Some(next) => allowed_next(&redirect_urls(&state, &req), next)
            .ok_or_else(|| ApiError::Fields(FieldErrors::single("next", NEXT_REFUSED)))?,
    };
    let link = matches!(param("link"), Some("true" | "True" | "1"));
    let caller = if link {
        let caller = cookie_user(&req)?;
        require_aal2(&state, &caller.user, &caller.claims).await?;
        Some(caller)
    } else {
        None
    };
    let linker = caller.as_ref().map(|caller| federated::Linker {
        user: &caller.user,
        session: caller.claims.sid.clone(),
    });
    let redirect_uri = format!(
        "{}/auth/social/{}/callback/",
        base_url(&state, &req),
        provider.name()
    );
    let started = federated::authorize(&state, &provider, redirect_uri, next, linker).await?;
    let mut cookie = Cookie::new(FLOW_COOKIE, started.cookie);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_max_age(CookieDuration::seconds(FLOW_LIFETIME_SECONDS));
    flow_cookie_policy(&mut cookie, &state, provider.form_post());
    Ok(HttpResponse::Found()
        .insert_header(no_store())
        .insert_header((header::LOCATION, started.location))
        .cookie(cookie)
        .finish())
}

/// `SameSite=None; Secure` for a `form_post` provider, whose callback is a
/// cross-site POST that a `Lax` cookie would not come along on.
fn flow_cookie_policy(cookie: &mut Cookie<'_>, state: &State, form_post: bool) {
    if form_post {
        cookie.set_same_site(SameSite::None);
        cookie.set_secure(true);
    } else {
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(state.settings.cookies.secure);
    }
}

/// The user of the access cookie (a header does not count: a browser
/// navigating here sends none).
fn cookie_user(req: &HttpRequest) -> Result<CurrentUser, ApiError> {
    match req.extensions().get::<AuthOutcome>() {
        Some(AuthOutcome::Authenticated(user)) if user.source == CredentialSource::Cookie => {
            Ok(user.as_ref().clone())
        }
        Some(AuthOutcome::Failed { error, .. }) => Err(error.clone()),
        _ => Err(ApiError::NotAuthenticated),
    }
}

/// `SOCIAL_REDIRECT_URLS`, with the request's own origin when it stands in
/// for an unset `PUBLIC_URL`.
fn redirect_urls(state: &State, req: &HttpRequest) -> Vec<String> {
    let social = &state.settings.social;
    let mut urls = social.redirect_urls.clone();
    if social.redirect_to_request_origin {
        urls.push(own_origin(state, req));
    }
    urls
}

pub const NEXT_REFUSED: &str = "Enter a URL that SOCIAL_REDIRECT_URLS allows.";

/// `next` as the contract admits it: an absolute `http(s)` URL without
/// userinfo whose origin is a listed origin, or that starts with a listed
/// prefix (compared as strings, after the URL is normalised, so `..` cannot
/// climb out of a prefix). Returns it normalised, without a fragment.
pub fn allowed_next(allowed: &[String], raw: &str) -> Option<String> {
    let mut next = url::Url::parse(raw).ok()?;
    if !matches!(next.scheme(), "http" | "https")
        || !next.username().is_empty()
        || next.password().is_some()
        || next.host_str().is_none_or(str::is_empty)
    {
        return None;
    }
    next.set_fragment(None);
    let origin = next.origin().ascii_serialization();
    let admitted = allowed.iter().any(|entry| match url::Url::parse(entry) {
        Ok(listed) if is_origin_only(entry) => listed.origin().ascii_serialization() == origin,
        Ok(listed) => next.as_str().starts_with(listed.as_str()),
        Err(_) => false,
    });
    admitted.then(|| next.into())
}

/// `https://app.example.com` (or with a lone `/`): an origin, not a prefix.
fn is_origin_only(entry: &str) -> bool {
    entry
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.trim_end_matches('/').contains('/'))
}

/// A form_post callback holds a code, a state and an ID token at most.
const CALLBACK_BODY_LIMIT: usize = 64 * 1024;

/// A provider's callback.
///
/// `GET` or `POST /auth/social/{name}/callback/`: the code exchanged, the
/// account decided, and 302 to the flow's `next` with `#social_code=`
/// (or `#social_linked=<name>` for `link=true`, `#social_error=<reason>` on
/// a refusal). A `state` that is not a live flow of this provider from this
/// browser: 400, no redirect.
#[utoipa::path(method(get, post), path = "/auth/social/{name}/callback/", tag = "social",
    params(("name" = String, Path, description = "The provider"),
        ("state" = String, Query, description = "The flow's state"),
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("error" = Option<String>, Query, description = "The provider's refusal")),
    responses(
        (status = 302, description = "To `next`, with `#social_code=`, `#social_linked=` or `#social_error=` (`access_denied`, `invalid_request`, `account_exists`, `email_missing`, `signup_closed`, `provider_error`, `identity_taken`)"),
        (status = 400, description = "A missing state, or one that is not a live flow of this provider from this browser", body = BadRequestView,
            example = json!({"state": ["Invalid value"]})),
        (status = 404, description = "No such provider", body = ErrorView, example = json!(not_found_example())),
        Unavailable))]
pub async fn callback(
    state: State,
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&state, &name)?;
    let mut params: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    if req.method() == actix_web::http::Method::POST {
        // form_post: the parameters come in the body.
        let body = payload
            .to_bytes_limited(CALLBACK_BODY_LIMIT)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let posted: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        params.splice(0..0, posted);
    }
    let take = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let received = Callback {
        state: take("state"),
        code: take("code"),
        error: take("error"),
        issuer: take("iss"),
    };
    let cookie = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let form_post = provider.form_post();
    let Landing { next, fragment } =
        federated::callback(&state, provider, received, cookie).await?;
    let mut location = url::Url::parse(&next).map_err(|e| ApiError::Internal(e.to_string()))?;
    location.set_fragment(Some(&format!("{}={}", fragment.0, fragment.1)));
    let mut response = HttpResponse::Found();
    response
        .insert_header(no_store())
        .insert_header((header::LOCATION, location.as_str()));
    if fragment.0 != "social_error" {
        let mut clearing = Cookie::new(FLOW_COOKIE, "");
        clearing.set_path("/");
        clearing.set_http_only(true);
        clearing.set_max_age(CookieDuration::ZERO);
        flow_cookie_policy(&mut clearing, &state, form_post);
        response.cookie(clearing);
    }
    Ok(response.finish())
}

/// Exchange a `social_code` for a login.
///
/// `POST /auth/social/exchange/`: the login response, or 401
/// `mfa_required`, `email_not_verified`, `no_active_account`. A code works
/// once and for 60 seconds. A token endpoint: credentials sent along are
/// ignored.
#[utoipa::path(post, path = "/auth/social/exchange/", tag = "social",
    request_body(content((SocialCodeForm = "application/json"), (SocialCodeForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in: the user, tokens, and the cookies", body = SessionView),
        (status = 400, description = "A code unknown, used or expired", body = BadRequestView,
            example = json!({"social_code": ["Invalid value"]})),
        (status = 401, description = "`mfa_required`, `email_not_verified` or `no_active_account`", body = ErrorView,
            example = json!(example(&ApiError::no_active_account()))),
        Throttled,
        Unavailable,
        BodyRefused))]
pub async fn exchange(
    state: State,
    req: HttpRequest,
    client: Client,
    body: Body<SocialCodeForm>,
) -> Result<HttpResponse, ApiError> {
    let SocialCodeForm { social_code } = body.parse(&())?;
    let (user, pair) = federated::exchange(&state, social_code, client).await?;
    Ok(session_response(
        HttpResponse::Ok(),
        &state,
        &req,
        &user,
        "login success",
        &pair,
    ))
}

fn provider_token_invalid_example() -> serde_json::Value {
    example(&federated::provider_token_invalid())
}

/// Sign in with a native app's provider token.
///
/// `POST /auth/social/{name}/token/`: `{"id_token", "nonce"}` (OpenID
/// Connect; each ID token is accepted once) or `{"access_token"}`
/// (`github`, checked with GitHub's token check). The login response.
#[utoipa::path(post, path = "/auth/social/{name}/token/", tag = "social",
    params(("name" = String, Path, description = "The provider")),
    request_body(content((NativeTokenForm = "application/json"), (NativeTokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in: the user, tokens, and the cookies", body = SessionView),
        InvalidFields,
        (status = 401, description = "`provider_token_invalid`; or `mfa_required`, `email_not_verified`, `no_active_account`", body = ErrorView,
            example = json!(provider_token_invalid_example())),
        (status = 403, description = "`signup_closed`", body = ErrorView),
        (status = 404, description = "No such provider", body = ErrorView, example = json!(not_found_example())),
        (status = 409, description = "`account_exists`: the address is taken and the provider does not vouch for it", body = ErrorView),
        Throttled,
        (status = 503, description = "The provider's keys cannot be fetched", body = ErrorView,
            example = json!(provider_unavailable_example())),
        BodyRefused))]
pub async fn token(
    state: State,
    req: HttpRequest,
    client: Client,
    name: web::Path<String>,
    body: Body<NativeToken>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&state, &name)?;
    let parsed = body.parse(&provider.takes_id_tokens())?;
    let credential = match &parsed {
        NativeToken::IdToken { id_token, nonce } => NativeCredential::IdToken {
            id_token,
            nonce: nonce.as_deref(),
        },
        NativeToken::AccessToken(token) => NativeCredential::AccessToken(token),
    };
    let (user, pair) = federated::native(&state, provider.clone(), credential, client).await?;
    Ok(session_response(
        HttpResponse::Ok(),
        &state,
        &req,
        &user,
        "login success",
        &pair,
    ))
}

/// Your linked providers.
///
/// `GET /auth/social/`.
#[utoipa::path(get, path = "/auth/social/", tag = "social",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's linked identities", body = LinkedIdentitiesView),
        Unauthenticated,
        Unavailable))]
pub async fn linked(state: State, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let identities = federated::linked(&state, user.user.id).await?;
    Ok(HttpResponse::Ok().json(LinkedIdentitiesView {
        results: identities.iter().map(LinkedIdentityView::from).collect(),
    }))
}

/// Unlink a provider.
///
/// `DELETE /auth/social/{name}/`: 204; 400 `last_login_method` when it is
/// the caller's last way in (no usable password, no other provider, no
/// passkey); 404 when it is not linked; `aal` 2 for a user with TOTP.
#[utoipa::path(delete, path = "/auth/social/{name}/", tag = "social",
    security(("bearer" = []), ("cookie" = [])),
    params(("name" = String, Path, description = "The provider")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, description = "`last_login_method`", body = ErrorView),
        Unauthenticated,
        (status = 403, description = "A TOTP user at `aal` 1", body = ErrorView,
            example = json!(example(&ApiError::aal2_required()))),
        (status = 404, description = "Not linked", body = ErrorView, example = json!(not_found_example())),
        Unavailable))]
pub async fn unlink(
    state: State,
    user: CurrentUser,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_aal2(&state, &user.user, &user.claims).await?;
    federated::unlink(&state, user.user.id, name.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://app.example.com".to_owned(),
            "http://localhost:3000/".to_owned(),
            "https://example.com/app/".to_owned(),
        ]
    }

    #[test]
    fn next_is_admitted_by_origin_or_string_prefix() {
        let ok = |next: &str| allowed_next(&allowed(), next);
        assert_eq!(
            ok("https://app.example.com/after?x=1#old").as_deref(),
            Some("https://app.example.com/after?x=1")
        );
        assert!(ok("https://APP.example.com:443/").is_some());
        assert!(ok("http://localhost:3000/cb").is_some());
        assert!(ok("https://example.com/app/page").is_some());
        for refused in [
            "https://example.com/application",
            "https://example.com/app/../admin",
            "https://evil.example.com/",
            "https://user:pw@app.example.com/",
            "https://user@app.example.com/",
            "javascript:alert(1)",
            "/relative",
            "http://app.example.com/",
            "http://localhost:3001/",
        ] {
            assert_eq!(ok(refused), None, "{refused}");
        }
    }

    #[test]
    fn only_callbacks_are_exempt_from_the_origin_rule() {
        assert!(is_callback("/auth/social/apple/callback/"));
        assert!(is_callback("/auth/social/apple/callback"));
        for other in [
            "/auth/social/exchange/",
            "/auth/social/apple/token/",
            "/auth/social/apple/",
            "/auth/social//callback/",
            "/auth/social/a/b/callback/",
            "/auth/",
        ] {
            assert!(!is_callback(other), "{other}");
        }
    }
}
