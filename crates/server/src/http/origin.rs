//! The server's own origin, and the v2 `Origin` rule: an unsafe request
//! whose `Origin` names another site is refused, however it authenticates,
//! so a cross-site form can neither act for a user nor log a browser into
//! an account (login CSRF).
//!
//! The own origin is `PUBLIC_URL` when set; else the request's scheme and
//! `Host`, where `Forwarded` and `X-Forwarded-Host`/`-Proto` count only when
//! the peer is one of `TRUSTED_PROXIES` (anyone else could name any host).

use actix_web::HttpRequest;
use actix_web::http::{Method, header};

use crate::error::ApiError;
use crate::net::client_ip::is_trusted_proxy;
use crate::state::AppState;

/// `scheme://host[:port]` of this server as the client sees it.
pub fn own_origin(state: &AppState, req: &HttpRequest) -> String {
    match &state.settings.http.public_url {
        Some(url) => origin_of(url).to_owned(),
        None => request_origin(state, req),
    }
}

/// Where absolute links start: `PUBLIC_URL` (with any path prefix it has),
/// else the request's own origin.
pub fn base_url(state: &AppState, req: &HttpRequest) -> String {
    match &state.settings.http.public_url {
        Some(url) => url.clone(),
        None => request_origin(state, req),
    }
}

fn request_origin(state: &AppState, req: &HttpRequest) -> String {
    if is_trusted_proxy(req, &state.settings.http.trusted_proxies) {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The `scheme://authority` part of a URL.
fn origin_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.find('/').map_or(rest.len(), |at| at);
            &url[..scheme.len() + 3 + authority]
        }
        None => url,
    }
}

/// POST, PUT, PATCH, DELETE (and any other method not known to be safe).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// `Ok` unless the request is unsafe and names a foreign `Origin`.
pub fn check_origin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if !is_unsafe(req.method()) {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let trusted = origin == own_origin(state, req)
        || state
            .settings
            .http
            .cors_allowed_origins
            .iter()
            .any(|allowed| *allowed == origin);
    if trusted {
        Ok(())
    } else {
        Err(ApiError::Csrf(format!(
            "Origin checking failed - {origin} does not match any trusted origins."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn the_origin_of_a_url_drops_its_path() {
        assert_eq!(
            origin_of("https://auth.example.com/prefix"),
            "https://auth.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
    }
}
