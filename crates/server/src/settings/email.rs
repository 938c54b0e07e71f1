//! Outgoing mail: `SMTP_URL`, `EMAIL_FROM`, `EMAIL_VERIFICATION`, the link
//! templates and lifetimes, the outbox's retry rule, `THROTTLE_PASSWORD_RESET`,
//! into email's own `EmailSettings`; and the production rules for them.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;

use super::env::{Reader, SettingsError, bad, parse_duration, parse_rate};
use crate::email::{
    DEFAULT_EMAIL_VERIFICATION_URL, DEFAULT_FROM, DEFAULT_LEASE, DEFAULT_PASSWORD_RESET_URL,
    EmailSettings, SMTP_STEPS, SmtpSecurity, SmtpUrl, Verification,
};

const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);

/// Reads the email variables. `public_url` is `PUBLIC_URL` as parsed
/// already; `bind` is `BIND`.
pub(super) fn read(
    env: &Reader<'_>,
    production: bool,
    bind: &str,
    public_url: Option<&str>,
) -> Result<EmailSettings, SettingsError> {
    let duration = |name: &str, default: Duration| -> Result<Duration, SettingsError> {
        let Some(value) = env.raw(name) else {
            return Ok(default);
        };
        match parse_duration(&value) {
            Some(d) if d >= Duration::from_secs(1) && d <= MAX_TIMEOUT => Ok(d),
            _ => Err(bad(
                name,
                &value,
                "a duration between 1s and 365d such as 1h, 3d or 30m",
            )),
        }
    };
    let smtp = match env.raw("SMTP_URL") {
        None => None,
        Some(value) => Some(SmtpUrl::parse(&value).ok_or_else(|| {
            SettingsError(
                "SMTP_URL is not valid: expected smtps://[user:pass@]host[:port], smtp://[user:pass@]host[:port] (STARTTLS) or smtp+insecure://host:port".into(),
            )
        })?),
    };
    if production
        && let Some(url) = &smtp
        && url.security == SmtpSecurity::Insecure
        && !url.is_loopback()
    {
        return Err(SettingsError(format!(
            "SMTP_URL={url} is refused in production: smtp+insecure:// (no TLS) may only reach a loopback address; use smtps:// or smtp:// (STARTTLS)"
        )));
    }
    let from_raw = env.string("EMAIL_FROM", DEFAULT_FROM);
    let from: Mailbox = from_raw.parse().map_err(|_| {
        bad(
            "EMAIL_FROM",
            &from_raw,
            "an address such as no-reply@example.com or \"latchkey <no-reply@example.com>\"",
        )
    })?;
    let verification_raw = env.string("EMAIL_VERIFICATION", "none");
    let verification = match verification_raw.to_ascii_lowercase().as_str() {
        "none" => Verification::None,
        "optional" => Verification::Optional,
        "mandatory" => Verification::Mandatory,
        _ => {
            return Err(bad(
                "EMAIL_VERIFICATION",
                &verification_raw,
                "none, optional or mandatory",
            ));
        }
    };
    if production && smtp.is_none() && verification.is_on() {
        return Err(SettingsError(format!(
            "EMAIL_VERIFICATION={verification_raw} needs SMTP_URL in production: without it no verification email could be delivered"
        )));
    }
    let max_attempts = match env.raw("EMAIL_MAX_ATTEMPTS") {
        None => 10,
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("EMAIL_MAX_ATTEMPTS", &value, "a whole number from 1 to 100"))?,
    };
    let throttle_raw = env.string("THROTTLE_PASSWORD_RESET", "3/1h");
    let throttle_password_reset = parse_rate(&throttle_raw).ok_or_else(|| {
        bad(
            "THROTTLE_PASSWORD_RESET",
            &throttle_raw,
            "COUNT/DURATION such as 3/1h, or 0 for off",
        )
    })?;
    if production && smtp.is_some() {
        require_public_url(
            public_url,
            "SMTP_URL is set",
            "the links in emails start with it, and carry single-use secrets",
        )?;
    }
    let smtp_timeout = duration("EMAIL_SMTP_TIMEOUT", Duration::from_secs(10))?;
    // A lease shorter than one delivery would let a second instance
    // send the message the first is still sending.
    let lease = match env.raw("LATCHKEY_EMAIL_LEASE") {
        Some(value) => parse_duration(&value)
            .filter(|d| *d >= Duration::from_millis(100) && *d <= MAX_TIMEOUT)
            .ok_or_else(|| bad("LATCHKEY_EMAIL_LEASE", &value, "a duration such as 300s"))?,
        None => DEFAULT_LEASE.max(smtp_timeout.saturating_mul(SMTP_STEPS)),
    };
    let public_url = public_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http://{bind}"));
    Ok(EmailSettings {
        smtp,
        from,
        verification,
        public_url,
        password_reset_url: env.string("PASSWORD_RESET_URL", DEFAULT_PASSWORD_RESET_URL),
        email_verification_url: env
            .string("EMAIL_VERIFICATION_URL", DEFAULT_EMAIL_VERIFICATION_URL),
        password_reset_timeout: duration("PASSWORD_RESET_TIMEOUT", Duration::from_secs(3600))?,
        email_verification_timeout: duration(
            "EMAIL_VERIFICATION_TIMEOUT",
            Duration::from_secs(3 * 86_400),
        )?,
        retry_max: duration("EMAIL_RETRY_MAX", Duration::from_secs(300))?,
        max_attempts,
        retention: duration("EMAIL_RETENTION", Duration::from_secs(7 * 86_400))?,
        throttle_password_reset,
        smtp_timeout,
        lease,
    })
}

