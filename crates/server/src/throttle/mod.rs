//! Throttling: failed logins per account, auth requests per client IP and
//! emails sent per address, counted in fixed windows, in memory or in Redis
//! so that every instance behind a load balancer shares the counts.
//!
//! Every hit is one atomic step that returns the new count, and a request is
//! refused when its own hit takes the count past the limit: N parallel
//! requests can never get more than the limit's worth through. A login
//! reserves its password check this way *before* the check is made
//! ([`Throttle::reserve_login`]), and a success resets the account's count.
//!
//! Where the counts are kept: [`counters`] (this instance's memory, always
//! there) and [`redis`] (shared, with `REDIS_URL`; while it fails or is slow
//! the instance counts in memory). The client address a per-IP hit is keyed
//! by comes from `crate::net::client_ip`.

mod counters;
mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_domain::Email;

use crate::error::ApiError;
use crate::net::client_ip::network_key;
use counters::MemoryCounters;
use redis::Redis;

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
/// Longest window honoured (longer ones are cut to it).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The kinds of counter, each with a key prefix and a cache of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Auth requests per client IP (IPv6 per network).
    Ip,
    /// Failed password checks per account.
    Login,
    /// Emails sent per address.
    Address,
}

impl Kind {
    fn key(self, name: &str) -> String {
        let prefix = match self {
            Kind::Ip => "ip:",
            Kind::Login => "login:",
            Kind::Address => "address:",
        };
        format!("{prefix}{name}")
    }
}

struct Memory {
    ip: MemoryCounters,
    login: MemoryCounters,
    address: MemoryCounters,
}

impl Memory {
    fn of(&self, kind: Kind) -> &MemoryCounters {
        match kind {
            Kind::Ip => &self.ip,
            Kind::Login => &self.login,
            Kind::Address => &self.address,
        }
    }
}

/// `COUNT/DURATION`, e.g. `10/15m`; `None` when set to `0` (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

/// What the throttle is configured with.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// `THROTTLE_AUTH_PER_IP` (default `60/1m`): auth requests per client IP.
    pub per_ip: Option<Rate>,
    /// `THROTTLE_LOGIN_FAILURES` (default `10/15m`): failed password checks per account.
    pub login_failures: Option<Rate>,
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
    inner: Arc<Inner>,
}

struct Inner {
    settings: ThrottleSettings,
    memory: Memory,
    redis: Option<Arc<Redis>>,
}

/// One password check reserved for an account: it already counts as a
/// failure, and the count is reset when the password turns out right.
#[must_use = "say how the password check ended"]
pub struct LoginAttempt {
    throttle: Throttle,
    key: Option<String>,
    /// Where the reserved attempt was counted: it is given back there.
    counted_in: Store,
}

/// Where a hit was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Redis,
    Memory,
}

impl LoginAttempt {
    /// The password was right: the account's failure count is reset.
    pub async fn succeeded(self) {
        let Some(key) = self.key else { return };
        let inner = &self.throttle.inner;
        inner.memory.login.reset(&key);
        if let Some(redis) = &inner.redis {
            if redis.is_up() {
                if let Err(error) = redis.call(move |redis| redis.reset(&key)).await {
                    redis.mark_down(&error);
                }
            } else {
                redis.probe_when_due();
            }
        }
    }

    /// The password was wrong: the reserved attempt stays counted.
    pub fn failed(self) {}

    /// The password was right but the login is not complete (a second
    /// factor is due): the reserved attempt is given back where it was
    /// counted, and earlier failures stay counted.
    pub async fn given_back(self) {
        let Some(key) = self.key else { return };
        let inner = &self.throttle.inner;
        match (self.counted_in, &inner.redis) {
            (Store::Redis, Some(redis)) => {
                // Redis went away meanwhile: the attempt stays counted
                // there until its window ends (the safe side).
                if let Err(error) = redis.call(move |redis| redis.give_back(&key)).await {
                    redis.mark_down(&error);
                }
            }
            _ => inner.memory.login.give_back(&key),
        }
    }
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Result<Self, String> {
        let redis = match &settings.redis_url {
            Some(url) => {
                let timeout = settings.redis_timeout.max(Duration::from_millis(1));
                let redis = Arc::new(Redis::open(url, timeout)?);
                // an unreachable Redis is found (and logged) at start-up,
                // not by the first request
                redis.probe_in_background();
                Some(redis)
            }
            None => None,
        };
        Ok(Throttle {
            inner: Arc::new(Inner {
                settings,
                memory: Memory {
                    ip: MemoryCounters::new(),
                    login: MemoryCounters::new(),
                    address: MemoryCounters::new(),
                },
                redis,
            }),
        })
    }

