//! Building and running the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Condition, DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use latchkey_auth::{KeyConfig, KeySet, PasswordHasher, TokenCodec};
use latchkey_federation::{
    AppleKey, ClientSecret, Federation, Probe, Protocol, ProviderConfig, Timeouts,
};
use latchkey_persistence::{Database, StoreError, TotpDevice, run_pending_migrations};

use crate::cache::AuthCache;
use crate::http::middleware::{RouteLabels, record, refuse_foreign_origins};
use crate::routes;
use crate::settings::{MetricsListen, Settings};
use crate::state::{AppState, HashingPool};
use crate::telemetry::Metrics;
use crate::throttle::Throttle;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("{0}")]
    Database(#[from] latchkey_persistence::StoreError),
}

/// The sign-in providers, each asked for discovery once: one that answers
/// without it stops start-up naming its issuer variable; one that does not
/// answer is served 503 until it does.
fn federation(settings: &Settings) -> Result<Federation, StartupError> {
    use crate::settings::social::Protocol as Configured;
    let social = &settings.social;
    let configs = social
        .providers
        .iter()
        .map(|p| {
            let variable = |field: &str| format!("SOCIAL_{}_{field}", p.name.to_ascii_uppercase());
            let apple = match &p.apple {
                Some(key) => Some(
                    AppleKey::new(&key.team_id, &key.key_id, key.private_key.expose()).map_err(
                        |why| StartupError::Config(format!("{} {why}", variable("PRIVATE_KEY"))),
                    )?,
                ),
                None => None,
            };
            Ok(ProviderConfig {
                name: p.name.clone(),
                protocol: match &p.protocol {
                    Configured::OpenIdConnect { issuer } => Protocol::OpenIdConnect {
                        issuer: issuer.clone(),
                    },
                    Configured::GitHub { url, api_url } => Protocol::GitHub {
                        url: url.clone(),
                        api_url: api_url.clone(),
                    },
                },
                client_id: p.client_id.clone(),
                client_secret: p.client_secret.as_ref().map(|secret| {
                    ClientSecret(String::from_utf8_lossy(secret.expose()).into_owned())
                }),
                client_ids: p.client_ids.clone(),
                scopes: p.scopes.clone(),
                form_post: p.form_post,
                string_email_verified: p.name == "apple",
                always_pkce: matches!(p.name.as_str(), "google" | "kakao"),
                apple,
            })
        })
        .collect::<Result<Vec<_>, StartupError>>()?;
    let federation = Federation::new(
        configs,
        Timeouts::from_total(social.timeout),
        settings.jwt.leeway,
    )
    .map_err(StartupError::Config)?;
    for (name, probe) in federation.probe_all() {
        let variable = format!("SOCIAL_{}_ISSUER", name.to_ascii_uppercase());
        match probe {
            Probe::Ready => log::info!("sign-in provider {name}: ready"),
            Probe::Unreachable(why) => log::warn!(
                "sign-in provider {name} cannot be reached ({why}); its routes answer 503 until it can"
            ),
            Probe::NoDiscovery(why) => {
                return Err(StartupError::Config(format!(
                    "{variable}: no OpenID Connect discovery there ({why})"
                )));
            }
        }
    }
    Ok(federation)
}

pub fn open_database(settings: &Settings) -> Result<Database, StartupError> {
    Ok(Database::new(
        &settings.database.url,
        settings.database.pool,
    )?)
}

fn read_key_file(path: &std::path::Path, variable: &str) -> Result<Vec<u8>, StartupError> {
    std::fs::read(path).map_err(|e| {
        StartupError::Config(format!("{variable}={} cannot be read: {e}", path.display()))
    })
}

