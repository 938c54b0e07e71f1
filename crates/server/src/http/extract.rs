//! What handlers extract from a request, read at the edge so that the flows
//! take plain data: the body's fields and the form they are to be read as,
//! who is starting a session ([`Client`]), and the authenticated user
//! ([`CurrentUser`], as the authentication middleware left it).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use latchkey_auth::Claims;
use latchkey_persistence::User;

use crate::body::{Fields, parse_body};
use crate::error::ApiError;
use crate::flows::tokens::Client;
use crate::forms::{Body, Form};
use crate::net::client_ip::client_ip;
use crate::settings::HttpSettings;
use crate::state::AppState;

/// Where the credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Header,
    Cookie,
}

/// The authenticated user of this request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub claims: Claims,
    pub source: CredentialSource,
}

/// What authentication concluded, kept in the request's extensions.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    Authenticated(Rc<CurrentUser>),
    Failed {
        error: ApiError,
        /// No usable access cookie (missing or expired) and no header: the
        /// case where `GET /auth/` may refresh from the refresh cookie.
        may_refresh_from_cookie: bool,
    },
}

/// The body, read within `MAX_BODY_SIZE` and `CLIENT_BODY_TIMEOUT`, as
/// DRF parses it.
impl FromRequest for Fields {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (limit, deadline) = req
            .app_data::<web::Data<AppState>>()
            .map(|state| {
                (
                    state.settings.http.max_body_size,
                    state.settings.http.client_body_timeout,
                )
            })
            .unwrap_or((
                HttpSettings::DEFAULT_MAX_BODY_SIZE,
                HttpSettings::DEFAULT_CLIENT_BODY_TIMEOUT,
            ));
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge);
            }
            // actix bounds the wait for a request's head, not for its body:
            // a client that stalls mid-body is cut off here.
            let read = async {
                let mut body = BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::BadRequest(format!("Could not read the request body: {e}"))
                    })?;
                    if body.len() + chunk.len() > limit {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            let body = actix_web::rt::time::timeout(deadline, read)
                .await
                .map_err(|_| ApiError::RequestTimeout)??;
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"));
            parse_body(content_type, &body.freeze())
        })
    }
}

/// The body, to be read as the form `F` by the flow.
impl<F: Form> FromRequest for Body<F> {
    type Error = ApiError;
    type Future =
        futures_util::future::MapOk<<Fields as FromRequest>::Future, fn(Fields) -> Body<F>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        use futures_util::TryFutureExt;
        Fields::from_request(req, payload).map_ok(Body::new as fn(Fields) -> Body<F>)
    }
}

impl FromRequest for AuthOutcome {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<AuthOutcome>()
                .cloned()
                .ok_or_else(|| {
                    ApiError::Internal("route is not behind the authentication middleware".into())
                }),
        )
    }
}

/// "Must be logged in", as a handler argument.
impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(user)) => Ok(CurrentUser::clone(user)),
            Some(AuthOutcome::Failed { error, .. }) => Err(error.clone()),
            None => Err(ApiError::Internal(
                "route is not behind the authentication middleware".into(),
            )),
        })
    }
}

/// Who is starting a session: the `User-Agent` and the client address.
impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ip = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| client_ip(req, &state.settings.http.trusted_proxies))
            .map(|ip| ip.to_string());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .filter(|v| !v.is_empty());
        ready(Ok(Client { user_agent, ip }))
    }
}
