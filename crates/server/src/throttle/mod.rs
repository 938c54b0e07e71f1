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
//! **Memory store.** The counters live in [`moka`] caches, one per kind of
//! key (IP buckets, accounts, email addresses), so a flood of one kind cannot
//! evict the others. moka is a concurrent, sharded cache: `and_upsert_with`
//! runs under a lock of that one key, and each entry expires by itself at the
//! end of its window (a per-entry expiry), so no request ever scans the map or
//! holds a global lock; expired entries go in moka's amortised housekeeping.
//! Memory is bounded: each cache has a byte budget ([`MEMORY_BUDGET`], the
//! key's length plus [`ENTRY_OVERHEAD`] per entry, keys being at most an email
//! of 254 bytes) and evicts the least recently used entries. LRU is chosen
//! over moka's default TinyLFU admission because TinyLFU may decline to store
//! a new key at all, and a counter that is not stored never reaches its
//! limit; under LRU an account being guessed at is touched by every guess, so
//! evicting it takes more new keys between two guesses than the budget holds.
//!
//! **Redis.** With `REDIS_URL` set, each hit is one Lua `EVAL` (INCRBY, then
//! PEXPIRE when the key has no expiry yet, atomically; any Redis version with
//! scripting), run on the blocking pool, never on an async worker. Every step
//! is bounded by `REDIS_TIMEOUT`: the connection (its setup included), reads,
//! writes, the wait for a pooled connection, and the whole call as the request
//! sees it. When Redis fails or is slow, throttling does not turn off: the
//! instance counts in its own memory, logs one warning for the outage, and
//! stops calling Redis from requests; a background probe (at most one a
//! second) brings it back, with one info line. Counts made in memory during an
//! outage still count, added to Redis's, until their window ends.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};

use latchkey_domain::Email;

use crate::error::ApiError;
use crate::state::AppState;

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

/// Prefix of every Redis key.
const PREFIX: &str = "latchkey:throttle:";
/// Byte budget of each in-memory cache (weighed as key length plus
/// [`ENTRY_OVERHEAD`]): about 80,000 email keys or 100,000 IP keys each.
pub const MEMORY_BUDGET: u64 = 16 * 1024 * 1024;
/// What one entry costs besides its key, as weighed against the budget.
pub const ENTRY_OVERHEAD: u32 = 160;
/// Longest window honoured (longer ones are cut to it).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// While Redis is down, it is tried again at most this often.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Redis connections per instance.
const POOL_SIZE: u32 = 16;

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

/// One fixed window of a counter.
#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

/// Each entry expires when its window ends.
struct WindowExpiry;

impl moka::Expiry<String, Window> for WindowExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        window: &Window,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        window: &Window,
        updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(updated_at))
    }
}

/// Counters of one kind in this instance's memory.
struct MemoryCounters {
    cache: moka::sync::Cache<String, Window>,
}

