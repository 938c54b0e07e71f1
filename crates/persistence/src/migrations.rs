//! Embedded migrations, one folder per backend.

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{Database, DbConnection, StoreError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// An arbitrary constant naming latchkey's migration lock, so instances
/// starting together on one PostgreSQL apply the migrations once.
const PG_MIGRATION_LOCK: i64 = 0x6c61_7463_686b;

/// Applies the pending migrations and returns the names of those applied.
pub fn run_pending_migrations(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut pooled = db.get()?;
    let conn: &mut DbConnection = &mut pooled;
    let migration_error =
        |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    let applied = match conn {
        DbConnection::Postgresql(pg) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                .execute(pg)?;
            result.map_err(migration_error)?
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE)
            .map_err(migration_error)?
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    Ok(applied)
}
