//! The cookies tokens travel in: `COOKIE_SECURE`, `COOKIE_SAMESITE`,
//! `COOKIE_DOMAIN`, `ACCESS_COOKIE_NAME`, `REFRESH_COOKIE_NAME`.

use latchkey_auth::CookiePolicy;
use latchkey_auth::cookies::CSRF_COOKIE_NAME;

use super::env::{Reader, SettingsError, parse_same_site};

/// `COOKIE_SECURE` defaults on in production.
pub(super) fn read(env: &Reader<'_>, production: bool) -> Result<CookiePolicy, SettingsError> {
    let cookies = CookiePolicy {
        secure: env.boolean("COOKIE_SECURE", production)?,
        same_site: env.parsed(
            "COOKIE_SAMESITE",
            cookie::SameSite::Lax,
            "Lax, Strict or None",
            parse_same_site,
        )?,
        domain: env.raw("COOKIE_DOMAIN"),
        access_name: env.string("ACCESS_COOKIE_NAME", "access"),
        refresh_name: env.string("REFRESH_COOKIE_NAME", "refresh"),
    };
    if cookies.access_name == cookies.refresh_name
        || [&cookies.access_name, &cookies.refresh_name].contains(&&CSRF_COOKIE_NAME.to_owned())
    {
        return Err(SettingsError("ACCESS_COOKIE_NAME, REFRESH_COOKIE_NAME and the csrftoken cookie must have different names".into()));
    }
    Ok(cookies)
}
