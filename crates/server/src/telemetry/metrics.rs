//! The metrics of this instance, as Prometheus text at `/metrics`. The
//! request middleware that feeds them (and writes one log line per request:
//! the method, the path without its query string, the status, the latency
//! and the user id when known, never a token, a password or a hash) is
//! `crate::http::middleware::record`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub logins: IntCounter,
    pub login_failures: IntCounter,
    pub throttled: IntCounter,
    pub emails_sent: IntCounter,
    pub emails_failed: IntCounter,
    pub email_outbox_queued: IntGauge,
    pool_in_use: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    redis_up: IntGauge,
    cache_feed_up: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("latchkey".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let logins = IntCounter::new("logins_total", "Successful logins")?;
        let login_failures = IntCounter::new("login_failures_total", "Failed logins")?;
        let throttled =
            IntCounter::new("throttled_requests_total", "Requests refused by throttling")?;
        let pool_in_use =
            IntGauge::new("db_pool_connections_in_use", "Database connections in use")?;
        let pool_idle = IntGauge::new("db_pool_connections_idle", "Idle database connections")?;
        let pool_max = IntGauge::new("db_pool_connections_max", "Database pool size")?;
        let redis_up = IntGauge::new(
            "throttle_redis_up",
            "1 while the shared throttle counters in Redis answer, 0 while this instance counts in memory",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(login_failures.clone()))?;
        registry.register(Box::new(throttled.clone()))?;
        let emails_sent =
            IntCounter::new("emails_sent_total", "Emails delivered by this instance")?;
        let emails_failed = IntCounter::new(
            "emails_failed_total",
            "Emails this instance gave up on (a permanent refusal or EMAIL_MAX_ATTEMPTS tries)",
        )?;
        let email_outbox_queued = IntGauge::new(
            "email_outbox_queued",
            "Emails in the outbox still to deliver (all instances), as the sender last counted",
        )?;
        registry.register(Box::new(emails_sent.clone()))?;
        registry.register(Box::new(emails_failed.clone()))?;
        registry.register(Box::new(email_outbox_queued.clone()))?;
        registry.register(Box::new(pool_in_use.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(redis_up.clone()))?;
        let cache_feed_up = IntGauge::new(
            "auth_cache_feed_up",
            "1 while the database's change feed has proved itself within the last 2 s (its own heartbeat came back; the auth cache is in use), 0 while every token check reads the database",
        )?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            logins,
            login_failures,
            throttled,
            emails_sent,
            emails_failed,
            email_outbox_queued,
            pool_in_use,
            pool_idle,
            pool_max,
            redis_up,
            cache_feed_up,
        })
    }

    /// The auth cache's counters, and a gauge for its change feed.
    pub fn register_cache(&self, cache: &crate::cache::AuthCache) -> Result<(), prometheus::Error> {
        cache.register(&self.registry)?;
        self.registry.register(Box::new(self.cache_feed_up.clone()))
    }

    /// Counters kept by other parts of the server.
    pub fn register_counter(&self, counter: &IntCounter) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(counter.clone()))
    }

    /// One request: its route label, method label, status and latency.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
        if status == 429 {
            self.throttled.inc();
        }
    }

    /// The Prometheus text exposition and its content type, the gauges
    /// first set from what the rest of the server reads now.
    pub fn render(&self, now: Readings) -> (String, Vec<u8>) {
        self.pool_in_use.set(i64::from(now.pool_in_use));
        self.pool_idle.set(i64::from(now.pool_idle));
        self.pool_max.set(i64::from(now.pool_max));
        self.redis_up.set(i64::from(now.redis_up));
        self.cache_feed_up.set(i64::from(now.cache_feed_up));
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            log::error!("metrics encoding failed: {error}");
        }
        (encoder.format_type().to_owned(), buffer)
    }
}

/// The gauges' values, read when `/metrics` is asked for.
pub struct Readings {
    pub pool_in_use: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    /// Without Redis this reads false too: no shared counters answer.
    pub redis_up: bool,
    pub cache_feed_up: bool,
}
