//! The login name: an email address, trimmed and lowercased once at parse time.

use std::fmt;

use unicode_security::MixedScript;

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
        let Some((local, domain)) = lowered.rsplit_once('@') else {
            return Err(EmailError::Invalid);
        };
        // One form per domain (UTS #46): `bücher.example` and
        // `xn--bcher-kva.example` are one mailbox, so one account and one
        // lockout counter. The rules are applied to the Unicode form (a
        // mixed-script label stays refused however it is typed); the
        // address is kept in the A-label form mail is sent to.
        let (unicode, decoded) = idna::domain_to_unicode(domain);
        if decoded.is_err() || !is_valid_address(&format!("{local}@{unicode}")) {
            return Err(EmailError::Invalid);
        }
        let ascii = idna::domain_to_ascii(&unicode).map_err(|_| EmailError::Invalid)?;
        let address = format!("{local}@{ascii}");
        if address.len() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        Ok(Email(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An address as Django's `EmailValidator` accepts it (its regexes, without
/// quoted local parts and IP literals, which no sign-up form needs): a
/// dot-atom local part, and a domain of dot-separated labels ending in a
/// label of at least two characters, or `localhost`.
fn is_valid_address(candidate: &str) -> bool {
    let Some((local, domain)) = candidate.rsplit_once('@') else {
        return false;
    };
    is_dot_atom(local) && (domain == "localhost" || is_domain(domain))
}

fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &str = "-!#$%&'*+/=?^_`{}|~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
        })
}

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    // Internationalised labels are allowed as Django allows them (it
    // punycode-encodes before matching); each label is letters, digits and
    // inner hyphens, all of one script (UTS #39), so that `exаmple.com`
    // with a Cyrillic `а` is not an account beside `example.com`.
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().count() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            && label.is_single_script()
    };
    !rest.is_empty()
        && rest.iter().all(|label| label_ok(label))
        && tld.chars().count() >= 2
        && label_ok(tld)
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
            ".jae@example.com",
            "j..ae@example.com",
            "ja(e@example.com",
            "admin@ex\u{430}mple.com",
            "admin@\u{440}aypal.com",
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
            "jae@bücher.de",
            "jae@\u{4f8b}\u{3048}.jp",
            "jae@пример.рф",
        ] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn a_domain_is_kept_in_its_one_a_label_form() {
        let unicode = Email::parse("user@Bücher.example").unwrap();
        let ascii = Email::parse("user@xn--bcher-kva.example").unwrap();
        assert_eq!(unicode, ascii);
        assert_eq!(unicode.as_str(), "user@xn--bcher-kva.example");
        assert_eq!(
            Email::parse("jae@пример.рф").unwrap().as_str(),
            "jae@xn--e1afmkfd.xn--p1ai"
        );
        // Only the domain has a second form: the local part stays ASCII.
        assert_eq!(Email::parse("Ünï@example.com"), Err(EmailError::Invalid));
    }

    #[test]
    fn a_mixed_script_label_is_refused_in_either_form() {
        let a_label = idna::domain_to_ascii("ex\u{430}mple.com").unwrap();
        assert!(a_label.starts_with("xn--"), "{a_label}");
        for raw in [
            "admin@ex\u{430}mple.com".to_owned(),
            format!("admin@{a_label}"),
        ] {
            assert_eq!(Email::parse(&raw), Err(EmailError::Invalid), "{raw}");
        }
    }

    #[test]
    fn length_limit_is_254_characters() {
        // Django puts no limit on the local part beyond the total.
        let at_limit = format!("{}@example.com", "a".repeat(242));
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("a{at_limit}");
        assert_eq!(Email::parse(&over), Err(EmailError::TooLong));
        assert_eq!(
            EmailError::TooLong.message(),
            "Ensure this field has no more than 254 characters."
        );
    }
}
