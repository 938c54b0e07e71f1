//! The emails' texts: files under `crates/server/templates/email/`,
//! compiled into the binary. `{{name}}` placeholders are replaced; in the
//! HTML part every value is HTML-escaped.

use std::time::Duration;

/// Which email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PasswordReset,
    VerifyEmail,
    /// A change to the account's second factor (`{{event}}`, `{{when}}`).
    SecurityNotice,
}

struct Files {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

fn files(kind: Kind) -> Files {
    match kind {
        Kind::PasswordReset => Files {
            subject: include_str!("../../templates/email/password_reset.subject.txt"),
            text: include_str!("../../templates/email/password_reset.txt"),
            html: include_str!("../../templates/email/password_reset.html"),
        },
        Kind::VerifyEmail => Files {
            subject: include_str!("../../templates/email/verify_email.subject.txt"),
            text: include_str!("../../templates/email/verify_email.txt"),
            html: include_str!("../../templates/email/verify_email.html"),
        },
        Kind::SecurityNotice => Files {
            subject: include_str!("../../templates/email/security_notice.subject.txt"),
            text: include_str!("../../templates/email/security_notice.txt"),
            html: include_str!("../../templates/email/security_notice.html"),
        },
    }
}

/// A rendered email: subject, plain-text part, HTML part.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

fn fill(template: &str, values: &[(&str, &str)], escape: bool) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        let value = if escape {
            escape_html(value)
        } else {
            (*value).to_owned()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

/// "1 hour", "3 days", "90 minutes": how long a link works, for the text.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The site's name in the emails: the host of the public URL.
pub fn site_name(public_url: &str) -> String {
    public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or(public_url)
        .to_owned()
}

pub fn render(kind: Kind, values: &[(&str, &str)]) -> Rendered {
    let files = files(kind);
    Rendered {
        // one line, whatever the template's trailing newline
        subject: fill(files.subject, values, false)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        text: fill(files.text, values, false),
        html: fill(files.html, values, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_html_escaped() {
        let r = render(
            Kind::PasswordReset,
            &[
                ("link", "http://x/#reset?uid=MQ&token=abc"),
                ("email", "a<b>@example.com"),
                ("site", "x"),
                ("valid_for", "1 hour"),
            ],
        );
        assert_eq!(r.subject, "Reset your password on x");
        assert!(r.text.contains("http://x/#reset?uid=MQ&token=abc"));
        assert!(r.html.contains("http://x/#reset?uid=MQ&amp;token=abc"));
        assert!(r.html.contains("a&lt;b&gt;@example.com"));
        assert!(!r.text.contains("{{") && !r.html.contains("{{"));
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(259_200)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
    }
}
