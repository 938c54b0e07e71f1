//! Metrics (Prometheus text at `/metrics`) and one log line per request.
//!
//! The log line holds the method, the path without its query string, the
//! status, the latency and the user id when known: never a token, a
//! password or a hash.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::authn::AuthOutcome;
use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub logins: IntCounter,
    pub login_failures: IntCounter,
    pub throttled: IntCounter,
    pub emails_sent: IntCounter,
    pub emails_failed: IntCounter,
    pub email_outbox_queued: IntGauge,
    pool_in_use: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    redis_up: IntGauge,
    cache_feed_up: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("latchkey".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let logins = IntCounter::new("logins_total", "Successful logins")?;
        let login_failures = IntCounter::new("login_failures_total", "Failed logins")?;
        let throttled =
            IntCounter::new("throttled_requests_total", "Requests refused by throttling")?;
        let pool_in_use =
            IntGauge::new("db_pool_connections_in_use", "Database connections in use")?;
        let pool_idle = IntGauge::new("db_pool_connections_idle", "Idle database connections")?;
        let pool_max = IntGauge::new("db_pool_connections_max", "Database pool size")?;
        let redis_up = IntGauge::new(
            "throttle_redis_up",
            "1 while the shared throttle counters in Redis answer, 0 while this instance counts in memory",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(login_failures.clone()))?;
        registry.register(Box::new(throttled.clone()))?;
        let emails_sent =
            IntCounter::new("emails_sent_total", "Emails delivered by this instance")?;
        let emails_failed = IntCounter::new(
            "emails_failed_total",
            "Emails this instance gave up on (a permanent refusal or EMAIL_MAX_ATTEMPTS tries)",
        )?;
        let email_outbox_queued = IntGauge::new(
            "email_outbox_queued",
            "Emails in the outbox still to deliver (all instances), as the sender last counted",
        )?;
        registry.register(Box::new(emails_sent.clone()))?;
        registry.register(Box::new(emails_failed.clone()))?;
        registry.register(Box::new(email_outbox_queued.clone()))?;
        registry.register(Box::new(pool_in_use.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(redis_up.clone()))?;
        let cache_feed_up = IntGauge::new(
            "auth_cache_feed_up",
            "1 while the database's change feed has proved itself within the last 2 s (its own heartbeat came back; the auth cache is in use), 0 while every token check reads the database",
        )?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            logins,
            login_failures,
            throttled,
            emails_sent,
            emails_failed,
            email_outbox_queued,
            pool_in_use,
            pool_idle,
            pool_max,
            redis_up,
            cache_feed_up,
        })
    }

    /// The auth cache's counters, and a gauge for its change feed.
    pub fn register_cache(&self, cache: &crate::cache::AuthCache) -> Result<(), prometheus::Error> {
        cache.register(&self.registry)?;
        self.registry.register(Box::new(self.cache_feed_up.clone()))
    }

    /// Counters kept by other parts of the server.
    pub fn register_counter(&self, counter: &IntCounter) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(counter.clone()))
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
        if status == 429 {
            self.throttled.inc();
        }
    }
}

/// The route table's pattern for a path, as the metrics label: a hash
/// lookup for the fixed paths and a prefix test for the few with an id —
/// not actix's `match_pattern`, which runs every route's regex again on each
/// request (a tenth of a cached request's CPU).
fn route_label(path: &str) -> &'static str {
    struct Labels {
        fixed: std::collections::HashMap<String, &'static str>,
        /// (pattern, before the id, after the id)
        with_id: Vec<(&'static str, &'static str, &'static str)>,
    }
    static LABELS: std::sync::LazyLock<Labels> = std::sync::LazyLock::new(|| {
        let mut fixed = std::collections::HashMap::new();
        let mut with_id = Vec::new();
        let patterns = crate::routes::resources()
            .into_iter()
            .map(|r| r.path.to_owned())
            .chain(
                crate::routes::user_resources()
                    .into_iter()
                    .map(|r| format!("/list{}", r.path)),
            )
            .chain([
                "/demo/".to_owned(),
                "/docs/".to_owned(),
                "/openapi.json".to_owned(),
            ]);
        for pattern in patterns {
            let pattern: &'static str = Box::leak(pattern.into_boxed_str());
            match pattern.split_once("{id}") {
                Some((before, after)) => with_id.push((pattern, before, after)),
                None => {
                    fixed.insert(pattern.to_owned(), pattern);
                    fixed.insert(crate::routes::other_slash_form(pattern), pattern);
                }
            }
        }
        Labels { fixed, with_id }
    });
    let labels = &*LABELS;
    if let Some(label) = labels.fixed.get(path) {
        return label;
    }
    for (pattern, before, after) in &labels.with_id {
        if let Some(rest) = path.strip_prefix(before) {
            let (id, tail) = rest
                .split_once('/')
                .map_or((rest, ""), |(id, _)| (id, &rest[id.len()..]));
            if !id.is_empty() && (tail == *after || after.strip_suffix('/') == Some(tail)) {
                return pattern;
            }
        }
    }
    if path.starts_with("/docs/") {
        return "/docs/";
    }
    "unmatched"
}

/// The method as a metrics label: only the standard methods have series of
/// their own, so arbitrary method tokens cannot grow `/metrics`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Times and counts every request, and logs it.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let path = req.path().to_owned();
    // Unmatched paths share one label, so scanners cannot grow the series.
    let route = route_label(req.path());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let user = match response.request().extensions().get::<AuthOutcome>() {
        Some(AuthOutcome::Authenticated(current)) => current.user.id.to_string(),
        _ => "-".into(),
    };
    if let Some(state) = state {
        state
            .metrics
            .observe(route, method, status, elapsed.as_secs_f64());
    }
    log::info!(
        target: "latchkey::request",
        "{method} {path} {status} {:.3}ms user={user}",
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(response)
}

/// Prometheus metrics of this instance.
///
/// `GET /metrics`: requests, latencies, logins, throttling, the pool, the auth cache, email.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (in_use, idle) = state.db.pool_state();
    state.metrics.pool_in_use.set(i64::from(in_use));
    state.metrics.pool_idle.set(i64::from(idle));
    state.metrics.pool_max.set(i64::from(state.db.max_size()));
    // Without Redis the gauge reads 0 too: no shared counters answer.
    let redis_up = state.throttle.redis_up().unwrap_or(false);
    state.metrics.redis_up.set(i64::from(redis_up));
    state
        .metrics
        .cache_feed_up
        .set(i64::from(state.auth_cache.is_trusted()));
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&state.metrics.registry.gather(), &mut buffer) {
        log::error!("metrics encoding failed: {error}");
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buffer)
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn a_path_is_labelled_with_its_route_pattern() {
        assert_eq!(route_label("/auth/"), "/auth/");
        assert_eq!(route_label("/auth"), "/auth/");
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("/list/"), "/list/");
        assert_eq!(route_label("/list/42/"), "/list/{id}/");
        assert_eq!(route_label("/list/42"), "/list/{id}/");
        assert_eq!(route_label("/auth/sessions/abc/"), "/auth/sessions/{id}/");
        assert_eq!(route_label("/list/42/x"), "unmatched");
        assert_eq!(route_label("/list//"), "unmatched");
        assert_eq!(route_label("/wp-admin.php"), "unmatched");
        assert_eq!(route_label("/docs/swagger-ui.css"), "/docs/");
    }
}
