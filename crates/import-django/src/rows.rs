//! Django's rows mapped to latchkey's, and validated: emails normalised as
//! latchkey's own (a row whose email does not parse, or belongs to a lower
//! id, is skipped), instants parsed as either backend stores them, the
//! Django hash kept with its digest, expired tokens left behind.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Timelike};
use latchkey_domain::{Email, EmailError};
use latchkey_persistence::{DbConnection, ImportedUser, User};

use crate::ImportError;
use crate::source::{DjangoToken, DjangoUser};

/// A Django row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    pub id: i64,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    EmptyEmail,
    /// The email as stored in Django.
    InvalidEmail(String),
    TooLongEmail(String),
    /// The normalised email belongs to a lower id (the lowest id wins).
    EmailTaken {
        email: String,
        by: i64,
    },
    /// The normalised email is still held in latchkey by a higher id that an
    /// earlier run imported (its email changed in Django since): a further
    /// run, once that user is updated, imports this row.
    EmailHeld {
        email: String,
        by: i64,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::EmptyEmail => f.write_str("empty email"),
            SkipReason::InvalidEmail(raw) => write!(f, "invalid email {raw:?}"),
            SkipReason::TooLongEmail(raw) => {
                write!(f, "email longer than 254 characters {raw:?}")
            }
            SkipReason::EmailTaken { email, by } => {
                write!(f, "email {email} is already taken by id {by}")
            }
            SkipReason::EmailHeld { email, by } => write!(
                f,
                "email {email} is still held by id {by} in latchkey (changed in Django since the last import); run the import again"
            ),
        }
    }
}

/// A Django instant as stored: SQLite's text (`2026-12-01 20:54:37.630948`,
/// with or without a UTC offset or a `T`), or PostgreSQL's rendered in UTC.
/// Kept to the microsecond, as latchkey stores instants.
pub(crate) fn parse_instant(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .or_else(|| {
            [
                "%Y-%m-%d %H:%M:%S%.f%:z",
                "%Y-%m-%dT%H:%M:%S%.f%:z",
                "%Y-%m-%d %H:%M:%S%.f%#z",
            ]
            .iter()
            .find_map(|format| DateTime::parse_from_str(raw, format).ok())
            .map(|at| at.naive_utc())
        })?;
    naive.with_nanosecond(naive.nanosecond() / 1_000 * 1_000)
}

/// Tokens' `iat` and latchkey's revocation instants are whole seconds.
pub(crate) fn whole_second(at: NaiveDateTime) -> NaiveDateTime {
    at.with_nanosecond(0).unwrap_or(at)
}

fn bad_row(table: &'static str, id: i64, what: impl Into<String>) -> ImportError {
    ImportError::BadRow {
        table,
        id,
        what: what.into(),
    }
}

fn instant(
    table: &'static str,
    id: i64,
    column: &str,
    raw: Option<&str>,
) -> Result<Option<NaiveDateTime>, ImportError> {
    match raw {
        None => Ok(None),
        Some(raw) => parse_instant(raw)
            .map(Some)
            .ok_or_else(|| bad_row(table, id, format!("{column} {raw:?} is not an instant"))),
    }
}

