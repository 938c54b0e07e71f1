//! What every handler shares: settings, the pool, the token codec and the
//! password hashing pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::web;
use latchkey_auth::{PasswordHasher, RefreshPolicy, TokenCodec};
use latchkey_persistence::{Database, DbConnection};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::observability::Metrics;
use crate::settings::Settings;
use crate::throttle::Throttle;

pub struct AppState {
    pub settings: Settings,
    pub db: Database,
    pub codec: TokenCodec,
    pub hashing: HashingPool,
    pub refresh_policy: RefreshPolicy,
    pub throttle: Throttle,
    pub metrics: Metrics,
    /// False while the database could not be migrated yet (it was down at
    /// start-up): requests that need it get 503 until it is.
    pub schema_ready: AtomicBool,
}

impl AppState {
    /// Runs one request's whole database unit of work on the blocking pool,
    /// with one pooled connection.
    pub async fn with_conn<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        if !self.schema_ready.load(Ordering::Acquire) {
            return Err(ApiError::Unavailable(
                "the database has not been migrated yet".into(),
            ));
        }
        let db = self.db.clone();
        web::block(move || {
            let mut conn = db.get()?;
            let result = work(&mut conn);
            if let Err(ApiError::Unavailable(_)) = &result {
                db.discard(&mut conn);
            }
            result
        })
        .await?
    }
}

/// bcrypt runs here: at most one hash per core at a time, off the async
/// workers, so a burst of logins queues instead of starving cheap requests.
pub struct HashingPool {
    hasher: Arc<PasswordHasher>,
    permits: Arc<Semaphore>,
}

impl HashingPool {
    pub fn new(hasher: PasswordHasher, size: usize) -> Self {
        HashingPool {
            hasher: Arc::new(hasher),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
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
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(format!("hashing pool closed: {e}")))?;
        let hasher = Arc::clone(&self.hasher);
        Ok(web::block(move || work(&hasher)).await?)
    }
}

/// Now, in Unix seconds (the unit of `iat` and `exp`).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
