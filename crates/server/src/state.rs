//! What every handler shares: settings, the pool, the token codec and the
//! password hashing pool.

use latchkey_auth::sealing::MfaKeys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::web;
use latchkey_auth::{PasswordHasher, TokenCodec};
use latchkey_persistence::changes::take_changed_users;
use latchkey_persistence::{Database, DbConnection};

use crate::cache::AuthCache;

use crate::error::ApiError;
use crate::settings::Settings;
use crate::telemetry::Metrics;
use crate::throttle::Throttle;

/// The shared state as handlers hold it (cheap to clone into a closure).
pub type State = web::Data<AppState>;

pub struct AppState {
    pub settings: Settings,
    pub db: Database,
    pub codec: TokenCodec,
    pub hashing: HashingPool,
    pub throttle: Throttle,
    pub metrics: Metrics,
    /// Wakes this instance's email sender (see `crate::email::sender`).
    pub mailer: Arc<crate::email::Mailer>,
    pub auth_cache: Arc<AuthCache>,
    /// What second-factor secrets are sealed with (`MFA_ENCRYPTION_KEY`).
    pub mfa_keys: MfaKeys,
    /// The sign-in providers (`SOCIAL_PROVIDERS`) and the client that
    /// calls them.
    pub federation: latchkey_federation::Federation,
    /// False while the database could not be migrated yet (it was down at
    /// start-up): requests that need it get 503 until it is.
    pub schema_ready: AtomicBool,
}

impl AppState {
    /// Runs one request's whole database unit of work on the blocking pool,
    /// with one pooled connection; the closure gets the state too, so no
    /// flow clones it to move it in. Called on the `Arc` the state lives in
    /// (a handler's `State`), which the closure takes along.
    pub async fn with_conn<T, F>(self: &Arc<Self>, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, ApiError> + Send + 'static,
    {
        let state = Arc::clone(self);
        if !self.schema_ready.load(Ordering::Acquire) {
            return Err(ApiError::Unavailable(
                "the database has not been migrated yet".into(),
            ));
        }
        let db = state.db.clone();
        let (result, changed, announced) = web::block(move || {
            let mut conn = match db.get() {
                Ok(conn) => conn,
                Err(error) => return (Err(error.into()), Vec::new(), None),
            };
            let result = work(&mut conn, &state);
            if let Err(ApiError::Unavailable(_)) = &result {
                db.discard(&mut conn);
                return (result, take_changed_users(), None);
            }
            let changed = take_changed_users();
            // After the commit, on the same connection: a marker that the
            // change feed hears only once the change is queued for every
            // instance.
            let announced = if changed.is_empty() {
                None
            } else {
                state.auth_cache.announce(&mut conn)
            };
            (result, changed, announced)
        })
        .await?;
        // Before the response leaves: the next request on this instance
        // must not be answered from what this one just changed...
        self.auth_cache.evict(&changed);
        // ...nor, past a bounded wait, on any other instance.
        if let Some(announced) = announced {
            self.auth_cache.settled(announced).await;
        }
        result
    }
}

type HashJob = Box<dyn FnOnce(&PasswordHasher) + Send>;

/// bcrypt runs here: one dedicated thread per core, off the async workers
/// and off the blocking pool the database work uses, so a burst of logins
/// queues here instead of taking every thread. (Running these threads at
/// the lowest priority was measured and rejected: cheap requests then ran
/// the CPU to saturation and their p99 tripled, while logins halved.)
///
/// The queue is bounded (`HASHING_QUEUE`): past it a request is refused at
/// once with 503, so a flood of logins sheds load instead of making every
/// login wait behind it.
pub struct HashingPool {
    hasher: Arc<PasswordHasher>,
    jobs: std::sync::mpsc::SyncSender<HashJob>,
    /// Jobs not run because their request was gone (`/metrics`).
    pub skipped: prometheus::IntCounter,
}

impl HashingPool {
    pub fn new(hasher: PasswordHasher, size: usize, queue: usize) -> std::io::Result<Self> {
        let hasher = Arc::new(hasher);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<HashJob>(queue);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..size.max(1) {
            let queue = Arc::clone(&queue);
            let hasher = Arc::clone(&hasher);
            std::thread::Builder::new()
                .name(format!("latchkey-bcrypt-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&hasher),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        let skipped = prometheus::IntCounter::new(
            "password_checks_skipped_total",
            "Queued password checks not run because their client had gone",
        )
        .map_err(std::io::Error::other)?;
        Ok(HashingPool {
            hasher,
            jobs,
            skipped,
        })
    }

    /// The longest password a new hash can be made of (72 bytes under
    /// bcrypt, 4096 otherwise): the limit every password form applies.
    pub fn max_password_bytes(&self) -> usize {
        self.hasher.max_password_bytes()
    }

    /// Makes the dummy hash on a thread of its own, so the first unknown
    /// email does not pay for it and start-up does not wait.
    pub fn warm_up_in_background(&self) {
        let hasher = Arc::clone(&self.hasher);
        std::thread::spawn(move || hasher.warm_up());
    }

    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let skipped = self.skipped.clone();
        let job: HashJob = Box::new(move |hasher| {
            // The request was dropped (its client went away) while queued:
            // nobody waits for this check, so it is not run.
            if done.is_closed() {
                skipped.inc();
                return;
            }
            let _ = done.send(work(hasher));
        });
        self.jobs.try_send(job).map_err(|error| match error {
            std::sync::mpsc::TrySendError::Full(_) => ApiError::Overloaded,
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                ApiError::Internal("the hashing threads are gone".into())
            }
        })?;
        result
            .await
            .map_err(|_| ApiError::Internal("a hashing job was dropped".into()))
    }
}

/// Now, in Unix seconds (the unit of `iat` and `exp`).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
