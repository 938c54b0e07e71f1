//! The email outbox (`email_outbox`): mail is written here in the caller's
//! transaction and delivered later by a background sender.
//!
//! Claiming is what makes "exactly once" hold with several instances on one
//! database: [`OutboxEmail::claim_due`] takes due rows in one write
//! transaction and stamps them with a lease (`claim_id`, `claimed_until`).
//! On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`, so two
//! instances claiming at once never take the same row (the second skips the
//! rows the first holds, and once the first commits their lease excludes
//! them); on SQLite the `BEGIN IMMEDIATE` of [`write_transaction`] serialises
//! claims. The sender renews a row's lease just before sending it
//! ([`OutboxEmail::renew_claim`]), so a slow SMTP server that makes a batch
//! outlast the first lease cannot let another instance send the rest of it
//! too. Only the holder of the lease may mark a row done. A lease that
//! expires (its instance died between claiming and marking) lets another
//! instance claim the row again: the one case an email may go out twice,
//! when the death came after the SMTP server had accepted it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::email_outbox;
use crate::{DbConnection, StoreError, write_transaction};

/// `kind`: a rendered email.
pub const MESSAGE: &str = "message";
/// `kind`: a password reset request for `recipient`, resolved by the
/// sender (see the migration `outbox_requests`).
pub const PASSWORD_RESET_REQUEST: &str = "password_reset";

pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

/// One email of the outbox.
#[derive(Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = email_outbox)]
pub struct OutboxEmail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub claim_id: Option<String>,
    pub claimed_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub kind: String,
}

/// The bodies hold single-use links: never printed.
impl std::fmt::Debug for OutboxEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEmail")
            .field("id", &self.id)
            .field("recipient", &self.recipient)
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish_non_exhaustive()
    }
}

/// An email to queue.
#[derive(Insertable)]
#[diesel(table_name = email_outbox)]
pub struct NewOutboxEmail<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
    pub status: &'a str,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub kind: &'a str,
}

impl<'a> NewOutboxEmail<'a> {
    /// A password reset request for `address`, whoever it belongs to:
    /// the sender resolves it (due at once).
    pub fn password_reset_request(address: &'a str, now: NaiveDateTime) -> Self {
        NewOutboxEmail {
            kind: PASSWORD_RESET_REQUEST,
            ..NewOutboxEmail::new(address, "", "", "", now)
        }
    }

    /// Due at once.
    pub fn new(
        recipient: &'a str,
        subject: &'a str,
        text_body: &'a str,
        html_body: &'a str,
        now: NaiveDateTime,
    ) -> Self {
        NewOutboxEmail {
            recipient,
            subject,
            text_body,
            html_body,
            status: QUEUED,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            kind: MESSAGE,
        }
    }
}

/// Selects the ids of due rows, locking them where the backend can.
trait DueIds {
    fn due_ids(&mut self, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>>;
}

macro_rules! due_query {
    ($now:expr, $limit:expr) => {
        email_outbox::table
            .filter(email_outbox::status.eq(QUEUED))
            .filter(email_outbox::next_attempt_at.le($now))
            .filter(
                email_outbox::claimed_until
                    .is_null()
                    .or(email_outbox::claimed_until.lt($now)),
            )
            .order(email_outbox::id.asc())
            .limit($limit)
            .select(email_outbox::id)
    };
}

impl DueIds for diesel::PgConnection {
    fn due_ids(&mut self, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
        due_query!(now, limit).for_update().skip_locked().load(self)
    }
}

impl DueIds for diesel::SqliteConnection {
    fn due_ids(&mut self, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
        // The write lock of BEGIN IMMEDIATE is held already: nobody else
        // claims while this runs.
        due_query!(now, limit).load(self)
    }
}

impl OutboxEmail {
    /// Queues an email; call it inside the transaction of the change that
    /// causes it.
    pub fn enqueue(conn: &mut DbConnection, new: &NewOutboxEmail<'_>) -> Result<(), StoreError> {
        diesel::insert_into(email_outbox::table)
            .values(new)
            .execute(conn)?;
        Ok(())
    }

