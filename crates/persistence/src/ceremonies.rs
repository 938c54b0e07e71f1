//! The `ceremonies` table: the short-lived, single-use state of every login
//! or enrolment step that spans requests (a pending second factor, a
//! WebAuthn challenge, an OpenID Connect state, a one-time code). A new way
//! in adds a [`CeremonyKind`], not a table.
//!
//! A ceremony is named by a handle the client holds; only its SHA-256 is
//! stored (callers hash, as for the email links: a copy of the database
//! continues no ceremony). Using one up and counting a wrong answer are each
//! ONE conditional `UPDATE … RETURNING`, never a read then a write: of two
//! requests racing for a ceremony, on any instance, exactly one wins, and a
//! caller's refused step rolls its transaction back, leaving the ceremony
//! as it was.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::ceremonies;
use crate::{DbConnection, StoreError};

/// What a ceremony is for; its stored `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeremonyKind {
    /// A first factor passed, a second one is due (the `mfa_token`).
    MfaPending,
    /// A WebAuthn registration or authentication challenge.
    WebauthnChallenge,
    /// An OpenID Connect / OAuth 2 authorisation request: state, nonce and
    /// PKCE verifier.
    OidcState,
    /// The one-time code a provider's callback hands the client.
    SocialCode,
}

impl CeremonyKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::MfaPending => "mfa_pending",
            CeremonyKind::WebauthnChallenge => "webauthn_challenge",
            CeremonyKind::OidcState => "oidc_state",
            CeremonyKind::SocialCode => "social_code",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = ceremonies)]
pub struct Ceremony {
    pub id: i64,
    pub kind: String,
    pub handle_hash: String,
    pub user_id: Option<i64>,
    /// What the next step needs, as JSON.
    pub payload: String,
    /// Wrong answers so far.
    pub tries: i32,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub consumed_at: Option<NaiveDateTime>,
}

/// A ceremony to begin. `handle_hash` is the SHA-256 (hex) of the client's
/// handle, never the handle.
#[derive(Debug, Clone)]
pub struct NewCeremony<'a> {
    pub kind: CeremonyKind,
    pub handle_hash: &'a str,
    pub user_id: Option<i64>,
    pub payload: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = ceremonies)]
struct CeremonyRow<'a> {
    kind: &'a str,
    handle_hash: &'a str,
    user_id: Option<i64>,
    payload: &'a str,
    tries: i32,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

/// The one live ceremony of this kind and handle, as an `UPDATE`'s target.
macro_rules! live {
    ($kind:expr, $handle_hash:expr, $now:expr) => {
        ceremonies::table
            .filter(ceremonies::kind.eq($kind.as_str()))
            .filter(ceremonies::handle_hash.eq($handle_hash))
            .filter(ceremonies::consumed_at.is_null())
            .filter(ceremonies::expires_at.gt($now))
    };
}

impl Ceremony {
    /// Stores a new ceremony. A handle is random and used once: a second
    /// ceremony with the same kind and handle is refused by the unique
    /// index (a `StoreError`, never a silent overwrite).
    pub fn begin(conn: &mut DbConnection, new: &NewCeremony<'_>) -> Result<(), StoreError> {
        diesel::insert_into(ceremonies::table)
            .values(&CeremonyRow {
                kind: new.kind.as_str(),
                handle_hash: new.handle_hash,
                user_id: new.user_id,
                payload: new.payload,
                tries: 0,
                created_at: new.created_at,
                expires_at: new.expires_at,
            })
            .execute(conn)?;
        Ok(())
    }

    /// The live ceremony (not used up, not expired) with this handle, read
    /// without using it: what a step shows before it is answered.
    pub fn find_live(
        conn: &mut DbConnection,
        kind: CeremonyKind,
        handle_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Ceremony>, StoreError> {
        Ok(live!(kind, handle_hash, now)
            .select(Ceremony::as_select())
            .first(conn)
            .optional()?)
    }

    /// Uses the ceremony up, in one statement: the ceremony as it was for
    /// the one caller that did, `None` for everyone else (spent, expired,
    /// unknown). Inside the caller's transaction, a rollback gives it back.
    pub fn consume(
        conn: &mut DbConnection,
        kind: CeremonyKind,
        handle_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Ceremony>, StoreError> {
        let target = live!(kind, handle_hash, now);
        Ok(crate::per_backend!(conn, c => diesel::update(target)
            .set(ceremonies::consumed_at.eq(now))
            .returning(Ceremony::as_returning())
            .get_result(c)
            .optional())?)
    }

    /// Counts a wrong answer, in one statement, while fewer than `limit`
    /// were counted: the number of wrong answers now, or `None` when the
    /// ceremony is no longer live or had used all its tries (so of any
    /// number of concurrent wrong answers, at most `limit` are counted).
    pub fn spend_try(
        conn: &mut DbConnection,
        kind: CeremonyKind,
        handle_hash: &str,
        limit: i32,
        now: NaiveDateTime,
    ) -> Result<Option<i32>, StoreError> {
        let target = live!(kind, handle_hash, now).filter(ceremonies::tries.lt(limit));
        Ok(crate::per_backend!(conn, c => diesel::update(target)
            .set(ceremonies::tries.eq(ceremonies::tries + 1))
            .returning(ceremonies::tries)
            .get_result(c)
            .optional())?)
    }

    /// `flush-expired-tokens`: ceremonies past their expiry, used up or not.
    pub fn flush_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
        Ok(
            diesel::delete(ceremonies::table.filter(ceremonies::expires_at.lt(now)))
                .execute(conn)?,
        )
    }
}
