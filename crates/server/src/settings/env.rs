//! Reading variables: a `Reader` over any lookup (the environment, or a
//! map in tests) and the parsers of the value formats (durations, rates,
//! booleans, lists, addresses), each error naming the variable and value.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::net::client_ip::IpNet;
use crate::throttle::Rate;

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// A secret whose `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub(super) fn bad(name: &str, value: &str, expected: &str) -> SettingsError {
    SettingsError(format!(
        "{name}={value:?} is not valid: expected {expected}"
    ))
}

/// Reads variables through `lookup`, so tests can pass a map.
pub(super) struct Reader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn parsed<T>(
        &self,
        name: &str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, SettingsError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => parse(&value).ok_or_else(|| bad(name, &value, expected)),
        }
    }

    pub(super) fn duration(
        &self,
        name: &str,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        self.parsed(
            name,
            default,
            "a duration such as 30m, 7d, 10s, 1h or a number of seconds",
            parse_duration,
        )
    }

    /// A duration that must lie in `min..=max`, so that nothing derived from
    /// it overflows (a lifetime of i64::MAX seconds would mint expired tokens).
    pub(super) fn bounded_duration(
        &self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, SettingsError> {
        let value = self.duration(name, default)?;
        if value < min || value > max {
            return Err(SettingsError(format!(
                "{name}={:?} is out of range: expected between {} and {} seconds",
                self.raw(name).unwrap_or_default(),
                min.as_secs(),
                max.as_secs()
            )));
        }
        Ok(value)
    }

    pub(super) fn boolean(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        self.parsed(name, default, "true or false", parse_bool)
    }

    pub(super) fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
    ) -> Result<T, SettingsError> {
        self.parsed(name, default, "a whole number", |v| v.parse().ok())
    }

    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .map(|v| {
                v.split(',')
                    .map(|item| item.trim().to_owned())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn rate(&self, name: &str, default: &str) -> Result<Option<Rate>, SettingsError> {
        let value = self.string(name, default);
        parse_rate(&value)
            .ok_or_else(|| bad(name, &value, "COUNT/DURATION such as 10/15m, or 0 for off"))
    }
}

pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_rate(raw: &str) -> Option<Option<Rate>> {
    if raw.trim() == "0" {
        return Some(None);
    }
    let (count, window) = raw.split_once('/')?;
    let count: u32 = count.trim().parse().ok()?;
    let window = parse_duration(window)?;
    if count == 0 {
        return Some(None);
    }
    if window.is_zero() {
        return None;
    }
    Some(Some(Rate { count, window }))
}

pub(super) fn parse_ip_net(raw: &str) -> Option<IpNet> {
    let (addr, prefix) = match raw.split_once('/') {
        Some((addr, prefix)) => (
            addr.parse::<IpAddr>().ok()?,
            Some(prefix.parse::<u8>().ok()?),
        ),
        None => (raw.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(IpNet { addr, prefix })
}

pub(super) fn parse_algorithm(raw: &str) -> Option<Algorithm> {
    match raw {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

pub(super) fn parse_same_site(raw: &str) -> Option<cookie::SameSite> {
    match raw.to_ascii_lowercase().as_str() {
        "lax" => Some(cookie::SameSite::Lax),
        "strict" => Some(cookie::SameSite::Strict),
        "none" => Some(cookie::SameSite::None),
        _ => None,
    }
}
