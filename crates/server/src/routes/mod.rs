//! The routing table: each resource declared once, in [`resources`] and
//! [`user_resources`], with its methods; protected routes are wrapped in
//! `protected(..)`, the auth endpoints' per-IP bucket in `throttled(..)`.
//! Handlers are short: extract, call one flow, map the result. Every path is
//! served with and without its trailing slash.

pub mod accounts;
pub mod email;
mod fallback;
pub mod login;
pub mod metrics_access;
pub mod mfa;
pub mod operations;
pub mod responses;
pub mod sessions;
pub mod social;
pub mod tokens;
pub mod users;

use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{Route, guard, web};

use crate::http::authn::authenticate;
use crate::http::middleware::{limit_per_ip, other_slash_form};
use fallback::allow;
pub use fallback::not_found;

/// `Cache-Control: no-store` on every response of a route that shows a user
/// (errors included), unless the handler set its own.
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store"))
}

/// GET, and HEAD: the same answer without its body (Django serves HEAD
/// wherever it serves GET).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A route behind the authentication middleware: its handler may ask for
/// `CurrentUser`.
fn protected(route: Route) -> Route {
    route.wrap(from_fn(authenticate))
}

/// A route in the per-IP bucket of the auth endpoints.
fn throttled(route: Route) -> Route {
    route.wrap(from_fn(limit_per_ip))
}

/// One resource, declared once: its path (served with and without the
/// trailing slash) and its methods, from which the `Allow` list of its 405s
/// and `OPTIONS` is made.
pub struct Resource {
    pub path: &'static str,
    routes: Vec<(Method, Route)>,
}

fn api(path: &'static str, routes: Vec<(Method, Route)>) -> Resource {
    Resource { path, routes }
}

impl Resource {
    /// The methods it serves, for the `Allow` header and the route table test.
    pub fn methods(&self) -> Vec<&Method> {
        self.routes.iter().map(|(method, _)| method).collect()
    }

