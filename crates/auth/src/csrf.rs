//! Double-submit CSRF: the readable `csrftoken` cookie must come back in the
//! `X-CSRFToken` header on unsafe cookie-authenticated requests.

use rand::Rng;
use rand::distr::Alphanumeric;
use subtle::ConstantTimeEq;

pub const CSRF_HEADER: &str = "X-CSRFToken";

/// A new token: 32 letters and digits, like Django's.
pub fn new_csrf_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Why a CSRF check failed, in Django's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFailure {
    CookieNotSet,
    HeaderMissing,
    Mismatch,
}

impl CsrfFailure {
    pub fn reason(&self) -> &'static str {
        match self {
            CsrfFailure::CookieNotSet => "CSRF cookie not set.",
            CsrfFailure::HeaderMissing => "CSRF token missing.",
            CsrfFailure::Mismatch => "CSRF token incorrect.",
        }
    }
}

/// Compares the header with the cookie in constant time.
pub fn check_csrf(cookie: Option<&str>, header: Option<&str>) -> Result<(), CsrfFailure> {
    let cookie = cookie
        .filter(|c| !c.is_empty())
        .ok_or(CsrfFailure::CookieNotSet)?;
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(CsrfFailure::HeaderMissing)?;
    if cookie.as_bytes().ct_eq(header.as_bytes()).into() {
        Ok(())
    } else {
        Err(CsrfFailure::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_alphanumerics_and_differ() {
        let a = new_csrf_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_csrf_token());
    }

    #[test]
    fn check_needs_both_and_equal() {
        assert_eq!(check_csrf(Some("abc"), Some("abc")), Ok(()));
        assert_eq!(
            check_csrf(None, Some("abc")),
            Err(CsrfFailure::CookieNotSet)
        );
        assert_eq!(
            check_csrf(Some("abc"), None),
            Err(CsrfFailure::HeaderMissing)
        );
        assert_eq!(
            check_csrf(Some("abc"), Some("abd")),
            Err(CsrfFailure::Mismatch)
        );
    }
}
