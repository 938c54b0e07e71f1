//! The `users` table.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use latchkey_domain::{Email, UserFlags};

use crate::schema::users;
use crate::{BATCH_ROWS, DbConnection, StoreError, write_transaction};

/// A stored user. `Debug` leaves the password hash out.
#[derive(Clone, Queryable, Selectable, Identifiable, PartialEq, Eq)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_staff: bool,
    pub last_login: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub tokens_valid_after: NaiveDateTime,
    pub email_verified: bool,
    pub imported_from_django: bool,
    pub password_changed_at: Option<NaiveDateTime>,
    /// When latchkey last changed what an `import-django` re-run would
    /// overwrite (set by [`User::update`]; cleared when the import writes
    /// the user from Django).
    pub changed_in_latchkey_at: Option<NaiveDateTime>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("is_superuser", &self.is_superuser)
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("last_login", &self.last_login)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("tokens_valid_after", &self.tokens_valid_after)
            .field("email_verified", &self.email_verified)
            .field("imported_from_django", &self.imported_from_django)
            .field("password_changed_at", &self.password_changed_at)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Django's unusable password (`set_unusable_password`) starts with
    /// `!`: such an account has no password to give or reset.
    pub fn has_usable_password(&self) -> bool {
        !self.password_hash.is_empty() && !self.password_hash.starts_with('!')
    }
}

impl User {
    /// The name the user logs in with, and the one the command line takes
    /// (`latchkey users … LOGIN`, `disable-mfa LOGIN`): their email, until
    /// a username field exists.
    pub fn login_name(&self) -> &str {
        &self.email
    }

    pub fn flags(&self) -> UserFlags {
        UserFlags {
            is_active: self.is_active,
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_staff: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub tokens_valid_after: NaiveDateTime,
    pub email_verified: bool,
}

impl<'a> NewUser<'a> {
    pub fn new(
        email: &'a Email,
        password_hash: &'a str,
        flags: UserFlags,
        now: NaiveDateTime,
    ) -> Self {
        NewUser {
            email: email.as_str(),
            password_hash,
            is_superuser: flags.is_superuser,
            is_active: flags.is_active,
            is_staff: flags.is_staff,
            created_at: now,
            updated_at: now,
            tokens_valid_after: now,
            email_verified: false,
        }
    }

    /// The address counts as confirmed (a superuser made by the CLI).
    pub fn verified(self) -> Self {
        NewUser {
            email_verified: true,
            ..self
        }
    }
}

/// The columns an update may set; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_superuser: Option<bool>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub last_login: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
    pub tokens_valid_after: Option<NaiveDateTime>,
    pub email_verified: Option<bool>,
    pub password_changed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    #[default]
    Id,
    Email,
    CreatedAt,
}

/// One page of `GET /list/`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Users whose email contains this text.
    pub search: Option<String>,
    /// Only staff users (`latchkey users list --staff`).
    pub staff_only: bool,
    /// Only inactive users (`latchkey users list --inactive`).
    pub inactive_only: bool,
    pub order: ListOrder,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct UserPage {
    /// Users matching the search, over all pages.
    pub count: i64,
    pub users: Vec<User>,
}

/// `LIKE` pattern for "contains", with the wildcards in the text escaped.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl User {
    /// Inserts the user and reads it back in one transaction (the multi
    /// backend has no `RETURNING`). A taken email is [`StoreError::EmailTaken`].
    pub fn insert(conn: &mut DbConnection, new: &NewUser<'_>) -> Result<User, StoreError> {
        write_transaction(conn, |conn| {
            diesel::insert_into(users::table)
                .values(new)
                .execute(conn)
                .map_err(StoreError::from_user_write)?;
            users::table
                .filter(users::email.eq(new.email))
                .select(User::as_select())
                .first(conn)
                .map_err(StoreError::from)
        })
    }

