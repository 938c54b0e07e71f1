//! The throttle: `THROTTLE_AUTH_PER_IP`, `THROTTLE_LOGIN_FAILURES`,
//! `THROTTLE_IPV6_PREFIX`, `REDIS_URL`, `REDIS_TIMEOUT`, into the
//! throttle's own `ThrottleSettings`.

use std::time::Duration;

use super::env::{Reader, SettingsError, bad};
use crate::throttle::{
    DEFAULT_IPV6_PREFIX, DEFAULT_LOGIN_FAILURES, DEFAULT_PER_IP, DEFAULT_REDIS_TIMEOUT,
    ThrottleSettings,
};

pub(super) fn read(env: &Reader<'_>) -> Result<ThrottleSettings, SettingsError> {
    let ipv6_prefix = env.number("THROTTLE_IPV6_PREFIX", DEFAULT_IPV6_PREFIX)?;
    if ipv6_prefix > 128 {
        return Err(bad(
            "THROTTLE_IPV6_PREFIX",
            &ipv6_prefix.to_string(),
            "a prefix length between 0 and 128",
        ));
    }
    Ok(ThrottleSettings {
        per_ip: env.rate("THROTTLE_AUTH_PER_IP", DEFAULT_PER_IP)?,
        login_failures: env.rate("THROTTLE_LOGIN_FAILURES", DEFAULT_LOGIN_FAILURES)?,
        ipv6_prefix,
        redis_url: env.raw("REDIS_URL"),
        redis_timeout: env.bounded_duration(
            "REDIS_TIMEOUT",
            DEFAULT_REDIS_TIMEOUT,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?,
    })
}
