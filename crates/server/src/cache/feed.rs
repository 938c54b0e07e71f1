//! The threads that keep an [`AuthCache`] fed: one reads the change feed
//! (and replaces its connection when it goes silent), and on PostgreSQL one
//! sends the heartbeats that prove the feed, from a connection of its own,
//! so that a send that hangs can delay a heartbeat but never a read.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use latchkey_persistence::DatabaseUrl;
use latchkey_persistence::changes::{ChangeFeed, Heartbeat};

use super::{AuthCache, BEAT, WINDOW, nanos};

/// How often the feed is read by its thread (lookups read it too).
const POLL: Duration = Duration::from_millis(5);
/// Between connection attempts while the database is unreachable.
const RECONNECT: Duration = Duration::from_secs(1);
/// How often the SQLite change log is pruned.
const PRUNE: Duration = Duration::from_secs(1);
/// A `LISTEN` connection that has heard none of its heartbeats for this
/// long, while the database accepted them, is replaced (a flow a NAT or
/// firewall forgot never comes back). Doubles while replacements do not
/// help (a pooler that swallows notifications), up to [`REPLACE_MAX`].
const REPLACE: Duration = Duration::from_secs(6);
const REPLACE_MAX: Duration = Duration::from_secs(96);
/// A connection that, this long after it was opened, has heard none of the
/// heartbeats the database accepted is taken for a pooler's (warned once).
const POOLER_GRACE: Duration = Duration::from_secs(3);

pub(super) fn spawn(cache: Weak<AuthCache>, url: DatabaseUrl) -> std::io::Result<()> {
    let (pokes, poked) = mpsc::channel::<()>();
    if let DatabaseUrl::Postgres(raw) = &url {
        let cache = cache.clone();
        let raw = raw.clone();
        std::thread::Builder::new()
            .name("latchkey-feed-heartbeat".into())
            .spawn(move || beat(&cache, &raw, &poked))?;
    }
    std::thread::Builder::new()
        .name("latchkey-change-feed".into())
        .spawn(move || read(&cache, &url, &pokes))
        .map(|_| ())
}

/// Why following one connection stopped.
enum Stop {
    Lost(String),
    CacheGone,
}

/// What the reader remembers across connections, for its log lines.
#[derive(Default)]
struct Episode {
    /// A warning was logged and the feed has not been proven since.
    warned: bool,
    /// The pooler warning was logged (once per process).
    pooler_warned: bool,
    /// Connections in a row replaced without ever being proven.
    futile_replacements: u32,
}

fn read(cache: &Weak<AuthCache>, url: &DatabaseUrl, pokes: &mpsc::Sender<()>) {
    let mut episode = Episode::default();
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        match ChangeFeed::connect(url) {
            Ok(feed) => {
                let Some(strong) = cache.upgrade() else {
                    return;
                };
                strong.install(feed);
                drop(strong);
                // A proof at once, not at the next beat.
                let _ = pokes.send(());
                match follow(cache, &mut episode) {
                    Stop::CacheGone => return,
                    Stop::Lost(reason) => {
                        let Some(strong) = cache.upgrade() else {
                            return;
                        };
                        // Closed outside the lock: lookups never wait on it.
                        let broken = strong.feed.lock().ok().and_then(|mut slot| slot.take());
                        drop(broken);
                        strong.lose();
                        if !episode.warned {
                            log::warn!(
                                "auth cache: change feed lost ({reason}); every token is checked against the database until it is back"
                            );
                            episode.warned = true;
                        }
                    }
                }
            }
            Err(error) => log::debug!("auth cache: change feed down: {error}"),
        }
        std::thread::sleep(RECONNECT);
    }
}