    pub fn find(conn: &mut DbConnection, id: i64) -> Result<Option<User>, StoreError> {
        Ok(users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// Reads the user and, on PostgreSQL, locks their row until the
    /// transaction ends (`FOR NO KEY UPDATE`), so that a login re-checks what it
    /// verified after any revocation that wrote the row first, and before
    /// any that comes later. (SQLite's write transactions are serialised
    /// already.) Call it inside [`crate::write_transaction`].
    pub fn lock(conn: &mut DbConnection, id: i64) -> Result<Option<User>, StoreError> {
        Ok(crate::per_backend!(conn, c => c.lock_user_row(id))?)
    }

    /// Stores `new` as the user's hash only while `verified` is still the
    /// stored one: an upgrade made from the old password can never
    /// overwrite a password changed meanwhile. Not a password change (no
    /// session ends). Returns whether it was stored.
    pub fn upgrade_hash(
        conn: &mut DbConnection,
        id: i64,
        verified: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(id))
                .filter(users::password_hash.eq(verified)),
        )
        .set(users::password_hash.eq(new))
        .execute(conn)?;
        if updated > 0 {
            crate::changes::user_changed(id);
        }
        Ok(updated > 0)
    }

    /// Emails are stored normalised, so an [`Email`] finds its user whatever
    /// case it was typed in.
    pub fn find_by_email(
        conn: &mut DbConnection,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        Ok(users::table
            .filter(users::email.eq(email.as_str()))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// Applies the changes and returns the updated row; `NotFound` when the
    /// user is gone, `EmailTaken` when the new email belongs to someone else.
    ///
    /// A password set (`password_changed_at` given: by the user, staff or a
    /// reset, never a hash upgrade) or an email or flag that really changes
    /// also stamps `changed_in_latchkey_at`, so that an `import-django`
    /// re-run keeps the user as latchkey has them: the stamp is part of the
    /// same `UPDATE`, decided against the row as it is under lock, never
    /// against an earlier read.
    pub fn update(
        conn: &mut DbConnection,
        id: i64,
        changes: &UserChanges,
    ) -> Result<User, StoreError> {
        write_transaction(conn, |conn| {
            // `None` leaves the stamp out of the SET.
            let stamp = changed_in_latchkey(conn, id, changes)?
                .then(|| users::changed_in_latchkey_at.eq(Some(crate::db_now())));
            let updated = diesel::update(users::table.find(id))
                .set((changes, stamp))
                .execute(conn)
                .map_err(StoreError::from_user_write)?;
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            crate::changes::user_changed(id);
            users::table
                .find(id)
                .select(User::as_select())
                .first(conn)
                .map_err(StoreError::from)
        })
    }

    pub fn record_login(
        conn: &mut DbConnection,
        id: i64,
        at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        diesel::update(users::table.find(id))
            .set(users::last_login.eq(at))
            .execute(conn)?;
        crate::changes::user_changed(id);
        Ok(())
    }

    /// Deletes the user (their tokens go with them); false when already gone.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<bool, StoreError> {
        let deleted = diesel::delete(users::table.find(id)).execute(conn)?;
        crate::changes::user_changed(id);
        Ok(deleted > 0)
    }

    /// One page and the total: two queries whatever the page size.
    pub fn list(conn: &mut DbConnection, query: &ListQuery) -> Result<UserPage, StoreError> {
        let pattern = query.search.as_deref().map(contains_pattern);
        let mut count_query = users::table.count().into_boxed();
        let mut page_query = users::table.select(User::as_select()).into_boxed();
        if let Some(pattern) = &pattern {
            count_query = count_query.filter(users::email.like(pattern.clone()).escape('\\'));
            page_query = page_query.filter(users::email.like(pattern.clone()).escape('\\'));
        }
        if query.staff_only {
            count_query = count_query.filter(users::is_staff.eq(true));
            page_query = page_query.filter(users::is_staff.eq(true));
        }
        if query.inactive_only {
            count_query = count_query.filter(users::is_active.eq(false));
            page_query = page_query.filter(users::is_active.eq(false));
        }
        let count: i64 = count_query.get_result(conn)?;
        page_query = match (query.order, query.descending) {
            (ListOrder::Id, false) => page_query.order(users::id.asc()),
            (ListOrder::Id, true) => page_query.order(users::id.desc()),
            (ListOrder::Email, false) => page_query.order(users::email.asc()),
            (ListOrder::Email, true) => page_query.order(users::email.desc()),
            (ListOrder::CreatedAt, false) => {
                page_query.order((users::created_at.asc(), users::id.asc()))
            }
            (ListOrder::CreatedAt, true) => {
                page_query.order((users::created_at.desc(), users::id.desc()))
            }
        };
        let users = page_query
            .offset(query.offset)
            .limit(query.limit)
            .load(conn)?;
        Ok(UserPage { count, users })
    }

    pub fn count(conn: &mut DbConnection) -> Result<i64, StoreError> {
        Ok(users::table.count().get_result(conn)?)
    }
}

/// A user as `import-django` writes them: Django's id kept, every column
/// given (the batch insert binds each one).
#[derive(Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct ImportedUser {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_staff: bool,
    pub last_login: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub tokens_valid_after: NaiveDateTime,
    pub email_verified: bool,
    pub imported_from_django: bool,
    /// Of the Django hash (`password_hash` may become the stored one).
    pub django_hash_digest: Option<String>,
}

