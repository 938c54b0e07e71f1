//! Token lifetimes and claims (`JwtSettings`) and the refresh rules
//! (`RefreshPolicy`), each default the auth crate's.

use std::time::Duration;

use latchkey_auth::{JwtSettings, RefreshPolicy};

use super::env::{Reader, SettingsError};

/// Longest token lifetime accepted: ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Largest clock leeway accepted: one day.
const MAX_LEEWAY: Duration = Duration::from_secs(86_400);

/// Whole seconds, as the token claims count them.
fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `ACCESS_TOKEN_LIFETIME`, `REFRESH_TOKEN_LIFETIME`,
/// `SLIDING_TOKEN_LIFETIME`, `SLIDING_TOKEN_REFRESH_LIFETIME`,
/// `MFA_TOKEN_LIFETIME`, `LEEWAY`, `AUDIENCE`, `ISSUER`, `USER_ID_CLAIM`.
pub(super) fn jwt(env: &Reader<'_>) -> Result<JwtSettings, SettingsError> {
    let lifetime = |name: &str, default: i64| {
        env.bounded_duration(
            name,
            Duration::from_secs(default.unsigned_abs()),
            Duration::from_secs(1),
            MAX_LIFETIME,
        )
        .map(whole_seconds)
    };
    let defaults = JwtSettings::default();
    Ok(JwtSettings {
        access_lifetime: lifetime("ACCESS_TOKEN_LIFETIME", defaults.access_lifetime)?,
        refresh_lifetime: lifetime("REFRESH_TOKEN_LIFETIME", defaults.refresh_lifetime)?,
        sliding_lifetime: lifetime("SLIDING_TOKEN_LIFETIME", defaults.sliding_lifetime)?,
        sliding_refresh_lifetime: lifetime(
            "SLIDING_TOKEN_REFRESH_LIFETIME",
            defaults.sliding_refresh_lifetime,
        )?,
        mfa_lifetime: lifetime("MFA_TOKEN_LIFETIME", defaults.mfa_lifetime)?,
        leeway: whole_seconds(env.bounded_duration(
            "LEEWAY",
            Duration::from_secs(defaults.leeway.unsigned_abs()),
            Duration::ZERO,
            MAX_LEEWAY,
        )?),
        audience: env.raw("AUDIENCE").or(defaults.audience),
        issuer: env.raw("ISSUER").or(defaults.issuer),
        user_id_claim: env.string("USER_ID_CLAIM", &defaults.user_id_claim),
    })
}

/// `ROTATE_REFRESH_TOKENS`, `BLACKLIST_AFTER_ROTATION`,
/// `REFRESH_TOKEN_REUSE_INTERVAL`.
pub(super) fn refresh(env: &Reader<'_>) -> Result<RefreshPolicy, SettingsError> {
    let defaults = RefreshPolicy::default();
    Ok(RefreshPolicy {
        rotate: env.boolean("ROTATE_REFRESH_TOKENS", defaults.rotate)?,
        blacklist_after_rotation: env.boolean(
            "BLACKLIST_AFTER_ROTATION",
            defaults.blacklist_after_rotation,
        )?,
        reuse_interval: whole_seconds(env.bounded_duration(
            "REFRESH_TOKEN_REUSE_INTERVAL",
            Duration::from_secs(defaults.reuse_interval.unsigned_abs()),
            Duration::ZERO,
            MAX_LIFETIME,
        )?),
    })
}