pub fn token_codec(settings: &Settings) -> Result<TokenCodec, StartupError> {
    let keys = &settings.keys;
    // An asymmetric key comes from SIGNING_KEY_FILE, or inline in
    // SIGNING_KEY as simplejwt takes it.
    let signing_pem = match keys.signing_key_file.as_deref() {
        Some(path) => Some(read_key_file(path, "SIGNING_KEY_FILE")?),
        None if keys.secret.expose().starts_with(b"-----BEGIN") => {
            Some(keys.secret.expose().to_vec())
        }
        None => None,
    };
    let mut verifying_pems = keys
        .verifying_key_files
        .iter()
        .map(|path| read_key_file(path, "VERIFYING_KEY_FILES"))
        .collect::<Result<Vec<_>, _>>()?;
    verifying_pems.extend(
        keys.verifying_key
            .as_ref()
            .map(|pem| pem.as_bytes().to_vec()),
    );
    let key_set = KeySet::new(&KeyConfig {
        algorithm: keys.algorithm,
        secret: keys.secret.expose().to_vec(),
        signing_pem,
        verifying_pems,
    })
    .map_err(|e| StartupError::Config(e.to_string()))?;
    Ok(TokenCodec::new(key_set, settings.jwt.clone()))
}

/// CORS for the exact origins of `CORS_ALLOWED_ORIGINS`, with credentials;
/// off when there are none. Other origins get no CORS headers (the browser
/// refuses them) but are not blocked, so same-origin pages keep working.
fn cors(origins: &[String]) -> Condition<Cors> {
    let mut cors = Cors::default()
        .supports_credentials()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers(["Content-Type", "Authorization", "X-CSRFToken", "Accept"])
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    Condition::new(!origins.is_empty(), cors)
}

/// Retries the migrations every second until the database answers.
fn migrate_when_available(state: web::Data<AppState>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            match run_pending_migrations(&state.db) {
                Ok(applied) => {
                    log::info!(
                        "the database is back: applied {} migration(s)",
                        applied.len()
                    );
                    state.schema_ready.store(true, Ordering::Release);
                    report_unopenable_secrets(&state);
                    return;
                }
                Err(StoreError::Unavailable(_)) => continue,
                Err(other) => log::error!("migrations failed: {other}"),
            }
        }
    });
}

/// Logs an error naming `MFA_ENCRYPTION_KEY` while any stored TOTP secret
/// is sealed under none of the configured keys: its user's codes are
/// refused (never read as "no TOTP") until the key is set again.
fn report_unopenable_secrets(state: &AppState) {
    let ids = state.mfa_keys.key_ids();
    let counted = state
        .db
        .get()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            TotpDevice::count_sealed_outside(&mut conn, &ids).map_err(|e| e.to_string())
        });
    match counted {
        Ok(0) => {}
        Ok(n) => log::error!(
            "{n} TOTP secret(s) are sealed under a key that is not configured: set \
             MFA_ENCRYPTION_KEY (or MFA_PREVIOUS_ENCRYPTION_KEYS) to the value they were sealed \
             under; until then their users' codes are refused"
        ),
        Err(cause) => log::warn!("could not check the stored TOTP secrets' keys: {cause}"),
    }
}

/// `/metrics` alone on `METRICS_BIND`: one worker, the same state.
fn metrics_server(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> Result<Server, StartupError> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(routes::configure_metrics_listener)
    })
    .workers(1)
    .listen(listener)
    .map_err(|e| StartupError::Bind("METRICS_BIND".into(), e))?
    .run())
}

/// The server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    /// `METRICS_BIND`'s listener, when set.
    metrics_server: Option<Server>,
    state: web::Data<AppState>,
}

