//! A per-instance cache of what the per-request check reads — the user's
//! row and the states of the sessions their tokens name — so that a
//! token-checked request needs no database round trip, while revocation
//! stays immediate on every instance.
//!
//! Entries are forgotten (1) when this process changes a user (the
//! persistence journal, drained after each unit of work, before its
//! response), (2) when any other writer does (a [`ChangeFeed`]: PostgreSQL
//! `LISTEN`, or SQLite's trigger-fed change log), and (3) after a TTL, as a
//! safety net. The feed is read by a thread of its own every few
//! milliseconds *and* by every lookup before it answers from the cache: a
//! revocation committed elsewhere has announced itself (its NOTIFY is in the
//! feed connection's socket, its row in the change log) before the client
//! that asked for it can send its next request anywhere, so that request is
//! refused — "at once" holds across instances. While the feed is down or
//! has just reconnected, the cache is bypassed and emptied: never a stale
//! answer while blind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use latchkey_persistence::changes::ChangeFeed;
use latchkey_persistence::{DatabaseUrl, SessionState, User};
use moka::sync::Cache;

/// How often the change feed is read: the bound on how late another
/// instance's revocation can reach this one.
const POLL: Duration = Duration::from_millis(5);
/// How often the feed's connection is proven alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Between reconnection attempts while the database is unreachable.
const RECONNECT: Duration = Duration::from_secs(1);
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
    /// The change feed, shared by its thread and the lookups.
    feed: Mutex<Option<ChangeFeed>>,
    /// Whether the change feed is listening and caught up.
    trusted: AtomicBool,
    /// Bumped by every eviction: a lookup that started before one does not
    /// fill the cache with what it read (it may predate the change).
    epoch: AtomicU64,
    pub hits: prometheus::IntCounter,
    pub misses: prometheus::IntCounter,
    pub evictions: prometheus::IntCounter,
}

/// A lookup that missed, to be filled with what the database said.
pub struct Pending {
    epoch: u64,
}

impl AuthCache {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(AuthCache {
            users: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            feed: Mutex::new(None),
            trusted: AtomicBool::new(false),
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
        })
    }

    /// Whether the change feed is up (the cache is used only then).
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// The user and the state of session `sid` (when the token names one),
    /// if both are known; else a [`Pending`] to fill after reading them.
    pub fn get(&self, user_id: i64, sid: Option<&str>) -> Result<(User, SessionState), Pending> {
        if self.is_trusted() {
            self.catch_up();
        }
        let pending = Pending {
            epoch: self.epoch.load(Ordering::Acquire),
        };
        if !self.is_trusted() {
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

    /// Reads what the feed has received so far (a non-blocking read of its
    /// socket on PostgreSQL, one indexed query on SQLite) and forgets those
    /// users; a feed that fails here is dropped and the cache distrusted.
    fn catch_up(&self) {
        let Ok(mut feed) = self.feed.lock() else {
            self.distrust();
            return;
        };
        let Some(connection) = feed.as_mut() else {
            return;
        };
        match connection.poll() {
            Ok(changed) => self.evict(&changed),
            Err(error) => {
                log::warn!("auth cache: change feed lost ({error})");
                *feed = None;
                self.distrust();
            }
        }
    }

    fn distrust(&self) {
        self.trusted.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate_all();
    }

    fn trust(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate_all();
        self.trusted.store(true, Ordering::Release);
    }

    /// Starts the thread that follows the database's change feed (without
    /// it the cache is never trusted: `AUTH_CACHE=false`). It holds
    /// the cache weakly and ends once the server that owns it is gone.
    pub fn follow_changes(self: &Arc<Self>, url: DatabaseUrl) -> std::io::Result<()> {
        let cache = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("latchkey-change-feed".into())
            .spawn(move || run_feed(&cache, &url))
            .map(|_| ())
    }

    pub fn register(&self, registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.hits.clone()))?;
        registry.register(Box::new(self.misses.clone()))?;
        registry.register(Box::new(self.evictions.clone()))?;
        Ok(())
    }
}

/// Why following stopped.
enum Stop {
    Lost(latchkey_persistence::StoreError),
    CacheGone,
}

fn run_feed(cache: &Weak<AuthCache>, url: &DatabaseUrl) {
    let mut lost = false;
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        match ChangeFeed::connect(url) {
            Ok(feed) => {
                let Some(strong) = cache.upgrade() else {
                    return;
                };
                match strong.feed.lock() {
                    Ok(mut slot) => *slot = Some(feed),
                    Err(_) => return,
                }
                // Anything cached before LISTEN took effect may have missed
                // a change: start empty.
                strong.trust();
                drop(strong);
                if lost {
                    log::info!("auth cache: the change feed is back");
                }
                match follow(cache) {
                    Stop::CacheGone => return,
                    Stop::Lost(error) => {
                        let Some(strong) = cache.upgrade() else {
                            return;
                        };
                        if let Ok(mut slot) = strong.feed.lock() {
                            *slot = None;
                        }
                        strong.distrust();
                        if !lost {
                            log::warn!(
                                "auth cache: change feed lost ({error}); every token is checked against the database until it is back"
                            );
                        }
                        lost = true;
                    }
                }
            }
            Err(error) => log::debug!("auth cache: change feed down: {error}"),
        }
        std::thread::sleep(RECONNECT);
    }
}

/// Reads changes until the feed fails (here or in a lookup) or the cache
/// is dropped.
fn follow(cache: &Weak<AuthCache>) -> Stop {
    let mut last_heartbeat = Instant::now();
    loop {
        std::thread::sleep(POLL);
        let Some(strong) = cache.upgrade() else {
            return Stop::CacheGone;
        };
        let Ok(mut slot) = strong.feed.lock() else {
            return Stop::CacheGone;
        };
        // A lookup found it dead and dropped it: reconnect.
        let Some(feed) = slot.as_mut() else {
            return Stop::Lost(latchkey_persistence::StoreError::Unavailable(
                "the change feed failed".into(),
            ));
        };
        match feed.poll() {
            Ok(changed) => strong.evict(&changed),
            Err(error) => return Stop::Lost(error),
        }
        if last_heartbeat.elapsed() >= HEARTBEAT {
            if let Err(error) = feed.heartbeat() {
                return Stop::Lost(error);
            }
            last_heartbeat = Instant::now();
        }
    }
}