/// A user an earlier `import-django` run wrote, as a re-run weighs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorImport {
    pub password_hash: String,
    /// Whether latchkey changed them since (`changed_in_latchkey_at`).
    pub changed_in_latchkey: bool,
    /// Of the Django hash the last run wrote (`None` before this was kept).
    pub django_hash_digest: Option<String>,
}

/// What `import-django` reads and writes of `users`. Its writes reach the
/// other instances' caches through the change triggers; none is journaled
/// for this process (the import's memory stays bounded).
impl User {
    /// Users that no `import-django` run wrote.
    pub fn count_native(conn: &mut DbConnection) -> Result<i64, StoreError> {
        Ok(users::table
            .filter(users::imported_from_django.eq(false))
            .count()
            .get_result(conn)?)
    }

    /// The ids holding any of `emails` (stored form), by email.
    pub fn ids_by_email(
        conn: &mut DbConnection,
        emails: &[&str],
    ) -> Result<HashMap<String, i64>, StoreError> {
        Ok(users::table
            .filter(users::email.eq_any(emails))
            .select((users::email, users::id))
            .load::<(String, i64)>(conn)?
            .into_iter()
            .collect())
    }

    /// The ids among `ids` that exist.
    pub fn existing_ids(conn: &mut DbConnection, ids: &[i64]) -> Result<HashSet<i64>, StoreError> {
        Ok(users::table
            .filter(users::id.eq_any(ids))
            .select(users::id)
            .load::<i64>(conn)?
            .into_iter()
            .collect())
    }

