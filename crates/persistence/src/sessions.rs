//! The `sessions` table: one row per login (or register, sliding login,
//! password change, adopted Django token), named by the `sid` claim of every
//! token it issues. A session ends once (`ended_at`); its tokens are refused
//! from then on.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{blacklisted_tokens, outstanding_tokens, sessions, users};
use crate::{BATCH_ROWS, DbConnection, StoreError, User};
pub use latchkey_domain::SessionState;
use latchkey_domain::{Aal, Assurance, Method};

/// Longest `User-Agent` kept for a session.
pub const MAX_USER_AGENT: usize = 256;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, PartialEq, Eq)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub ended_at: Option<NaiveDateTime>,
    /// The `amr` of its tokens, as a JSON list: see [`Session::assurance`].
    pub amr: String,
    pub aal: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub amr: String,
    pub aal: i32,
}

/// A session `import-django` starts for a Django refresh token it adopts:
/// ended already when Django blacklisted the token. Every column is given
/// (the batch insert binds each one); the ones left out take their defaults.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub struct ImportedSession {
    pub id: String,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    /// As [`NewSession::assurance_columns`] stores it.
    pub amr: String,
    pub aal: i32,
}

impl NewSession<'_> {
    /// The stored form of how the session was authenticated.
    pub fn assurance_columns(assurance: &Assurance) -> (String, i32) {
        let amr: Vec<&str> = assurance.amr.iter().map(|m| m.amr()).collect();
        (
            serde_json::Value::from(amr).to_string(),
            i32::from(assurance.aal.level()),
        )
    }
}

/// Cuts a `User-Agent` to the stored length, on a character boundary.
pub fn truncate_user_agent(raw: &str) -> &str {
    match raw.char_indices().nth(MAX_USER_AGENT) {
        Some((at, _)) => &raw[..at],
        None => raw,
    }
}

impl Session {
    /// How the session was authenticated, which every token it issues
    /// carries. A row this version did not write reads as what it can
    /// prove: its methods, at `aal` 1 unless it says 2.
    pub fn assurance(&self) -> Assurance {
        let amr = serde_json::from_str::<Vec<String>>(&self.amr)
            .unwrap_or_default()
            .iter()
            .filter_map(|name| Method::from_amr(name))
            .collect();
        let aal = Aal::from_level(i64::from(self.aal)).unwrap_or(Aal::One);
        Assurance { amr, aal }
    }

    pub fn start(conn: &mut DbConnection, new: &NewSession<'_>) -> Result<(), StoreError> {
        diesel::insert_into(sessions::table)
            .values(new)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(sessions::table
            .find(id)
            .select(Session::as_select())
            .first(conn)
            .optional()?)
    }

    /// Reads the session and, on PostgreSQL, locks its row until the
    /// transaction ends (`FOR UPDATE`), so that a rotation and a revocation
    /// of one session take turns. (SQLite's write transactions are
    /// serialised already.) Call it inside [`crate::write_transaction`].
    pub fn lock(conn: &mut DbConnection, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(crate::per_backend!(conn, c => c.lock_session_row(id))?)
    }

