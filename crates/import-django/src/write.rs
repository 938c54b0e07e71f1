//! `latchkey import-django`: reads a Django database (SQLite or PostgreSQL,
//! read only) and writes its users and simplejwt's outstanding and
//! blacklisted refresh tokens into latchkey, in one write transaction.
//!
//! Memory stays bounded whatever the number of users: the Django rows are
//! read in pages by keyset (`WHERE id > last ORDER BY id LIMIT 1000`) and
//! written in batches; the rule "an email taken by a lower id is skipped" is
//! checked against latchkey's own unique index (the lower ids were written
//! earlier in the same transaction), never against a set held in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Timelike};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::SqliteConnection;
use latchkey_domain::{Email, EmailError};

use latchkey_persistence::django_imports::{self, ImportRecord};
use latchkey_persistence::{
    DatabaseUrl, DbConnection, ImportedSession, ImportedUser, NewOutstandingToken,
    OutstandingToken, Session, StoreError, User, db_now, plan_each_statement_afresh,
    write_transaction,
};

/// Rows read from Django per query.
const PAGE: i64 = 1000;
/// Rows written per statement (13 bound parameters a user row: far below
/// SQLite's 32766 and PostgreSQL's 65535).
const BATCH: usize = 500;
/// A progress event every this many users read.
pub const PROGRESS_EVERY: u64 = 10_000;

const OUTSTANDING: &str = "token_blacklist_outstandingtoken";
const BLACKLISTED: &str = "token_blacklist_blacklistedtoken";

/// Why the import stopped; nothing was written to latchkey.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("--from must be sqlite://PATH or postgres://USER@HOST/DB: {0}")]
    BadUrl(String),
    #[error("the Django database {0} does not exist")]
    NoSuchFile(String),
    #[error("cannot open the Django database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error(
        "no table of the Django database has both an email and a password column; name the user table with --table"
    )]
    NoUserTable,
    #[error(
        "several tables of the Django database have both an email and a password column ({0}); name the user table with --table"
    )]
    SeveralUserTables(String),
    #[error("the Django database has no table {0:?}")]
    NoSuchTable(String),
    #[error(
        "the table {table:?} has no {missing} column (a user table needs id, email and password)"
    )]
    MissingColumns { table: String, missing: String },
    #[error(
        "the latchkey database holds {0} user(s) that were not imported from Django; their ids would collide with Django's, so nothing was imported (import into an empty latchkey database)"
    )]
    NativeUsers(i64),
    #[error("the Django row {table} id {id}: {what}")]
    BadRow {
        table: &'static str,
        id: i64,
        what: String,
    },
    #[error("reading the Django database: {0}")]
    Source(diesel::result::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

/// What the import tells its caller while it runs.
#[derive(Debug)]
pub enum ImportEvent<'a> {
    Skipped(&'a SkippedRow),
    /// An earlier run imported this user and latchkey changed them since
    /// (a password set, the email or a flag): left as latchkey has them,
    /// since the run was not told to overwrite.
    Kept {
        id: i64,
    },
    /// Imported, but its stored hash can never verify (`problem` says why,
    /// as [`ImportOptions::hash_problem`] found it): no password logs in
    /// until a reset.
    UnusableHash {
        id: i64,
        problem: &'a str,
    },
    /// This many Django user rows were read so far (every [`PROGRESS_EVERY`]).
    Progress {
        users: u64,
    },
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub table: String,
    /// Users created or updated.
    pub users: u64,
    pub skipped: u64,
    /// Users an earlier run imported and latchkey changed since, left as
    /// latchkey has them (not in `users`).
    pub kept: u64,
    /// Users imported with a hash that can never verify (in `users`).
    pub unusable_hashes: u64,
    /// Unexpired outstanding tokens added (blacklisted ones included).
    pub tokens: u64,
    /// Blacklist entries added.
    pub blacklisted: u64,
    /// Rows of `<table>_groups`, when the table exists.
    pub group_memberships: Option<u64>,
    /// Rows of `<table>_user_permissions`, when the table exists.
    pub user_permissions: Option<u64>,
    pub dry_run: bool,
}

impl fmt::Display for ImportSummary {
    /// The contract's summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} users ({} skipped), {} tokens, {} blacklisted",
            if self.dry_run {
                "would import"
            } else {
                "imported"
            },
            self.users,
            self.skipped,
            self.tokens,
            self.blacklisted
        )
    }
}

