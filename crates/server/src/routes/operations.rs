//! The API root and the health endpoints.

use crate::views::{ErrorView, RootView, StatusView};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::openapi::shared::example;
use crate::state::AppState;

/// The API root: links to the resources.
///
/// `GET /`, as DRF's DefaultRouter.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "Links to the API", body = RootView)))]
pub async fn api_root(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = crate::http::origin::base_url(&state, &req);
    HttpResponse::Ok().json(RootView {
        list: format!("{base}/list/"),
        register: format!("{base}/register/"),
        auth: format!("{base}/auth/"),
    })
}

/// Is the process serving?
///
/// `GET /healthz`: no database touch.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves", body = StatusView)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusView {
        status: "ok".into(),
        database: None,
    })
}

/// Is the database answering?
///
/// `GET /readyz`: the database answers and is migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = StatusView),
        (status = 503, description = "The database does not answer", body = ErrorView, example = json!(example(&ApiError::Unavailable(String::new()))))))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state
        .schema_ready
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(ApiError::Unavailable(
            "the database has not been migrated yet".into(),
        ));
    }
    let db = state.db.clone();
    web::block(move || db.ping()).await??;
    Ok(HttpResponse::Ok().json(StatusView {
        status: "ok".into(),
        database: Some("ok".into()),
    }))
}

/// `GET /demo/`: a single-page app in plain HTML and JavaScript, served
/// from the binary.
pub async fn demo() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../../assets/demo.html"))
}
