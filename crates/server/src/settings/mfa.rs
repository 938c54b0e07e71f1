//! The second factor's settings: `MFA_ISSUER` (the name authenticator apps
//! show), `MFA_ENCRYPTION_KEY` (what TOTP secrets are sealed under; unset,
//! a key derived from `SECRET_KEY` under a label of its own, so nothing new
//! is needed to start) and `MFA_PREVIOUS_ENCRYPTION_KEYS` (values that key,
//! or `SECRET_KEY`, had before a rotation: secrets sealed under them still
//! open, and are sealed again under the current key at their next use).
//! `MFA_TOKEN_LIFETIME` is read with the other token lifetimes.

use latchkey_auth::sealing::MfaKeys;

use super::env::{Reader, Secret, SettingsError};
use super::keys::refuse_weak_key;

#[derive(Debug, Clone)]
pub struct MfaSettings {
    /// `MFA_ISSUER` (`latchkey`).
    pub issuer: String,
    /// What second-factor secrets are sealed under now.
    pub encryption_key: Secret,
    pub previous_encryption_keys: Vec<Secret>,
}

impl MfaSettings {
    /// The keys second-factor secrets are sealed with: the current value and
    /// the values it had before.
    pub fn keys(&self) -> MfaKeys {
        let previous: Vec<&[u8]> = self
            .previous_encryption_keys
            .iter()
            .map(|key| key.expose())
            .collect();
        MfaKeys::derive(self.encryption_key.expose(), &previous)
    }
}

pub(super) fn read(
    env: &Reader<'_>,
    production: bool,
    secret_key: &Secret,
) -> Result<MfaSettings, SettingsError> {
    let encryption_key = match env.raw("MFA_ENCRYPTION_KEY") {
        Some(key) => {
            let key = Secret(key.into_bytes());
            if production {
                refuse_weak_key("MFA_ENCRYPTION_KEY", &key, "")?;
            }
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