/// How to run an import.
pub struct ImportOptions<'a> {
    pub dry_run: bool,
    /// Also replace the users latchkey changed since the previous import.
    pub overwrite: bool,
    /// Why a stored hash can never verify (parameters out of bounds, an
    /// unknown format), or `None`. The caller brings the hasher's rule:
    /// this crate knows no hashing.
    pub hash_problem: &'a dyn Fn(&str) -> Option<String>,
    /// Makes the id of each session an adopted token starts.
    pub new_session_id: &'a mut dyn FnMut() -> String,
    pub on_event: &'a mut dyn FnMut(ImportEvent<'_>),
}

/// The Django user table and the columns the import reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTable {
    pub name: String,
    columns: BTreeSet<String>,
}

/// A Django database, open read only.
pub struct DjangoSource {
    conn: DbConnection,
    label: String,
    tables: BTreeMap<String, BTreeSet<String>>,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct DjangoUser {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    password: Option<String>,
    #[diesel(sql_type = Integer)]
    is_active: i32,
    #[diesel(sql_type = Integer)]
    is_staff: i32,
    #[diesel(sql_type = Integer)]
    is_superuser: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_login: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    updated_at: Option<String>,
}

#[derive(QueryableByName)]
struct DjangoToken {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    jti: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    expires_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    blacklisted_at: Option<String>,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// An SQLite path as a `file:` URI (so that `mode=ro` can be given).
fn sqlite_uri(path: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            other => uri.push(other),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

impl DjangoSource {
    /// Opens `raw` (`--from`) read only: SQLite with `mode=ro` and
    /// `query_only` (a missing file is an error, never created), PostgreSQL
    /// in a read-only, repeatable-read transaction. Every read of the import
    /// then sees one snapshot.
    pub fn open(raw: &str) -> Result<Self, ImportError> {
        let url = DatabaseUrl::parse(raw).map_err(|e| {
            ImportError::BadUrl(
                e.to_string()
                    .replace("DATABASE_URL", "the URL")
                    .replace("; use sqlite://PATH or postgres://USER@HOST/DB", ""),
            )
        })?;
        let label = url.to_string();
        let open_error = |reason: String| ImportError::Open {
            url: label.clone(),
            reason,
        };
        let conn = match &url {
            DatabaseUrl::Sqlite(path) => {
                if !path.is_file() {
                    return Err(ImportError::NoSuchFile(path.display().to_string()));
                }
                let mut conn = SqliteConnection::establish(&sqlite_uri(&path.to_string_lossy()))
                    .map_err(|e| open_error(e.to_string()))?;
                conn.batch_execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000; BEGIN")
                    .map_err(|e| open_error(e.to_string()))?;
                DbConnection::Sqlite(conn)
            }
            DatabaseUrl::Postgres(raw) => {
                let mut conn =
                    PgConnection::establish(raw).map_err(|e| open_error(e.to_string()))?;
                conn.batch_execute(
                    "SET default_transaction_read_only = on; SET TIME ZONE 'UTC'; \
                     BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                )
                .map_err(|e| open_error(e.to_string()))?;
                DbConnection::Postgresql(conn)
            }
        };
        let mut source = DjangoSource {
            conn,
            label,
            tables: BTreeMap::new(),
        };
        source.tables = source.read_tables()?;
        Ok(source)
    }

    /// The Django URL without its password, for messages and the record.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn read_tables(&mut self) -> Result<BTreeMap<String, BTreeSet<String>>, ImportError> {
        let rows: Vec<ColumnRow> = match &mut self.conn {
            DbConnection::Sqlite(c) => diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name \
                 FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p \
                 WHERE m.type = 'table'",
            )
            .load(c),
            DbConnection::Postgresql(c) => diesel::sql_query(
                "SELECT CAST(table_name AS TEXT) AS table_name, \
                        CAST(column_name AS TEXT) AS column_name \
                 FROM information_schema.columns WHERE table_schema = current_schema()",
            )
            .load(c),
        }
        .map_err(ImportError::Source)?;
        let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in rows {
            tables
                .entry(row.table_name)
                .or_default()
                .insert(row.column_name.to_ascii_lowercase());
        }
        Ok(tables)
    }

    /// The user table: `name` when given (it must exist and have id, email
    /// and password), else the one table with both email and password.
    pub fn user_table(&self, name: Option<&str>) -> Result<UserTable, ImportError> {
        let has = |columns: &BTreeSet<String>, c: &str| columns.contains(c);
        let name = match name {
            Some(name) => name.to_owned(),
            None => {
                let found: Vec<&String> = self
                    .tables
                    .iter()
                    .filter(|(_, columns)| has(columns, "email") && has(columns, "password"))
                    .map(|(table, _)| table)
                    .collect();
                match found.as_slice() {
                    [] => return Err(ImportError::NoUserTable),
                    [one] => (*one).clone(),
                    several => {
                        return Err(ImportError::SeveralUserTables(
                            several
                                .iter()
                                .map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ));
                    }
                }
            }
        };
        let Some(columns) = self.tables.get(&name) else {
            return Err(ImportError::NoSuchTable(name));
        };
        let missing: Vec<&str> = ["id", "email", "password"]
            .into_iter()
            .filter(|c| !has(columns, c))
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::MissingColumns {
                table: name,
                missing: missing.join(", "),
            });
        }
        Ok(UserTable {
            name,
            columns: columns.clone(),
        })
    }

