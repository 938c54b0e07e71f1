//! The refresh tokens ever issued (`outstanding_tokens`) and the blacklist
//! (`blacklisted_tokens`), as simplejwt's `token_blacklist` app keeps them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{blacklisted_tokens, outstanding_tokens};
use crate::{BATCH_ROWS, DbConnection, StoreError, write_transaction};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, PartialEq, Eq)]
#[diesel(table_name = outstanding_tokens)]
pub struct OutstandingToken {
    pub id: i64,
    pub jti: String,
    pub user_id: i64,
    pub session_id: String,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub replaced_by_jti: Option<String>,
    pub replaced_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = outstanding_tokens)]
pub struct NewOutstandingToken<'a> {
    pub jti: &'a str,
    pub user_id: i64,
    pub session_id: &'a str,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = blacklisted_tokens)]
struct NewBlacklistedToken {
    token_id: i64,
    blacklisted_at: NaiveDateTime,
}

/// What latchkey knows of a token `import-django` finds in Django.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownToken {
    pub id: i64,
    pub session_id: String,
    /// Rotated into another token (`replaced_by_jti`).
    pub replaced: bool,
    pub blacklisted: bool,
}

/// A stored refresh token with its blacklist entry, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token: OutstandingToken,
    pub blacklisted_at: Option<NaiveDateTime>,
}

impl OutstandingToken {
    pub fn record(
        conn: &mut DbConnection,
        new: &NewOutstandingToken<'_>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(outstanding_tokens::table)
            .values(new)
            .execute(conn)?;
        Ok(())
    }