impl Application {
    /// Applies pending migrations, binds `settings.http.bind` (port 0 picks a free
    /// port) and builds the server.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        for notice in &settings.notices {
            log::warn!("{notice}");
        }
        let db = open_database(&settings)?;
        // A database that is down does not stop the server: it answers 503
        // and migrates in the background as soon as the database is back.
        let schema_ready = match run_pending_migrations(&db) {
            Ok(applied) => {
                if !applied.is_empty() {
                    log::info!("applied {} migration(s) on {}", applied.len(), db.backend());
                }
                true
            }
            Err(StoreError::Unavailable(cause)) => {
                log::error!(
                    "the database is unavailable at start-up ({cause}); answering 503 until it is back"
                );
                false
            }
            Err(other) => return Err(other.into()),
        };
        let listener = TcpListener::bind(&settings.http.bind)
            .map_err(|e| StartupError::Bind(settings.http.bind.clone(), e))?;
        let metrics_listener = match &settings.metrics.listen {
            MetricsListen::Own(bind) => Some(
                TcpListener::bind(bind)
                    .map_err(|e| StartupError::Bind(format!("METRICS_BIND={bind}"), e))?,
            ),
            MetricsListen::Nowhere | MetricsListen::ApiAddress => None,
        };
        Self::build_with(settings, db, listener, metrics_listener, schema_ready)
    }

    fn build_with(
        settings: Settings,
        db: Database,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        schema_ready: bool,
    ) -> Result<Self, StartupError> {
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(settings.http.bind.clone(), e))?
            .port();
        let codec = token_codec(&settings)?;
        let hasher = PasswordHasher::with_config(settings.hasher)
            .map_err(|e| StartupError::Config(e.to_string()))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let hashing = HashingPool::new(hasher, cores, settings.hashing_queue)
            .map_err(|e| StartupError::Config(format!("cannot start the hashing threads: {e}")))?;
        hashing.warm_up_in_background();
        let throttle = Throttle::new(settings.throttle.clone()).map_err(StartupError::Config)?;
        let workers = settings.http.workers;
        let delivery = crate::email::sender::delivery(&settings.email, settings.is_production())
            .map_err(StartupError::Config)?;
        let auth_cache =
            Arc::new(AuthCache::new().map_err(|e| StartupError::Config(format!("metrics: {e}")))?);
        if settings.auth_cache {
            auth_cache
                .follow_changes(settings.database.url.clone())
                .map_err(|e| StartupError::Config(format!("cannot start the change feed: {e}")))?;
        }
        let metrics = Metrics::new().map_err(|e| StartupError::Config(format!("metrics: {e}")))?;
        metrics
            .register_cache(&auth_cache)
            .and_then(|()| metrics.register_counter(&hashing.skipped))
            .map_err(|e| StartupError::Config(format!("metrics: {e}")))?;
        let mfa_keys = settings.mfa.keys();
        let federation = federation(&settings)?;
        let state = web::Data::from(Arc::new(AppState {
            mfa_keys,
            federation,
            settings,
            db,
            codec,
            hashing,
            throttle,
            metrics,
            auth_cache,
            schema_ready: AtomicBool::new(schema_ready),
            mailer: crate::email::Mailer::new(),
        }));
        if schema_ready {
            report_unopenable_secrets(&state);
        } else {
            migrate_when_available(state.clone());
        }
        crate::email::sender::spawn(state.clone(), delivery);
        let app_state = state.clone();
        let route_labels = web::Data::new(RouteLabels::new(routes::patterns()));
        let cors_origins = state.settings.http.cors_allowed_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(route_labels.clone())
                .wrap(from_fn(refuse_foreign_origins))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY")),
                )
                .wrap(from_fn(record))
                .wrap(cors(&cors_origins))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .workers(workers)
        // A client that closes its side has gone: its request is dropped,
        // so a password check it queued is never run.
        .h1_allow_half_closed(false)
        .listen(listener)
        .map_err(|e| StartupError::Bind("listener".into(), e))?
        .run();
        let metrics_server = metrics_listener
            .map(|listener| metrics_server(state.clone(), listener))
            .transpose()?;
        Ok(Application {
            port,
            server,
            metrics_server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let served = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        // The email sender ends with the server (after its current cycle).
        self.state.mailer.stop();
        served
    }
}