impl MemoryCounters {
    fn new() -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(MEMORY_BUDGET)
            .weigher(|key: &String, _: &Window| {
                u32::try_from(key.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(WindowExpiry)
            .build();
        MemoryCounters { cache }
    }

    /// Adds `by` to the key's count in its window, atomically (moka runs the
    /// update under the key's own lock); returns the new count and the time
    /// left in the window.
    fn hit(&self, key: &str, by: u64, window: Duration) -> (u64, Duration) {
        let now = Instant::now();
        let entry = self.cache.entry_by_ref(key).and_upsert_with(|current| {
            match current.map(moka::Entry::into_value) {
                Some(live) if live.ends > now => Window {
                    count: live.count.saturating_add(by),
                    ends: live.ends,
                },
                _ => Window {
                    count: by,
                    ends: now + window,
                },
            }
        });
        let counted = entry.into_value();
        (counted.count, counted.ends.saturating_duration_since(now))
    }

    /// The key's count and time left, if its window is live.
    fn peek(&self, key: &str) -> Option<(u64, Duration)> {
        let now = Instant::now();
        self.cache
            .get(key)
            .filter(|window| window.ends > now)
            .map(|window| (window.count, window.ends.saturating_duration_since(now)))
    }

    fn reset(&self, key: &str) {
        self.cache.invalidate(key);
    }

    #[cfg(test)]
    fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
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

/// Makes pooled Redis connections whose connect, reads and writes are all
/// bounded by `REDIS_TIMEOUT` (the redis crate's own r2d2 support connects
/// without a timeout).
struct RedisConnector {
    client: redis::Client,
    timeout: Duration,
}

/// A pooled connection. One whose command failed (a timeout, say) is not
/// given back to the pool: its late reply would answer the next command.
struct RedisConnection {
    conn: redis::Connection,
    failed: bool,
}

impl RedisConnection {
    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, String> {
        cmd.query(&mut self.conn).map_err(|error| {
            self.failed = true;
            error.to_string()
        })
    }
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = RedisConnection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<RedisConnection, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(RedisConnection {
            conn,
            failed: false,
        })
    }

    fn is_valid(&self, conn: &mut RedisConnection) -> Result<(), redis::RedisError> {
        let valid = redis::cmd("PING").query::<()>(&mut conn.conn);
        conn.failed |= valid.is_err();
        valid
    }

    fn has_broken(&self, conn: &mut RedisConnection) -> bool {
        use redis::ConnectionLike;
        conn.failed || !conn.conn.is_open()
    }
}

/// INCRBY the key; give it the window's expiry when it has none (new);
/// answer the new count and the milliseconds left. One atomic step.
const HIT_SCRIPT: &str = "\
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {n, ttl}";

/// The shared counters, and whether they answer.
struct Redis {
    pool: r2d2::Pool<RedisConnector>,
    timeout: Duration,
    up: AtomicBool,
    /// Milliseconds after `epoch` before which Redis is not tried again.
    next_probe: AtomicU64,
    epoch: Instant,
}

impl Redis {
    fn open(url: &str, timeout: Duration) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL is not valid: {e}"))?;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            // the outage is logged once, by the throttle, not per attempt
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(RedisConnector { client, timeout });
        Ok(Redis {
            pool,
            timeout,
            up: AtomicBool::new(true),
            next_probe: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<RedisConnector>, String> {
        self.pool.get().map_err(|e| e.to_string())
    }

    fn hit(&self, key: &str, by: u64, window: Duration) -> Result<(u64, Duration), String> {
        let mut conn = self.connection()?;
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut eval = redis::cmd("EVAL");
        eval.arg(HIT_SCRIPT)
            .arg(1)
            .arg(format!("{PREFIX}{key}"))
            .arg(by)
            .arg(ms);
        let (count, ttl): (i64, i64) = conn.query(&eval)?;
        Ok((
            u64::try_from(count).unwrap_or(0),
            Duration::from_millis(u64::try_from(ttl).unwrap_or(0)),
        ))
    }

    fn reset(&self, key: &str) -> Result<(), String> {
        let mut conn = self.connection()?;
        conn.query(redis::cmd("DEL").arg(format!("{PREFIX}{key}")))
    }

    fn ping(&self) -> Result<(), String> {
        let mut conn = self.connection()?;
        conn.query(&redis::cmd("PING"))
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn interval_ms() -> u64 {
        u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(1000)
    }

    /// Redis failed: count in memory from now on; warn once per outage.
    fn mark_down(&self, error: &str) {
        self.next_probe.store(
            self.now_ms().saturating_add(Self::interval_ms()),
            Ordering::Release,
        );
        if self.up.swap(false, Ordering::AcqRel) {
            log::warn!(
                "throttle: Redis is unreachable or slow ({error}); counting in this \
                 instance's memory until it answers again"
            );
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            log::info!("throttle: Redis answers again; counters are shared again");
        }
    }

    /// While down: tries Redis again in the background, at most once per
    /// [`PROBE_INTERVAL`], so that no request waits for it.
    fn probe_when_due(self: &Arc<Self>) {
        let now = self.now_ms();
        let due = self.next_probe.load(Ordering::Acquire);
        if now < due
            || self
                .next_probe
                .compare_exchange(
                    due,
                    now.saturating_add(Self::interval_ms()),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return;
        }
        self.probe_in_background();
    }

    fn probe_in_background(self: &Arc<Self>) {
        let redis = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("latchkey-redis-probe".into())
            .spawn(move || match redis.ping() {
                Ok(()) => redis.mark_up(),
                Err(error) => redis.mark_down(&error),
            });
        if let Err(error) = spawned {
            log::debug!("throttle: cannot start the Redis probe: {error}");
        }
    }

    /// Runs `op` on the blocking pool; past `REDIS_TIMEOUT` the request
    /// stops waiting for it (the call itself ends by its own timeouts).
    async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Redis) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let redis = Arc::clone(self);
        let timeout = self.timeout;
        match actix_web::rt::time::timeout(timeout, web::block(move || op(&redis))).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
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
    async fn hit(&self, kind: Kind, key: String, rate: Rate) -> Result<(), RetryAfter> {
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
                            _ => Ok(()),
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
        Ok(())
    }

    /// The key of an address's per-IP bucket: an IPv4 address (also when
    /// v4-mapped), or the IPv6 network of `THROTTLE_IPV6_PREFIX` bits.
    fn ip_bucket(&self, ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let prefix = self.inner.settings.ipv6_prefix.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                let net = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{net}/{prefix}")
            }
        }
    }

    /// Counts one auth request from this client; past the limit, refuses it.
    pub async fn hit_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(rate) = self.inner.settings.per_ip else {
            return Ok(());
        };
        let key = Kind::Ip.key(&self.ip_bucket(ip));
        self.hit(Kind::Ip, key, rate).await
    }

    /// Counts one email sent to `email` (a counter of its own, key prefix
    /// `address:`, apart from login failures); past `rate`, refuses it. In
    /// Redis when configured, with the same fallback as every counter. The
    /// window starts at the first hit; callers sharing one address's counter
    /// should pass the same rate (a `count` of 0 refuses every hit: map an
    /// "off" setting to no call at all).
    pub async fn hit_address(&self, email: &Email, rate: Rate) -> Result<(), RetryAfter> {
        let key = Kind::Address.key(email.as_str());
        self.hit(Kind::Address, key, rate).await
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
            });
        };
        let key = Kind::Login.key(account.as_str());
        self.hit(Kind::Login, key.clone(), rate).await?;
        Ok(LoginAttempt {
            throttle: self.clone(),
            key: Some(key),
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
        }
        .succeeded()
        .await;
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.inner
            .settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip))
    }

    /// The client's address (canonical: a v4-mapped address as IPv4): the
    /// socket's peer or, when the peer is a trusted proxy, the rightmost
    /// `X-Forwarded-For` entry that is not a trusted proxy. When that entry
    /// cannot be read, the peer: never an entry further left, which the
    /// client may have written.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip().to_canonical();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let values: Vec<Option<&str>> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(|value| value.to_str().ok())
            .collect();
        for value in values.into_iter().rev() {
            let Some(value) = value else {
                return Some(peer);
            };
            for entry in value.rsplit(',') {
                match forwarded_address(entry) {
                    None => return Some(peer),
                    Some(ip) if self.trusted(ip) => {}
                    Some(ip) => return Some(ip),
                }
            }
        }
        Some(peer)
    }

    /// Whether a peer is one of `TRUSTED_PROXIES` (whose forwarded headers
    /// are believed).
    pub fn is_trusted_proxy(&self, req: &HttpRequest) -> bool {
        req.peer_addr()
            .is_some_and(|peer| self.trusted(peer.ip().to_canonical()))
    }
}

