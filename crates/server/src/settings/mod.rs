//! Typed settings, read once at start-up from the environment (and `./.env`,
//! loaded by [`load_dotenv`]), into the types of what they configure: the
//! auth crate's `JwtSettings`, `RefreshPolicy`, `CookiePolicy` and
//! `HasherConfig`, persistence's `PoolOptions`, the throttle's
//! `ThrottleSettings`, email's `EmailSettings`; a default is the owning
//! type's. Every variable is documented on its field and in `.env.example`
//! and `docs/api.md`. Two are read elsewhere: `LOG_FORMAT` by `telemetry`
//! (logging starts before settings are read; it is checked here too), and
//! `LATCHKEY_SUPERUSER_*` by the CLI's `create-superuser --no-input`.
//!
//! One reader per group, each in its own file (`keys`, `http`, `cookies`,
//! `hashing`, `database`, `tokens`, `throttle`, `email`, `metrics`);
//! `env` holds the reader of variables and the value parsers, `dev_secret`
//! the development key. [`Settings::from_lookup`] only assembles the groups.
//!
//! A value that cannot be parsed stops start-up with a message naming the
//! variable and the value.

use std::path::PathBuf;

use latchkey_auth::{CookiePolicy, HasherConfig, JwtSettings, RefreshPolicy};

mod cookies;
mod database;
mod dev_secret;
mod email;
mod env;
mod hashing;
mod http;
mod keys;
mod metrics;
mod mfa;
pub mod social;
mod throttle;
mod tokens;

pub use database::DatabaseSettings;
pub use env::{Secret, SettingsError, parse_bool, parse_duration, parse_rate};
pub use hashing::DEFAULT_HASHING_QUEUE;
pub use http::HttpSettings;
pub use keys::KeySettings;
pub use metrics::{MetricsListen, MetricsSettings};
pub use mfa::MfaSettings;

use env::{Reader, bad};

use crate::email::EmailSettings;
use crate::throttle::ThrottleSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Every setting, grouped by what it configures; the groups the other
/// crates define are theirs (`JwtSettings`, `RefreshPolicy`, `PoolOptions`,
/// `CookiePolicy`, `HasherConfig`), with their defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LATCHKEY_ENV`: `development` (default) or `production`, which
    /// refuses a missing or weak key and defaults `COOKIE_SECURE` on.
    pub environment: Environment,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    /// `ACCESS_TOKEN_LIFETIME` (30m), `REFRESH_TOKEN_LIFETIME` (7d),
    /// `SLIDING_TOKEN_LIFETIME` (5m), `SLIDING_TOKEN_REFRESH_LIFETIME` (1d),
    /// `MFA_TOKEN_LIFETIME` (5m),
    /// `LEEWAY` (0), `AUDIENCE`, `ISSUER`, `USER_ID_CLAIM` (`user_id`).
    pub jwt: JwtSettings,
    /// `ROTATE_REFRESH_TOKENS` (true), `BLACKLIST_AFTER_ROTATION` (true),
    /// `REFRESH_TOKEN_REUSE_INTERVAL` (10s).
    pub refresh: RefreshPolicy,
    /// `UPDATE_LAST_LOGIN` (default true): a login sets `last_login`.
    pub update_last_login: bool,
    /// `COOKIE_SECURE`, `COOKIE_SAMESITE`, `COOKIE_DOMAIN`,
    /// `ACCESS_COOKIE_NAME`, `REFRESH_COOKIE_NAME`.
    pub cookies: CookiePolicy,
    /// How new passwords are hashed (`PASSWORD_HASHER`, default `bcrypt`)
    /// and how strong a stored hash must be to be kept (`BCRYPT_COST`,
    /// `PBKDF2_ITERATIONS`, `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`,
    /// `ARGON2_PARALLELISM`).
    pub hasher: HasherConfig,
    /// `HASHING_QUEUE` (default 64): password checks that may wait at once.
    pub hashing_queue: usize,
    /// `THROTTLE_AUTH_PER_IP`, `THROTTLE_LOGIN_FAILURES`,
    /// `THROTTLE_IPV6_PREFIX`, `REDIS_URL`, `REDIS_TIMEOUT`.
    pub throttle: ThrottleSettings,
    /// `AUTH_CACHE` (default true): answer token checks from the instance's
    /// cache, kept fresh by the database's change feed; false reads the
    /// database on every request.
    pub auth_cache: bool,
    /// Outgoing mail: SMTP, the links, the outbox (see `crate::email`).
    pub email: EmailSettings,
    /// Where and to whom `/metrics` answers (`METRICS`, `METRICS_TOKEN`,
    /// `METRICS_BIND`).
    pub metrics: MetricsSettings,
    /// `MFA_ISSUER`, `MFA_ENCRYPTION_KEY`, `MFA_PREVIOUS_ENCRYPTION_KEYS`.
    pub mfa: MfaSettings,
    /// Sign-in with a provider (`SOCIAL_*`).
    pub social: social::SocialSettings,
    /// Warnings about the configuration, logged when the server starts.
    pub notices: Vec<String>,
}

