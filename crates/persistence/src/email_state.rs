//! What the password reset and email verification links refer to:
//! `password_reset_tokens` and `email_verification_keys`. Only a SHA-256 of
//! each token or key is stored (callers hash; this crate never sees the
//! plain value), so a copy of the database opens no account.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{email_verification_keys, password_reset_tokens};
use crate::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = password_reset_tokens)]
pub struct PasswordResetToken {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = password_reset_tokens)]
pub struct NewPasswordResetToken<'a> {
    pub user_id: i64,
    pub email: &'a str,
    pub token_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl PasswordResetToken {
    pub fn insert(
        conn: &mut DbConnection,
        new: &NewPasswordResetToken<'_>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(password_reset_tokens::table)
            .values(new)
            .execute(conn)?;
        Ok(())
    }

    /// The user's token with this hash, whatever its state.
    pub fn find(
        conn: &mut DbConnection,
        user_id: i64,
        token_hash: &str,
    ) -> Result<Option<PasswordResetToken>, StoreError> {
        Ok(password_reset_tokens::table
            .filter(password_reset_tokens::user_id.eq(user_id))
            .filter(password_reset_tokens::token_hash.eq(token_hash))
            .select(PasswordResetToken::as_select())
            .first(conn)
            .optional()?)
    }

    /// Uses the token up: true for the one caller that did (a second,
    /// concurrent use finds it used: PostgreSQL re-checks the condition
    /// after the first commits; SQLite runs one write at a time).
    pub fn use_up(
        conn: &mut DbConnection,
        id: i64,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            password_reset_tokens::table
                .filter(password_reset_tokens::id.eq(id))
                .filter(password_reset_tokens::used_at.is_null()),
        )
        .set(password_reset_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(updated == 1)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = email_verification_keys)]
pub struct EmailVerificationKey {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = email_verification_keys)]
pub struct NewEmailVerificationKey<'a> {
    pub user_id: i64,
    pub email: &'a str,
    pub key_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl EmailVerificationKey {
    pub fn insert(
        conn: &mut DbConnection,
        new: &NewEmailVerificationKey<'_>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(email_verification_keys::table)
            .values(new)
            .execute(conn)?;
        Ok(())
    }

    pub fn find_by_hash(
        conn: &mut DbConnection,
        key_hash: &str,
    ) -> Result<Option<EmailVerificationKey>, StoreError> {
        Ok(email_verification_keys::table
            .filter(email_verification_keys::key_hash.eq(key_hash))
            .select(EmailVerificationKey::as_select())
            .first(conn)
            .optional()?)
    }

    /// The id of the newest key sent to the user (keys only grow).
    pub fn latest_id(conn: &mut DbConnection, user_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(email_verification_keys::table
            .filter(email_verification_keys::user_id.eq(user_id))
            .select(diesel::dsl::max(email_verification_keys::id))
            .first(conn)?)
    }
}

/// Deletes reset tokens and verification keys that expired before `now`:
/// `(reset tokens, verification keys)`. Used-up reset tokens go once
/// expired too.
pub fn flush_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<(usize, usize), StoreError> {
    let tokens = diesel::delete(
        password_reset_tokens::table.filter(password_reset_tokens::expires_at.lt(now)),
    )
    .execute(conn)?;
    let keys = diesel::delete(
        email_verification_keys::table.filter(email_verification_keys::expires_at.lt(now)),
    )
    .execute(conn)?;
    Ok((tokens, keys))
}
