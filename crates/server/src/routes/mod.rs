//! The routing table. Handlers are short: extract, call one flow, map the
//! result. Every path is served with and without its trailing slash.

pub mod email;
mod fallback;
pub mod operations;
pub mod sessions;
pub mod tokens;
pub mod users;

use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web;

use crate::authn::authenticate;
use crate::throttle::limit_per_ip;
use fallback::allow;
pub use fallback::not_found;

/// `Cache-Control: no-store` on every response of a route that shows a user
/// (errors included), unless the handler set its own.
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::openapi::service())
        .service(
            web::resource("/demo/")
                .route(web::get().to(operations::demo))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/demo")
                .route(web::get().to(|| async { web::Redirect::to("/demo/").permanent() })),
        )
        .service(
            web::resource("/docs")
                .route(web::get().to(|| async { web::Redirect::to("/docs/").permanent() })),
        )
        .service(
            web::resource(["/", ""])
                .route(web::get().to(operations::api_root))
                .default_service(allow("GET")),
        )
        .service(
            web::resource(["/healthz", "/healthz/"])
                .route(web::get().to(operations::healthz))
                .default_service(allow("GET")),
        )
        .service(
            web::resource(["/metrics", "/metrics/"])
                .route(web::get().to(crate::observability::metrics))
                .default_service(allow("GET")),
        )
        .service(
            web::resource(["/readyz", "/readyz/"])
                .route(web::get().to(operations::readyz))
                .default_service(allow("GET")),
        )
        .service(
            web::resource(["/register/", "/register"])
                .route(web::post().to(email::register).wrap(from_fn(limit_per_ip)))
                .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/", "/auth"])
                .route(web::post().to(tokens::login).wrap(from_fn(limit_per_ip)))
                .route(
                    web::get()
                        .to(tokens::current_user)
                        .wrap(from_fn(authenticate))
                        .wrap(no_store()),
                )
                .route(web::delete().to(tokens::logout))
                .default_service(allow("GET, POST, DELETE")),
        )
        .service(
            web::resource(["/auth/refresh/", "/auth/refresh"])
                .route(web::post().to(tokens::refresh).wrap(from_fn(limit_per_ip)))
                .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/verify/", "/auth/verify"])
                .route(web::post().to(tokens::verify))
                .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/sessions/", "/auth/sessions"])
                .route(
                    web::get()
                        .to(sessions::list_sessions)
                        .wrap(from_fn(authenticate))
                        .wrap(no_store()),
                )
                .route(
                    web::delete()
                        .to(sessions::logout_everywhere)
                        .wrap(from_fn(authenticate)),
                )
                .default_service(allow("GET, DELETE")),
        )
        .service(
            web::resource(["/auth/sessions/{id}/", "/auth/sessions/{id}"])
                .route(
                    web::delete()
                        .to(sessions::end_session)
                        .wrap(from_fn(authenticate)),
                )
                .default_service(allow("DELETE")),
        )
        .service(
            web::resource(["/auth/password/", "/auth/password"])
                .route(
                    web::post()
                        .to(sessions::change_password)
                        .wrap(from_fn(authenticate))
                        .wrap(from_fn(limit_per_ip)),
                )
                .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/password/reset/", "/auth/password/reset"])
                .route(
                    web::post()
                        .to(email::password_reset)
                        .wrap(from_fn(limit_per_ip)),
                )
                .default_service(allow("POST")),
        )
        .service(
            web::resource([
                "/auth/password/reset/confirm/",
                "/auth/password/reset/confirm",
            ])
            .route(
                web::post()
                    .to(email::password_reset_confirm)
                    .wrap(from_fn(limit_per_ip)),
            )
            .default_service(allow("POST")),
        )
        .service(
            web::resource([
                "/auth/registration/verify-email/",
                "/auth/registration/verify-email",
            ])
            .route(web::post().to(email::verify_email))
            .default_service(allow("POST")),
        )
        .service(
            web::resource([
                "/auth/registration/resend-email/",
                "/auth/registration/resend-email",
            ])
            .route(
                web::post()
                    .to(email::resend_email)
                    .wrap(from_fn(limit_per_ip)),
            )
            .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/sliding/", "/auth/sliding"])
                .route(
                    web::post()
                        .to(sessions::obtain_sliding)
                        .wrap(from_fn(limit_per_ip)),
                )
                .default_service(allow("POST")),
        )
        .service(
            web::resource(["/auth/sliding/refresh/", "/auth/sliding/refresh"])
                .route(
                    web::post()
                        .to(sessions::refresh_sliding)
                        .wrap(from_fn(limit_per_ip)),
                )
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/.well-known/jwks.json")
                .route(web::get().to(sessions::jwks))
                .default_service(allow("GET")),
        )
        .service(
            web::scope("/list")
                .wrap(from_fn(authenticate))
                .wrap(no_store())
                .service(
                    web::resource(["/", ""])
                        .route(web::get().to(users::list))
                        .route(web::post().to(users::create))
                        .default_service(allow("GET, POST")),
                )
                .service(
                    web::resource(["/{id}/", "/{id}"])
                        .route(web::get().to(users::retrieve))
                        .route(web::put().to(users::update))
                        .route(web::patch().to(users::partial_update))
                        .route(web::delete().to(users::destroy))
                        .default_service(allow("GET, PUT, PATCH, DELETE")),
                )
                .default_service(web::to(not_found)),
        );
}
