//! Embedded migrations, one folder per backend.

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use latchkey_domain::Email;

use crate::schema::users;
use crate::{Database, DbConnection, StoreError, User};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// An arbitrary constant naming latchkey's migration lock, so instances
/// starting together on one PostgreSQL apply the migrations once.
const PG_MIGRATION_LOCK: i64 = 0x6c61_7463_686b;

/// Applies the pending migrations and returns the names of those applied.
pub fn run_pending_migrations(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut pooled = db.get()?;
    let conn: &mut DbConnection = &mut pooled;
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})")).execute(pg)?;
    }
    let result = apply(conn);
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})")).execute(pg)?;
    }
    result
}

fn apply(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let migration_error =
        |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    let applied: Vec<String> = match conn {
        DbConnection::Postgresql(pg) => pg.run_pending_migrations(POSTGRES),
        DbConnection::Sqlite(sqlite) => sqlite.run_pending_migrations(SQLITE),
    }
    .map_err(migration_error)?
    .iter()
    .map(ToString::to_string)
    .collect();
    if applied.iter().any(|version| version == IDNA_EMAILS) {
        rewrite_email_domains(conn)?;
    }
    Ok(applied)
}

/// The version of the migration after which stored addresses are in their
/// one form.
const IDNA_EMAILS: &str = "20261207000008";

/// Rewrites every stored address whose domain is not in its A-label form
/// (stored before latchkey compared domains in one form). Two accounts that
/// turn out to be one address are both left as they are and reported: which
/// one the mailbox's owner uses is for an operator to decide.
fn rewrite_email_domains(conn: &mut DbConnection) -> Result<(), StoreError> {
    let stored: Vec<(i64, String)> = users::table.select((users::id, users::email)).load(conn)?;
    let mut rewritten = 0;
    for (id, email) in stored {
        let Ok(one_form) = Email::parse(&email) else {
            continue;
        };
        if one_form.as_str() == email {
            continue;
        }
        if let Some(other) = User::find_by_email(conn, &one_form)? {
            log::warn!(
                "users {id} ({email}) and {} ({}) are one address: both left as they are; \
                 change or delete one of them",
                other.id,
                other.email
            );
            continue;
        }
        diesel::update(users::table.find(id))
            .set(users::email.eq(one_form.as_str()))
            .execute(conn)?;
        rewritten += 1;
    }
    if rewritten > 0 {
        log::info!("{rewritten} stored addresses rewritten with their domain's A-label form");
    }
    Ok(())
}
