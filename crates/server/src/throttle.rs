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

use latchkey_domain::Email;

use crate::error::ApiError;
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

/// `COUNT/DURATION`, e.g. `10/15m`; `None` when set to `0` (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

/// An address or CIDR range allowed to set `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What the throttle is configured with.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// `THROTTLE_AUTH_PER_IP` (default `60/1m`): auth requests per client IP.
    pub per_ip: Option<Rate>,
    /// `THROTTLE_LOGIN_FAILURES` (default `10/15m`): failed password checks per account.
    pub login_failures: Option<Rate>,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `THROTTLE_IPV6_PREFIX` (default 64): IPv6 clients share a bucket per prefix.
    pub ipv6_prefix: u8,
    /// `REDIS_URL`: counters shared by every instance.
    pub redis_url: Option<String>,
    /// `REDIS_TIMEOUT` (default 500 ms): past it, the instance counts in memory.
    pub redis_timeout: Duration,
}

pub const DEFAULT_PER_IP: &str = "60/1m";
pub const DEFAULT_LOGIN_FAILURES: &str = "10/15m";
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Throttle {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    store: CounterStore,
    settings: ThrottleSettings,
}

/// One password check reserved for an account: it already counts as a
/// failure, and is given back when the password turns out right.
#[must_use = "say how the password check ended"]
pub struct LoginAttempt {
    throttle: Throttle,
    key: Option<String>,
}

impl LoginAttempt {
    /// The password was right: the account's failure count is reset.
    pub async fn succeeded(self) {
        let Some(key) = self.key else { return };
        let throttle = self.throttle.clone();
        let _ = web::block(move || Throttle::fail_open(throttle.inner.store.reset(&key))).await;
    }

    /// The password was wrong: the reserved attempt stays counted.
    pub fn failed(self) {}
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Result<Self, String> {
        let store = match &settings.redis_url {
            Some(url) => CounterStore::redis(url)?,
            None => CounterStore::memory(),
        };
        Ok(Throttle {
            inner: std::sync::Arc::new(Inner { store, settings }),
        })
    }

    /// Whether the shared counters are reachable: `None` without Redis.
    pub fn redis_up(&self) -> Option<bool> {
        match self.inner.store {
            CounterStore::Redis(_) => Some(true),
            CounterStore::Memory(_) => None,
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
    pub async fn hit_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(rate) = self.inner.settings.per_ip else {
            return Ok(());
        };
        let throttle = self.clone();
        let (count, left) = web::block(move || {
            Self::fail_open(
                throttle
                    .inner
                    .store
                    .add(&format!("ip:{ip}"), 1, rate.window),
            )
        })
        .await
        .unwrap_or_default();
        if count > rate.count {
            return Err(RetryAfter(whole_seconds(left).max(1)));
        }
        Ok(())
    }

    /// Reserves one password check for the account before it is made:
    /// refused once the account has failed too often in the window.
    pub async fn reserve_login(&self, account: &Email) -> Result<LoginAttempt, RetryAfter> {
        let Some(rate) = self.inner.settings.login_failures else {
            return Ok(LoginAttempt {
                throttle: self.clone(),
                key: None,
            });
        };
        let key = format!("login:{}", account.as_str());
        let throttle = self.clone();
        let probe = key.clone();
        let (count, left) =
            web::block(move || Self::fail_open(throttle.inner.store.add(&probe, 0, rate.window)))
                .await
                .unwrap_or_default();
        if count >= rate.count {
            return Err(RetryAfter(whole_seconds(left).max(1)));
        }
        let throttle = self.clone();
        let counted = key.clone();
        let _ =
            web::block(move || Self::fail_open(throttle.inner.store.add(&counted, 1, rate.window)))
                .await;
        Ok(LoginAttempt {
            throttle: self.clone(),
            key: Some(key),
        })
    }

    /// The client's address: the socket's peer, or, when the peer is a
    /// trusted proxy, the nearest untrusted address in `X-Forwarded-For`.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip().to_canonical();
        let trusted = |ip: &IpAddr| {
            self.inner
                .settings
                .trusted_proxies
                .iter()
                .any(|net| net.contains(*ip))
        };
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

    /// Whether a peer is one of `TRUSTED_PROXIES` (whose forwarded headers
    /// are believed).
    pub fn is_trusted_proxy(&self, req: &HttpRequest) -> bool {
        req.peer_addr().is_some_and(|peer| {
            let peer = peer.ip().to_canonical();
            self.inner
                .settings
                .trusted_proxies
                .iter()
                .any(|net| net.contains(peer))
        })
    }
}

/// Middleware for the auth endpoints: one shared per-IP bucket.
pub async fn limit_per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => match state.throttle.client_ip(req.request()) {
            Some(ip) => state.throttle.hit_ip(ip).await,
            None => Ok(()),
        },
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

    fn throttle(per_ip: Option<Rate>, login_failures: Option<Rate>) -> Throttle {
        Throttle::new(ThrottleSettings {
            per_ip,
            login_failures,
            trusted_proxies: vec![],
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            redis_url: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
        })
        .unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    #[actix_web::test]
    async fn per_ip_limit_allows_count_then_refuses() {
        let throttle = throttle(rate(3, 60), None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.hit_ip(ip).await, Ok(()));
        }
        let RetryAfter(wait) = throttle.hit_ip(ip).await.unwrap_err();
        assert!((1..=60).contains(&wait));
        assert_eq!(throttle.hit_ip("10.0.0.2".parse().unwrap()).await, Ok(()));
    }

    #[actix_web::test]
    async fn login_failures_lock_the_account_until_a_success_resets() {
        let throttle = throttle(None, rate(2, 900));
        let a = email("a@example.com");
        throttle.reserve_login(&a).await.unwrap().failed();
        throttle.reserve_login(&a).await.unwrap().failed();
        assert!(throttle.reserve_login(&a).await.is_err());
        throttle
            .reserve_login(&email("b@example.com"))
            .await
            .unwrap()
            .succeeded()
            .await;
    }

    #[actix_web::test]
    async fn off_means_never_throttled() {
        let throttle = throttle(None, None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert_eq!(throttle.hit_ip(ip).await, Ok(()));
        }
    }
}
