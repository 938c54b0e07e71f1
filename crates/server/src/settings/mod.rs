//! Typed settings, read once at start-up from the environment (and `./.env`,
//! loaded by [`load_dotenv`]), into the types of what they configure: the
//! auth crate's `JwtSettings`, `RefreshPolicy`, `CookiePolicy` and
//! `HasherConfig`, persistence's `PoolOptions`, the throttle's
//! `ThrottleSettings`, email's `EmailSettings`; a default is the owning
//! type's. Every variable is documented on its field and in `.env.example`
//! and `docs/api.md`. Two are read elsewhere: `LOG_FORMAT` by `telemetry`
//! (logging starts before settings are read; it is checked here too), and
//! `LATCHKEY_SUPERUSER_*` by the CLI's `create-superuser --no-input`. `env`
//! holds the reader and parsers, `dev_secret` the development key.
//!
//! A value that cannot be parsed stops start-up with a message naming the
//! variable and the value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use latchkey_auth::cookies::CSRF_COOKIE_NAME;
use latchkey_auth::{CookiePolicy, HasherConfig, HasherConfigError, JwtSettings, RefreshPolicy};
use latchkey_persistence::{DatabaseUrl, PoolOptions};

mod dev_secret;
mod env;
mod metrics;

pub use env::{parse_bool, parse_duration, parse_rate};
pub use metrics::{MetricsListen, MetricsSettings};

use dev_secret::development_secret;
use env::{Reader, bad, parse_algorithm, parse_ip_net, parse_same_site};

use crate::throttle::{
    DEFAULT_IPV6_PREFIX, DEFAULT_LOGIN_FAILURES, DEFAULT_PER_IP, DEFAULT_REDIS_TIMEOUT,
    ThrottleSettings,
};

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// A secret whose `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub algorithm: Algorithm,
    pub secret: Secret,
    pub signing_key_file: Option<PathBuf>,
    pub verifying_key_files: Vec<PathBuf>,
    /// `VERIFYING_KEY`: a PEM public key given inline, as simplejwt takes it.
    pub verifying_key: Option<String>,
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
    /// `THROTTLE_AUTH_PER_IP`, `THROTTLE_LOGIN_FAILURES`, `TRUSTED_PROXIES`,
    /// `THROTTLE_IPV6_PREFIX`, `REDIS_URL`, `REDIS_TIMEOUT`.
    pub throttle: ThrottleSettings,
    /// `AUTH_CACHE` (default true): answer token checks from the instance's
    /// cache, kept fresh by the database's change feed; false reads the
    /// database on every request.
    pub auth_cache: bool,
    /// Outgoing mail: SMTP, the links, the outbox (see `crate::email`).
    pub email: crate::email::EmailSettings,
    /// Where and to whom `/metrics` answers (`METRICS`, `METRICS_TOKEN`,
    /// `METRICS_BIND`).
    pub metrics: MetricsSettings,
    /// Warnings about the configuration, logged when the server starts.
    pub notices: Vec<String>,
}

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
}

impl HttpSettings {
    pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
    pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;
    pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
}