    /// Whether the shared counters answer: `None` without Redis.
    pub fn redis_up(&self) -> Option<bool> {
        let redis = self.inner.redis.as_ref()?;
        let up = redis.is_up();
        if !up {
            redis.probe_when_due();
        }
        Some(up)
    }

    /// Counts one hit on `key`; refused when it takes the count past the
    /// rate. In Redis while it answers, else in memory.
    async fn hit(&self, kind: Kind, key: String, rate: Rate) -> Result<Store, RetryAfter> {
        let window = rate.window.clamp(Duration::from_millis(1), MAX_WINDOW);
        let limit = u64::from(rate.count);
        let memory = self.inner.memory.of(kind);
        let refuse = |left: Duration| Err(RetryAfter(whole_seconds(left).max(1)));
        if let Some(redis) = &self.inner.redis {
            if redis.is_up() {
                let shared = key.clone();
                match redis.call(move |redis| redis.hit(&shared, 1, window)).await {
                    Ok((count, left)) => {
                        if count > limit {
                            return refuse(left);
                        }
                        // what this instance counted during an outage
                        // still counts until its window ends
                        return match memory.peek(&key) {
                            Some((local, local_left)) if count.saturating_add(local) > limit => {
                                refuse(local_left)
                            }
                            _ => Ok(Store::Redis),
                        };
                    }
                    Err(error) => redis.mark_down(&error),
                }
            } else {
                redis.probe_when_due();
            }
        }
        let (count, left) = memory.hit(&key, 1, window);
        if count > limit {
            return refuse(left);
        }
        Ok(Store::Memory)
    }

    /// The key of an address's per-IP bucket: an IPv4 address (also when
    /// v4-mapped), or the IPv6 network of `THROTTLE_IPV6_PREFIX` bits.
    fn ip_bucket(&self, ip: IpAddr) -> String {
        network_key(ip, self.inner.settings.ipv6_prefix)
    }

