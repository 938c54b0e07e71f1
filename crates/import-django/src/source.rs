//! The Django database, opened read only on either backend and read in
//! pages by keyset (`WHERE id > last ORDER BY id LIMIT 1000`), every read in
//! one snapshot. Its schema is Django's, not latchkey's: the tables and
//! columns are found at run time, and the rows read as text to be mapped
//! by [`crate::rows`].

use std::collections::{BTreeMap, BTreeSet};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::SqliteConnection;
use latchkey_persistence::{DatabaseUrl, DbConnection};

use crate::ImportError;

/// Rows read from Django per query.
pub(crate) const PAGE: i64 = 1000;

const OUTSTANDING: &str = "token_blacklist_outstandingtoken";
const BLACKLISTED: &str = "token_blacklist_blacklistedtoken";
const OTP_TOTP: &str = "otp_totp_totpdevice";
const OTP_STATIC_DEVICE: &str = "otp_static_staticdevice";
const OTP_STATIC_TOKEN: &str = "otp_static_statictoken";
const ALLAUTH_AUTHENTICATOR: &str = "mfa_authenticator";
pub(crate) const SOCIAL_ACCOUNT: &str = "socialaccount_socialaccount";
const SOCIAL_APP: &str = "socialaccount_socialapp";

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

/// A row of the user table, its instants as text.
#[derive(QueryableByName)]
pub(crate) struct DjangoUser {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) password: Option<String>,
    #[diesel(sql_type = Integer)]
    pub(crate) is_active: i32,
    #[diesel(sql_type = Integer)]
    pub(crate) is_staff: i32,
    #[diesel(sql_type = Integer)]
    pub(crate) is_superuser: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) last_login: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) updated_at: Option<String>,
}

/// A row of simplejwt's outstanding tokens, with its blacklist instant.
#[derive(QueryableByName)]
pub(crate) struct DjangoToken {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) jti: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) user_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) expires_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) blacklisted_at: Option<String>,
}

/// A confirmed django-otp TOTP device.
#[derive(QueryableByName)]
pub(crate) struct DjangoTotpDevice {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) user_id: i64,
    /// Hex, as django-otp stores it.
    #[diesel(sql_type = Text)]
    pub(crate) key: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) digits: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) step: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) t0: i64,
    /// The last step counter accepted (from `t0`), -1 when none was.
    #[diesel(sql_type = BigInt)]
    pub(crate) last_t: i64,
}

/// A token of a confirmed django-otp static device (used ones are deleted
/// by django-otp, so every row is unused).
#[derive(QueryableByName)]
pub(crate) struct DjangoStaticToken {
    #[diesel(sql_type = BigInt)]
    pub(crate) user_id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) token: String,
}

/// An allauth `mfa_authenticator` row of type `totp` or `recovery_codes`.
#[derive(QueryableByName)]
pub(crate) struct DjangoAuthenticator {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) user_id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    /// The JSON of `data`.
    #[diesel(sql_type = Text)]
    pub(crate) data: String,
}

/// An allauth social account: who the user is at which provider. Only
/// these columns are read: not `extra_data` (the provider's profile, in
/// each provider's own shape) nor `last_login`.
#[derive(QueryableByName)]
pub(crate) struct DjangoSocialAccount {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) user_id: i64,
    /// The app's `provider_id` when it has one (an OpenID Connect app),
    /// else its `provider`, as allauth writes it.
    #[diesel(sql_type = Text)]
    pub(crate) provider: String,
    #[diesel(sql_type = Text)]
    pub(crate) uid: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) date_joined: Option<String>,
}

/// An allauth social app, by what names it: never its `secret`, `key` or
/// `settings` (where allauth keeps Apple's private key), which are not
/// even selected.
#[derive(QueryableByName)]
pub(crate) struct DjangoSocialApp {
    #[diesel(sql_type = Text)]
    pub(crate) provider: String,
    /// Empty when the app has none (or allauth's table predates the column).
    #[diesel(sql_type = Text)]
    pub(crate) provider_id: String,
    #[diesel(sql_type = Text)]
    pub(crate) client_id: String,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Ids for an `IN (…)` list: integers, so written inline.
fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

    /// Whether simplejwt's blacklist app kept its outstanding tokens here.
    pub(crate) fn has_outstanding_tokens(&self) -> bool {
        self.has_table(OUTSTANDING)
    }

    /// Whether any table of django-otp's TOTP or static devices or
    /// allauth's authenticators is here (then the second factors' line is
    /// printed).
    pub(crate) fn has_second_factor_tables(&self) -> bool {
        [OTP_TOTP, OTP_STATIC_DEVICE, ALLAUTH_AUTHENTICATOR]
            .iter()
            .any(|table| self.has_table(table))
    }