/// Reads one connection's changes until it fails, goes silent past
/// [`REPLACE`], or the cache is dropped.
fn follow(cache: &Weak<AuthCache>, episode: &mut Episode) -> Stop {
    let connected = Instant::now();
    let mut last_prune = connected;
    let mut ever_proven = false;
    let mut was_trusted = false;
    loop {
        std::thread::sleep(POLL);
        let Some(strong) = cache.upgrade() else {
            return Stop::CacheGone;
        };
        let postgres = {
            let Ok(mut slot) = strong.feed.lock() else {
                return Stop::CacheGone;
            };
            // A lookup found it broken and dropped it.
            let Some(feed) = slot.as_mut() else {
                return Stop::Lost("a lookup found the connection broken".into());
            };
            if let Err(error) = strong.read(feed) {
                return Stop::Lost(error.to_string());
            }
            if last_prune.elapsed() >= PRUNE {
                feed.prune();
                last_prune = Instant::now();
            }
            feed.is_postgres()
        };
        let trusted = strong.is_trusted();
        if trusted && !was_trusted {
            if episode.warned {
                log::info!("auth cache: the change feed is back");
            }
            *episode = Episode {
                pooler_warned: episode.pooler_warned,
                ..Episode::default()
            };
            ever_proven = true;
        }
        if !trusted && was_trusted {
            log::warn!(
                "auth cache: the change feed is silent (no heartbeat back within {} ms); every token is checked against the database until it is back",
                WINDOW.as_millis()
            );
            episode.warned = true;
        }
        was_trusted = trusted;
        if postgres && let Some(stop) = judge_silence(&strong, connected, ever_proven, episode) {
            return stop;
        }
    }
}

/// Whether a PostgreSQL feed that hears none of its heartbeats should be
/// replaced, with the warning for a pooler that swallows notifications.
fn judge_silence(
    cache: &AuthCache,
    connected: Instant,
    ever_proven: bool,
    episode: &mut Episode,
) -> Option<Stop> {
    let now = cache.now();
    // The newest instant the connection was known good: a proof, or its
    // (re)installation or stall.
    let newest = cache
        .proven
        .load(Ordering::Acquire)
        .max(cache.floor.load(Ordering::Acquire));
    let accepted = cache.beat_accepted.load(Ordering::Acquire);
    // Silence only counts while the database takes the heartbeats: with
    // the database down the connection's own errors end it.
    if accepted <= newest {
        return None;
    }
    let since_connect = connected.elapsed();
    if !ever_proven
        && !episode.pooler_warned
        && since_connect >= POOLER_GRACE
        && now.saturating_sub(accepted) < nanos(WINDOW)
    {
        log::warn!(
            "auth cache off: the change feed's own notifications never came back on its LISTEN connection, although the database accepts them; a connection pooler in transaction or statement mode (PgBouncer with pool_mode=transaction) swallows LISTEN/NOTIFY. Point DATABASE_URL at PostgreSQL directly or at a session-mode pool to use the cache (or set AUTH_CACHE=false); until then every token check reads the database"
        );
        episode.pooler_warned = true;
        episode.warned = true;
    }
    let silent = Duration::from_nanos(now.saturating_sub(newest)).min(since_connect);
    let replace_after = REPLACE
        .saturating_mul(1 << episode.futile_replacements.min(4))
        .min(REPLACE_MAX);
    if silent < replace_after {
        return None;
    }
    if !ever_proven {
        episode.futile_replacements += 1;
    }
    Some(Stop::Lost(format!(
        "none of its heartbeats came back for {} s",
        silent.as_secs()
    )))
}

/// Sends a heartbeat every [`BEAT`] (or when the reader asks, after it
/// connects) until the reader ends.
fn beat(cache: &Weak<AuthCache>, url: &str, poked: &mpsc::Receiver<()>) {
    loop {
        let mut heartbeat = match Heartbeat::connect(url) {
            Ok(heartbeat) => heartbeat,
            Err(error) => {
                log::debug!("auth cache: heartbeat connection down: {error}");
                match poked.recv_timeout(RECONNECT) {
                    Err(RecvTimeoutError::Disconnected) => return,
                    _ => continue,
                }
            }
        };
        loop {
            if let Err(RecvTimeoutError::Disconnected) = poked.recv_timeout(BEAT) {
                return;
            }
            let Some(marker) = cache.upgrade().map(|strong| strong.marker()) else {
                return;
            };
            // No strong reference while the send may block.
            match heartbeat.send(&marker) {
                Ok(()) => {
                    let Some(strong) = cache.upgrade() else {
                        return;
                    };
                    strong
                        .beat_accepted
                        .fetch_max(marker.sent_at, Ordering::AcqRel);
                }
                Err(error) => {
                    log::debug!("auth cache: heartbeat failed: {error}");
                    break;
                }
            }
        }
    }
}
