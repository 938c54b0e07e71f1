//! The OpenAPI 3.1 description, generated from the handlers' annotations
//! and the view types, served at `/openapi.json`, with Swagger UI at `/docs`
//! (its assets are compiled into the binary: no CDN).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes;

pub mod shared;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "latchkey",
        description = "JWT authentication server: register, log in, refresh, log out, and manage users. \
            Tokens travel in the `Authorization: Bearer` header or in the `access`/`refresh` cookies; \
            cookie-authenticated unsafe requests need the `X-CSRFToken` header equal to the `csrftoken` cookie."
    ),
    paths(
        routes::operations::api_root,
        routes::operations::healthz,
        routes::operations::readyz,
        routes::metrics_access::metrics,
        routes::accounts::register,
        routes::login::login,
        routes::tokens::current_user,
        routes::sessions::logout,
        routes::tokens::refresh,
        routes::tokens::verify,
        routes::sessions::logout_everywhere,
        routes::sessions::list_sessions,
        routes::sessions::end_session,
        routes::sessions::change_password,
        routes::login::obtain_sliding,
        routes::sessions::refresh_sliding,
        routes::tokens::jwks,
        routes::email::password_reset,
        routes::email::password_reset_confirm,
        routes::email::verify_email,
        routes::email::resend_email,
        routes::users::list,
        routes::users::create,
        routes::users::retrieve,
        routes::users::update,
        routes::users::partial_update,
        routes::users::destroy,
        routes::mfa::status,
        routes::mfa::start_totp,
        routes::mfa::confirm_totp,
        routes::mfa::replace_recovery_codes,
        routes::mfa::disable_totp,
        routes::mfa::verify,
        routes::mfa::reset_by_staff,
        routes::social::providers,
        routes::social::authorize,
        routes::social::callback,
        routes::social::exchange,
        routes::social::token,
        routes::social::linked,
        routes::social::unlink,
    ),
    // The error bodies of the shared response sets (`shared`), which
    // reference these schemas without registering them.
    components(schemas(crate::views::ErrorView, crate::views::BadRequestView)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "tokens", description = "Register, log in, the current user, log out, refresh, verify"),
        (name = "sessions", description = "Sessions and revocation, sliding tokens, keys"),
        (name = "users", description = "The user viewset"),
        (name = "mfa", description = "The second factor: TOTP, recovery codes, the login's second step"),
        (name = "social", description = "Sign in with a provider (OpenID Connect, OAuth 2): the browser flow, native apps' tokens, linked providers"),
        (name = "email", description = "Password reset and email verification (dj-rest-auth's shapes)"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Both ways to authenticate: the Bearer header, or the access cookie with
/// the CSRF header on unsafe methods.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access"))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRFToken"))),
        );
    }
}

/// Where Swagger UI is served.
pub const DOCS: &str = "/docs/";
/// Where the description is served.
pub const DESCRIPTION: &str = "/openapi.json";

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn service() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url(DESCRIPTION, ApiDoc::openapi())
}
