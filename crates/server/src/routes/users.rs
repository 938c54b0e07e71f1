//! `/list/`: the user viewset, behind the authentication middleware.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::flows::users::{self, Page, PageRequest};
use crate::forms::{Body, UpdateKind, UserCreateForm, UserUpdateForm};
use crate::http::extract::CurrentUser;
use crate::openapi::shared::{
    BodyRefused, Forbidden, InvalidFields, Unauthenticated, Unavailable, example,
};
use crate::state::State;
use crate::views::{BadRequestView, ErrorView, UserList, UserPageView, UserView};

/// The absolute URL of another page, keeping the other query parameters
/// (DRF drops `page` for the first page).
fn page_url(state: &State, req: &HttpRequest, page: i64) -> String {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    pairs.retain(|(key, _)| key != "page");
    if page > 1 {
        pairs.push(("page".into(), page.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let base = format!(
        "{}{}",
        crate::http::origin::base_url(state, req),
        req.path()
    );
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| ApiError::NotFound)
}

/// List users.
///
/// `GET /list/`: a page, with search and ordering.
#[utoipa::path(get, path = "/list/", tag = "users",
    params(
        ("page" = Option<String>, Query, description = "Page number, from 1 (or `last`); anything else is 404"),
        ("page_size" = Option<String>, Query, description = "Users per page: default 100, at most 1000; a value that is not a positive number falls back to the default, as DRF does"),
        ("search" = Option<String>, Query, description = "Email contains this text"),
        ("ordering" = Option<String>, Query, description = "id, email or created_at; a leading - reverses")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "One page of users", body = UserPageView),
        (status = 400, description = "A search with a NUL character", body = BadRequestView),
        (status = 404, description = "Invalid page", body = ErrorView, example = json!(example(&ApiError::NotFoundWith("Invalid page.")))),
        Unauthenticated,
        Unavailable))]
pub async fn list(
    state: State,
    req: HttpRequest,
    _user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    // As Django's QueryDict: a parameter given twice takes its last value;
    // a query string that is not `key=value` pairs is simply ignored.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let last = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let page: Page = users::list(
        &state,
        PageRequest {
            page: last("page"),
            page_size: last("page_size"),
            search: last("search"),
            ordering: last("ordering"),
        },
    )
    .await?;
    let next = page
        .has_next()
        .then(|| page_url(&state, &req, page.number + 1));
    let previous = (page.number > 1).then(|| page_url(&state, &req, page.number - 1));
    Ok(HttpResponse::Ok().json(UserPageView {
        count: page.users.count,
        next,
        previous,
        results: UserList(&page.users.users),
    }))
}

/// Create a user (staff).
///
/// `POST /list/`: `is_superuser` only by a superuser.
#[utoipa::path(post, path = "/list/", tag = "users",
    request_body(content((UserCreateForm = "application/json"), (UserCreateForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 201, description = "Created (staff only; is_superuser only by a superuser)", body = UserView),
        InvalidFields,
        Forbidden,
        Unauthenticated,
        Unavailable,
        BodyRefused))]
pub async fn create(
    state: State,
    user: CurrentUser,
    body: Body<UserCreateForm>,
) -> Result<HttpResponse, ApiError> {
    let created = users::create(&state, &user.user, body).await?;
    Ok(HttpResponse::Created().json(UserView::from(&created)))
}

/// Read a user.
///
/// `GET /list/{id}/`.
#[utoipa::path(get, path = "/list/{id}/", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "Not found", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unauthenticated,
        Unavailable))]
pub async fn retrieve(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    // The authentication layer loaded the caller for this very request.
    if id == user.user.id {
        return Ok(HttpResponse::Ok().json(UserView::from(&user.user)));
    }
    let found = users::retrieve(&state, id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&found)))
}

/// Replace a user's email, password or flags.
///
/// `PUT /list/{id}/`: `email` required; your own email or password needs `current_password`.
#[utoipa::path(put, path = "/list/{id}/", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    request_body(content((UserUpdateForm = "application/json"), (UserUpdateForm = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Updated (self or staff; flags by the contract's rules)", body = UserView),
        InvalidFields,
        Forbidden,
        (status = 404, description = "Not found", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unauthenticated,
        Unavailable,
        BodyRefused))]
pub async fn update(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
    body: Body<UserUpdateForm>,
) -> Result<HttpResponse, ApiError> {
    let updated = users::update(
        &state,
        &user.user,
        &user.claims,
        parse_id(&id)?,
        body,
        UpdateKind::Put,
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&updated)))
}

/// Change a user's email, password or flags.
///
/// `PATCH /list/{id}/`: your own email or password needs `current_password`.
#[utoipa::path(patch, path = "/list/{id}/", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    request_body(content((Option<UserUpdateForm> = "application/json"), (Option<UserUpdateForm> = "application/x-www-form-urlencoded"))),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Updated (self or staff; flags by the contract's rules)", body = UserView),
        InvalidFields,
        Forbidden,
        (status = 404, description = "Not found", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unauthenticated,
        Unavailable,
        BodyRefused))]
pub async fn partial_update(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
    body: Body<UserUpdateForm>,
) -> Result<HttpResponse, ApiError> {
    let updated = users::update(
        &state,
        &user.user,
        &user.claims,
        parse_id(&id)?,
        body,
        UpdateKind::Patch,
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&updated)))
}

/// Delete a user (staff).
///
/// `DELETE /list/{id}/`: every session of theirs ends.
#[utoipa::path(delete, path = "/list/{id}/", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
    responses(
        (status = 204, description = "Deleted (staff; a superuser only by a superuser)"),
        Forbidden,
        (status = 404, description = "Not found", body = ErrorView, example = json!(example(&ApiError::NotFound))),
        Unauthenticated,
        Unavailable))]
pub async fn destroy(
    state: State,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    users::destroy(&state, &user.user, parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
