//! The `users` table.

use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use latchkey_domain::{Email, UserFlags};

use crate::schema::users;
use crate::{DbConnection, StoreError, write_transaction};

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
            let updated = if changed_in_latchkey(conn, id, changes)? {
                let stamp = users::changed_in_latchkey_at.eq(Some(crate::db_now()));
                diesel::update(users::table.find(id))
                    .set((changes, stamp))
                    .execute(conn)
            } else {
                diesel::update(users::table.find(id))
                    .set(changes)
                    .execute(conn)
            }
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