    /// Claims up to `limit` due emails for `claim_id` until `lease_until`,
    /// in one write transaction, and returns them.
    pub fn claim_due(
        conn: &mut DbConnection,
        claim_id: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxEmail>, StoreError> {
        write_transaction(conn, |conn| {
            let ids: Vec<i64> = crate::per_backend!(conn, c => c.due_ids(now, limit))?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(email_outbox::table.filter(email_outbox::id.eq_any(&ids)))
                .set((
                    email_outbox::claim_id.eq(claim_id),
                    email_outbox::claimed_until.eq(lease_until),
                ))
                .execute(conn)?;
            Ok(email_outbox::table
                .filter(email_outbox::id.eq_any(&ids))
                .filter(email_outbox::claim_id.eq(claim_id))
                .order(email_outbox::id.asc())
                .select(OutboxEmail::as_select())
                .load(conn)?)
        })
    }

    /// Extends the lease of one claimed row to `lease_until`, just before
    /// it is sent: false when the claim was lost (it expired and another
    /// instance claimed the row, which it then sends, not this one). One
    /// statement, so the check and the renewal cannot be split by another
    /// claim.
    pub fn renew_claim(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
        lease_until: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id))
                .filter(email_outbox::status.eq(QUEUED)),
        )
        .set(email_outbox::claimed_until.eq(lease_until))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// A resolved request becomes the email it asked for (still claimed).
    pub fn fill_request(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
        message: &NewOutboxEmail<'_>,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id))
                .filter(email_outbox::kind.ne(MESSAGE)),
        )
        .set((
            email_outbox::kind.eq(MESSAGE),
            email_outbox::recipient.eq(message.recipient),
            email_outbox::subject.eq(message.subject),
            email_outbox::text_body.eq(message.text_body),
            email_outbox::html_body.eq(message.html_body),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// A request with nothing to send (no such account): forgotten.
    pub fn drop_request(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
    ) -> Result<bool, StoreError> {
        let deleted = diesel::delete(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id))
                .filter(email_outbox::kind.ne(MESSAGE)),
        )
        .execute(conn)?;
        Ok(deleted == 1)
    }

    /// Delivered: the row keeps its metadata for `EMAIL_RETENTION`, not its
    /// bodies. False when the lease was lost meanwhile.
    pub fn mark_sent(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
        attempts: i32,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id)),
        )
        .set((
            email_outbox::status.eq(SENT),
            email_outbox::attempts.eq(attempts),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::claim_id.eq(None::<String>),
            email_outbox::claimed_until.eq(None::<NaiveDateTime>),
            email_outbox::last_error.eq(None::<String>),
            email_outbox::finished_at.eq(now),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// A try failed and another is due at `next_attempt_at`: the lease is
    /// given back.
    pub fn mark_retry(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
        attempts: i32,
        next_attempt_at: NaiveDateTime,
        error: &str,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id)),
        )
        .set((
            email_outbox::attempts.eq(attempts),
            email_outbox::next_attempt_at.eq(next_attempt_at),
            email_outbox::claim_id.eq(None::<String>),
            email_outbox::claimed_until.eq(None::<NaiveDateTime>),
            email_outbox::last_error.eq(error),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Given up on (a permanent refusal, or `EMAIL_MAX_ATTEMPTS` tries).
    pub fn mark_failed(
        conn: &mut DbConnection,
        id: i64,
        claim_id: &str,
        attempts: i32,
        error: &str,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(id))
                .filter(email_outbox::claim_id.eq(claim_id)),
        )
        .set((
            email_outbox::status.eq(FAILED),
            email_outbox::attempts.eq(attempts),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::claim_id.eq(None::<String>),
            email_outbox::claimed_until.eq(None::<NaiveDateTime>),
            email_outbox::last_error.eq(error),
            email_outbox::finished_at.eq(now),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Emails still to deliver (due or waiting for a retry).
    pub fn count_queued(conn: &mut DbConnection) -> Result<i64, StoreError> {
        Ok(email_outbox::table
            .filter(email_outbox::status.eq(QUEUED))
            .count()
            .get_result(conn)?)
    }

    /// The earliest instant a queued email is due at, if any.
    pub fn next_due(conn: &mut DbConnection) -> Result<Option<NaiveDateTime>, StoreError> {
        Ok(email_outbox::table
            .filter(email_outbox::status.eq(QUEUED))
            .select(diesel::dsl::min(email_outbox::next_attempt_at))
            .first(conn)?)
    }

    /// Deletes sent and failed emails finished before `before`.
    pub fn prune_finished(
        conn: &mut DbConnection,
        before: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        Ok(diesel::delete(
            email_outbox::table
                .filter(email_outbox::status.ne(QUEUED))
                .filter(email_outbox::finished_at.lt(before)),
        )
        .execute(conn)?)
    }

    /// Every row, oldest first (operators and tests).
    pub fn all(conn: &mut DbConnection) -> Result<Vec<OutboxEmail>, StoreError> {
        Ok(email_outbox::table
            .order(email_outbox::id.asc())
            .select(OutboxEmail::as_select())
            .load(conn)?)
    }
}