/// Where the users are stored.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…` (default: a SQLite
    /// file in `LATCHKEY_DATA_DIR`, `./data`).
    pub url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE` (10), `DATABASE_POOL_TIMEOUT` (5 s).
    pub pool: PoolOptions,
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

/// Shortest HMAC secret accepted in production (the HS256 output size).
const MIN_PRODUCTION_SECRET: usize = 32;
/// Fewest distinct bytes a production HMAC key may have.
const MIN_DISTINCT_BYTES: usize = 12;
/// Longest token lifetime accepted: ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Largest clock leeway accepted: one day.
const MAX_LEEWAY: Duration = Duration::from_secs(86_400);
pub const DEFAULT_HASHING_QUEUE: usize = 64;
/// Whole seconds, as the token claims count them.
fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
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

impl Settings {
    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

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
        let database_url = match env.raw("DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse(&raw).map_err(|e| SettingsError(e.to_string()))?,
            None => DatabaseUrl::sqlite_file(data_dir.join("latchkey.sqlite3")),
        };
        let mut notices = Vec::new();
        for name in ["SECRET_KEY", "SIGNING_KEY"] {
            if lookup(name).is_some_and(|v| v.trim().is_empty()) {
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
            None => Secret(development_secret(&data_dir, &mut notices)?),
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
        if production
            && latchkey_auth::keys::is_hmac(algorithm)
            && signing_secret.expose().len() < MIN_PRODUCTION_SECRET
        {
            return Err(SettingsError(format!(
                "SIGNING_KEY (or SECRET_KEY) is shorter than {MIN_PRODUCTION_SECRET} bytes: refused in production for {algorithm:?}"
            )));
        }
        // `aaaa…` passes a length check but not a guess: a key of fewer
        // than a dozen distinct bytes was typed, not generated.
        let distinct = signing_secret
            .expose()
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len();
        if production && latchkey_auth::keys::is_hmac(algorithm) && distinct < MIN_DISTINCT_BYTES {
            return Err(SettingsError(format!(
                "SIGNING_KEY (or SECRET_KEY) has only {distinct} distinct bytes: refused in production; generate one, e.g. openssl rand -base64 48"
            )));
        }
        if latchkey_auth::keys::is_hmac(algorithm)
            && signing_secret.expose().len() < MIN_PRODUCTION_SECRET
        {
            notices.push(format!(
                "SIGNING_KEY (or SECRET_KEY) is shorter than {MIN_PRODUCTION_SECRET} bytes: tokens signed with it can be forged by guessing; production refuses it"
            ));
        }
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
        let keys = KeySettings {
            algorithm,
            secret: signing_secret,
            signing_key_file: env.raw("SIGNING_KEY_FILE").map(PathBuf::from),
            verifying_key: env.raw("VERIFYING_KEY"),
            verifying_key_files,
        };
        let cookies = CookiePolicy {
            secure: env.boolean("COOKIE_SECURE", production)?,
            same_site: env.parsed(
                "COOKIE_SAMESITE",
                cookie::SameSite::Lax,
                "Lax, Strict or None",
                parse_same_site,
            )?,
            domain: env.raw("COOKIE_DOMAIN"),
            access_name: env.string("ACCESS_COOKIE_NAME", "access"),
            refresh_name: env.string("REFRESH_COOKIE_NAME", "refresh"),
        };
        if cookies.access_name == cookies.refresh_name
            || [&cookies.access_name, &cookies.refresh_name].contains(&&CSRF_COOKIE_NAME.to_owned())
        {
            return Err(SettingsError("ACCESS_COOKIE_NAME, REFRESH_COOKIE_NAME and the csrftoken cookie must have different names".into()));
        }
        let mut auth_header_types = env.list("AUTH_HEADER_TYPES");
        if auth_header_types.is_empty() {
            auth_header_types.push("Bearer".into());
        }
        let defaults = HasherConfig::default();
        let hasher = HasherConfig {
            kind: match env.raw("PASSWORD_HASHER") {
                Some(raw) => raw
                    .parse()
                    .map_err(|e: HasherConfigError| SettingsError(e.to_string()))?,
                None => defaults.kind,
            },
            bcrypt_cost: env.number("BCRYPT_COST", defaults.bcrypt_cost)?,
            pbkdf2_iterations: env.number("PBKDF2_ITERATIONS", defaults.pbkdf2_iterations)?,
            argon2_memory_kib: env.number("ARGON2_MEMORY_KIB", defaults.argon2_memory_kib)?,
            argon2_iterations: env.number("ARGON2_ITERATIONS", defaults.argon2_iterations)?,
            argon2_parallelism: env.number("ARGON2_PARALLELISM", defaults.argon2_parallelism)?,
        };
        // The bounds live with the hashers; the message names the variable.
        hasher
            .check()
            .map_err(|e| SettingsError(format!("{e} (set in the environment)")))?;
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
        let ipv6_prefix = env.number("THROTTLE_IPV6_PREFIX", DEFAULT_IPV6_PREFIX)?;
        if ipv6_prefix > 128 {
            return Err(bad(
                "THROTTLE_IPV6_PREFIX",
                &ipv6_prefix.to_string(),
                "a prefix length between 0 and 128",
            ));
        }
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
        // Logging starts before the settings are read (telemetry reads
        // LOG_FORMAT itself); a value it would not understand still stops
        // start-up here.
        env.parsed(
            "LOG_FORMAT",
            crate::telemetry::logging::LogFormat::Text,
            "text or json",
            crate::telemetry::logging::LogFormat::parse,
        )?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let bind = env.string("BIND", HttpSettings::DEFAULT_BIND);
        let email = crate::email::EmailSettings::from_lookup(
            lookup,
            production,
            &bind,
            public_url.as_deref(),
        )?;
        let lifetime = |name: &str, default: i64| {
            env.bounded_duration(
                name,
                Duration::from_secs(default.unsigned_abs()),
                Duration::from_secs(1),
                MAX_LIFETIME,
            )
            .map(whole_seconds)
        };
        let jwt_defaults = JwtSettings::default();
        let jwt = JwtSettings {
            access_lifetime: lifetime("ACCESS_TOKEN_LIFETIME", jwt_defaults.access_lifetime)?,
            refresh_lifetime: lifetime("REFRESH_TOKEN_LIFETIME", jwt_defaults.refresh_lifetime)?,
            sliding_lifetime: lifetime("SLIDING_TOKEN_LIFETIME", jwt_defaults.sliding_lifetime)?,
            sliding_refresh_lifetime: lifetime(
                "SLIDING_TOKEN_REFRESH_LIFETIME",
                jwt_defaults.sliding_refresh_lifetime,
            )?,
            mfa_lifetime: lifetime("MFA_TOKEN_LIFETIME", jwt_defaults.mfa_lifetime)?,
            leeway: whole_seconds(env.bounded_duration(
                "LEEWAY",
                Duration::from_secs(jwt_defaults.leeway.unsigned_abs()),
                Duration::ZERO,
                MAX_LEEWAY,
            )?),
            audience: env.raw("AUDIENCE").or(jwt_defaults.audience),
            issuer: env.raw("ISSUER").or(jwt_defaults.issuer),
            user_id_claim: env.string("USER_ID_CLAIM", &jwt_defaults.user_id_claim),
        };
        let refresh_defaults = RefreshPolicy::default();
        let refresh = RefreshPolicy {
            rotate: env.boolean("ROTATE_REFRESH_TOKENS", refresh_defaults.rotate)?,
            blacklist_after_rotation: env.boolean(
                "BLACKLIST_AFTER_ROTATION",
                refresh_defaults.blacklist_after_rotation,
            )?,
            reuse_interval: whole_seconds(env.bounded_duration(
                "REFRESH_TOKEN_REUSE_INTERVAL",
                Duration::from_secs(refresh_defaults.reuse_interval.unsigned_abs()),
                Duration::ZERO,
                MAX_LIFETIME,
            )?),
        };
        let metrics = MetricsSettings::read(&env, production, &mut notices)?;
        let pool_defaults = PoolOptions::default();
        let database = DatabaseSettings {
            url: database_url,
            pool: PoolOptions {
                max_size: env
                    .number("DATABASE_POOL_SIZE", pool_defaults.max_size)?
                    .max(1),
                connection_timeout: env.bounded_duration(
                    "DATABASE_POOL_TIMEOUT",
                    pool_defaults.connection_timeout,
                    Duration::from_millis(1),
                    Duration::from_secs(3600),
                )?,
            },
        };
        let http = HttpSettings {
            bind,
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
        };
        Ok(Settings {
            environment,
            http,
            database,
            keys,
            jwt,
            refresh,
            update_last_login: env.boolean("UPDATE_LAST_LOGIN", true)?,
            cookies,
            hasher,
            hashing_queue: env.number("HASHING_QUEUE", DEFAULT_HASHING_QUEUE)?.max(1),
            throttle: ThrottleSettings {
                per_ip: env.rate("THROTTLE_AUTH_PER_IP", DEFAULT_PER_IP)?,
                login_failures: env.rate("THROTTLE_LOGIN_FAILURES", DEFAULT_LOGIN_FAILURES)?,
                trusted_proxies,
                ipv6_prefix,
                redis_url: env.raw("REDIS_URL"),
                redis_timeout: env.bounded_duration(
                    "REDIS_TIMEOUT",
                    DEFAULT_REDIS_TIMEOUT,
                    Duration::from_millis(1),
                    Duration::from_secs(60),
                )?,
            },
            auth_cache: env.boolean("AUTH_CACHE", true)?,
            email,
            metrics,
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
    use std::collections::HashMap;

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
        assert_eq!(s.throttle.trusted_proxies.len(), 3);
        assert!(s.throttle.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!s.throttle.trusted_proxies[0].contains("11.1.2.3".parse().unwrap()));
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
}
