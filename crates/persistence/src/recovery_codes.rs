//! The `recovery_codes` table: a user's recovery codes, only as keyed
//! hashes (the auth crate hashes; this crate never sees a code). A code is
//! used up by one conditional `UPDATE`: of two requests with it, exactly
//! one succeeds.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::recovery_codes;
use crate::{DbConnection, StoreError};

/// How a typed code is reduced before it is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFormat {
    /// latchkey's: 12 base32 characters, any case, dashes and spaces ignored.
    Latchkey,
    /// Imported (django-otp's static tokens, allauth's codes): whitespace
    /// ignored, otherwise as stored.
    AsStored,
}

impl CodeFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            CodeFormat::Latchkey => "latchkey",
            CodeFormat::AsStored => "as_stored",
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = recovery_codes)]
struct CodeRow<'a> {
    user_id: i64,
    code_hash: &'a str,
    format: &'a str,
    created_at: NaiveDateTime,
}

/// A user's recovery codes.
pub struct RecoveryCodes;

impl RecoveryCodes {
    /// Replaces the user's codes with a new set (`hashes`): the earlier set
    /// stops working in the same transaction.
    pub fn replace(
        conn: &mut DbConnection,
        user_id: i64,
        hashes: &[String],
        format: CodeFormat,
        now: NaiveDateTime,
    ) -> Result<(), StoreError> {
        RecoveryCodes::remove(conn, user_id)?;
        let rows: Vec<CodeRow<'_>> = hashes
            .iter()
            .map(|hash| CodeRow {
                user_id,
                code_hash: hash,
                format: format.as_str(),
                created_at: now,
            })
            .collect();
        crate::per_backend!(conn, c => diesel::insert_into(recovery_codes::table)
            .values(&rows)
            .execute(c))?;
        Ok(())
    }

    /// The users among `user_ids` that have any code row, used or not.
    pub fn users_with_codes(
        conn: &mut DbConnection,
        user_ids: &[i64],
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        Ok(recovery_codes::table
            .filter(recovery_codes::user_id.eq_any(user_ids))
            .select(recovery_codes::user_id)
            .distinct()
            .load::<i64>(conn)?
            .into_iter()
            .collect())
    }

    /// An import's codes, `(user id, keyed hash)`, in `format`: inserted
    /// only for users that have no code row yet (a set latchkey has, used
    /// codes included, is never replaced nor added to, so no code used in
    /// latchkey comes back). Returns how many were inserted.
    pub fn import_batch(
        conn: &mut DbConnection,
        codes: &[(i64, String)],
        format: CodeFormat,
        now: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        if codes.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = codes.iter().map(|(user_id, _)| *user_id).collect();
        let existing = RecoveryCodes::users_with_codes(conn, &ids)?;
        let rows: Vec<CodeRow<'_>> = codes
            .iter()
            .filter(|(user_id, _)| !existing.contains(user_id))
            .map(|(user_id, hash)| CodeRow {
                user_id: *user_id,
                code_hash: hash,
                format: format.as_str(),
                created_at: now,
            })
            .collect();
        let mut inserted = 0;
        // Four bound values a row: well below either backend's limit.
        for chunk in rows.chunks(1000) {
            inserted += crate::per_backend!(conn, c => diesel::insert_into(recovery_codes::table)
                .values(chunk)
                .execute(c))?;
        }
        Ok(inserted)
    }

    /// Removes every code of the user.
    pub fn remove(conn: &mut DbConnection, user_id: i64) -> Result<usize, StoreError> {
        Ok(
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
                .execute(conn)?,
        )
    }

    /// Uses up one unused code of the user whose hash is one of `hashes`
    /// (the typed code hashed under each configured key and format), in
    /// one conditional `UPDATE` of the first such row: true for the one
    /// caller that did. An imported set holding one code twice keeps the
    /// second copy, as django-otp uses one per verification.
    pub fn use_up(
        conn: &mut DbConnection,
        user_id: i64,
        hashes: &[String],
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        // The subquery reads the table under another name: a target that
        // filters on its own table is not a valid UPDATE target in diesel.
        let candidates = diesel::alias!(recovery_codes as candidates);
        let first_unused = candidates
            .filter(candidates.field(recovery_codes::user_id).eq(user_id))
            .filter(candidates.field(recovery_codes::code_hash).eq_any(hashes))
            .filter(candidates.field(recovery_codes::used_at).is_null())
            .select(candidates.field(recovery_codes::id))
            .order(candidates.field(recovery_codes::id).asc())
            .limit(1)
            .single_value();
        let updated = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::id.nullable().eq(first_unused))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(now))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// How many unused codes the user has.
    pub fn unused(conn: &mut DbConnection, user_id: i64) -> Result<i64, StoreError> {
        Ok(recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)?)
    }
}