    /// The confirmed django-otp TOTP devices of `user_ids`.
    pub(crate) fn totp_devices(
        &mut self,
        user_ids: &[i64],
    ) -> Result<Vec<DjangoTotpDevice>, ImportError> {
        if !self.has_table(OTP_TOTP) || user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT CAST(id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id, \
                    CAST(\"key\" AS TEXT) AS key, CAST(digits AS BIGINT) AS digits, \
                    CAST(step AS BIGINT) AS step, CAST(t0 AS BIGINT) AS t0, \
                    CAST(last_t AS BIGINT) AS last_t \
             FROM {OTP_TOTP} WHERE confirmed AND user_id IN ({}) ORDER BY user_id, id",
            id_list(user_ids)
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    /// The tokens of the confirmed django-otp static devices of `user_ids`.
    pub(crate) fn static_tokens(
        &mut self,
        user_ids: &[i64],
    ) -> Result<Vec<DjangoStaticToken>, ImportError> {
        if !self.has_table(OTP_STATIC_DEVICE)
            || !self.has_table(OTP_STATIC_TOKEN)
            || user_ids.is_empty()
        {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT CAST(d.user_id AS BIGINT) AS user_id, CAST(t.token AS TEXT) AS token \
             FROM {OTP_STATIC_TOKEN} AS t JOIN {OTP_STATIC_DEVICE} AS d ON t.device_id = d.id \
             WHERE d.confirmed AND d.user_id IN ({}) ORDER BY d.user_id, t.id",
            id_list(user_ids)
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    /// allauth's TOTP and recovery-code authenticators of `user_ids`.
    pub(crate) fn allauth_authenticators(
        &mut self,
        user_ids: &[i64],
    ) -> Result<Vec<DjangoAuthenticator>, ImportError> {
        if !self.has_table(ALLAUTH_AUTHENTICATOR) || user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT CAST(id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id, \
                    CAST(\"type\" AS TEXT) AS kind, CAST(data AS TEXT) AS data \
             FROM {ALLAUTH_AUTHENTICATOR} \
             WHERE \"type\" IN ('totp', 'recovery_codes') AND user_id IN ({}) ORDER BY user_id, id",
            id_list(user_ids)
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    /// Whether allauth's social accounts are here (then the provider
    /// identities' line is printed).
    pub(crate) fn has_social_accounts(&self) -> bool {
        self.has_table(SOCIAL_ACCOUNT)
    }

    /// allauth's social accounts of `user_ids`.
    pub(crate) fn social_accounts(
        &mut self,
        user_ids: &[i64],
    ) -> Result<Vec<DjangoSocialAccount>, ImportError> {
        if !self.has_social_accounts() || user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT CAST(id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id, \
                    CAST(provider AS TEXT) AS provider, CAST(uid AS TEXT) AS uid, \
                    {} AS date_joined \
             FROM {SOCIAL_ACCOUNT} WHERE user_id IN ({}) ORDER BY user_id, id",
            self.instant_expr("date_joined"),
            id_list(user_ids)
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    /// allauth's social apps in the order of their ids: `provider`,
    /// `provider_id` and `client_id` only.
    pub(crate) fn social_apps(&mut self) -> Result<Vec<DjangoSocialApp>, ImportError> {
        let Some(columns) = self.tables.get(SOCIAL_APP) else {
            return Ok(Vec::new());
        };
        let provider_id = if columns.contains("provider_id") {
            "CAST(provider_id AS TEXT)"
        } else {
            "CAST('' AS TEXT)"
        };
        let sql = format!(
            "SELECT CAST(provider AS TEXT) AS provider, {provider_id} AS provider_id, \
                    CAST(client_id AS TEXT) AS client_id \
             FROM {SOCIAL_APP} ORDER BY id"
        );
        latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).load(c))
            .map_err(ImportError::Source)
    }

    fn is_postgres(&self) -> bool {
        matches!(self.conn, DbConnection::Postgresql(_))
    }

    /// A column as text, in a form [`crate::rows::parse_instant`] reads.
    fn instant_expr(&self, column: &str) -> String {
        if self.is_postgres() {
            format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')")
        } else {
            format!("CAST({column} AS TEXT)")
        }
    }

    /// The rows of `table`, or `None` when there is no such table.
    pub(crate) fn count(&mut self, table: &str) -> Result<Option<u64>, ImportError> {
        if !self.has_table(table) {
            return Ok(None);
        }
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {}", quote(table));
        let row: CountRow =
            latchkey_persistence::per_backend!(&mut self.conn, c => diesel::sql_query(&sql).get_result(c))
                .map_err(ImportError::Source)?;
        Ok(Some(u64::try_from(row.n).unwrap_or(0)))
    }

    /// The page of users after the id `after`.
    pub(crate) fn user_page(
        &mut self,
        table: &UserTable,
        after: i64,
    ) -> Result<Vec<DjangoUser>, ImportError> {
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

    /// The page of outstanding tokens after the id `after`.
    pub(crate) fn token_page(&mut self, after: i64) -> Result<Vec<DjangoToken>, ImportError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_become_read_only_uris() {
        assert_eq!(sqlite_uri("/tmp/a b.db"), "file:/tmp/a b.db?mode=ro");
        assert_eq!(
            sqlite_uri("/tmp/x?y#z%.db"),
            "file:/tmp/x%3fy%23z%25.db?mode=ro"
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
