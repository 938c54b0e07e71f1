//! Which users' authentication state changed: what a per-instance cache of
//! the per-request check must forget.
//!
//! Two sources, so that every writer counts:
//! - this process's own writes, journaled per thread by the functions that
//!   write `users` or end `sessions` ([`take_changed_users`] drains them
//!   right after a unit of work, before its response is sent);
//! - every other writer (another instance, the CLI, `import-django`, a SQL
//!   `UPDATE`), through triggers: on PostgreSQL they `pg_notify` the user's
//!   id on the `latchkey_changes` channel, on SQLite they append it to the
//!   `user_changes` table, which a [`ChangeFeed`] reads.
//!
//! On PostgreSQL the feed also carries [`Marker`]s, notifications an
//! instance sends itself: one coming back proves that everything committed
//! before it was sent has reached the feed's socket (PostgreSQL delivers
//! notifications in commit order). They are sent from another connection
//! ([`Heartbeat`], or the pooled one that just committed), never from the
//! `LISTEN` connection, which only ever does non-blocking reads once set up.

use std::cell::RefCell;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

use crate::{DatabaseUrl, DbConnection, StoreError};

/// The `pg_notify` channel the triggers write to.
pub const CHANNEL: &str = "latchkey_changes";

/// The feed's `application_name` on PostgreSQL.
pub const FEED_NAME: &str = "latchkey_change_feed";

/// The `application_name` of the connection that sends the heartbeats.
pub const HEARTBEAT_NAME: &str = "latchkey_change_feed_heartbeat";

/// A journal that nobody drains (a CLI, a test harness) stays this small.
const JOURNAL_LIMIT: usize = 4096;

/// Bounds of the feed's connections, unless `DATABASE_URL` sets its own:
/// a peer that vanished is noticed by the kernel within seconds instead of
/// the default retransmission timeout (about 15 minutes), and a connection
/// attempt into a black hole gives up.
const CONNECTION_BOUNDS: [(&str, &str); 6] = [
    ("keepalives", "1"),
    ("keepalives_idle", "2"),
    ("keepalives_interval", "1"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "3000"),
    ("connect_timeout", "5"),
];

/// Set by a query after connecting, not with the `options` startup
/// parameter, which PgBouncer refuses unless told to ignore it.
const STATEMENT_TIMEOUT: &str = "2s";

thread_local! {
    static JOURNAL: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

/// Records that this thread changed the user's authentication state.
pub(crate) fn user_changed(user_id: i64) {
    JOURNAL.with(|journal| {
        let mut journal = journal.borrow_mut();
        if journal.len() >= JOURNAL_LIMIT {
            journal.clear();
        }
        journal.push(user_id);
    });
}

/// The users this thread changed since the last call.
pub fn take_changed_users() -> Vec<i64> {
    JOURNAL.with(|journal| std::mem::take(&mut *journal.borrow_mut()))
}

/// A notification an instance sends to itself through the feed's channel.
/// Its payload cannot be taken for a user id (those are bare integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Which instance sent it (random per process): each counts only its own.
    pub instance: u64,
    /// When it was sent, on the sender's own monotonic clock.
    pub sent_at: u64,
}

const MARKER_PREFIX: &str = "latchkey:mark:";

impl Marker {
    pub fn payload(&self) -> String {
        format!("{MARKER_PREFIX}{:016x}:{}", self.instance, self.sent_at)
    }

    pub fn parse(payload: &str) -> Option<Marker> {
        let (instance, sent_at) = payload.strip_prefix(MARKER_PREFIX)?.split_once(':')?;
        Some(Marker {
            instance: u64::from_str_radix(instance, 16).ok()?,
            sent_at: sent_at.parse().ok()?,
        })
    }
}

/// What the feed heard, in the order it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    User(i64),
    Marker(Marker),
}

/// Sends `marker` on `conn` (PostgreSQL only; an SQLite feed needs none):
/// sent on the connection that just committed a change, it comes back on
/// every `LISTEN`ing connection after that change's notifications.
pub fn announce(conn: &mut DbConnection, marker: &Marker) -> Result<bool, StoreError> {
    match conn {
        DbConnection::Postgresql(conn) => {
            notify(conn, marker)?;
            Ok(true)
        }
        DbConnection::Sqlite(_) => Ok(false),
    }
}

fn notify(conn: &mut PgConnection, marker: &Marker) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(marker.payload())
        .execute(conn)?;
    Ok(())
}

/// `url` with the feed's connection bounds and `application_name` (a
/// connection parameter, so the name is there from the first packet on).
/// Bounds the URL already sets are kept; the name is always ours.
pub fn feed_url(url: &str, application_name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && param_key(pair) != "application_name")
        .map(str::to_owned)
        .collect();
    for (key, value) in CONNECTION_BOUNDS {
        if !params.iter().any(|pair| param_key(pair) == key) {
            params.push(format!("{key}={value}"));
        }
    }
    params.push(format!("application_name={application_name}"));
    format!("{base}?{}", params.join("&"))
}

fn param_key(pair: &str) -> String {
    pair.split('=')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn connect_bounded(url: &str, application_name: &str) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::establish(&feed_url(url, application_name))
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'"))?;
    Ok(conn)
}

/// A dedicated connection that hears about changes made by any writer.
pub enum ChangeFeed {
    Postgres(Box<PgConnection>),
    Sqlite {
        conn: Box<SqliteConnection>,
        last_seq: i64,
    },
}

#[derive(QueryableByName)]
struct Change {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
}

