//! Outgoing mail: the settings (`SMTP_URL`, `EMAIL_FROM`, the link
//! templates, the outbox's retry rule), the messages (from the template
//! files under `crates/server/templates/email/`, compiled in), and the
//! background sender ([`sender`]). The links' secrets are made by
//! `latchkey_auth::secrets`.
//!
//! Design (see docs/email.md):
//! - Every email is a row of the outbox, written in the transaction of the
//!   change that causes it (the reset token, the verification key, the new
//!   user or the new address): a rolled-back change sends nothing, and a
//!   committed one is never lost, whatever happens to SMTP or to latchkey.
//! - Each instance runs one sender task. It claims due rows under a lease
//!   (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite),
//!   delivers them over SMTP, and marks each sent, to retry, or failed.
//!   A request never waits for SMTP.
//! - Without `SMTP_URL` in development the sender writes each email to the
//!   log in full (Django's console backend), through the same outbox.

mod mailer;
pub mod sender;
pub mod templates;

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use latchkey_persistence::outbox::{NewOutboxEmail, OutboxEmail};
use latchkey_persistence::{DbConnection, StoreError};
use lettre::message::Mailbox;

use crate::throttle::Rate;

pub use mailer::Mailer;

/// `EMAIL_VERIFICATION`, with django-allauth's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// No verification email (the default, the seed's behaviour).
    None,
    /// Register sends one; login does not wait for it.
    Optional,
    /// Register sends one, and login refuses until the address is verified.
    Mandatory,
}

impl Verification {
    /// Whether verification emails are sent at all.
    pub fn is_on(self) -> bool {
        self != Verification::None
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (default port 465).
    ImplicitTls,
    /// `smtp://`: STARTTLS, required (default port 587); a server that does
    /// not offer it gets nothing, credentials included.
    StartTls,
    /// `smtp+insecure://`: no TLS (default port 25); in production only to a
    /// loopback address.
    Insecure,
}

/// A parsed `SMTP_URL`.
#[derive(Clone)]
pub struct SmtpUrl {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// Never printed: `Debug` and `Display` show `***`.
    pub password: Option<String>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// The URL without its password.
impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            SmtpSecurity::ImplicitTls => "smtps",
            SmtpSecurity::StartTls => "smtp",
            SmtpSecurity::Insecure => "smtp+insecure",
        };
        let user = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!("{user}:***@"),
            (Some(user), None) => format!("{user}@"),
            _ => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SmtpUrl {
    /// `smtps://[user:pass@]host[:port]`, `smtp://…` or
    /// `smtp+insecure://host[:port]`; user and password percent-encoded.
    pub fn parse(raw: &str) -> Option<SmtpUrl> {
        let (scheme, rest) = raw.trim().split_once("://")?;
        let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "smtps" => (SmtpSecurity::ImplicitTls, 465),
            "smtp" => (SmtpSecurity::StartTls, 587),
            "smtp+insecure" => (SmtpSecurity::Insecure, 25),
            _ => return None,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', ' ']) {
            return None;
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (Some(percent_decode(user)?), Some(percent_decode(pass)?)),
                None => (Some(percent_decode(info)?), None),
            },
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (host.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().ok()?),
                None => (hostport.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return None;
        }
        Some(SmtpUrl {
            security,
            host,
            port,
            username: username.filter(|u| !u.is_empty()),
            password,
        })
    }

    /// Whether every address the host stands for is a loopback address
    /// (a name is resolved; one that does not resolve is not loopback).
    pub fn is_loopback(&self) -> bool {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return ip.to_canonical().is_loopback();
        }
        match (self.host.as_str(), self.port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<_> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().to_canonical().is_loopback())
            }
            Err(_) => false,
        }
    }
}