/// Loads `./.env` into the environment; whether there was one. Only the
/// working directory's: dotenvy's default search walks up to `/`, so anyone
/// able to write a `.env` in a parent folder could set the signing key.
pub fn load_dotenv() -> Result<bool, SettingsError> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(true),
        Err(dotenvy::Error::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(SettingsError(format!(".env cannot be read: {error}"))),
    }
}

impl Settings {
    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Every group read through `lookup`, the keys first (a development
    /// key is made on first use).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Reader { lookup };
        let environment = match env
            .string("LATCHKEY_ENV", "development")
            .to_ascii_lowercase()
            .as_str()
        {
            "development" | "dev" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => return Err(bad("LATCHKEY_ENV", other, "development or production")),
        };
        let production = environment == Environment::Production;
        let data_dir = PathBuf::from(env.string("LATCHKEY_DATA_DIR", "data"));
        let database = database::read(&env, &data_dir)?;
        let mut notices = Vec::new();
        let keys = keys::read(&env, production, &data_dir, &mut notices)?;
        let mfa = mfa::read(&env, production, &keys.secret_key)?;
        let cookies = cookies::read(&env, production)?;
        let hasher = hashing::hasher(&env)?;
        let throttle = throttle::read(&env)?;
        let http = http::read(&env)?;
        // Logging starts before the settings are read (telemetry reads
        // LOG_FORMAT itself); a value it would not understand still stops
        // start-up here.
        env.parsed(
            "LOG_FORMAT",
            crate::telemetry::logging::LogFormat::Text,
            "text or json",
            crate::telemetry::logging::LogFormat::parse,
        )?;
        let email = email::read(&env, production, &http.bind, http.public_url.as_deref())?;
        let social = social::read(
            &env,
            production,
            http.public_url.as_deref(),
            &http.cors_allowed_origins,
        )?;
        Ok(Settings {
            environment,
            http,
            database,
            keys,
            jwt: tokens::jwt(&env)?,
            refresh: tokens::refresh(&env)?,
            update_last_login: env.boolean("UPDATE_LAST_LOGIN", true)?,
            cookies,
            hasher,
            hashing_queue: hashing::queue(&env)?,
            throttle,
            auth_cache: env.boolean("AUTH_CACHE", true)?,
            email,
            metrics: MetricsSettings::read(&env, production, &mut notices)?,
            mfa,
            social,
            notices,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::Rate;
    use latchkey_auth::HasherConfig;
    use latchkey_persistence::DatabaseUrl;
    use std::collections::HashMap;
    use std::time::Duration;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(&move |name| map.get(name).cloned())
    }

    fn with_key(extra: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let key = "k".repeat(40);
        let mut vars: Vec<(&str, &str)> = vec![("SECRET_KEY", key.as_str())];
        vars.extend_from_slice(extra);
        settings(&vars)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = with_key(&[]).unwrap();
        assert_eq!(s.jwt.access_lifetime, 1800);
        assert_eq!(s.jwt.refresh_lifetime, 604_800);
        assert_eq!(s.jwt.leeway, 0);
        assert!(s.refresh.rotate && s.refresh.blacklist_after_rotation && s.update_last_login);
        assert_eq!(s.http.max_body_size, 65_536);
        assert_eq!(s.hasher, HasherConfig::default());
        assert_eq!(s.http.auth_header_types, vec!["Bearer".to_string()]);
        assert!(!s.cookies.secure);
        assert_eq!(
            s.throttle.login_failures,
            Some(Rate {
                count: 10,
                window: Duration::from_secs(900)
            })
        );
        assert_eq!(
            s.database.url,
            DatabaseUrl::sqlite_file("data/latchkey.sqlite3")
        );
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5w"), None);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        let err = with_key(&[("ACCESS_TOKEN_LIFETIME", "forever")]).unwrap_err();
        assert!(
            err.0.contains("ACCESS_TOKEN_LIFETIME") && err.0.contains("forever"),
            "{err}"
        );
        let err = with_key(&[("ROTATE_REFRESH_TOKENS", "maybe")]).unwrap_err();
        assert!(
            err.0.contains("ROTATE_REFRESH_TOKENS") && err.0.contains("maybe"),
            "{err}"
        );
        let err = with_key(&[("THROTTLE_LOGIN_FAILURES", "ten")]).unwrap_err();
        assert!(err.0.contains("THROTTLE_LOGIN_FAILURES"), "{err}");
        let err = with_key(&[("DATABASE_URL", "mysql://x/y")]).unwrap_err();
        assert!(err.0.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn booleans_accept_one_and_zero() {
        let s = with_key(&[("UPDATE_LAST_LOGIN", "0"), ("COOKIE_SECURE", "1")]).unwrap();
        assert!(!s.update_last_login);
        assert!(s.cookies.secure);
    }

    #[test]
    fn rates_zero_means_off() {
        let s = with_key(&[("THROTTLE_AUTH_PER_IP", "0")]).unwrap();
        assert_eq!(s.throttle.per_ip, None);
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret() {
        let err = settings(&[("LATCHKEY_ENV", "production")]).unwrap_err();
        assert!(err.0.contains("SECRET_KEY"), "{err}");
        let err = settings(&[("LATCHKEY_ENV", "production"), ("SECRET_KEY", "short")]).unwrap_err();
        assert!(err.0.contains("32 bytes"), "{err}");
        let monotonous = "a".repeat(40);
        let err = settings(&[
            ("LATCHKEY_ENV", "production"),
            ("SECRET_KEY", monotonous.as_str()),
        ])
        .unwrap_err();
        assert!(err.0.contains("distinct bytes"), "{err}");
        let long = "x0123456789abcdefghij".repeat(2);
        let ok = settings(&[
            ("LATCHKEY_ENV", "production"),
            ("SECRET_KEY", long.as_str()),
        ])
        .unwrap();
        assert!(
            ok.cookies.secure,
            "cookies are Secure by default in production"
        );
    }

    #[test]
    fn development_generates_a_private_secret_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_str = data.to_str().unwrap();
        let first = settings(&[("LATCHKEY_DATA_DIR", data_str)]).unwrap();
        let second = settings(&[("LATCHKEY_DATA_DIR", data_str)]).unwrap();
        assert_eq!(first.keys.secret, second.keys.secret);
        assert!(first.keys.secret.expose().len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("secret_key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(format!("{:?}", first.keys.secret), "Secret(***)");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let s = with_key(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        assert_eq!(s.http.trusted_proxies.len(), 3);
        assert!(s.http.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!s.http.trusted_proxies[0].contains("11.1.2.3".parse().unwrap()));
        assert!(with_key(&[("TRUSTED_PROXIES", "nope")]).is_err());
    }

    #[test]
    fn cors_wildcard_is_refused() {
        assert!(with_key(&[("CORS_ALLOWED_ORIGINS", "*")]).is_err());
    }

    #[test]
    fn metrics_are_never_public_in_production() {
        let listen = |extra: &[(&str, &str)]| {
            let mut vars = vec![("SECRET_KEY", "0123456789abcdefghijklmnopqrstuvwxyz")];
            vars.extend_from_slice(extra);
            settings(&vars).unwrap().metrics.listen
        };
        let prod = ("LATCHKEY_ENV", "production");
        assert_eq!(listen(&[]), MetricsListen::ApiAddress);
        assert_eq!(listen(&[prod]), MetricsListen::Nowhere);
        assert_eq!(
            listen(&[prod, ("METRICS_TOKEN", "a-token")]),
            MetricsListen::ApiAddress
        );
        assert_eq!(
            listen(&[prod, ("METRICS_BIND", "127.0.0.1:9100")]),
            MetricsListen::Own("127.0.0.1:9100".into())
        );
        assert_eq!(listen(&[("METRICS", "false")]), MetricsListen::Nowhere);
        assert_eq!(
            listen(&[prod, ("METRICS", "false"), ("METRICS_TOKEN", "t")]),
            MetricsListen::Nowhere
        );
        let err = with_key(&[("METRICS_BIND", "9100")]).unwrap_err();
        assert!(err.0.starts_with("METRICS_BIND="), "{err}");
        let err = with_key(&[("METRICS", "maybe")]).unwrap_err();
        assert!(err.0.starts_with("METRICS="), "{err}");
    }

    #[test]
    fn mfa_keys_default_to_the_secret_key_and_production_refuses_weak_ones() {
        let s = with_key(&[]).unwrap();
        assert_eq!(s.mfa.issuer, "latchkey");
        assert_eq!(s.mfa.encryption_key.expose(), "k".repeat(40).as_bytes());
        assert!(s.mfa.previous_encryption_keys.is_empty());
        let s = with_key(&[
            ("MFA_ISSUER", "Acme"),
            ("MFA_ENCRYPTION_KEY", "an-mfa-key"),
            ("MFA_PREVIOUS_ENCRYPTION_KEYS", "old-one, older-one"),
        ])
        .unwrap();
        assert_eq!(s.mfa.issuer, "Acme");
        assert_eq!(s.mfa.encryption_key.expose(), b"an-mfa-key");
        assert_eq!(s.mfa.previous_encryption_keys.len(), 2);
        assert!(!format!("{:?}", s.mfa).contains("an-mfa-key"));
        let strong = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
        for weak in ["short", &"a".repeat(48)] {
            let err = settings(&[
                ("LATCHKEY_ENV", "production"),
                ("SECRET_KEY", strong),
                ("PUBLIC_URL", "https://auth.example.com"),
                ("MFA_ENCRYPTION_KEY", weak),
            ])
            .unwrap_err();
            assert!(err.0.contains("MFA_ENCRYPTION_KEY"), "{}", err.0);
        }
    }
}
