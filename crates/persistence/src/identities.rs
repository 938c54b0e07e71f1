//! The `provider_identities` table: identities at external providers linked
//! to users, and `accepted_id_tokens`, the ID tokens a native app posted,
//! each accepted once. Both decide by a unique key in one `INSERT … ON
//! CONFLICT DO NOTHING`, never a read then a write: of two first logins of
//! one identity, or two posts of one ID token, on any instance, exactly one
//! inserts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{accepted_id_tokens, provider_identities};
use crate::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = provider_identities)]
pub struct Identity {
    pub id: i64,
    pub provider: String,
    pub subject: String,
    pub user_id: i64,
    /// The address the provider gave when the identity was linked.
    pub email: Option<String>,
    pub linked_at: NaiveDateTime,
    pub last_login: Option<NaiveDateTime>,
}

/// An identity to link.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = provider_identities)]
pub struct NewIdentity<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub user_id: i64,
    pub email: Option<&'a str>,
    pub linked_at: NaiveDateTime,
}

impl Identity {
    /// The identity `(provider, subject)`, whoever holds it.
    pub fn find(
        conn: &mut DbConnection,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        Ok(provider_identities::table
            .filter(provider_identities::provider.eq(provider))
            .filter(provider_identities::subject.eq(subject))
            .select(Identity::as_select())
            .first(conn)
            .optional()?)
    }

    /// Links the identity to its user unless someone holds it already, in
    /// one statement: true for the one caller that linked it (a loser reads
    /// the winner with [`Identity::find`]).
    pub fn link(conn: &mut DbConnection, new: &NewIdentity<'_>) -> Result<bool, StoreError> {
        let inserted = crate::per_backend!(conn, c => diesel::insert_into(provider_identities::table)
            .values(new)
            .on_conflict_do_nothing()
            .execute(c))?;
        Ok(inserted == 1)
    }

    /// The user's identities, oldest link first.
    pub fn for_user(conn: &mut DbConnection, user_id: i64) -> Result<Vec<Identity>, StoreError> {
        Ok(provider_identities::table
            .filter(provider_identities::user_id.eq(user_id))
            .order((
                provider_identities::linked_at.asc(),
                provider_identities::id.asc(),
            ))
            .select(Identity::as_select())
            .load(conn)?)
    }

    /// Unlinks the user's identities at `provider`: how many there were.
    pub fn unlink(
        conn: &mut DbConnection,
        user_id: i64,
        provider: &str,
    ) -> Result<usize, StoreError> {
        Ok(diesel::delete(
            provider_identities::table
                .filter(provider_identities::user_id.eq(user_id))
                .filter(provider_identities::provider.eq(provider)),
        )
        .execute(conn)?)
    }

    /// Every identity of the user (an account reclaimed by its address's
    /// owner keeps none).
    pub fn unlink_all(conn: &mut DbConnection, user_id: i64) -> Result<usize, StoreError> {
        Ok(diesel::delete(
            provider_identities::table.filter(provider_identities::user_id.eq(user_id)),
        )
        .execute(conn)?)
    }

    /// A login through the identity `(provider, subject)`, in one
    /// statement: false when no one holds it.
    pub fn record_login(
        conn: &mut DbConnection,
        provider: &str,
        subject: &str,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            provider_identities::table
                .filter(provider_identities::provider.eq(provider))
                .filter(provider_identities::subject.eq(subject)),
        )
        .set(provider_identities::last_login.eq(now))
        .execute(conn)?;
        Ok(updated == 1)
    }
}

/// ID tokens accepted from native apps.
pub struct AcceptedIdTokens;

impl AcceptedIdTokens {
    /// Records the token's SHA-256 (hex) until it expires, in one
    /// statement: true for the one caller that did; a token presented
    /// again is refused.
    pub fn accept_once(
        conn: &mut DbConnection,
        token_hash: &str,
        expires_at: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let inserted = crate::per_backend!(conn, c => diesel::insert_into(accepted_id_tokens::table)
            .values((
                accepted_id_tokens::token_hash.eq(token_hash),
                accepted_id_tokens::expires_at.eq(expires_at),
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
        Ok(inserted == 1)
    }

    /// `flush-expired-tokens`: tokens past their expiry, which no check
    /// would accept again anyway.
    pub fn flush_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
        Ok(
            diesel::delete(
                accepted_id_tokens::table.filter(accepted_id_tokens::expires_at.lt(now)),
            )
            .execute(conn)?,
        )
    }
}