    /// The user's live sessions, most recently used first.
    pub fn live_for_user(
        conn: &mut DbConnection,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .order((sessions::last_used_at.desc(), sessions::created_at.desc()))
            .select(Session::as_select())
            .load(conn)?)
    }

    /// A refresh used the session: it was used now and lives until `expires_at`.
    pub fn touch(
        conn: &mut DbConnection,
        id: &str,
        last_used_at: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::last_used_at.eq(last_used_at),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// A refresh without rotation used the session: only `last_used_at`
    /// moves. Nothing is issued that a crash could lose, so on PostgreSQL
    /// the commit does not wait for the WAL to reach the disk (the write
    /// that made every such refresh 4× slower than a read).
    pub fn touch_last_used(
        conn: &mut DbConnection,
        id: &str,
        at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        let update = diesel::update(sessions::table.find(id)).set(sessions::last_used_at.eq(at));
        match conn {
            DbConnection::Postgresql(pg) => pg.transaction(|pg| {
                diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(pg)?;
                update.execute(pg).map(|_| ())
            })?,
            DbConnection::Sqlite(sqlite) => {
                update.execute(sqlite)?;
            }
        }
        Ok(())
    }

    /// Ends one session of the user and blacklists its refresh tokens;
    /// false when it was not a live session of theirs. Call it inside a
    /// write transaction, after [`Session::lock`].
    pub fn end(
        conn: &mut DbConnection,
        id: &str,
        user_id: i64,
        at: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let ended = diesel::update(
            sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::ended_at.is_null()),
        )
        .set(sessions::ended_at.eq(at))
        .execute(conn)?;
        crate::changes::user_changed(user_id);
        blacklist_tokens(conn, Scope::Session { id, user_id }, at)?;
        Ok(ended > 0)
    }

    /// Ends every session of the user and blacklists all their refresh
    /// tokens; returns how many sessions were live.
    pub fn end_all_for_user(
        conn: &mut DbConnection,
        user_id: i64,
        at: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        let ended = diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::ended_at.is_null()),
        )
        .set(sessions::ended_at.eq(at))
        .execute(conn)?;
        crate::changes::user_changed(user_id);
        blacklist_tokens(conn, Scope::User(user_id), at)?;
        Ok(ended)
    }

    /// Inserts the sessions, a few hundred rows a statement.
    pub fn insert_batch(
        conn: &mut DbConnection,
        rows: &[ImportedSession],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(BATCH_ROWS) {
            crate::per_backend!(conn, c => diesel::insert_into(sessions::table).values(chunk).execute(c))?;
        }
        Ok(())
    }

    /// Ends each session at its instant, unless it has ended already. Its
    /// tokens are left as they are: the caller blacklists the ones it
    /// means to.
    pub fn end_batch(
        conn: &mut DbConnection,
        ended: &[(String, NaiveDateTime)],
    ) -> Result<(), StoreError> {
        for (id, at) in ended {
            diesel::update(
                sessions::table
                    .find(id)
                    .filter(sessions::ended_at.is_null()),
            )
            .set(sessions::ended_at.eq(at))
            .execute(conn)?;
        }
        Ok(())
    }

    /// `flush-expired-tokens`: sessions whose last token expired before
    /// `now` (their tokens are flushed with the outstanding tokens).
    pub fn flush_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
        Ok(diesel::delete(sessions::table.filter(sessions::expires_at.lt(now))).execute(conn)?)
    }
}

/// `SELECT … FOR UPDATE` where the backend has it.
trait LockSessionRow {
    fn lock_session_row(&mut self, id: &str) -> QueryResult<Option<Session>>;
}

impl LockSessionRow for diesel::PgConnection {
    fn lock_session_row(&mut self, id: &str) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .select(Session::as_select())
            .for_update()
            .first(self)
            .optional()
    }
}

impl LockSessionRow for diesel::SqliteConnection {
    fn lock_session_row(&mut self, id: &str) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .select(Session::as_select())
            .first(self)
            .optional()
    }
}

enum Scope<'a> {
    Session { id: &'a str, user_id: i64 },
    User(i64),
}

/// Blacklists every not yet blacklisted refresh token in scope. Idempotent:
/// a token blacklisted meanwhile by a racing rotation is skipped
/// (`ON CONFLICT DO NOTHING`), never a unique violation.
fn blacklist_tokens(
    conn: &mut DbConnection,
    scope: Scope<'_>,
    at: NaiveDateTime,
) -> Result<usize, StoreError> {
    let live = outstanding_tokens::table
        .left_join(blacklisted_tokens::table)
        .filter(blacklisted_tokens::id.nullable().is_null())
        .select(outstanding_tokens::id)
        .into_boxed();
    let ids: Vec<i64> = match scope {
        Scope::Session { id, user_id } => live
            .filter(outstanding_tokens::session_id.eq(id))
            .filter(outstanding_tokens::user_id.eq(user_id)),
        Scope::User(user_id) => live.filter(outstanding_tokens::user_id.eq(user_id)),
    }
    .load(conn)?;
    crate::tokens::blacklist_ids(conn, &ids, at)
}

impl User {
    /// The per-request check in one round trip: the user and, when the token
    /// names one, the state of its session.
    pub fn find_with_session(
        conn: &mut DbConnection,
        user_id: i64,
        sid: Option<&str>,
    ) -> Result<Option<(User, SessionState)>, StoreError> {
        let Some(sid) = sid else {
            return Ok(User::find(conn, user_id)?.map(|user| (user, SessionState::NotNamed)));
        };
        let row: Option<(User, Option<String>, Option<NaiveDateTime>)> = users::table
            .left_join(
                sessions::table.on(sessions::user_id.eq(users::id).and(sessions::id.eq(sid))),
            )
            .filter(users::id.eq(user_id))
            .select((
                User::as_select(),
                sessions::id.nullable(),
                sessions::ended_at.nullable(),
            ))
            .first(conn)
            .optional()?;
        Ok(row.map(|(user, found, ended_at)| {
            let state = match (found, ended_at) {
                (None, _) => SessionState::Unknown,
                (Some(_), Some(_)) => SessionState::Ended,
                (Some(_), None) => SessionState::Live,
            };
            (user, state)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_agent_is_cut_to_256_characters() {
        let long = "é".repeat(300);
        assert_eq!(truncate_user_agent(&long).chars().count(), 256);
        assert_eq!(truncate_user_agent("curl/8"), "curl/8");
    }
}
