//! The counters shared by every instance, in Redis. With `REDIS_URL` set,
//! each hit is one Lua `EVAL` (INCRBY, then
//! PEXPIRE when the key has no expiry yet, atomically; any Redis version with
//! scripting), run on the blocking pool, never on an async worker. Every step
//! is bounded by `REDIS_TIMEOUT`: the connection (its setup included), reads,
//! writes, the wait for a pooled connection, and the whole call as the request
//! sees it. When Redis fails or is slow, throttling does not turn off: the
//! instance counts in its own memory, logs one warning for the outage, and
//! stops calling Redis from requests; a background probe (at most one a
//! second) brings it back, with one info line. Counts made in memory during an
//! outage still count, added to Redis's, until their window ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web;

/// Prefix of every Redis key.
const PREFIX: &str = "latchkey:throttle:";
/// While Redis is down, it is tried again at most this often.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Redis connections per instance.
const POOL_SIZE: u32 = 16;

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

/// Takes one back from the key's count while it is above zero, keeping its
/// expiry. One atomic step.
const GIVE_BACK_SCRIPT: &str = "\
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0";

/// The shared counters, and whether they answer.
pub(super) struct Redis {
    pool: r2d2::Pool<RedisConnector>,
    timeout: Duration,
    up: AtomicBool,
    /// Milliseconds after `epoch` before which Redis is not tried again.
    next_probe: AtomicU64,
    epoch: Instant,
}

impl Redis {
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Self, String> {
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

    pub(super) fn hit(
        &self,
        key: &str,
        by: u64,
        window: Duration,
    ) -> Result<(u64, Duration), String> {
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

    pub(super) fn give_back(&self, key: &str) -> Result<(), String> {
        let mut conn = self.connection()?;
        let mut eval = redis::cmd("EVAL");
        eval.arg(GIVE_BACK_SCRIPT)
            .arg(1)
            .arg(format!("{PREFIX}{key}"));
        let _: i64 = conn.query(&eval)?;
        Ok(())
    }

    pub(super) fn reset(&self, key: &str) -> Result<(), String> {
        let mut conn = self.connection()?;
        conn.query(redis::cmd("DEL").arg(format!("{PREFIX}{key}")))
    }

    fn ping(&self) -> Result<(), String> {
        let mut conn = self.connection()?;
        conn.query(&redis::cmd("PING"))
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn interval_ms() -> u64 {
        u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(1000)
    }

    /// Redis failed: count in memory from now on; warn once per outage.
    pub(super) fn mark_down(&self, error: &str) {
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
    pub(super) fn probe_when_due(self: &Arc<Self>) {
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

    pub(super) fn probe_in_background(self: &Arc<Self>) {
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
    pub(super) async fn call<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use latchkey_domain::Email;

    use crate::throttle::{DEFAULT_IPV6_PREFIX, Rate, Throttle, ThrottleSettings};

    fn rate(count: u32, secs: u64) -> Option<Rate> {
        Some(Rate {
            count,
            window: Duration::from_secs(secs),
        })
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn unreachable_redis_url() -> String {
        // a port that was free a moment ago: connections are refused
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    fn settings(redis_url: Option<&str>) -> ThrottleSettings {
        ThrottleSettings {
            per_ip: rate(3, 60),
            login_failures: rate(2, 900),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            redis_url: redis_url.map(str::to_owned),
            redis_timeout: Duration::from_millis(200),
        }
    }

    fn with_redis(url: &str) -> Throttle {
        Throttle::new(settings(Some(url))).unwrap()
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
        assert_eq!(Throttle::new(settings(None)).unwrap().redis_up(), None);
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
