//! `/list/`: the user viewset, behind the authentication middleware.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::authn::CurrentUser;
use crate::body::Fields;
use crate::error::ApiError;
use crate::flows::accounts::web_data::State;
use crate::flows::users::{self, Page, PageRequest};
use crate::views::user_json;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    page: Option<String>,
    page_size: Option<String>,
    search: Option<String>,
    ordering: Option<String>,
}

/// The absolute URL of another page, keeping the other query parameters
/// (DRF drops `page` for the first page).
fn page_url(req: &HttpRequest, page: i64) -> String {
    let info = req.connection_info();
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    pairs.retain(|(key, _)| key != "page");
    if page > 1 {
        pairs.push(("page".into(), page.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let base = format!("{}://{}{}", info.scheme(), info.host(), req.path());
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| ApiError::NotFound)
}

pub async fn list(
    state: State,
    req: HttpRequest,
    _user: CurrentUser,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let page: Page = users::list(
        &state,
        PageRequest {
            page: params.page,
            page_size: params.page_size,
            search: params.search,
            ordering: params.ordering,
        },
    )
    .await?;
    let next = page.has_next().then(|| page_url(&req, page.number + 1));
    let previous = (page.number > 1).then(|| page_url(&req, page.number - 1));
    let results: Vec<_> = page.users.users.iter().map(user_json).collect();
    Ok(HttpResponse::Ok().json(json!({
        "count": page.users.count,
        "next": next,
        "previous": previous,
        "results": results,
    })))
}

pub async fn create(
    state: State,
    user: CurrentUser,
    fields: Fields,
) -> Result<HttpResponse, ApiError> {
    let created = users::create(&state, &user, fields).await?;
    Ok(HttpResponse::Created().json(user_json(&created)))
}

pub async fn retrieve(
    state: State,
    _user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = users::retrieve(&state, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(user_json(&found)))
}

pub async fn update(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
    fields: Fields,
) -> Result<HttpResponse, ApiError> {
    let updated = users::update(&state, &user, parse_id(&id)?, fields, false).await?;
    Ok(HttpResponse::Ok().json(user_json(&updated)))
}

pub async fn partial_update(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
    fields: Fields,
) -> Result<HttpResponse, ApiError> {
    let updated = users::update(&state, &user, parse_id(&id)?, fields, true).await?;
    Ok(HttpResponse::Ok().json(user_json(&updated)))
}

pub async fn destroy(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    users::destroy(&state, &user, parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
