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

use std::cell::RefCell;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

use crate::{DatabaseUrl, StoreError};

/// The `pg_notify` channel the triggers write to.
pub const CHANNEL: &str = "latchkey_changes";

/// The feed's `application_name` on PostgreSQL.
pub const FEED_NAME: &str = "latchkey_change_feed";

/// A journal that nobody drains (a CLI, a test harness) stays this small.
const JOURNAL_LIMIT: usize = 4096;

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
                let mut conn = PgConnection::establish(url)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                // Named, so an operator can tell it in pg_stat_activity.
                conn.batch_execute(&format!(
                    "SET application_name = '{FEED_NAME}'; LISTEN {CHANNEL}"
                ))?;
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

    /// The users changed since the last poll. An error means the feed is
    /// blind: the caller must stop trusting what it cached.
    pub fn poll(&mut self) -> Result<Vec<i64>, StoreError> {
        match self {
            ChangeFeed::Postgres(conn) => {
                let mut changed = Vec::new();
                for notification in conn.notifications_iter() {
                    let notification = notification
                        .map_err(|e| StoreError::Unavailable(format!("change feed lost: {e}")))?;
                    if let Ok(id) = notification.payload.parse() {
                        changed.push(id);
                    }
                }
                Ok(changed)
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
                Ok(rows.into_iter().map(|row| row.user_id).collect())
            }
        }
    }

    /// A round trip that fails when the connection is dead (a TCP peer that
    /// vanished says nothing until written to); on SQLite it also prunes
    /// the change log.
    pub fn heartbeat(&mut self) -> Result<(), StoreError> {
        match self {
            ChangeFeed::Postgres(conn) => {
                diesel::sql_query("SELECT 1").execute(conn.as_mut())?;
            }
            ChangeFeed::Sqlite { conn, .. } => {
                // A file does not hang up: this only prunes, best effort
                // (a busy database is pruned at a later beat).
                let cutoff = crate::db_now()
                    - chrono::Duration::from_std(SQLITE_RETENTION).unwrap_or_default();
                let _ = diesel::sql_query("DELETE FROM user_changes WHERE changed_at < ?")
                    .bind::<diesel::sql_types::Timestamp, _>(cutoff)
                    .execute(conn.as_mut());
            }
        }
        Ok(())
    }
}