/// The host of an origin (`scheme://host[:port][/path]`), brackets of an
/// IPv6 literal removed.
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

/// Whether links to this host can only be followed on this machine (so
/// plain http leaks nothing on the way).
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// In production, mail carries single-use links: they must point at the
/// public origin, over https unless it is this machine. Without the check
/// they fell back to `http://` + `BIND`, an address the recipient cannot
/// reach, over plain http.
pub(super) fn require_public_url(
    public_url: Option<&str>,
    when: &str,
    because: &str,
) -> Result<(), SettingsError> {
    let Some(url) = public_url else {
        return Err(SettingsError(format!(
            "PUBLIC_URL is required in production when {when}: {because} (e.g. PUBLIC_URL=https://auth.example.com)"
        )));
    };
    let https = url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if !https && !is_loopback_host(origin_host(url)) {
        return Err(SettingsError(format!(
            "PUBLIC_URL={url} is refused in production: it must start with https:// (plain http only for a loopback host), since {because}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::Rate;

    fn settings(vars: &[(&str, &str)], production: bool) -> Result<EmailSettings, SettingsError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let public_url = map.get("PUBLIC_URL").cloned();
        let lookup = move |name: &str| map.get(name).cloned();
        read(
            &Reader { lookup: &lookup },
            production,
            "127.0.0.1:8000",
            public_url.as_deref(),
        )
    }

    #[test]
    fn production_with_smtp_needs_an_https_or_loopback_public_url() {
        let smtp = ("SMTP_URL", "smtps://mail.example.com");
        let err = settings(&[smtp], true).unwrap_err();
        assert!(err.0.starts_with("PUBLIC_URL is required"), "{err}");
        for refused in [
            "http://auth.example.com",
            "http://192.0.2.1:8000",
            "ftp://x",
        ] {
            let err = settings(&[smtp, ("PUBLIC_URL", refused)], true).unwrap_err();
            assert!(
                err.0.starts_with(&format!("PUBLIC_URL={refused} ")),
                "{err}"
            );
        }
        for accepted in [
            "https://auth.example.com",
            "HTTPS://auth.example.com/base",
            "http://127.0.0.1:8000",
            "http://localhost:8000",
            "http://[::1]:8000",
        ] {
            let s = settings(&[smtp, ("PUBLIC_URL", accepted)], true).unwrap();
            assert_eq!(s.public_url, accepted);
        }
        // Development, or production without email, keeps the fallback.
        assert_eq!(
            settings(&[smtp], false).unwrap().public_url,
            "http://127.0.0.1:8000"
        );
        assert!(settings(&[], true).is_ok());
    }

    #[test]
    fn production_refuses_insecure_smtp_off_loopback() {
        let err = settings(&[("SMTP_URL", "smtp+insecure://192.0.2.1:25")], true).unwrap_err();
        assert!(err.0.contains("SMTP_URL"), "{err}");
        assert!(
            settings(
                &[
                    ("SMTP_URL", "smtp+insecure://127.0.0.1:25"),
                    ("PUBLIC_URL", "https://auth.example.com")
                ],
                true
            )
            .is_ok()
        );
        assert!(settings(&[("SMTP_URL", "smtp+insecure://192.0.2.1:25")], false).is_ok());
    }

    #[test]
    fn production_without_smtp_refuses_verification() {
        let err = settings(&[("EMAIL_VERIFICATION", "optional")], true).unwrap_err();
        assert!(err.0.contains("EMAIL_VERIFICATION"), "{err}");
        assert!(settings(&[("EMAIL_VERIFICATION", "none")], true).is_ok());
        assert!(settings(&[("EMAIL_VERIFICATION", "mandatory")], false).is_ok());
        assert!(settings(&[("EMAIL_VERIFICATION", "sometimes")], false).is_err());
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings(&[], false).unwrap();
        assert_eq!(s.from.to_string(), "latchkey <no-reply@localhost>");
        assert_eq!(s.public_url, "http://127.0.0.1:8000");
        assert_eq!(s.password_reset_timeout, Duration::from_secs(3600));
        assert_eq!(s.email_verification_timeout, Duration::from_secs(259_200));
        assert_eq!(s.max_attempts, 10);
        assert_eq!(
            s.throttle_password_reset,
            Some(Rate {
                count: 3,
                window: Duration::from_secs(3600)
            })
        );
        assert_eq!(
            s.link(&s.password_reset_url, &[("uid", "MQ"), ("token", "t")]),
            "http://127.0.0.1:8000/demo/#reset?uid=MQ&token=t"
        );
    }

    #[test]
    fn retries_double_from_one_second_to_the_cap() {
        let s = settings(&[("EMAIL_RETRY_MAX", "5m")], false).unwrap();
        let waits: Vec<u64> = (1..=10).map(|n| s.retry_delay(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }
}