    fn has_table(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }

    fn is_postgres(&self) -> bool {
        matches!(self.conn, DbConnection::Postgresql(_))
    }

    /// A column as text, in a form [`parse_instant`] reads.
    fn instant_expr(&self, column: &str) -> String {
        if self.is_postgres() {
            format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')")
        } else {
            format!("CAST({column} AS TEXT)")
        }
    }

    fn count(&mut self, table: &str) -> Result<Option<u64>, ImportError> {
        if !self.has_table(table) {
            return Ok(None);
        }
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {}", quote(table));
        let row: CountRow =
            latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).get_result(c))
                .map_err(ImportError::Source)?;
        Ok(Some(u64::try_from(row.n).unwrap_or(0)))
    }

    fn user_page(&mut self, table: &UserTable, after: i64) -> Result<Vec<DjangoUser>, ImportError> {
        let column = |c: &str| table.columns.contains(c).then(|| quote(c));
        let flag = |c: &str, default: i32| match column(c) {
            Some(col) => format!("CAST(CASE WHEN {col} THEN 1 ELSE 0 END AS INTEGER)"),
            None => format!("CAST({default} AS INTEGER)"),
        };
        let instant = |candidates: &[&str]| {
            candidates.iter().find_map(|c| column(c)).map_or_else(
                || "CAST(NULL AS TEXT)".to_owned(),
                |col| self.instant_expr(&col),
            )
        };
        let sql = format!(
            "SELECT CAST(id AS BIGINT) AS id, CAST(email AS TEXT) AS email, \
                    CAST(password AS TEXT) AS password, \
                    {} AS is_active, {} AS is_staff, {} AS is_superuser, \
                    {} AS last_login, {} AS created_at, {} AS updated_at \
             FROM {} WHERE id > {after} ORDER BY id LIMIT {PAGE}",
            flag("is_active", 1),
            flag("is_staff", 0),
            flag("is_superuser", 0),
            instant(&["last_login"]),
            instant(&["created_at", "date_joined"]),
            instant(&["updated_at"]),
            quote(&table.name),
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    fn token_page(&mut self, after: i64) -> Result<Vec<DjangoToken>, ImportError> {
        let blacklisted = if self.has_table(BLACKLISTED) {
            (
                self.instant_expr("b.blacklisted_at"),
                format!("LEFT JOIN {BLACKLISTED} AS b ON b.token_id = o.id"),
            )
        } else {
            ("CAST(NULL AS TEXT)".to_owned(), String::new())
        };
        let sql = format!(
            "SELECT CAST(o.id AS BIGINT) AS id, CAST(o.jti AS TEXT) AS jti, \
                    CAST(o.user_id AS BIGINT) AS user_id, {} AS created_at, {} AS expires_at, \
                    {} AS blacklisted_at \
             FROM {OUTSTANDING} AS o {} WHERE o.id > {after} ORDER BY o.id LIMIT {PAGE}",
            self.instant_expr("o.created_at"),
            self.instant_expr("o.expires_at"),
            blacklisted.0,
            blacklisted.1,
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }
}

/// A Django instant as stored: SQLite's text (`2026-12-01 20:54:37.630948`,
/// with or without a UTC offset or a `T`), or PostgreSQL's rendered in UTC.
/// Kept to the microsecond, as latchkey stores instants.
pub fn parse_instant(raw: &str) -> Option<NaiveDateTime> {
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

fn whole_second(at: NaiveDateTime) -> NaiveDateTime {
    at.with_nanosecond(0).unwrap_or(at)
}

/// The SHA-256, in hex, of a hash as Django stored it.
fn hash_digest(hash: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(hash.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// How the transaction ends: an error, or a dry run's rollback.
enum Abort {
    Failed(ImportError),
    DryRun(ImportSummary),
}

impl From<StoreError> for Abort {
    fn from(error: StoreError) -> Self {
        Abort::Failed(ImportError::Store(error))
    }
}

impl From<ImportError> for Abort {
    fn from(error: ImportError) -> Self {
        Abort::Failed(error)
    }
}

/// Imports the users of `table` and simplejwt's tokens from `source` into
/// latchkey (`target`), in one write transaction; a dry run does all of it
/// and rolls it back. Refuses a latchkey database holding users that were
/// not imported from Django.
pub fn import(
    target: &mut DbConnection,
    source: &mut DjangoSource,
    table: &UserTable,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, ImportError> {
    let dry_run = options.dry_run;
    let outcome = write_transaction::<ImportSummary, Abort, _>(target, |conn| {
        let summary = import_in_transaction(conn, source, table, options)?;
        if dry_run {
            return Err(Abort::DryRun(summary));
        }
        Ok(summary)
    });
    match outcome {
        Ok(summary) | Err(Abort::DryRun(summary)) => Ok(summary),
        Err(Abort::Failed(error)) => Err(error),
    }
}

fn import_in_transaction(
    conn: &mut DbConnection,
    source: &mut DjangoSource,
    table: &UserTable,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, Abort> {
    // The lookups by email and id run against tables this transaction
    // fills: planned for them as they are, they stay on the unique indexes.
    plan_each_statement_afresh(conn)?;
    let native = User::count_native(conn)?;
    if native > 0 {
        return Err(ImportError::NativeUsers(native).into());
    }
    let now = db_now();
    let mut summary = ImportSummary {
        table: table.name.clone(),
        users: 0,
        skipped: 0,
        kept: 0,
        unusable_hashes: 0,
        tokens: 0,
        blacklisted: 0,
        group_memberships: source.count(&format!("{}_groups", table.name))?,
        user_permissions: source.count(&format!("{}_user_permissions", table.name))?,
        dry_run: options.dry_run,
    };
    let ImportOptions {
        overwrite,
        hash_problem,
        new_session_id,
        on_event,
        ..
    } = options;

    let mut read: u64 = 0;
    let mut after = i64::MIN;
    loop {
        let page = source.user_page(table, after)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let page_len = page.len();
        for chunk in page.chunks(BATCH) {
            let (rows, skipped) = prepare_users(conn, chunk, now)?;
            for row in &skipped {
                on_event(ImportEvent::Skipped(row));
            }
            summary.skipped += skipped.len() as u64;
            let upserted = upsert_users(conn, rows, overwrite)?;
            for &id in &upserted.kept {
                on_event(ImportEvent::Kept { id });
            }
            summary.kept += upserted.kept.len() as u64;
            summary.users += upserted.written.len() as u64;
            for row in &upserted.written {
                if let Some(problem) = hash_problem(&row.password_hash) {
                    on_event(ImportEvent::UnusableHash {
                        id: row.id,
                        problem: &problem,
                    });
                    summary.unusable_hashes += 1;
                }
            }
        }
        let before = read;
        read += page_len as u64;
        if read / PROGRESS_EVERY > before / PROGRESS_EVERY {
            on_event(ImportEvent::Progress {
                users: read / PROGRESS_EVERY * PROGRESS_EVERY,
            });
        }
        if (page_len as i64) < PAGE {
            break;
        }
    }

    if source.has_table(OUTSTANDING) {
        let mut after = i64::MIN;
        loop {
            let page = source.token_page(after)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let page_len = page.len();
            let (tokens, blacklisted) = import_tokens(conn, page, now, new_session_id)?;
            summary.tokens += tokens;
            summary.blacklisted += blacklisted;
            if (page_len as i64) < PAGE {
                break;
            }
        }
    }

    if !summary.dry_run {
        // Not transactional on PostgreSQL, so a dry run leaves it alone.
        User::continue_ids_after_highest(conn)?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        django_imports::record(
            conn,
            &ImportRecord {
                imported_at: db_now(),
                source: source.label(),
                users: count(summary.users),
                skipped: count(summary.skipped),
                tokens: count(summary.tokens),
                blacklisted: count(summary.blacklisted),
            },
        )?;
    }
    Ok(summary)
}

fn bad_row(table: &'static str, id: i64, what: impl Into<String>) -> Abort {
    Abort::Failed(ImportError::BadRow {
        table,
        id,
        what: what.into(),
    })
}

fn instant(
    table: &'static str,
    id: i64,
    column: &str,
    raw: Option<&str>,
) -> Result<Option<NaiveDateTime>, Abort> {
    match raw {
        None => Ok(None),
        Some(raw) => parse_instant(raw)
            .map(Some)
            .ok_or_else(|| bad_row(table, id, format!("{column} {raw:?} is not an instant"))),
    }
}

/// Validates a chunk of Django rows (in id order) into latchkey rows, and
/// lists the ones skipped.
fn prepare_users(
    conn: &mut DbConnection,
    chunk: &[DjangoUser],
    now: NaiveDateTime,
) -> Result<(Vec<ImportedUser>, Vec<SkippedRow>), Abort> {
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
            django_hash_digest: Some(hash_digest(&password_hash)),
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

/// What [`upsert_users`] did with a chunk.
struct Upserted {
    /// Inserted, or updated to the Django row.
    written: Vec<ImportedUser>,
    /// Ids left as latchkey has them.
    kept: Vec<i64>,
}

/// Inserts new users and updates those an earlier run imported (matched by
/// id) to the Django row's current values, except those latchkey changed
/// since (`changed_in_latchkey_at`), unless `overwrite`. A user whose hash
/// this replaces is revoked as a password reset revokes: their sessions
/// end, and `password_changed_at` kills the reset tokens issued before.
fn upsert_users(
    conn: &mut DbConnection,
    rows: Vec<ImportedUser>,
    overwrite: bool,
) -> Result<Upserted, Abort> {
    let mut upserted = Upserted {
        written: Vec::with_capacity(rows.len()),
        kept: Vec::new(),
    };
    if rows.is_empty() {
        return Ok(upserted);
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let existing = User::lock_prior_imports(conn, &ids)?;
    let mut replaced = Vec::new();
    for mut row in rows {
        match existing.get(&row.id) {
            Some(stored) if stored.changed_in_latchkey && !overwrite => upserted.kept.push(row.id),
            Some(stored) => {
                if !stored.changed_in_latchkey
                    && stored.django_hash_digest == row.django_hash_digest
                {
                    // Django's password is the one imported last time: the
                    // stored hash is that password (or its upgrade at a
                    // latchkey login), kept as it is.
                    row.password_hash.clone_from(&stored.password_hash);
                } else if stored.password_hash != row.password_hash {
                    replaced.push(row.id);
                }
                upserted.written.push(row);
            }
            None => upserted.written.push(row),
        }
    }
    User::upsert_imported_batch(conn, &upserted.written)?;
    if !replaced.is_empty() {
        let now = db_now();
        User::mark_passwords_replaced(conn, &replaced, now, whole_second(now))?;
        for &id in &replaced {
            Session::end_all_for_user(conn, id, now)?;
        }
    }
    Ok(upserted)
}

/// Each unexpired outstanding token of an imported user that latchkey does
/// not know yet becomes a session of one refresh token with the same `jti`
/// (blacklisted, and its session ended, when Django blacklisted it); a
/// known token that Django blacklisted since is blacklisted too. Returns
/// (tokens added, blacklist entries added).
fn import_tokens(
    conn: &mut DbConnection,
    page: Vec<DjangoToken>,
    now: NaiveDateTime,
    new_session_id: &mut dyn FnMut() -> String,
) -> Result<(u64, u64), Abort> {
    struct Live {
        jti: String,
        user_id: i64,
        created_at: NaiveDateTime,
        expires_at: NaiveDateTime,
        blacklisted_at: Option<NaiveDateTime>,
    }
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
        live.push(Live {
            jti,
            user_id,
            created_at,
            expires_at,
            blacklisted_at,
        });
    }
    if live.is_empty() {
        return Ok((0, 0));
    }
    let user_ids: Vec<i64> = live.iter().map(|t| t.user_id).collect();
    let present = User::existing_ids(conn, &user_ids)?;
    let jtis: Vec<&str> = live.iter().map(|t| t.jti.as_str()).collect();
    let known = OutstandingToken::known_by_jti(conn, &jtis)?;

    // The tokens to adopt, each with the id of the session it starts.
    let mut adopted: Vec<(&Live, String)> = Vec::new();
    let mut blacklist_new: HashMap<&str, NaiveDateTime> = HashMap::new();
    let mut entries = Vec::new();
    let mut ended_sessions = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for token in &live {
        if !present.contains(&token.user_id) || !seen.insert(token.jti.as_str()) {
            continue;
        }
        if let Some(stored) = known.get(&token.jti) {
            if let (Some(at), false) = (token.blacklisted_at, stored.blacklisted) {
                entries.push((stored.id, at));
                if !stored.replaced {
                    ended_sessions.push((stored.session_id.clone(), at));
                }
            }
            continue;
        }
        adopted.push((token, new_session_id()));
        if let Some(at) = token.blacklisted_at {
            blacklist_new.insert(token.jti.as_str(), at);
        }
    }
    let new_sessions: Vec<ImportedSession> = adopted
        .iter()
        .map(|(token, session_id)| ImportedSession {
            id: session_id.clone(),
            user_id: token.user_id,
            created_at: token.created_at,
            last_used_at: token.created_at,
            expires_at: token.expires_at,
            ended_at: token.blacklisted_at,
        })
        .collect();
    let new_tokens: Vec<NewOutstandingToken<'_>> = adopted
        .iter()
        .map(|(token, session_id)| NewOutstandingToken {
            jti: &token.jti,
            user_id: token.user_id,
            session_id,
            issued_at: whole_second(token.created_at),
            expires_at: token.expires_at,
        })
        .collect();
    Session::insert_batch(conn, &new_sessions)?;
    OutstandingToken::record_batch(conn, &new_tokens)?;
    if !blacklist_new.is_empty() {
        let jtis: Vec<&str> = blacklist_new.keys().copied().collect();
        for (jti, token_id) in OutstandingToken::ids_by_jti(conn, &jtis)? {
            if let Some(&blacklisted_at) = blacklist_new.get(jti.as_str()) {
                entries.push((token_id, blacklisted_at));
            }
        }
    }
    OutstandingToken::blacklist_batch(conn, &entries)?;
    Session::end_batch(conn, &ended_sessions)?;
    Ok((new_tokens.len() as u64, entries.len() as u64))
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

    #[test]
    fn sqlite_paths_become_read_only_uris() {
        assert_eq!(sqlite_uri("/tmp/a b.db"), "file:/tmp/a b.db?mode=ro");
        assert_eq!(
            sqlite_uri("/tmp/x?y#z%.db"),
            "file:/tmp/x%3fy%23z%25.db?mode=ro"
        );
    }

    #[test]
    fn the_summary_line_is_the_contracts() {
        let mut summary = ImportSummary {
            table: "user_user".into(),
            users: 8,
            skipped: 3,
            kept: 2,
            unusable_hashes: 1,
            tokens: 3,
            blacklisted: 1,
            group_memberships: Some(2),
            user_permissions: Some(1),
            dry_run: false,
        };
        assert_eq!(
            summary.to_string(),
            "imported 8 users (3 skipped), 3 tokens, 1 blacklisted"
        );
        summary.dry_run = true;
        assert_eq!(
            summary.to_string(),
            "would import 8 users (3 skipped), 3 tokens, 1 blacklisted"
        );
    }

    #[test]
    fn a_missing_sqlite_file_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("django.sqlite3");
        let url = format!("sqlite://{}", path.display());
        assert!(matches!(
            DjangoSource::open(&url),
            Err(ImportError::NoSuchFile(_))
        ));
        assert!(!path.exists());
    }

    #[test]
    fn the_source_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("django.sqlite3");
        let mut setup = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        setup
            .batch_execute(
                "CREATE TABLE auth_user (id INTEGER PRIMARY KEY, email TEXT, password TEXT); \
                 CREATE TABLE other (id INTEGER PRIMARY KEY, email TEXT, password TEXT);",
            )
            .unwrap();
        let mut source = DjangoSource::open(&format!("sqlite://{}", path.display())).unwrap();
        assert!(matches!(
            source.user_table(None),
            Err(ImportError::SeveralUserTables(names)) if names == "auth_user, other"
        ));
        assert_eq!(
            source.user_table(Some("auth_user")).unwrap().name,
            "auth_user"
        );
        let write = latchkey_persistence::per_backend!(&mut source.conn, c => diesel::sql_query("INSERT INTO other (email, password) VALUES ('a', 'b')").execute(c));
        assert!(write.is_err());
    }
}