    /// The resource at one of its two paths.
    fn into_service_at(self, path: &str) -> actix_web::Resource {
        let allowed = self
            .methods()
            .iter()
            .flat_map(|m| match **m {
                Method::GET => vec!["GET", "HEAD"],
                _ => vec![m.as_str()],
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path);
        for (_, route) in self.routes {
            resource = resource.route(route);
        }
        resource.default_service(allow(allowed))
    }
}

/// Each resource at its path and, as a second actix resource, at the
/// other slash form: a single static pattern is matched by comparing
/// strings, where one resource with both patterns is a regex set that
/// every request passing it runs (an eighth of a cached request's CPU).
fn both_slash_forms(table: fn() -> Vec<Resource>) -> Vec<actix_web::Resource> {
    let declared = table().into_iter().map(|r| {
        let path = r.path;
        r.into_service_at(path)
    });
    let others = table().into_iter().map(|r| {
        let path = other_slash_form(r.path);
        r.into_service_at(&path)
    });
    declared.chain(others).collect()
}

use Method as M;

/// Every resource of the API (each described in `/openapi.json`; the test
/// below holds the two together). The user viewset's are in
/// [`user_resources`].
pub fn resources() -> Vec<Resource> {
    vec![
        api("/", vec![(M::GET, get().to(operations::api_root))]),
        api("/healthz", vec![(M::GET, get().to(operations::healthz))]),
        api("/readyz", vec![(M::GET, get().to(operations::readyz))]),
        api(
            "/metrics",
            vec![(M::GET, get().to(metrics_access::on_api_address))],
        ),
        api(
            "/register/",
            vec![(M::POST, throttled(web::post().to(accounts::register)))],
        ),
        api(
            "/auth/",
            vec![
                (
                    M::GET,
                    protected(get().to(tokens::current_user)).wrap(no_store()),
                ),
                (M::POST, throttled(web::post().to(login::login))),
                (M::DELETE, web::delete().to(sessions::logout)),
            ],
        ),
        api(
            "/auth/refresh/",
            vec![(M::POST, throttled(web::post().to(tokens::refresh)))],
        ),
        api(
            "/auth/verify/",
            vec![(M::POST, web::post().to(tokens::verify))],
        ),
        api(
            "/auth/sessions/",
            vec![
                (
                    M::GET,
                    protected(get().to(sessions::list_sessions)).wrap(no_store()),
                ),
                (
                    M::DELETE,
                    protected(web::delete().to(sessions::logout_everywhere)),
                ),
            ],
        ),
        api(
            "/auth/sessions/{id}/",
            vec![(
                M::DELETE,
                protected(web::delete().to(sessions::end_session)),
            )],
        ),
        api(
            "/auth/password/",
            vec![(
                M::POST,
                throttled(protected(web::post().to(sessions::change_password))),
            )],
        ),
        api(
            "/auth/password/reset/",
            vec![(M::POST, throttled(web::post().to(email::password_reset)))],
        ),
        api(
            "/auth/password/reset/confirm/",
            vec![(
                M::POST,
                throttled(web::post().to(email::password_reset_confirm)),
            )],
        ),
        api(
            "/auth/registration/verify-email/",
            vec![(M::POST, web::post().to(email::verify_email))],
        ),
        api(
            "/auth/registration/resend-email/",
            vec![(M::POST, throttled(web::post().to(email::resend_email)))],
        ),
        api(
            "/auth/sliding/",
            vec![(M::POST, throttled(web::post().to(login::obtain_sliding)))],
        ),
        api(
            "/auth/sliding/refresh/",
            vec![(
                M::POST,
                throttled(web::post().to(sessions::refresh_sliding)),
            )],
        ),
        api(
            "/auth/mfa/",
            vec![(M::GET, protected(get().to(mfa::status)).wrap(no_store()))],
        ),
        api(
            "/auth/mfa/totp/",
            vec![
                (M::POST, protected(web::post().to(mfa::start_totp))),
                (M::DELETE, protected(web::delete().to(mfa::disable_totp))),
            ],
        ),
        api(
            "/auth/mfa/totp/confirm/",
            vec![(M::POST, protected(web::post().to(mfa::confirm_totp)))],
        ),
        api(
            "/auth/mfa/recovery-codes/",
            vec![(
                M::POST,
                protected(web::post().to(mfa::replace_recovery_codes)),
            )],
        ),
        api(
            "/auth/mfa/verify/",
            vec![(M::POST, throttled(web::post().to(mfa::verify)))],
        ),
        api(
            "/auth/social/",
            vec![(M::GET, protected(get().to(social::linked)).wrap(no_store()))],
        ),
        api(
            "/auth/social/providers/",
            vec![(M::GET, get().to(social::providers))],
        ),
        api(
            "/auth/social/exchange/",
            vec![(M::POST, throttled(web::post().to(social::exchange)))],
        ),
        api(
            "/auth/social/{name}/",
            vec![(M::DELETE, protected(web::delete().to(social::unlink)))],
        ),
        api(
            "/auth/social/{name}/authorize/",
            vec![(
                M::GET,
                throttled(protected(get().to(social::authorize))).wrap(no_store()),
            )],
        ),
        api(
            "/auth/social/{name}/callback/",
            vec![
                (M::GET, get().to(social::callback)),
                (M::POST, web::post().to(social::callback)),
            ],
        ),
        api(
            "/auth/social/{name}/token/",
            vec![(M::POST, throttled(web::post().to(social::token)))],
        ),
        api(
            "/.well-known/jwks.json",
            vec![(M::GET, get().to(tokens::jwks))],
        ),
    ]
}

/// The user viewset, inside the protected `/list` scope.
pub fn user_resources() -> Vec<Resource> {
    vec![
        api(
            "/",
            vec![
                (M::GET, get().to(users::list)),
                (M::POST, web::post().to(users::create)),
            ],
        ),
        api(
            "/{id}/",
            vec![
                (M::GET, get().to(users::retrieve)),
                (M::PUT, web::put().to(users::update)),
                (M::PATCH, web::patch().to(users::partial_update)),
                (M::DELETE, web::delete().to(users::destroy)),
            ],
        ),
        api(
            "/{id}/mfa/",
            vec![(M::DELETE, web::delete().to(mfa::reset_by_staff))],
        ),
    ]
}

/// The pages beside the API, none of them in `/openapi.json`: the demo
/// app, Swagger UI, and the description Swagger UI reads.
pub const PAGES: [&str; 3] = [DEMO, crate::openapi::DOCS, crate::openapi::DESCRIPTION];
const DEMO: &str = "/demo/";

/// Every path pattern served, as the metrics label it is counted under.
pub fn patterns() -> impl Iterator<Item = String> {
    let api = resources().into_iter().map(|r| r.path.to_owned());
    let users = user_resources()
        .into_iter()
        .map(|r| format!("/list{}", r.path));
    api.chain(users).chain(PAGES.map(str::to_owned))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The pages: Swagger UI at /docs/, the demo app at /demo/.
    cfg.service(crate::openapi::service())
        .service(
            web::resource(DEMO)
                .route(get().to(operations::demo))
                .default_service(allow("GET, HEAD".into())),
        )
        .service(
            web::resource("/demo")
                .route(get().to(|| async { web::Redirect::to("/demo/").permanent() })),
        )
        .service(
            web::resource("/docs")
                .route(get().to(|| async { web::Redirect::to("/docs/").permanent() })),
        );
    for resource in both_slash_forms(resources) {
        cfg.service(resource);
    }
    let mut list = web::scope("/list")
        .wrap(from_fn(authenticate))
        .wrap(no_store());
    for resource in both_slash_forms(user_resources) {
        list = list.service(resource);
    }
    cfg.service(list.default_service(web::to(not_found)));
}

/// The app of `METRICS_BIND`'s own listener: `/metrics` and nothing else.
pub fn configure_metrics_listener(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(get().to(metrics_access::serve)))
        .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::middleware::RouteLabels;
    use utoipa::OpenApi;

    #[test]
    fn a_path_is_labelled_with_its_route_pattern() {
        let labels = RouteLabels::new(patterns());
        let route_label = |path| labels.label(path);
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
        assert_eq!(route_label("/demo"), "/demo/");
        assert_eq!(route_label("/openapi.json"), "/openapi.json");
    }

    /// A route cannot be served without being described, nor described
    /// without being served.
    #[test]
    fn the_route_table_and_the_openapi_description_list_the_same_operations() {
        let mut served: Vec<(String, String)> = Vec::new();
        for resource in resources() {
            for method in resource.methods() {
                served.push((resource.path.to_owned(), method.as_str().to_lowercase()));
            }
        }
        for resource in user_resources() {
            for method in resource.methods() {
                let path = format!("/list{}", resource.path);
                served.push((path, method.as_str().to_lowercase()));
            }
        }
        let spec = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap();
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    described.push((path.clone(), method.clone()));
                }
            }
        }
        served.sort();
        described.sort();
        assert_eq!(served, described);
    }
}