    /// Records a token unless its `jti` is recorded already (a racing
    /// request recorded the same token first): then false.
    pub fn record_new(
        conn: &mut DbConnection,
        new: &NewOutstandingToken<'_>,
    ) -> Result<bool, StoreError> {
        match diesel::insert_into(outstanding_tokens::table)
            .values(new)
            .execute(conn)
        {
            Ok(_) => Ok(true),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    pub fn find_by_jti(
        conn: &mut DbConnection,
        jti: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row: Option<(OutstandingToken, Option<NaiveDateTime>)> = outstanding_tokens::table
            .left_join(blacklisted_tokens::table)
            .filter(outstanding_tokens::jti.eq(jti))
            .select((
                OutstandingToken::as_select(),
                blacklisted_tokens::blacklisted_at.nullable(),
            ))
            .first(conn)
            .optional()?;
        Ok(row.map(|(token, blacklisted_at)| TokenRecord {
            token,
            blacklisted_at,
        }))
    }

    /// Marks the token as rotated into `new_jti`. Only the first caller wins
    /// (the row must not be replaced yet): returns whether this call did.
    fn mark_replaced(
        conn: &mut DbConnection,
        id: i64,
        new_jti: &str,
        at: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            outstanding_tokens::table
                .find(id)
                .filter(outstanding_tokens::replaced_by_jti.is_null()),
        )
        .set((
            outstanding_tokens::replaced_by_jti.eq(new_jti),
            outstanding_tokens::replaced_at.eq(at),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Rotates `old_id` into `new` in one write transaction: records the
    /// new token and, when `retire_old`, marks the old one replaced and
    /// blacklists it. Only one rotation of a token can win; returns false,
    /// having changed nothing, when another already did.
    pub fn rotate(
        conn: &mut DbConnection,
        old_id: i64,
        new: &NewOutstandingToken<'_>,
        retire_old: bool,
        at: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        /// Why the transaction rolled back: a lost race is not an error.
        enum Abort {
            LostRace,
            Store(StoreError),
        }
        impl From<StoreError> for Abort {
            fn from(error: StoreError) -> Self {
                Abort::Store(error)
            }
        }
        let outcome = write_transaction::<(), Abort, _>(conn, |conn| {
            Self::record(conn, new)?;
            if retire_old {
                if !Self::mark_replaced(conn, old_id, new.jti, at)? {
                    return Err(Abort::LostRace);
                }
                Self::blacklist(conn, old_id, at)?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(true),
            Err(Abort::LostRace) => Ok(false),
            Err(Abort::Store(error)) => Err(error),
        }
    }

    /// Blacklists one token; true when it was not blacklisted before.
    pub fn blacklist(
        conn: &mut DbConnection,
        token_id: i64,
        at: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        Ok(blacklist_ids(conn, &[token_id], at)? > 0)
    }

    /// Records the tokens, a few hundred rows a statement.
    pub fn record_batch(
        conn: &mut DbConnection,
        rows: &[NewOutstandingToken<'_>],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(BATCH_ROWS) {
            crate::per_backend!(conn, c => diesel::insert_into(outstanding_tokens::table).values(chunk).execute(c))?;
        }
        Ok(())
    }

    /// The tokens among `jtis` that latchkey recorded, by `jti`.
    pub fn known_by_jti(
        conn: &mut DbConnection,
        jtis: &[&str],
    ) -> Result<HashMap<String, KnownToken>, StoreError> {
        Ok(outstanding_tokens::table
            .left_join(blacklisted_tokens::table)
            .filter(outstanding_tokens::jti.eq_any(jtis))
            .select((
                outstanding_tokens::jti,
                outstanding_tokens::id,
                outstanding_tokens::session_id,
                outstanding_tokens::replaced_by_jti.is_not_null(),
                blacklisted_tokens::id.nullable().is_not_null(),
            ))
            .load::<(String, i64, String, bool, bool)>(conn)?
            .into_iter()
            .map(|(jti, id, session_id, replaced, blacklisted)| {
                (
                    jti,
                    KnownToken {
                        id,
                        session_id,
                        replaced,
                        blacklisted,
                    },
                )
            })
            .collect())
    }

    /// The ids of the tokens among `jtis` that are recorded, with their `jti`.
    pub fn ids_by_jti(
        conn: &mut DbConnection,
        jtis: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(outstanding_tokens::table
            .filter(outstanding_tokens::jti.eq_any(jtis))
            .select((outstanding_tokens::jti, outstanding_tokens::id))
            .load(conn)?)
    }

    /// Blacklists each token (by id) at its instant, a few hundred rows a
    /// statement. None may be blacklisted already: unlike
    /// [`OutstandingToken::blacklist`], a second entry is an error.
    pub fn blacklist_batch(
        conn: &mut DbConnection,
        entries: &[(i64, NaiveDateTime)],
    ) -> Result<(), StoreError> {
        let rows: Vec<NewBlacklistedToken> = entries
            .iter()
            .map(|&(token_id, blacklisted_at)| NewBlacklistedToken {
                token_id,
                blacklisted_at,
            })
            .collect();
        for chunk in rows.chunks(BATCH_ROWS) {
            crate::per_backend!(conn, c => diesel::insert_into(blacklisted_tokens::table).values(chunk).execute(c))?;
        }
        Ok(())
    }

    /// `flush-expired-tokens`: deletes the tokens (and so their blacklist
    /// rows) and the sessions that expired before `now`; returns
    /// (blacklist rows, tokens, sessions).
    pub fn flush_expired(
        conn: &mut DbConnection,
        now: NaiveDateTime,
    ) -> Result<(usize, usize, usize), StoreError> {
        write_transaction(conn, |conn| {
            let expired = outstanding_tokens::table
                .filter(outstanding_tokens::expires_at.lt(now))
                .select(outstanding_tokens::id);
            let blacklist_rows = diesel::delete(
                blacklisted_tokens::table.filter(blacklisted_tokens::token_id.eq_any(expired)),
            )
            .execute(conn)?;
            let tokens = diesel::delete(
                outstanding_tokens::table.filter(outstanding_tokens::expires_at.lt(now)),
            )
            .execute(conn)?;
            let sessions = crate::Session::flush_expired(conn, now)?;
            Ok((blacklist_rows, tokens, sessions))
        })
    }
}

/// Blacklists the tokens among `ids` that are not blacklisted yet; returns
/// how many were newly blacklisted. Idempotent: a row inserted meanwhile by a
/// racing rotation is skipped (`ON CONFLICT DO NOTHING`), never a unique
/// violation.
pub(crate) fn blacklist_ids(
    conn: &mut DbConnection,
    ids: &[i64],
    at: NaiveDateTime,
) -> Result<usize, StoreError> {
    let mut inserted = 0;
    for &token_id in ids {
        let row = NewBlacklistedToken {
            token_id,
            blacklisted_at: at,
        };
        inserted += crate::per_backend!(conn, c => diesel::insert_into(blacklisted_tokens::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(inserted)
}