#[derive(QueryableByName)]
struct MaxSeq {
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    seq: Option<i64>,
}

/// How long the SQLite change log keeps a row: far longer than any feed
/// takes between two reads.
const SQLITE_RETENTION: Duration = Duration::from_secs(300);

impl ChangeFeed {
    /// Connects and starts listening; changes made before this returns are
    /// not reported (the caller forgets everything it knew instead).
    pub fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = connect_bounded(url, FEED_NAME)?;
                conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok(ChangeFeed::Postgres(Box::new(conn)))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                // Never wait for the write lock: reads never need it in WAL
                // mode, and the prune below is skipped when it is taken (the
                // lookups of every request share this connection).
                conn.batch_execute("PRAGMA busy_timeout = 0;")?;
                let last_seq = diesel::sql_query("SELECT MAX(seq) AS seq FROM user_changes")
                    .get_result::<MaxSeq>(&mut conn)?
                    .seq
                    .unwrap_or(0);
                Ok(ChangeFeed::Sqlite {
                    conn: Box::new(conn),
                    last_seq,
                })
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, ChangeFeed::Postgres(_))
    }

    /// What was committed since the last poll, in commit order. Never
    /// blocks on PostgreSQL (it reads what the socket already holds). An
    /// error means the feed is blind: the caller must stop trusting what it
    /// cached.
    pub fn poll(&mut self) -> Result<Vec<Heard>, StoreError> {
        match self {
            ChangeFeed::Postgres(conn) => {
                let mut heard = Vec::new();
                for notification in conn.notifications_iter() {
                    let notification = notification
                        .map_err(|e| StoreError::Unavailable(format!("change feed lost: {e}")))?;
                    if let Ok(id) = notification.payload.parse() {
                        heard.push(Heard::User(id));
                    } else if let Some(marker) = Marker::parse(&notification.payload) {
                        heard.push(Heard::Marker(marker));
                    }
                }
                Ok(heard)
            }
            ChangeFeed::Sqlite { conn, last_seq } => {
                let rows: Vec<Change> = diesel::sql_query(
                    "SELECT seq, user_id FROM user_changes WHERE seq > ? ORDER BY seq",
                )
                .bind::<BigInt, _>(*last_seq)
                .load(conn.as_mut())?;
                if let Some(last) = rows.last() {
                    *last_seq = last.seq;
                }
                Ok(rows
                    .into_iter()
                    .map(|row| Heard::User(row.user_id))
                    .collect())
            }
        }
    }

    /// Prunes the SQLite change log, best effort (a busy database is pruned
    /// at a later call); nothing to do on PostgreSQL.
    pub fn prune(&mut self) {
        if let ChangeFeed::Sqlite { conn, .. } = self {
            let cutoff =
                crate::db_now() - chrono::Duration::from_std(SQLITE_RETENTION).unwrap_or_default();
            let _ = diesel::sql_query("DELETE FROM user_changes WHERE changed_at < ?")
                .bind::<diesel::sql_types::Timestamp, _>(cutoff)
                .execute(conn.as_mut());
        }
    }
}

/// The connection that sends a PostgreSQL feed's heartbeats: markers that
/// must come back on the `LISTEN` connection within a bound. A blocking
/// send here can delay a heartbeat, never a request.
pub struct Heartbeat(Box<PgConnection>);

impl Heartbeat {
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        connect_bounded(url, HEARTBEAT_NAME).map(|conn| Heartbeat(Box::new(conn)))
    }

    pub fn send(&mut self, marker: &Marker) -> Result<(), StoreError> {
        notify(&mut self.0, marker)?;
        // Behind a transaction-mode pooler this connection can be handed a
        // server session that another client made LISTEN; whatever that
        // delivers here is dropped, not hoarded.
        for notification in self.0.notifications_iter() {
            notification.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_survives_its_payload_and_is_never_a_user_id() {
        let marker = Marker {
            instance: 0xdead_beef_0000_0001,
            sent_at: 1_234_567_890,
        };
        let payload = marker.payload();
        assert_eq!(Marker::parse(&payload), Some(marker));
        assert!(payload.parse::<i64>().is_err());
        for user_id in ["1", "42", "-3", "9223372036854775807"] {
            assert_eq!(Marker::parse(user_id), None);
        }
        assert_eq!(Marker::parse("latchkey:mark:zz:1"), None);
        assert_eq!(Marker::parse("latchkey:mark:01"), None);
    }

    #[test]
    fn the_feed_url_adds_bounds_and_names_the_connection() {
        assert_eq!(
            feed_url("postgres://u@h:5432/db", FEED_NAME),
            "postgres://u@h:5432/db?keepalives=1&keepalives_idle=2&keepalives_interval=1\
             &keepalives_count=3&tcp_user_timeout=3000&connect_timeout=5\
             &application_name=latchkey_change_feed"
        );
    }

    #[test]
    fn the_feed_url_keeps_what_the_operator_set_but_not_another_name() {
        let url = feed_url(
            "postgresql://u:p@h/db?sslmode=require&KEEPALIVES_IDLE=30&application_name=app&tcp_user_timeout=9000",
            FEED_NAME,
        );
        assert_eq!(
            url,
            "postgresql://u:p@h/db?sslmode=require&KEEPALIVES_IDLE=30&tcp_user_timeout=9000\
             &keepalives=1&keepalives_interval=1&keepalives_count=3&connect_timeout=5\
             &application_name=latchkey_change_feed"
        );
    }
}
