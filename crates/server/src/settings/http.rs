//! The HTTP server and what it accepts: `BIND`, `WORKERS`, `MAX_BODY_SIZE`,
//! `CLIENT_BODY_TIMEOUT`, `CORS_ALLOWED_ORIGINS`, `AUTH_HEADER_TYPES`,
//! `PUBLIC_URL`, `TRUSTED_PROXIES`.

use std::time::Duration;

use super::env::{Reader, SettingsError, bad, parse_ip_net};
use crate::net::client_ip::IpNet;

/// The HTTP server and what it accepts.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `BIND`: host:port to listen on (default `127.0.0.1:8000`).
    pub bind: String,
    /// `WORKERS`: HTTP worker threads (default: the number of cores).
    pub workers: usize,
    /// `MAX_BODY_SIZE` (default 64 KiB): larger bodies are 413.
    pub max_body_size: usize,
    /// `CLIENT_BODY_TIMEOUT` (default 10 s): a body must arrive within it.
    pub client_body_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: exact origins that may call with credentials.
    pub cors_allowed_origins: Vec<String>,
    /// `AUTH_HEADER_TYPES` (default `Bearer`): the `Authorization` schemes.
    pub auth_header_types: Vec<String>,
    /// `PUBLIC_URL`: the server's own origin (`https://auth.example.com`),
    /// for the `Origin` check and the links it writes; unset, the request's.
    pub public_url: Option<String>,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` (and forwarded host
    /// and scheme) is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl HttpSettings {
    pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
    pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;
    pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
}

pub(super) fn read(env: &Reader<'_>) -> Result<HttpSettings, SettingsError> {
    let mut auth_header_types = env.list("AUTH_HEADER_TYPES");
    if auth_header_types.is_empty() {
        auth_header_types.push("Bearer".into());
    }
    let trusted_proxies = env
        .list("TRUSTED_PROXIES")
        .iter()
        .map(|item| {
            parse_ip_net(item).ok_or_else(|| {
                bad(
                    "TRUSTED_PROXIES",
                    item,
                    "IP addresses or CIDR ranges, comma-separated",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let public_url = env
        .raw("PUBLIC_URL")
        .map(|raw| {
            parse_public_url(&raw).ok_or_else(|| {
                bad(
                    "PUBLIC_URL",
                    &raw,
                    "an origin such as https://auth.example.com",
                )
            })
        })
        .transpose()?;
    let cors_allowed_origins = env.list("CORS_ALLOWED_ORIGINS");
    if let Some(star) = cors_allowed_origins.iter().find(|o| o.as_str() == "*") {
        return Err(bad(
            "CORS_ALLOWED_ORIGINS",
            star,
            "exact origins (a wildcard is never allowed with credentials)",
        ));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(HttpSettings {
        bind: env.string("BIND", HttpSettings::DEFAULT_BIND),
        workers: env.number("WORKERS", cores)?.max(1),
        max_body_size: env.number("MAX_BODY_SIZE", HttpSettings::DEFAULT_MAX_BODY_SIZE)?,
        client_body_timeout: env.bounded_duration(
            "CLIENT_BODY_TIMEOUT",
            HttpSettings::DEFAULT_CLIENT_BODY_TIMEOUT,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?,
        cors_allowed_origins,
        auth_header_types,
        public_url,
        trusted_proxies,
    })
}

/// `PUBLIC_URL` as an origin: `scheme://host[:port]`, without a trailing
/// slash (a path after the origin is kept for links, not for the check).
fn parse_public_url(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let (scheme, rest) = trimmed.split_once("://")?;
    let scheme_ok = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    let host = rest.split('/').next().unwrap_or_default();
    (scheme_ok && !host.is_empty() && !host.contains(['?', '#', '@', ' ']))
        .then(|| trimmed.to_owned())
}