/// Validates a chunk of Django rows (in id order) into latchkey rows, and
/// lists the ones skipped.
pub(crate) fn prepare_users(
    conn: &mut DbConnection,
    chunk: &[DjangoUser],
    now: NaiveDateTime,
) -> Result<(Vec<ImportedUser>, Vec<SkippedRow>), ImportError> {
    let mut skipped = Vec::new();
    let mut valid = Vec::with_capacity(chunk.len());
    for row in chunk {
        let raw = row.email.as_deref().unwrap_or("");
        match Email::parse(raw) {
            Ok(email) => valid.push((row, email.into_inner())),
            Err(error) => skipped.push(SkippedRow {
                id: row.id,
                reason: match error {
                    EmailError::Blank => SkipReason::EmptyEmail,
                    EmailError::TooLong => SkipReason::TooLongEmail(raw.to_owned()),
                    EmailError::Invalid => SkipReason::InvalidEmail(raw.to_owned()),
                },
            }),
        }
    }
    // Who holds these emails in latchkey already: lower ids of this run or
    // of an earlier one, or this very user from an earlier run.
    let emails: Vec<&str> = valid.iter().map(|(_, email)| email.as_str()).collect();
    let holders = User::ids_by_email(conn, &emails)?;
    let mut taken_here: HashMap<&str, i64> = HashMap::new();
    let mut rows = Vec::with_capacity(valid.len());
    for (row, email) in &valid {
        let holder = taken_here
            .get(email.as_str())
            .copied()
            .or_else(|| holders.get(email).copied().filter(|&by| by != row.id));
        if let Some(by) = holder {
            let email = email.clone();
            skipped.push(SkippedRow {
                id: row.id,
                reason: if by < row.id {
                    SkipReason::EmailTaken { email, by }
                } else {
                    SkipReason::EmailHeld { email, by }
                },
            });
            continue;
        }
        taken_here.insert(email.as_str(), row.id);
        let created_at = instant("user", row.id, "created_at", row.created_at.as_deref())?;
        let updated_at = instant("user", row.id, "updated_at", row.updated_at.as_deref())?;
        let last_login = instant("user", row.id, "last_login", row.last_login.as_deref())?;
        let password_hash = row.password.clone().unwrap_or_else(|| "!".to_owned());
        rows.push(ImportedUser {
            id: row.id,
            email: email.clone(),
            // The SHA-256, in hex, of the hash as Django stored it.
            django_hash_digest: Some(latchkey_auth::secrets::secret_hash(&password_hash)),
            password_hash,
            is_superuser: row.is_superuser != 0,
            is_active: row.is_active != 0,
            is_staff: row.is_staff != 0,
            last_login,
            created_at: created_at.unwrap_or(now),
            updated_at: updated_at.or(created_at).unwrap_or(now),
            // Every token Django issued to the user is at least as late as
            // their joining (whole seconds, like `iat`): none is refused.
            tokens_valid_after: created_at.map_or(DateTime::UNIX_EPOCH.naive_utc(), whole_second),
            email_verified: true,
            imported_from_django: true,
        });
    }
    skipped.sort_by_key(|row| row.id);
    Ok((rows, skipped))
}

/// An unexpired outstanding token of a Django user.
pub(crate) struct LiveToken {
    pub(crate) jti: String,
    pub(crate) user_id: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) expires_at: NaiveDateTime,
    pub(crate) blacklisted_at: Option<NaiveDateTime>,
}

/// The tokens of a page that name a `jti` and a user and expire after
/// `now`, in the page's order.
pub(crate) fn live_tokens(
    page: Vec<DjangoToken>,
    now: NaiveDateTime,
) -> Result<Vec<LiveToken>, ImportError> {
    let mut live = Vec::new();
    for token in page {
        let (Some(jti), Some(user_id)) = (token.jti, token.user_id) else {
            continue;
        };
        let table = "outstanding token";
        let Some(expires_at) = instant(table, token.id, "expires_at", token.expires_at.as_deref())?
        else {
            continue;
        };
        if expires_at <= now {
            continue;
        }
        let created_at =
            instant(table, token.id, "created_at", token.created_at.as_deref())?.unwrap_or(now);
        let blacklisted_at = instant(
            table,
            token.id,
            "blacklisted_at",
            token.blacklisted_at.as_deref(),
        )?;
        live.push(LiveToken {
            jti,
            user_id,
            created_at,
            expires_at,
            blacklisted_at,
        });
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_instants_parse_as_stored() {
        let expected =
            NaiveDateTime::parse_from_str("2026-12-01 20:54:37.630948", "%Y-%m-%d %H:%M:%S%.f")
                .unwrap();
        for raw in [
            "2026-12-01 20:54:37.630948",
            "2026-12-01T20:54:37.630948",
            "2026-12-01 20:54:37.630948+00:00",
            "2026-12-01 21:54:37.630948+01:00",
        ] {
            assert_eq!(parse_instant(raw), Some(expected), "{raw}");
        }
        assert_eq!(
            parse_instant("2026-12-08 20:54:38"),
            NaiveDateTime::parse_from_str("2026-12-08 20:54:38", "%Y-%m-%d %H:%M:%S").ok()
        );
        assert_eq!(parse_instant("yesterday"), None);
    }
}
