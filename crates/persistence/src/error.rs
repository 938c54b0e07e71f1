use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong in storage, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The email is already taken (the unique constraint said so).
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no such row")]
    NotFound,
    /// No connection could be had within the pool timeout, or it was lost.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StoreError::Unavailable(info.message().to_owned()),
            // SQLite reports a write lock held past busy_timeout this way; it
            // is contention, not a bug, so callers see it as unavailability.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("database is locked") =>
            {
                StoreError::Unavailable(info.message().to_owned())
            }
            other => StoreError::Query(other),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

impl StoreError {
    /// Maps a unique violation on an insert or update of `users` to
    /// [`StoreError::EmailTaken`]: email is the table's only unique column
    /// besides the primary key, which callers never set.
    pub(crate) fn from_user_write(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::EmailTaken
            }
            other => other.into(),
        }
    }
}
