//! The signing and verifying keys (`SECRET_KEY`, `SIGNING_KEY`, `ALGORITHM`,
//! the key files), and the production key policy: a key must be set, long
//! enough for its algorithm, and not typed by hand.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;

use super::dev_secret::development_secret;
use super::env::{Reader, Secret, SettingsError, parse_algorithm};

/// Shortest HMAC secret accepted in production (the HS256 output size).
const MIN_PRODUCTION_SECRET: usize = 32;
/// Fewest distinct bytes a production HMAC key may have.
const MIN_DISTINCT_BYTES: usize = 12;

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub algorithm: Algorithm,
    pub secret: Secret,
    /// `SECRET_KEY`'s value (in development without it, the kept
    /// development key): what keys other than the signing key derive from.
    pub secret_key: Secret,
    pub signing_key_file: Option<PathBuf>,
    pub verifying_key_files: Vec<PathBuf>,
    /// `VERIFYING_KEY`: a PEM public key given inline, as simplejwt takes it.
    pub verifying_key: Option<String>,
}

/// Reads the keys; without `SECRET_KEY` in development, the key kept in
/// `data_dir` (made on first use).
pub(super) fn read(
    env: &Reader<'_>,
    production: bool,
    data_dir: &Path,
    notices: &mut Vec<String>,
) -> Result<KeySettings, SettingsError> {
    for name in ["SECRET_KEY", "SIGNING_KEY"] {
        if (env.lookup)(name).is_some_and(|v| v.trim().is_empty()) {
            return Err(SettingsError(format!(
                "{name} is set but empty: a zero-length key signs nothing; unset it or give a key of at least {MIN_PRODUCTION_SECRET} bytes"
            )));
        }
    }
    let secret_key = match env.raw("SECRET_KEY") {
        Some(key) => Secret(key.into_bytes()),
        None if production => {
            return Err(SettingsError(
                "SECRET_KEY is not set: in production (LATCHKEY_ENV=production) latchkey refuses to start without one".into(),
            ));
        }
        None => Secret(development_secret(
            data_dir,
            MIN_PRODUCTION_SECRET,
            notices,
        )?),
    };
    let algorithm = env.parsed(
        "ALGORITHM",
        Algorithm::HS256,
        "one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, EdDSA",
        parse_algorithm,
    )?;
    let signing_secret = env
        .raw("SIGNING_KEY")
        .map(|k| Secret(k.into_bytes()))
        .unwrap_or_else(|| secret_key.clone());
    check_hmac_key(algorithm, &signing_secret, production, notices)?;
    let mut verifying_key_files: Vec<PathBuf> = env
        .raw("VERIFYING_KEY_FILE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    verifying_key_files.extend(
        env.list("VERIFYING_KEY_FILES")
            .into_iter()
            .map(PathBuf::from),
    );
    Ok(KeySettings {
        algorithm,
        secret: signing_secret,
        secret_key,
        signing_key_file: env.raw("SIGNING_KEY_FILE").map(PathBuf::from),
        verifying_key: env.raw("VERIFYING_KEY"),
        verifying_key_files,
    })
}

/// The production policy for an HMAC key: long enough, and not typed by
/// hand; in development, a notice for a short one.
fn check_hmac_key(
    algorithm: Algorithm,
    secret: &Secret,
    production: bool,
    notices: &mut Vec<String>,
) -> Result<(), SettingsError> {
    let hmac = latchkey_auth::keys::is_hmac(algorithm);
    if production && hmac {
        refuse_weak_key(
            "SIGNING_KEY (or SECRET_KEY)",
            secret,
            &format!(" for {algorithm:?}"),
        )?;
    }
    if hmac && secret.expose().len() < MIN_PRODUCTION_SECRET {
        notices.push(format!(
            "SIGNING_KEY (or SECRET_KEY) is shorter than {MIN_PRODUCTION_SECRET} bytes: tokens signed with it can be forged by guessing; production refuses it"
        ));
    }
    Ok(())
}

/// Production's rule for a secret key: long enough, and not typed by hand
/// (`aaaa…` passes a length check but not a guess: a key of fewer than a
/// dozen distinct bytes was typed, not generated).
pub(super) fn refuse_weak_key(
    name: &str,
    key: &Secret,
    refused_for: &str,
) -> Result<(), SettingsError> {
    if key.expose().len() < MIN_PRODUCTION_SECRET {
        return Err(SettingsError(format!(
            "{name} is shorter than {MIN_PRODUCTION_SECRET} bytes: refused in production{refused_for}"
        )));
    }
    let distinct = key.expose().iter().collect::<HashSet<_>>().len();
    if distinct < MIN_DISTINCT_BYTES {
        return Err(SettingsError(format!(
            "{name} has only {distinct} distinct bytes: refused in production; generate one, e.g. openssl rand -base64 48"
        )));
    }
    Ok(())
}
