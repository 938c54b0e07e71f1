//! The `django_imports` table: one row per committed `latchkey
//! import-django` run, what it read from and what it wrote.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::django_imports;
use crate::{DbConnection, StoreError};

#[derive(Debug, Insertable)]
#[diesel(table_name = django_imports)]
pub struct ImportRecord<'a> {
    pub imported_at: NaiveDateTime,
    /// The Django URL without its password.
    pub source: &'a str,
    pub users: i64,
    pub skipped: i64,
    pub tokens: i64,
    pub blacklisted: i64,
}

pub fn record(conn: &mut DbConnection, run: &ImportRecord<'_>) -> Result<(), StoreError> {
    diesel::insert_into(django_imports::table)
        .values(run)
        .execute(conn)?;
    Ok(())
}

/// The latest `import-django` run's instant: a never-recorded Django refresh
/// token whose `iat` is strictly before it (whole seconds) may be adopted.
pub fn latest_import_at(conn: &mut DbConnection) -> Result<Option<NaiveDateTime>, StoreError> {
    Ok(django_imports::table
        .select(diesel::dsl::max(django_imports::imported_at))
        .first::<Option<NaiveDateTime>>(conn)?)
}
