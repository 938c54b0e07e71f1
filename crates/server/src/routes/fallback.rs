//! 404 and 405 as JSON, with DRF's texts.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, Route, web};
use serde_json::json;

use crate::error::ApiError;

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The default service of a resource: `OPTIONS` lists the methods, any other
/// method the resource lacks is 405 with an `Allow` header.
pub fn allow(methods: String) -> Route {
    web::to(move |req: HttpRequest| {
        let allowed = format!("{methods}, OPTIONS");
        async move {
            if req.method() == Method::OPTIONS {
                return HttpResponse::Ok()
                    .insert_header((header::ALLOW, allowed))
                    .json(json!({
                        "renders": ["application/json"],
                        "parses": ["application/json", "application/x-www-form-urlencoded"],
                    }));
            }
            let error = ApiError::MethodNotAllowed(req.method().to_string());
            let mut response = actix_web::ResponseError::error_response(&error);
            if let Ok(value) = header::HeaderValue::from_str(&allowed) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    })
}
