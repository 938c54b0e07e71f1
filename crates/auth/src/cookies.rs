//! The token and CSRF cookies with the contract's attributes.

use cookie::time::Duration;
use cookie::{Cookie, SameSite};

/// Django's `CSRF_COOKIE_AGE`: one year.
const CSRF_COOKIE_AGE: i64 = 31_449_600;
pub const CSRF_COOKIE_NAME: &str = "csrftoken";

#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
    pub access_name: String,
    pub refresh_name: String,
}

impl Default for CookiePolicy {
    fn default() -> Self {
        CookiePolicy {
            secure: false,
            same_site: SameSite::Lax,
            domain: None,
            access_name: "access".into(),
            refresh_name: "refresh".into(),
        }
    }
}

impl CookiePolicy {
    fn base(&self, name: &str, value: String, http_only: bool) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.to_owned(), value);
        cookie.set_path("/");
        cookie.set_http_only(http_only);
        cookie.set_same_site(self.same_site);
        // SameSite=None is only honoured by browsers on Secure cookies.
        cookie.set_secure(self.secure || self.same_site == SameSite::None);
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    /// An HttpOnly cookie holding a token, living as long as the token.
    pub fn token_cookie(&self, name: &str, token: &str, lifetime_secs: i64) -> Cookie<'static> {
        let mut cookie = self.base(name, token.to_owned(), true);
        cookie.set_max_age(Duration::seconds(lifetime_secs.max(0)));
        cookie
    }

    pub fn access_cookie(&self, token: &str, lifetime_secs: i64) -> Cookie<'static> {
        self.token_cookie(&self.access_name, token, lifetime_secs)
    }

    pub fn refresh_cookie(&self, token: &str, lifetime_secs: i64) -> Cookie<'static> {
        self.token_cookie(&self.refresh_name, token, lifetime_secs)
    }

    /// The readable `csrftoken` cookie a page copies into `X-CSRFToken`.
    pub fn csrf_cookie(&self, value: &str) -> Cookie<'static> {
        let mut cookie = self.base(CSRF_COOKIE_NAME, value.to_owned(), false);
        cookie.set_max_age(Duration::seconds(CSRF_COOKIE_AGE));
        cookie
    }

    /// Clears a cookie: same name, path, domain and flags, empty, `Max-Age=0`.
    pub fn clearing(&self, name: &str) -> Cookie<'static> {
        let mut cookie = self.base(name, String::new(), true);
        cookie.set_max_age(Duration::ZERO);
        cookie.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_cookie_has_the_contract_attributes() {
        let policy = CookiePolicy::default();
        let text = policy.access_cookie("abc", 1800).to_string();
        for part in [
            "access=abc",
            "HttpOnly",
            "Path=/",
            "SameSite=Lax",
            "Max-Age=1800",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Secure"));
    }

    #[test]
    fn secure_when_configured() {
        let policy = CookiePolicy {
            secure: true,
            ..CookiePolicy::default()
        };
        assert!(
            policy
                .refresh_cookie("abc", 10)
                .to_string()
                .contains("Secure")
        );
    }

    #[test]
    fn clearing_cookie_expires_now() {
        let text = CookiePolicy::default().clearing("refresh").to_string();
        assert!(text.starts_with("refresh=;"), "{text}");
        assert!(text.contains("Max-Age=0"));
        assert!(text.contains("Path=/"));
    }

    #[test]
    fn csrf_cookie_is_readable_by_scripts() {
        let text = CookiePolicy::default().csrf_cookie("t0k3n").to_string();
        assert!(text.starts_with("csrftoken=t0k3n"));
        assert!(!text.contains("HttpOnly"));
    }
}
