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
            // A server shutting down ends its sessions with an error of its
            // own (PostgreSQL's 57P01 "terminating connection due to
            // administrator command"), which diesel reports as a plain
            // database error: the database is going away, not the query
            // at fault.
            DieselError::DatabaseError(_, ref info) if connection_lost(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            // The connection broke inside a transaction (its BEGIN, COMMIT
            // or ROLLBACK could not be sent).
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("the connection was lost inside a transaction".into())
            }
            DieselError::RollbackErrorOnCommit {
                ref commit_error, ..
            } if lost(commit_error) => StoreError::Unavailable(commit_error.to_string()),
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

/// Whether `error` is the connection's loss (so its COMMIT failed for that).
fn lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(_, info) => connection_lost(info.message()),
        _ => false,
    }
}

/// Whether a database error says the connection or the server went away
/// (libpq's and PostgreSQL's wording), rather than that the query failed.
fn connection_lost(message: &str) -> bool {
    const LOST: [&str; 7] = [
        "terminating connection",
        "server closed the connection",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "the database system is shutting down",
        "connection to server",
    ];
    LOST.iter().any(|lost| message.contains(lost))
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn database_error(kind: DatabaseErrorKind, message: &'static str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(Info(message)))
    }

    #[test]
    fn a_database_going_away_is_unavailability_not_a_failed_query() {
        for message in [
            "terminating connection due to administrator command",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "the database system is shutting down",
            "no connection to the server\n",
        ] {
            let error = StoreError::from(database_error(DatabaseErrorKind::Unknown, message));
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{message}: {error:?}"
            );
        }
        assert!(matches!(
            StoreError::from(DieselError::BrokenTransactionManager),
            StoreError::Unavailable(_)
        ));
        let on_commit = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(DieselError::BrokenTransactionManager),
            commit_error: Box::new(database_error(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection unexpectedly",
            )),
        };
        assert!(matches!(
            StoreError::from(on_commit),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn a_failed_query_stays_a_failed_query() {
        let error = StoreError::from(database_error(
            DatabaseErrorKind::Unknown,
            "column \"nope\" does not exist",
        ));
        assert!(matches!(error, StoreError::Query(_)), "{error:?}");
        let error = StoreError::from(database_error(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key value violates unique constraint",
        ));
        assert!(matches!(error, StoreError::Query(_)), "{error:?}");
    }
}