    /// Counts one auth request from this client; past the limit, refuses it.
    pub async fn hit_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(rate) = self.inner.settings.per_ip else {
            return Ok(());
        };
        let key = Kind::Ip.key(&self.ip_bucket(ip));
        self.hit(Kind::Ip, key, rate).await.map(|_| ())
    }

    /// Counts one email sent to `email` (a counter of its own, key prefix
    /// `address:`, apart from login failures); past `rate`, refuses it. In
    /// Redis when configured, with the same fallback as every counter. The
    /// window starts at the first hit; callers sharing one address's counter
    /// should pass the same rate (a `count` of 0 refuses every hit: map an
    /// "off" setting to no call at all).
    pub async fn hit_address(&self, email: &Email, rate: Rate) -> Result<(), RetryAfter> {
        let key = Kind::Address.key(email.as_str());
        self.hit(Kind::Address, key, rate).await.map(|_| ())
    }

    /// Reserves one password check for the account before it is made: the
    /// attempt is counted as a failure at once, in one atomic step, and
    /// refused when that takes the account past its limit. Say how the
    /// check ended with [`LoginAttempt::succeeded`] or [`LoginAttempt::failed`].
    pub async fn reserve_login(&self, account: &Email) -> Result<LoginAttempt, RetryAfter> {
        let Some(rate) = self.inner.settings.login_failures else {
            return Ok(LoginAttempt {
                throttle: self.clone(),
                key: None,
                counted_in: Store::Memory,
            });
        };
        let key = Kind::Login.key(account.as_str());
        let counted_in = self.hit(Kind::Login, key.clone(), rate).await?;
        Ok(LoginAttempt {
            throttle: self.clone(),
            key: Some(key),
            counted_in,
        })
    }

    /// Clears the account's failed logins, even past the limit: its owner
    /// proved who they are another way (a password reset).
    pub async fn reset_login(&self, account: &Email) {
        if self.inner.settings.login_failures.is_none() {
            return;
        }
        LoginAttempt {
            throttle: self.clone(),
            key: Some(Kind::Login.key(account.as_str())),
            counted_in: Store::Memory,
        }
        .succeeded()
        .await;
    }

    /// [`Throttle::reserve_login`] for a stored user's address (`None`
    /// for one that is not an email, which has no counter).
    pub async fn reserve_login_of(&self, email: &str) -> Result<Option<LoginAttempt>, RetryAfter> {
        match Email::parse(email) {
            Ok(email) => self.reserve_login(&email).await.map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

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
    async fn a_given_back_attempt_keeps_earlier_failures() {
        let throttle = throttle(None, rate(3, 900));
        let a = email("a@example.com");
        throttle.reserve_login(&a).await.unwrap().failed();
        throttle.reserve_login(&a).await.unwrap().failed();
        // right passwords that stop at the second factor, as many as wished
        for _ in 0..5 {
            throttle.reserve_login(&a).await.unwrap().given_back().await;
        }
        // the two failures still count: one more reaches the limit
        throttle.reserve_login(&a).await.unwrap().failed();
        assert!(throttle.reserve_login(&a).await.is_err());
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

    fn with(settings: impl FnOnce(&mut ThrottleSettings)) -> Throttle {
        let mut base = ThrottleSettings {
            per_ip: None,
            login_failures: None,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            redis_url: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
        };
        settings(&mut base);
        Throttle::new(base).unwrap()
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn parallel_reservations_from_many_threads_get_exactly_the_limit() {
        let throttle = throttle(None, rate(10, 900));
        let account = email("jae@example.com");
        let granted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    actix_web::rt::System::new().block_on(async {
                        for _ in 0..10 {
                            if let Ok(attempt) = throttle.reserve_login(&account).await {
                                granted.fetch_add(1, Ordering::SeqCst);
                                attempt.failed();
                            }
                        }
                    });
                });
            }
        });
        assert_eq!(granted.load(Ordering::SeqCst), 10);
    }

    #[actix_web::test]
    async fn a_success_resets_and_a_refusal_says_how_long() {
        let throttle = throttle(None, rate(2, 900));
        let a = email("a@example.com");
        throttle.reserve_login(&a).await.unwrap().failed();
        throttle.reserve_login(&a).await.unwrap().succeeded().await;
        throttle.reserve_login(&a).await.unwrap().failed();
        throttle.reserve_login(&a).await.unwrap().failed();
        let RetryAfter(wait) = throttle.reserve_login(&a).await.err().unwrap();
        assert!((899..=900).contains(&wait), "{wait}");
        // the normalised email is the key
        assert!(
            throttle
                .reserve_login(&email(" A@EXAMPLE.com"))
                .await
                .is_err()
        );
    }

    #[actix_web::test]
    async fn a_window_ends() {
        let throttle = with(|s| {
            s.per_ip = Some(Rate {
                count: 1,
                window: Duration::from_millis(40),
            })
        });
        let client = ip("10.0.0.1");
        assert_eq!(throttle.hit_ip(client).await, Ok(()));
        assert_eq!(throttle.hit_ip(client).await, Err(RetryAfter(1)));
        actix_web::rt::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(throttle.hit_ip(client).await, Ok(()));
    }

    #[actix_web::test]
    async fn address_counters_are_apart_from_login_failures() {
        let throttle = throttle(None, rate(1, 900));
        let a = email("a@example.com");
        let per_hour = Rate {
            count: 2,
            window: Duration::from_secs(3600),
        };
        assert_eq!(throttle.hit_address(&a, per_hour).await, Ok(()));
        assert_eq!(throttle.hit_address(&a, per_hour).await, Ok(()));
        assert!(throttle.hit_address(&a, per_hour).await.is_err());
        throttle.reserve_login(&a).await.unwrap().failed();
        assert!(throttle.reserve_login(&a).await.is_err());
        let b = email("b@example.com");
        assert_eq!(throttle.hit_address(&b, per_hour).await, Ok(()));
    }

    #[actix_web::test]
    async fn one_slash_64_is_one_bucket() {
        let throttle = throttle(rate(2, 60), None);
        assert_eq!(throttle.hit_ip(ip("2001:db8:1:2::1")).await, Ok(()));
        assert_eq!(throttle.hit_ip(ip("2001:db8:1:2::2")).await, Ok(()));
        assert!(throttle.hit_ip(ip("2001:db8:1:2:abcd::3")).await.is_err());
        assert_eq!(throttle.hit_ip(ip("2001:db8:1:3::1")).await, Ok(()));
        assert_eq!(throttle.hit_ip(ip("::ffff:10.0.0.1")).await, Ok(()));
        assert_eq!(throttle.hit_ip(ip("10.0.0.1")).await, Ok(()));
        assert!(throttle.hit_ip(ip("10.0.0.1")).await.is_err());
    }
}
