//! The API root and the health endpoints.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /`: DRF's DefaultRouter root.
pub async fn api_root(req: HttpRequest) -> HttpResponse {
    let info = req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    HttpResponse::Ok().json(json!({
        "list": format!("{base}/list/"),
        "register": format!("{base}/register/"),
        "auth": format!("{base}/auth/"),
    }))
}

/// `GET /healthz`: the process serves; no database touch.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and is migrated.
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
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok" })))
}
