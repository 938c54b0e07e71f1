//! The second factor's settings: `MFA_ISSUER` (the name authenticator apps
//! show), `MFA_ENCRYPTION_KEY` (what TOTP secrets are sealed under; unset,
//! a key derived from `SECRET_KEY` under a label of its own, so nothing new
//! is needed to start) and `MFA_PREVIOUS_ENCRYPTION_KEYS` (values that key,
//! or `SECRET_KEY`, had before a rotation: secrets sealed under them still
//! open, and are sealed again under the current key at their next use).
//! `MFA_TOKEN_LIFETIME` is read with the other token lifetimes.

use std::collections::HashSet;

use super::env::{Reader, Secret, SettingsError};
use super::keys::{MIN_DISTINCT_BYTES, MIN_PRODUCTION_SECRET};

#[derive(Debug, Clone)]
pub struct MfaSettings {
    /// `MFA_ISSUER` (`latchkey`).
    pub issuer: String,
    /// What second-factor secrets are sealed under now.
    pub encryption_key: Secret,
    pub previous_encryption_keys: Vec<Secret>,
}

pub(super) fn read(
    env: &Reader<'_>,
    production: bool,
    secret_key: &Secret,
) -> Result<MfaSettings, SettingsError> {
    let encryption_key = match env.raw("MFA_ENCRYPTION_KEY") {
        Some(key) => {
            let key = Secret(key.into_bytes());
            check_strength(&key, production)?;
            key
        }
        None => secret_key.clone(),
    };
    Ok(MfaSettings {
        issuer: env.string("MFA_ISSUER", "latchkey"),
        encryption_key,
        previous_encryption_keys: env
            .list("MFA_PREVIOUS_ENCRYPTION_KEYS")
            .into_iter()
            .map(|key| Secret(key.into_bytes()))
            .collect(),
    })
}

/// `SECRET_KEY`'s strength rules, in production.
fn check_strength(key: &Secret, production: bool) -> Result<(), SettingsError> {
    if !production {
        return Ok(());
    }
    if key.expose().len() < MIN_PRODUCTION_SECRET {
        return Err(SettingsError(format!(
            "MFA_ENCRYPTION_KEY is shorter than {MIN_PRODUCTION_SECRET} bytes: refused in production"
        )));
    }
    let distinct = key.expose().iter().collect::<HashSet<_>>().len();
    if distinct < MIN_DISTINCT_BYTES {
        return Err(SettingsError(format!(
            "MFA_ENCRYPTION_KEY has only {distinct} distinct bytes: refused in production; generate one, e.g. openssl rand -base64 48"
        )));
    }
    Ok(())
}
