//! The middleware the route table and start-up wrap around handlers: the
//! `Origin` rule on every route, the per-IP bucket of the auth endpoints,
//! and the metrics and log line of every request. (Authentication, the
//! fourth, is `crate::http::authn::authenticate`.)

use std::collections::HashMap;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use crate::error::ApiError;
use crate::http::extract::AuthOutcome;
use crate::http::origin::check_origin;
use crate::net::client_ip::client_ip;
use crate::state::AppState;

/// On every route: the `Origin` rule before anything else runs.
pub async fn refuse_foreign_origins(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        // A provider's page posts the callback (Apple's form_post): its
        // state and flow cookie guard it instead.
        Some(_) if crate::routes::social::is_callback(req.path()) => Ok(()),
        Some(state) => check_origin(state, req.request()),
        None => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(error) => {
            let response = error.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// On the auth endpoints: one shared per-IP bucket.
pub async fn limit_per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => match client_ip(req.request(), &state.settings.http.trusted_proxies) {
            Some(ip) => state.throttle.hit_ip(ip).await,
            None => Ok(()),
        },
        None => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(wait) => {
            let response = ApiError::from(wait).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// The route table's pattern for a path, as the metrics label: a hash
/// lookup for the fixed paths and a prefix test for the few with an id —
/// not actix's `match_pattern`, which runs every route's regex again on each
/// request (a tenth of a cached request's CPU). Built once at start-up from
/// the route table (`routes::patterns`) and handed to [`record`] as app data.
pub struct RouteLabels {
    fixed: HashMap<String, &'static str>,
    /// (pattern, before the id, after the id)
    with_id: Vec<(&'static str, &'static str, &'static str)>,
}

impl RouteLabels {
    /// The labels of these patterns, each also under its other slash form.
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        let mut fixed = HashMap::new();
        let mut with_id = Vec::new();
        for pattern in patterns {
            let pattern: &'static str = Box::leak(pattern.into_boxed_str());
            match pattern.split_once("{id}") {
                Some((before, after)) => with_id.push((pattern, before, after)),
                None => {
                    fixed.insert(pattern.to_owned(), pattern);
                    fixed.insert(other_slash_form(pattern), pattern);
                }
            }
        }
        RouteLabels { fixed, with_id }
    }

    /// The label of a request's path; unmatched paths share one, so that
    /// scanners cannot grow the series.
    pub fn label(&self, path: &str) -> &'static str {
        if let Some(label) = self.fixed.get(path) {
            return label;
        }
        for (pattern, before, after) in &self.with_id {
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
}

/// A path's other form: without its trailing slash, or with one.
pub fn other_slash_form(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(bare) => bare.to_owned(),
        None => format!("{path}/"),
    }
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
    let route = req
        .app_data::<web::Data<RouteLabels>>()
        .map_or("unmatched", |labels| labels.label(req.path()));
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