    /// The users among `ids` (all written by an earlier import: the caller
    /// refused native users first), by id. On PostgreSQL the rows stay
    /// locked (`FOR UPDATE`) until the transaction ends, so a change racing
    /// the import waits for it and lands on top of it (SQLite's write lock
    /// holds them already).
    pub fn lock_prior_imports(
        conn: &mut DbConnection,
        ids: &[i64],
    ) -> Result<HashMap<i64, PriorImport>, StoreError> {
        let query = users::table
            .filter(users::id.eq_any(ids))
            .order(users::id)
            .select((
                users::id,
                users::password_hash,
                users::changed_in_latchkey_at.is_not_null(),
                users::django_hash_digest,
            ));
        let rows: Vec<(i64, String, bool, Option<String>)> = match conn {
            DbConnection::Postgresql(c) => query.for_update().load(c)?,
            DbConnection::Sqlite(c) => query.load(c)?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(id, password_hash, changed_in_latchkey, django_hash_digest)| {
                    (
                        id,
                        PriorImport {
                            password_hash,
                            changed_in_latchkey,
                            django_hash_digest,
                        },
                    )
                },
            )
            .collect())
    }

    /// Inserts the new users and updates those already stored (matched by
    /// id) to the rows' values: the address confirmed, latchkey's change
    /// stamp cleared. A taken email is [`StoreError::EmailTaken`].
    pub fn upsert_imported_batch(
        conn: &mut DbConnection,
        rows: &[ImportedUser],
    ) -> Result<(), StoreError> {
        use diesel::upsert::excluded;
        let no_instant: Option<NaiveDateTime> = None;
        for chunk in rows.chunks(BATCH_ROWS) {
            crate::per_backend!(conn, c => diesel::insert_into(users::table)
                .values(chunk)
                .on_conflict(users::id)
                .do_update()
                .set((
                    users::email.eq(excluded(users::email)),
                    users::password_hash.eq(excluded(users::password_hash)),
                    users::is_superuser.eq(excluded(users::is_superuser)),
                    users::is_active.eq(excluded(users::is_active)),
                    users::is_staff.eq(excluded(users::is_staff)),
                    users::last_login.eq(excluded(users::last_login)),
                    users::updated_at.eq(excluded(users::updated_at)),
                    users::email_verified.eq(true),
                    users::changed_in_latchkey_at.eq(no_instant),
                    users::django_hash_digest.eq(excluded(users::django_hash_digest)),
                ))
                .execute(c))
            .map_err(StoreError::from_user_write)?;
        }
        Ok(())
    }

    /// The password of each of `ids` was replaced at `changed_at`: reset
    /// tokens issued before die, and tokens issued before
    /// `tokens_valid_after` are refused. Their sessions are left to
    /// [`crate::Session::end_all_for_user`].
    pub fn mark_passwords_replaced(
        conn: &mut DbConnection,
        ids: &[i64],
        changed_at: NaiveDateTime,
        tokens_valid_after: NaiveDateTime,
    ) -> Result<(), StoreError> {
        diesel::update(users::table.filter(users::id.eq_any(ids)))
            .set((
                users::password_changed_at.eq(changed_at),
                users::tokens_valid_after.eq(tokens_valid_after),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// New users' ids continue after the highest stored one, whatever ids
    /// were inserted explicitly. On PostgreSQL this moves the identity's
    /// sequence, which no rollback undoes; SQLite's AUTOINCREMENT follows
    /// the highest rowid by itself.
    pub fn continue_ids_after_highest(conn: &mut DbConnection) -> Result<(), StoreError> {
        if let DbConnection::Postgresql(pg) = conn {
            diesel::sql_query(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), m) \
                 FROM (SELECT MAX(id) AS m FROM users) AS t WHERE m IS NOT NULL",
            )
            .execute(pg)?;
        }
        Ok(())
    }
}

/// Whether `changes` are a write an `import-django` re-run must keep: a
/// password set (by the user, staff or a reset: `password_changed_at`,
/// never a hash upgrade), or an email or flag that really changes, compared
/// with the row as it is under the lock the update takes anyway.
fn changed_in_latchkey(
    conn: &mut DbConnection,
    id: i64,
    changes: &UserChanges,
) -> Result<bool, StoreError> {
    if changes.password_changed_at.is_some() {
        return Ok(true);
    }
    if changes.email.is_none()
        && changes.is_active.is_none()
        && changes.is_staff.is_none()
        && changes.is_superuser.is_none()
    {
        return Ok(false);
    }
    let Some(stored) = User::lock(conn, id)? else {
        return Ok(false);
    };
    let differs = |new: Option<bool>, old: bool| new.is_some_and(|new| new != old);
    Ok(changes
        .email
        .as_ref()
        .is_some_and(|email| *email != stored.email)
        || differs(changes.is_active, stored.is_active)
        || differs(changes.is_staff, stored.is_staff)
        || differs(changes.is_superuser, stored.is_superuser))
}

/// `SELECT … FOR NO KEY UPDATE` where the backend has it.
trait LockUserRow {
    fn lock_user_row(&mut self, id: i64) -> QueryResult<Option<User>>;
}

impl LockUserRow for diesel::PgConnection {
    fn lock_user_row(&mut self, id: i64) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            // The lock an UPDATE of the row takes: it waits for (and holds
            // off) every other writer of the user, but not the key-share
            // locks of rows inserted under the user's foreign key (a
            // racing refresh's new token), so it never deadlocks with them.
            .for_no_key_update()
            .first(self)
            .optional()
    }
}

impl LockUserRow for diesel::SqliteConnection {
    fn lock_user_row(&mut self, id: i64) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .first(self)
            .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn wildcards_in_a_search_are_escaped() {
        assert_eq!(contains_pattern("A_b%c"), "%a\\_b\\%c%");
    }
}