/// One `X-Forwarded-For` entry as an address: `ip`, `ip:port`, `[ipv6]` or
/// `[ipv6]:port`, canonical.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
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

    fn with(settings: impl FnOnce(&mut ThrottleSettings)) -> Throttle {
        let mut base = ThrottleSettings {
            per_ip: None,
            login_failures: None,
            trusted_proxies: vec![],
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

    #[test]
    fn ipv6_is_keyed_by_its_network_and_v4_mapped_as_ipv4() {
        let throttle = throttle(None, None);
        assert_eq!(
            throttle.ip_bucket(ip("2001:db8:1:2::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            throttle.ip_bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            throttle.ip_bucket(ip("2001:db8:1:3::1")),
            "2001:db8:1:3::/64"
        );
        assert_eq!(throttle.ip_bucket(ip("::ffff:203.0.113.9")), "203.0.113.9");
        assert_eq!(throttle.ip_bucket(ip("203.0.113.9")), "203.0.113.9");
        let full = with(|s| s.ipv6_prefix = 128);
        assert_eq!(full.ip_bucket(ip("2001:db8::1")), "2001:db8::1/128");
        let all = with(|s| s.ipv6_prefix = 0);
        assert_eq!(all.ip_bucket(ip("2001:db8::1")), "::/0");
        let wide = with(|s| s.ipv6_prefix = 48);
        assert_eq!(wide.ip_bucket(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
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

    #[test]
    fn forwarded_entries_are_read_with_or_without_a_port() {
        assert_eq!(forwarded_address(" 203.0.113.8 "), Some(ip("203.0.113.8")));
        assert_eq!(
            forwarded_address("203.0.113.8:5555"),
            Some(ip("203.0.113.8"))
        );
        assert_eq!(
            forwarded_address("[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(forwarded_address("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_address("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_address("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(
            forwarded_address("[::ffff:1.2.3.4]:80"),
            Some(ip("1.2.3.4"))
        );
        for unreadable in [
            "",
            "unknown",
            "203.0.113.8:port",
            "[2001:db8::1",
            "1.2.3.4.5",
        ] {
            assert_eq!(forwarded_address(unreadable), None, "{unreadable:?}");
        }
    }

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for value in forwarded {
            req = req.append_header(("x-forwarded-for", *value));
        }
        req.to_http_request()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_entry_or_the_peer() {
        let throttle = with(|s| {
            s.trusted_proxies = vec![
                IpNet {
                    addr: ip("127.0.0.1"),
                    prefix: 32,
                },
                IpNet {
                    addr: ip("10.0.0.0"),
                    prefix: 8,
                },
            ]
        });
        let client = |peer: &str, forwarded: &[&str]| {
            throttle
                .client_ip(&request(peer, forwarded))
                .unwrap()
                .to_string()
        };
        // an untrusted peer's header is not believed
        assert_eq!(client("192.0.2.1:1", &["203.0.113.1"]), "192.0.2.1");
        assert_eq!(client("127.0.0.1:1", &[]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, 203.0.113.8:5555"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, [2001:db8::8]:443"]),
            "2001:db8::8"
        );
        // trusted hops are skipped
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, 203.0.113.8, 10.1.1.1:80"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6", "203.0.113.8", "10.1.1.1"]),
            "203.0.113.8"
        );
        // an unreadable rightmost untrusted entry: the peer, not what is left of it
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6, garbage"]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, garbage, 10.0.0.1"]),
            "127.0.0.1"
        );
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6", "garbage"]), "127.0.0.1");
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6,"]), "127.0.0.1");
        // only proxies: the peer
        assert_eq!(client("127.0.0.1:1", &["10.0.0.1"]), "127.0.0.1");
        // v4-mapped: the peer matches TRUSTED_PROXIES, entries come out as IPv4
        assert_eq!(
            client("[::ffff:127.0.0.1]:1", &["::ffff:203.0.113.8"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("[::ffff:192.0.2.1]:1", &["203.0.113.8"]),
            "192.0.2.1"
        );
        // the full address is kept (the bucket is what takes the /64)
        assert_eq!(client("127.0.0.1:1", &["2001:db8::1:2"]), "2001:db8::1:2");
        assert!(throttle.is_trusted_proxy(&request("[::ffff:127.0.0.1]:1", &[])));
        assert!(!throttle.is_trusted_proxy(&request("192.0.2.1:1", &[])));
    }

    #[test]
    fn memory_is_bounded() {
        let counters = MemoryCounters::new();
        let window = Duration::from_secs(900);
        let key = |i: usize| format!("login:{i:0>240}@example.com");
        for i in 0..150_000 {
            counters.hit(&key(i), 1, window);
        }
        let per_entry = u64::from(ENTRY_OVERHEAD) + 256;
        assert!(
            counters.entries() <= MEMORY_BUDGET / per_entry + 1_000,
            "{} entries",
            counters.entries()
        );
        // the newest are kept
        assert_eq!(counters.peek(&key(149_999)).map(|(n, _)| n), Some(1));
    }

    fn unreachable_redis_url() -> String {
        // a port that was free a moment ago: connections are refused
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    fn with_redis(url: &str) -> Throttle {
        with(|s| {
            s.login_failures = rate(2, 900);
            s.per_ip = rate(3, 60);
            s.redis_url = Some(url.to_owned());
            s.redis_timeout = Duration::from_millis(200);
        })
    }

    /// Every call answers within the timeout (and some slack), whatever
    /// Redis does.
    async fn quick<T>(call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        result
    }

    async fn still_throttled(throttle: &Throttle) {
        let a = email("a@example.com");
        quick(throttle.reserve_login(&a)).await.unwrap().failed();
        quick(throttle.reserve_login(&a)).await.unwrap().failed();
        assert!(quick(throttle.reserve_login(&a)).await.is_err());
        let client = ip("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(quick(throttle.hit_ip(client)).await, Ok(()));
        }
        assert!(quick(throttle.hit_ip(client)).await.is_err());
        assert_eq!(throttle.redis_up(), Some(false));
    }

    #[actix_web::test]
    async fn an_unreachable_redis_counts_in_memory() {
        assert_eq!(throttle(None, None).redis_up(), None);
        still_throttled(&with_redis(&unreachable_redis_url())).await;
    }

    #[actix_web::test]
    async fn a_silent_redis_counts_in_memory_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(64).collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(held);
        });
        still_throttled(&with_redis(&url)).await;
    }

    /// Enough of Redis for the throttle: PING, EVAL (counting hits), DEL,
    /// and +OK to anything else (the client's connection setup).
    fn fake_redis(listener: std::net::TcpListener, evals: Arc<AtomicU64>) {
        use std::io::{BufRead, BufReader, Write};
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let evals = evals.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let args: usize = line.trim_start_matches('*').trim().parse().unwrap();
                        let mut command = Vec::new();
                        for _ in 0..args {
                            line.clear();
                            reader.read_line(&mut line).unwrap();
                            let len: usize = line.trim_start_matches('$').trim().parse().unwrap();
                            let mut arg = vec![0; len + 2];
                            std::io::Read::read_exact(&mut reader, &mut arg).unwrap();
                            arg.truncate(len);
                            command.push(String::from_utf8(arg).unwrap());
                        }
                        let reply = match command[0].to_ascii_uppercase().as_str() {
                            "PING" => "+PONG\r\n".to_owned(),
                            "EVAL" => {
                                let n = evals.fetch_add(1, Ordering::SeqCst) + 1;
                                format!("*2\r\n:{n}\r\n:60000\r\n")
                            }
                            "DEL" => ":1\r\n".to_owned(),
                            _ => "+OK\r\n".to_owned(),
                        };
                        if writer.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    #[actix_web::test]
    async fn redis_comes_back_and_outage_counts_still_count() {
        let url = unreachable_redis_url();
        let throttle = with_redis(&url);
        let a = email("a@example.com");
        quick(throttle.reserve_login(&a)).await.unwrap().failed();
        assert_eq!(throttle.redis_up(), Some(false));
        quick(throttle.reserve_login(&a)).await.unwrap().failed();
        // Redis starts answering
        let address = url.trim_start_matches("redis://").trim_end_matches('/');
        let listener = std::net::TcpListener::bind(address).unwrap();
        let evals = Arc::new(AtomicU64::new(0));
        fake_redis(listener, evals.clone());
        let started = Instant::now();
        while throttle.redis_up() != Some(true) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "Redis never came back"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // counted in Redis now; the two failures of the outage still count
        assert!(quick(throttle.reserve_login(&a)).await.is_err());
        assert_eq!(evals.load(Ordering::SeqCst), 1);
        assert_eq!(quick(throttle.hit_ip(ip("10.0.0.1"))).await, Ok(()));
        assert_eq!(evals.load(Ordering::SeqCst), 2);
    }
}
