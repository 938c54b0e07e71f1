//! A per-instance cache of what the per-request check reads — the user's
//! row and the states of the sessions their tokens name — so that a
//! token-checked request needs no database round trip, while revocation
//! stays immediate on every instance.
//!
//! Entries are forgotten (1) when this process changes a user (the
//! persistence journal, drained after each unit of work, before its
//! response), (2) when any other writer does (a [`ChangeFeed`]: PostgreSQL
//! `LISTEN`, or SQLite's trigger-fed change log), and (3) after a TTL, as a
//! safety net.
//!
//! The feed is read by a thread of its own (see [`feed`]) *and* by every
//! lookup before it answers from the cache, but a lookup never waits for
//! it: when the feed is busy (another thread is reading it), missing or
//! unproven, the lookup asks the database. The feed's connection only ever
//! does non-blocking reads, so holding it is brief.
//!
//! Trust is a clock, not a flag: the cache is used only while the feed has
//! proved itself within [`WINDOW`]. On PostgreSQL the proof is a marker
//! notification this instance sent (a heartbeat every [`BEAT`], from another
//! connection) coming back on the `LISTEN` connection; on SQLite, a read of
//! the change log. A silent or slow feed connection, or a pooler that
//! swallows notifications, therefore turns the cache off by itself, whatever
//! the thread that reads the feed is stuck in.
//!
//! Ordering across instances: a response whose unit of work changed users
//! is held (at most [`ORDER_WAIT`]) until a marker sent after its commit has
//! come back on this instance's own feed. PostgreSQL queues notifications
//! in commit order, so by then the change's notification is queued for
//! every listening instance, behind nothing newer. SQLite needs no wait: its
//! change log is a table written in the revoking transaction, and a lookup
//! elsewhere reads it (or, when busy, the database) before answering.

mod feed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use latchkey_persistence::changes::{ChangeFeed, Heard, Marker};
use latchkey_persistence::{DatabaseUrl, DbConnection, SessionState, User};
use moka::sync::Cache;

/// How often a PostgreSQL feed's heartbeat is sent.
const BEAT: Duration = Duration::from_millis(500);
/// How long a proof lasts: a feed silent this long is distrusted, well
/// within the 3 s the contract allows (a beat is due every [`BEAT`]).
const WINDOW: Duration = Duration::from_secs(2);
/// How long a revoking response waits for its marker.
const ORDER_WAIT: Duration = Duration::from_secs(1);
/// How long a lookup retries a busy feed (its holder only reads a socket or
/// an index, in microseconds) before asking the database instead.
const FEED_PATIENCE: Duration = Duration::from_micros(50);
/// The safety net: nothing cached lives longer.
const TTL: Duration = Duration::from_secs(60);
const CAPACITY: u64 = 100_000;

/// What is known about one user.
struct Entry {
    user: User,
    /// The sessions this instance has looked up, by `sid`.
    sessions: Mutex<HashMap<String, SessionState>>,
}

pub struct AuthCache {
    users: Cache<i64, Arc<Entry>>,
    /// The change feed, read by its thread and by lookups (never waited
    /// for: see [`AuthCache::feed`]).
    feed: Mutex<Option<ChangeFeed>>,
    /// Tells this instance's markers from other instances'.
    instance: u64,
    /// The origin of the instants below (nanoseconds since it).
    origin: Instant,
    /// The newest proof: the send time of the newest marker of ours the
    /// feed has heard (on SQLite: the start of the newest read of the log).
    proven: AtomicU64,
    /// Proofs at or before this instant do not count: set when the feed's
    /// connection is replaced or lost, or a marker did not come back in
    /// time.
    floor: AtomicU64,
    /// The send time of the newest heartbeat the database accepted: tells a
    /// feed that hears nothing from a database that is down.
    beat_accepted: AtomicU64,
    /// True while following PostgreSQL: revoking responses wait for their
    /// marker.
    ordered: AtomicBool,
    /// Woken whenever a proof arrives.
    heard: tokio::sync::Notify,
    /// Bumped by every eviction: a lookup that started before one does not
    /// fill the cache with what it read (it may predate the change).
    epoch: AtomicU64,
    pub hits: prometheus::IntCounter,
    pub misses: prometheus::IntCounter,
    pub evictions: prometheus::IntCounter,
    /// Revoking responses whose marker did not come back in time.
    pub stalls: prometheus::IntCounter,
}

