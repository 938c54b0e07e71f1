//! Who gets `/metrics` (see `settings::metrics`): the API's address serves
//! it only when neither production nor `METRICS_BIND` hides it there, and
//! with `METRICS_TOKEN` set every address asks for that bearer token.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::settings::MetricsSettings;
use crate::state::AppState;
use crate::telemetry::Readings;

/// `GET /metrics` on the API's address.
pub async fn on_api_address(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.metrics.on_api_address() {
        return Err(ApiError::NotFound);
    }
    serve(req, state).await
}

/// `GET /metrics` wherever it is served: the token first, if one is set.
pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_token(&state.settings.metrics, &req)?;
    Ok(metrics(state).await)
}

/// Prometheus metrics of this instance.
///
/// `GET /metrics`: requests, latencies, logins, throttling, the pool, the auth cache, email.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (pool_in_use, pool_idle) = state.db.pool_state();
    let (content_type, text) = state.metrics.render(Readings {
        pool_in_use,
        pool_idle,
        pool_max: state.db.max_size(),
        redis_up: state.throttle.redis_up().unwrap_or(false),
        cache_feed_up: state.auth_cache.is_trusted(),
    });
    HttpResponse::Ok().content_type(content_type).body(text)
}

fn check_token(settings: &MetricsSettings, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(expected) = &settings.token else {
        return Ok(());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::NotAuthenticated)?;
    // Digests of equal length compared: how long the comparison takes says
    // nothing about the token.
    if Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.expose()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            detail: "Invalid token.",
            code: "authentication_failed",
        })
    }
}