/// Everything the email features are configured with.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `SMTP_URL`; unset: the console (development) or no delivery
    /// (production).
    pub smtp: Option<SmtpUrl>,
    /// `EMAIL_FROM` (default `latchkey <no-reply@localhost>`).
    pub from: Mailbox,
    /// `EMAIL_VERIFICATION`: none (default), optional or mandatory.
    pub verification: Verification,
    /// The origin links start with: `PUBLIC_URL`, else `http://` + `BIND`.
    pub public_url: String,
    /// `PASSWORD_RESET_URL` (default `{PUBLIC_URL}/demo/#reset?uid={uid}&token={token}`).
    pub password_reset_url: String,
    /// `EMAIL_VERIFICATION_URL` (default `{PUBLIC_URL}/demo/#verify?key={key}`).
    pub email_verification_url: String,
    /// `PASSWORD_RESET_TIMEOUT` (default 1h).
    pub password_reset_timeout: Duration,
    /// `EMAIL_VERIFICATION_TIMEOUT` (default 3d).
    pub email_verification_timeout: Duration,
    /// `EMAIL_RETRY_MAX` (default 5m): the longest wait between two tries.
    pub retry_max: Duration,
    /// `EMAIL_MAX_ATTEMPTS` (default 10): tries in all, the first included.
    pub max_attempts: u32,
    /// `EMAIL_RETENTION` (default 7d): how long sent and failed rows stay in
    /// the outbox (without their bodies) before the sender deletes them.
    pub retention: Duration,
    /// `THROTTLE_PASSWORD_RESET` (default `3/1h`): emails per address, one
    /// counter shared by reset and resend; `None` when `0` (off).
    pub throttle_password_reset: Option<Rate>,
    /// `EMAIL_SMTP_TIMEOUT` (default 10s): each SMTP command's timeout.
    pub smtp_timeout: Duration,
    /// How long a claim on an outbox row holds, renewed before each
    /// message: [`DEFAULT_LEASE`], or longer when one message may take
    /// longer ([`SMTP_STEPS`] × `EMAIL_SMTP_TIMEOUT`). The tests shorten
    /// it with the internal `LATCHKEY_EMAIL_LEASE`.
    pub lease: Duration,
}

/// The outbox lease unless one message can take longer.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
/// The timed steps of one delivery, each bounded by `EMAIL_SMTP_TIMEOUT`:
/// connect, greeting, EHLO, STARTTLS and EHLO again, AUTH, MAIL, RCPT,
/// DATA, the message, QUIT.
pub const SMTP_STEPS: u32 = 11;

pub const DEFAULT_FROM: &str = "latchkey <no-reply@localhost>";
pub const DEFAULT_PASSWORD_RESET_URL: &str = "{PUBLIC_URL}/demo/#reset?uid={uid}&token={token}";
pub const DEFAULT_EMAIL_VERIFICATION_URL: &str = "{PUBLIC_URL}/demo/#verify?key={key}";
impl EmailSettings {
    /// The wait before try `attempts + 1`, after `attempts` failed tries:
    /// 1 s, doubling, at most `EMAIL_RETRY_MAX`.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        Duration::from_secs(1u64 << exponent).min(self.retry_max)
    }

    /// A link from a template: `{PUBLIC_URL}` and the given placeholders
    /// replaced (their values are URL-safe already).
    pub fn link(&self, template: &str, values: &[(&str, &str)]) -> String {
        let mut link = template.replace("{PUBLIC_URL}", &self.public_url);
        for (name, value) in values {
            link = link.replace(&format!("{{{name}}}"), value);
        }
        link
    }
}

/// The user id as Django's `urlsafe_base64_encode(force_bytes(pk))` writes
/// it: the decimal digits in URL-safe base64, without padding.
pub fn encode_uid(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

/// The inverse of [`encode_uid`] (padding tolerated, as Django's decoder).
pub fn decode_uid(uid: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(uid.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Queues a rendered message to `recipient` in the outbox, in the caller's
/// transaction: the sender delivers it once that commits.
pub fn enqueue(
    conn: &mut DbConnection,
    recipient: &str,
    rendered: &templates::Rendered,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    OutboxEmail::enqueue(
        conn,
        &NewOutboxEmail::new(
            recipient,
            &rendered.subject,
            &rendered.text,
            &rendered.html,
            now,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_djangos() {
        // urlsafe_base64_encode(force_bytes(1)) == "MQ", 42 -> "NDI"
        assert_eq!(encode_uid(1), "MQ");
        assert_eq!(encode_uid(42), "NDI");
        assert_eq!(encode_uid(1234), "MTIzNA");
        assert_eq!(decode_uid("MTIzNA"), Some(1234));
        assert_eq!(decode_uid("MTIzNA=="), Some(1234));
        assert_eq!(decode_uid("eA"), None);
        assert_eq!(decode_uid("!!"), None);
        assert_eq!(decode_uid(""), None);
    }

    #[test]
    fn smtp_urls_parse() {
        let url = SmtpUrl::parse("smtps://me%40x.com:p%3Ass@mail.example.com").unwrap();
        assert_eq!(url.security, SmtpSecurity::ImplicitTls);
        assert_eq!(url.port, 465);
        assert_eq!(url.username.as_deref(), Some("me@x.com"));
        assert_eq!(url.password.as_deref(), Some("p:ss"));
        assert!(!url.to_string().contains("p:ss"));
        let url = SmtpUrl::parse("smtp://mail.example.com:2525").unwrap();
        assert_eq!((url.security, url.port), (SmtpSecurity::StartTls, 2525));
        let url = SmtpUrl::parse("smtp+insecure://[::1]:1025").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 1025));
        assert!(url.is_loopback());
        assert!(SmtpUrl::parse("http://x").is_none());
        assert!(SmtpUrl::parse("smtp://").is_none());
        assert!(SmtpUrl::parse("smtp://h:notaport").is_none());
    }
}
