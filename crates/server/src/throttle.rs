//! Throttling: failed logins per account and auth requests per client IP,
//! counted in fixed windows, in memory or in Redis so that every instance
//! behind a load balancer shares the counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};

use crate::error::ApiError;
use crate::settings::{IpNet, Rate};
use crate::state::AppState;

/// Where the counters live.
pub enum CounterStore {
    Memory(Mutex<HashMap<String, Window>>),
    Redis(r2d2::Pool<redis::Client>),
}

pub struct Window {
    count: u32,
    ends: Instant,
}

/// Past the limit: wait this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl From<RetryAfter> for ApiError {
    fn from(wait: RetryAfter) -> Self {
        ApiError::Throttled(wait.0)
    }
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

const PREFIX: &str = "latchkey:throttle:";

impl CounterStore {
    pub fn memory() -> Self {
        CounterStore::Memory(Mutex::new(HashMap::new()))
    }

    pub fn redis(url: &str) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL={url:?} is not valid: {e}"))?;
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(2))
            .build_unchecked(client);
        Ok(CounterStore::Redis(pool))
    }

    /// Adds `by` (0 only reads) to the count of `key` in its window and
    /// returns the new count and the time left in the window.
    fn add(&self, key: &str, by: u32, window: Duration) -> Result<(u32, Duration), String> {
        match self {
            CounterStore::Memory(windows) => {
                let mut windows = windows
                    .lock()
                    .map_err(|_| "throttle lock poisoned".to_owned())?;
                let now = Instant::now();
                if windows.len() > 100_000 {
                    windows.retain(|_, w| w.ends > now);
                }
                let entry = windows.entry(key.to_owned()).or_insert(Window {
                    count: 0,
                    ends: now + window,
                });
                if entry.ends <= now {
                    *entry = Window {
                        count: 0,
                        ends: now + window,
                    };
                }
                entry.count = entry.count.saturating_add(by);
                Ok((entry.count, entry.ends.saturating_duration_since(now)))
            }
            CounterStore::Redis(pool) => {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                let key = format!("{PREFIX}{key}");
                let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                let (count, ttl): (u32, i64) = redis::pipe()
                    .atomic()
                    .cmd("INCRBY")
                    .arg(&key)
                    .arg(by)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ms)
                    .arg("NX")
                    .ignore()
                    .cmd("PTTL")
                    .arg(&key)
                    .query(&mut *conn)
                    .map_err(|e| e.to_string())?;
                Ok((
                    count,
                    Duration::from_millis(u64::try_from(ttl.max(0)).unwrap_or(0)),
                ))
            }
        }
    }

    fn reset(&self, key: &str) -> Result<(), String> {
        match self {
            CounterStore::Memory(windows) => {
                windows
                    .lock()
                    .map_err(|_| "throttle lock poisoned".to_owned())?
                    .remove(key);
                Ok(())
            }
            CounterStore::Redis(pool) => {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                redis::cmd("DEL")
                    .arg(format!("{PREFIX}{key}"))
                    .query::<()>(&mut *conn)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

pub struct Throttle {
    store: CounterStore,
    per_ip: Option<Rate>,
    login_failures: Option<Rate>,
    trusted_proxies: Vec<IpNet>,
}

impl Throttle {
    pub fn new(
        store: CounterStore,
        per_ip: Option<Rate>,
        login_failures: Option<Rate>,
        trusted_proxies: Vec<IpNet>,
    ) -> Self {
        Throttle {
            store,
            per_ip,
            login_failures,
            trusted_proxies,
        }
    }

    /// A store that cannot be reached does not lock everyone out: the
    /// request goes on and the failure is logged.
    fn fail_open<T: Default>(result: Result<T, String>) -> T {
        result.unwrap_or_else(|error| {
            log::warn!("throttle store unavailable, not throttling: {error}");
            T::default()
        })
    }

    /// Counts one auth request from this client; past the limit, refuses it.
    pub fn hit_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(rate) = self.per_ip else {
            return Ok(());
        };
        let (count, left) = Self::fail_open(self.store.add(&format!("ip:{ip}"), 1, rate.window));
        if count > rate.count {
            return Err(RetryAfter(whole_seconds(left).max(1)));
        }
        Ok(())
    }

    /// Refuses a login for an account that failed too often in the window.
    pub fn check_login(&self, account: &str) -> Result<(), RetryAfter> {
        let Some(rate) = self.login_failures else {
            return Ok(());
        };
        let (count, left) =
            Self::fail_open(self.store.add(&format!("login:{account}"), 0, rate.window));
        if count >= rate.count {
            return Err(RetryAfter(whole_seconds(left).max(1)));
        }
        Ok(())
    }

    pub fn login_failed(&self, account: &str) {
        if let Some(rate) = self.login_failures {
            Self::fail_open(self.store.add(&format!("login:{account}"), 1, rate.window));
        }
    }

    pub fn login_succeeded(&self, account: &str) {
        if self.login_failures.is_some() {
            Self::fail_open(self.store.reset(&format!("login:{account}")));
        }
    }

    /// The client's address: the socket's peer, or, when the peer is a
    /// trusted proxy, the nearest untrusted address in `X-Forwarded-For`.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(*ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted(ip))
                .unwrap_or(peer),
        )
    }
}

/// Middleware for the auth endpoints: one shared per-IP bucket.
pub async fn limit_per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => {
            let state = state.clone();
            match state.throttle.client_ip(req.request()) {
                Some(ip) => web::block(move || state.throttle.hit_ip(ip))
                    .await
                    .unwrap_or(Ok(())),
                None => Ok(()),
            }
        }
        None => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(wait) => {
            let response = ApiError::from(wait).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Option<Rate> {
        Some(Rate {
            count,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn per_ip_limit_allows_count_then_refuses() {
        let throttle = Throttle::new(CounterStore::memory(), rate(3, 60), None, vec![]);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.hit_ip(ip), Ok(()));
        }
        let RetryAfter(wait) = throttle.hit_ip(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert_eq!(throttle.hit_ip("10.0.0.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn login_failures_lock_the_account_until_a_success_resets() {
        let throttle = Throttle::new(CounterStore::memory(), None, rate(2, 900), vec![]);
        assert_eq!(throttle.check_login("a@example.com"), Ok(()));
        throttle.login_failed("a@example.com");
        assert_eq!(throttle.check_login("a@example.com"), Ok(()));
        throttle.login_failed("a@example.com");
        assert!(throttle.check_login("a@example.com").is_err());
        assert_eq!(throttle.check_login("b@example.com"), Ok(()));
        throttle.login_succeeded("a@example.com");
        assert_eq!(throttle.check_login("a@example.com"), Ok(()));
    }

    #[test]
    fn off_means_never_throttled() {
        let throttle = Throttle::new(CounterStore::memory(), None, None, vec![]);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert_eq!(throttle.hit_ip(ip), Ok(()));
        }
    }
}