/// A lookup that missed, to be filled with what the database said.
pub struct Pending {
    epoch: u64,
}

/// A marker sent after a unit of work's commit, for its response to wait for.
#[derive(Debug, Clone, Copy)]
pub struct Announced {
    sent_at: u64,
}

impl AuthCache {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(AuthCache {
            users: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            feed: Mutex::new(None),
            instance: rand::random(),
            origin: Instant::now(),
            proven: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            beat_accepted: AtomicU64::new(0),
            ordered: AtomicBool::new(false),
            heard: tokio::sync::Notify::new(),
            epoch: AtomicU64::new(0),
            hits: prometheus::IntCounter::new(
                "auth_cache_hits_total",
                "Token checks answered from the instance's cache",
            )?,
            misses: prometheus::IntCounter::new(
                "auth_cache_misses_total",
                "Token checks that read the database",
            )?,
            evictions: prometheus::IntCounter::new(
                "auth_cache_evictions_total",
                "Users forgotten because they changed",
            )?,
            stalls: prometheus::IntCounter::new(
                "auth_cache_feed_stalls_total",
                "Responses that changed a user sent without a marker sent after their commit having come back on the change feed within 1 s (the cache is then off until the feed proves itself again)",
            )?,
        })
    }

    /// Nanoseconds since this cache was made (never 0, so that 0 can mean
    /// "never").
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether the change feed has proved itself recently enough for the
    /// cache to be used (the `auth_cache_feed_up` gauge).
    pub fn is_trusted(&self) -> bool {
        let proven = self.proven.load(Ordering::Acquire);
        proven > self.floor.load(Ordering::Acquire)
            && self.now() < proven.saturating_add(nanos(WINDOW))
    }

    /// The user and the state of session `sid` (when the token names one),
    /// if both are known; else a [`Pending`] to fill after reading them.
    pub fn get(&self, user_id: i64, sid: Option<&str>) -> Result<(User, SessionState), Pending> {
        let caught_up = self.is_trusted() && self.catch_up();
        let pending = Pending {
            epoch: self.epoch.load(Ordering::Acquire),
        };
        if !caught_up || !self.is_trusted() {
            return Err(pending);
        }
        let Some(entry) = self.users.get(&user_id) else {
            self.misses.inc();
            return Err(pending);
        };
        let state = match sid {
            None => Some(SessionState::NotNamed),
            Some(sid) => entry
                .sessions
                .lock()
                .ok()
                .and_then(|sessions| sessions.get(sid).copied()),
        };
        match state {
            Some(state) => {
                self.hits.inc();
                Ok((entry.user.clone(), state))
            }
            None => {
                self.misses.inc();
                Err(pending)
            }
        }
    }

    /// Remembers what the database said, unless something changed since
    /// the lookup began or the feed is not trusted.
    pub fn fill(&self, pending: Pending, user: &User, sid: Option<&str>, state: SessionState) {
        if !self.is_trusted() || self.epoch.load(Ordering::Acquire) != pending.epoch {
            return;
        }
        // An unknown sid is not remembered: a session with that id may be
        // started later, and remembering it would let anyone fill memory.
        let known = sid.filter(|_| state != SessionState::Unknown);
        let entry = match self.users.get(&user.id) {
            Some(entry) if entry.user == *user => entry,
            _ => {
                let entry = Arc::new(Entry {
                    user: user.clone(),
                    sessions: Mutex::new(HashMap::new()),
                });
                self.users.insert(user.id, Arc::clone(&entry));
                entry
            }
        };
        if let Some(sid) = known
            && let Ok(mut sessions) = entry.sessions.lock()
        {
            sessions.insert(sid.to_owned(), state);
        }
        // An eviction that raced this fill wins: forget the entry again.
        if self.epoch.load(Ordering::Acquire) != pending.epoch {
            self.users.invalidate(&user.id);
        }
    }

    /// Forgets the users (they changed).
    pub fn evict(&self, user_ids: &[i64]) {
        if user_ids.is_empty() {
            return;
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for id in user_ids {
            self.users.invalidate(id);
        }
        self.evictions.inc_by(user_ids.len() as u64);
    }

    /// Sends a marker on `conn`, whose unit of work has just committed a
    /// change, when the response should wait for it to come back (a
    /// PostgreSQL feed that is up); see [`AuthCache::settled`].
    pub fn announce(&self, conn: &mut DbConnection) -> Option<Announced> {
        if !self.ordered.load(Ordering::Acquire) || !self.is_trusted() {
            return None;
        }
        let marker = self.marker();
        match latchkey_persistence::changes::announce(conn, &marker) {
            Ok(true) => Some(Announced {
                sent_at: marker.sent_at,
            }),
            Ok(false) => None,
            Err(error) => {
                log::debug!("auth cache: could not announce a change: {error}");
                None
            }
        }
    }

    /// Waits (at most [`ORDER_WAIT`]) until the feed has heard `announced`
    /// or a later marker: every instance's feed then has the change queued.
    /// Past the bound the feed is marked stalled: the cache is off until it
    /// proves itself again.
    pub async fn settled(&self, announced: Announced) {
        let deadline = Instant::now() + ORDER_WAIT;
        loop {
            // Registered before the checks, so a proof between them wakes it.
            let heard = self.heard.notified();
            self.catch_up();
            if self.proven.load(Ordering::Acquire) >= announced.sent_at
                || self.floor.load(Ordering::Acquire) >= announced.sent_at
            {
                return;
            }
            if Instant::now() >= deadline {
                self.stall();
                return;
            }
            // The feed's thread reads every few ms; reading here too
            // (non-blocking) shortens the wait.
            let _ = actix_web::rt::time::timeout(Duration::from_millis(1), heard).await;
        }
    }

    fn stall(&self) {
        self.stalls.inc();
        if self.is_trusted() {
            log::warn!(
                "auth cache: a change's notification did not come back on the change feed within {} ms; every token is checked against the database until the feed proves itself again",
                ORDER_WAIT.as_millis()
            );
        }
        self.floor.fetch_max(self.now(), Ordering::AcqRel);
    }

    /// A marker sent now.
    fn marker(&self) -> Marker {
        Marker {
            instance: self.instance,
            sent_at: self.now(),
        }
    }

    /// The feed, unless another thread holds it past [`FEED_PATIENCE`] (it
    /// only ever reads, so that is rare; a lookup asks the database rather
    /// than wait longer). A poisoned lock counts as no feed.
    fn try_feed(&self) -> Option<MutexGuard<'_, Option<ChangeFeed>>> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.wrapping_add(1);
            match self.feed.try_lock() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(_)) => return None,
                Err(TryLockError::WouldBlock) if started.elapsed() >= FEED_PATIENCE => {
                    return None;
                }
                // Now and then the holder may need this core to finish.
                Err(TryLockError::WouldBlock) if attempt.is_multiple_of(16) => {
                    std::thread::yield_now();
                }
                Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
    }

    /// Reads what the feed has received so far (a non-blocking read of its
    /// socket on PostgreSQL, one indexed query on SQLite) and forgets those
    /// users. False when that could not be done — the feed is busy, missing
    /// or failed — so the caller must not answer from the cache.
    fn catch_up(&self) -> bool {
        let Some(mut slot) = self.try_feed() else {
            return false;
        };
        let Some(feed) = slot.as_mut() else {
            return false;
        };
        match self.read(feed) {
            Ok(()) => true,
            Err(error) => {
                let broken = slot.take();
                drop(slot);
                drop(broken);
                log::warn!("auth cache: change feed lost ({error})");
                self.lose();
                false
            }
        }
    }

    /// One read of the feed, applied in commit order: the users changed
    /// before a marker are forgotten before the marker proves anything.
    /// Called with the feed locked, so no lookup sees a half-applied read.
    fn read(&self, feed: &mut ChangeFeed) -> Result<(), latchkey_persistence::StoreError> {
        let started = self.now();
        let heard = feed.poll()?;
        let mut changed = Vec::new();
        let mut proven = None;
        for item in heard {
            match item {
                Heard::User(id) => changed.push(id),
                Heard::Marker(marker) if marker.instance == self.instance => {
                    self.evict(&std::mem::take(&mut changed));
                    proven = Some(marker.sent_at);
                    self.prove(marker.sent_at);
                }
                Heard::Marker(_) => {}
            }
        }
        self.evict(&changed);
        if !feed.is_postgres() {
            // The change log is read directly: this read is the proof.
            proven = Some(started);
            self.prove(started);
        }
        if proven.is_some() {
            self.heard.notify_waiters();
        }
        Ok(())
    }

    fn prove(&self, sent_at: u64) {
        self.proven.fetch_max(sent_at, Ordering::AcqRel);
    }

    /// A new feed connection: what was cached before it listened may have
    /// missed a change, and only proofs heard on it count.
    fn install(&self, feed: ChangeFeed) {
        let ordered = feed.is_postgres();
        if let Ok(mut slot) = self.feed.lock() {
            *slot = Some(feed);
            self.floor.fetch_max(self.now(), Ordering::AcqRel);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.users.invalidate_all();
        }
        self.ordered.store(ordered, Ordering::Release);
    }

    /// The feed is gone: nothing it said can be relied on any more.
    fn lose(&self) {
        self.floor.fetch_max(self.now(), Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate_all();
        self.heard.notify_waiters();
    }

    /// Starts the threads that follow the database's change feed (without
    /// them the cache is never trusted: `AUTH_CACHE=false`). They hold the
    /// cache weakly and end once the server that owns it is gone.
    pub fn follow_changes(self: &Arc<Self>, url: DatabaseUrl) -> std::io::Result<()> {
        feed::spawn(Arc::downgrade(self), url)
    }

    pub fn register(&self, registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.hits.clone()))?;
        registry.register(Box::new(self.misses.clone()))?;
        registry.register(Box::new(self.evictions.clone()))?;
        registry.register(Box::new(self.stalls.clone()))?;
        Ok(())
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> AuthCache {
        AuthCache::new().unwrap()
    }

    #[test]
    fn a_cache_whose_feed_never_proved_itself_is_not_trusted() {
        let cache = cache();
        assert!(!cache.is_trusted());
        assert!(cache.get(1, None).is_err());
        assert_eq!(cache.hits.get(), 0);
    }

    #[test]
    fn a_proof_lasts_the_window_and_no_longer() {
        let cache = cache();
        cache.prove(cache.now());
        assert!(cache.is_trusted());
        std::thread::sleep(WINDOW + Duration::from_millis(50));
        assert!(!cache.is_trusted(), "a feed silent past the window");
    }

    #[test]
    fn after_a_stall_or_a_lost_feed_only_a_newer_proof_counts() {
        let cache = cache();
        let before = cache.now();
        cache.prove(before);
        assert!(cache.is_trusted());
        cache.stall();
        assert!(!cache.is_trusted());
        assert_eq!(cache.stalls.get(), 1);
        // A marker sent before the stall, heard late, proves nothing.
        cache.prove(before);
        assert!(!cache.is_trusted());
        cache.prove(cache.now());
        assert!(cache.is_trusted());
        cache.lose();
        assert!(!cache.is_trusted());
    }

    #[test]
    fn a_response_waits_for_its_marker_at_most_the_bound_then_marks_the_feed_stalled() {
        actix_web::rt::System::new().block_on(async {
            let cache = cache();
            cache.prove(cache.now());
            let announced = Announced {
                sent_at: cache.now(),
            };
            let started = Instant::now();
            cache.settled(announced).await;
            let waited = started.elapsed();
            assert!(
                waited >= ORDER_WAIT && waited < ORDER_WAIT + Duration::from_millis(500),
                "waited {waited:?}"
            );
            assert_eq!(cache.stalls.get(), 1);
            assert!(!cache.is_trusted());
        });
    }

    #[test]
    fn a_response_whose_marker_came_back_does_not_wait() {
        actix_web::rt::System::new().block_on(async {
            let cache = cache();
            let announced = Announced {
                sent_at: cache.now(),
            };
            // A later marker (a heartbeat) proves it too.
            cache.prove(cache.now());
            let started = Instant::now();
            cache.settled(announced).await;
            assert!(started.elapsed() < Duration::from_millis(100));
            assert_eq!(cache.stalls.get(), 0);
            assert!(cache.is_trusted());
        });
    }
}
