//! The login name: an email address, trimmed and lowercased once at parse time.

use std::fmt;

/// Longest address the contract accepts (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A valid, normalised email address. It can only be built through
/// [`Email::parse`], so holding one proves the rules were applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    Blank,
    TooLong,
    Invalid,
}

impl EmailError {
    /// The message DRF's `EmailField` gives for this failure.
    pub fn message(&self) -> &'static str {
        match self {
            EmailError::Blank => "This field may not be blank.",
            EmailError::TooLong => "Ensure this field has no more than 254 characters.",
            EmailError::Invalid => "Enter a valid email address.",
        }
    }
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for EmailError {}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Blank);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let lowered = trimmed.to_lowercase();
        if !is_valid_address(&lowered) {
            return Err(EmailError::Invalid);
        }
        Ok(Email(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An address as Django's `EmailValidator` accepts it, minus quoted local
/// parts and IP literals, which no sign-up form needs: the `email_address`
/// crate checks the RFC grammar, and the domain must have a dot-separated
/// label structure so `a@b` (valid for RFC 5322, refused by Django) fails.
fn is_valid_address(candidate: &str) -> bool {
    if candidate
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    if !email_address::EmailAddress::is_valid(candidate) {
        return false;
    }
    let Some((local, domain)) = candidate.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.starts_with('"') || domain.starts_with('[') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) {
        return false;
    }
    let tld = labels.last().copied().unwrap_or_default();
    tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_lowercases() {
        let email = Email::parse("  Jae@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "jae@example.com");
    }

    #[test]
    fn blank_is_refused_as_blank() {
        assert_eq!(Email::parse("   "), Err(EmailError::Blank));
        assert_eq!(EmailError::Blank.message(), "This field may not be blank.");
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for raw in [
            "not-an-email",
            "a@b",
            "@example.com",
            "jae@",
            "jae@@example.com",
            "jae@exa mple.com",
            "jae@-example.com",
            "jae@example.c",
            "jae@example..com",
            "jae@[127.0.0.1]",
        ] {
            assert_eq!(Email::parse(raw), Err(EmailError::Invalid), "{raw}");
        }
        assert_eq!(
            EmailError::Invalid.message(),
            "Enter a valid email address."
        );
    }

    #[test]
    fn valid_addresses_are_accepted() {
        for raw in [
            "jae@example.com",
            "first.last+tag@sub.example.co.kr",
            "x_y-z@a-b.io",
        ] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn length_limit_is_254_characters() {
        let local = "a".repeat(64);
        let domain_part = format!(
            "{}.{}.{}.com",
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(63)
        );
        let at_limit = format!("{local}@{domain_part}");
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("{local}@e{domain_part}");
        assert_eq!(Email::parse(&over), Err(EmailError::TooLong));
        assert_eq!(
            EmailError::TooLong.message(),
            "Ensure this field has no more than 254 characters."
        );
    }
}
