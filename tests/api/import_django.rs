//! `latchkey import-django` against databases made by the REAL Django 5.2 +
//! simplejwt of the test project `tests/django/` (the seed's `user` app and
//! migration), built by `tests/django/make_django_db.py`: users made through
//! the ORM with every stock hasher, tokens minted and blacklisted by
//! simplejwt. Each test runs on both latchkey backends; the Django database
//! is on the same backend, except in the cross test.
//!
//! The venv is made on first use by `tests/django/setup.sh` (see
//! `latchkey_tests::django`).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use latchkey_persistence::schema::{django_imports, outstanding_tokens, sessions, users};
use latchkey_persistence::{User, latest_import_at};
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::database::postgres_admin_url;
use latchkey_tests::smtp::{SmtpServer, link, param};
use latchkey_tests::{Backend, Ctx, TestUser, django, tests};
use serde_json::{Value, json};

tests![
    django:
    imports_the_users_and_tokens_of_a_django_database,
    imports_across_backends_without_the_blacklist_app,
    a_dry_run_writes_nothing,
    a_second_run_updates_users_and_adds_new_ones_and_tokens,
    a_rerun_keeps_the_users_latchkey_changed_and_lists_them,
    a_rerun_with_overwrite_replaces_them_and_a_replaced_hash_revokes,
    rows_whose_hash_can_never_verify_are_imported_and_listed,
    refuses_a_latchkey_database_with_native_users,
    table_errors_name_the_table_and_write_nothing,
    a_large_import_streams_in_pages_and_reports_progress,
    an_adopted_django_token_starts_a_pwd_session_at_aal1,
];

fn script() -> PathBuf {
    django::project().join("make_django_db.py")
}

/// The SECRET_KEY of the seed's settings: simplejwt signs with it.
pub(crate) const DJANGO_SECRET_KEY: &str =
    "django-insecure-ux1fai&rd72d8gi4zdp=-$dz2k!e(u@yny_ivje-qxa-5czy)y";

/// A Django database made by the real Django, dropped afterwards.
pub(crate) struct DjangoDb {
    backend: Backend,
    pub(crate) url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl DjangoDb {
    pub(crate) fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("django.sqlite3").display());
                DjangoDb {
                    backend,
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("latchkey_django_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = PgConnection::establish(&admin).unwrap();
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .unwrap();
                let (base, _) = admin.rsplit_once('/').unwrap();
                DjangoDb {
                    backend,
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    fn target_args(&self) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => vec![
                "--sqlite".into(),
                self.url.trim_start_matches("sqlite://").into(),
            ],
            Backend::Postgres => vec!["--postgres".into(), self.url.clone()],
        }
    }

    /// Runs make_django_db.py with `args` (and `spec` on stdin, with
    /// `--spec`); returns what it printed.
    pub(crate) fn django(&self, args: &[&str], spec: Option<&Value>) -> Value {
        use std::io::Write;
        let mut command = Command::new(django::python());
        command
            .arg(script())
            .args(self.target_args())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if spec.is_some() {
            command.arg("--spec");
        }
        let mut child = command.spawn().expect("python starts");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(spec) = spec {
            stdin.write_all(spec.to_string().as_bytes()).unwrap();
        }
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "make_django_db.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn standard(backend: Backend) -> (Self, Value) {
        let db = DjangoDb::create(backend);
        let made = db.django(&[], None);
        (db, made)
    }

    /// Runs raw SQL on the Django database (as a Django operator would).
    pub(crate) fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                SqliteConnection::establish(self.url.trim_start_matches("sqlite://"))
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap()
            }
            Backend::Postgres => PgConnection::establish(&self.url)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }
}

impl Drop for DjangoDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

pub(crate) fn other(backend: Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    }
}

fn import(latchkey_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["import-django"];
    all.extend_from_slice(args);
    run_latchkey(dir.path(), &all, &[("DATABASE_URL", latchkey_url)], None)
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
/// A dry run and then the real import from `from`: the same `counts` in
/// their summaries ("would import …", "imported …") and the same stderr.
fn dry_run_then_import(url: &str, from: &str, counts: &str, expected_stderr: &str) {
    let dry = import(url, &["--from", from, "--dry-run"]);
    assert_imported(&dry, &format!("would import {counts}"));
    assert_eq!(stderr(&dry), expected_stderr);
    let output = import(url, &["--from", from]);
    assert_imported(&output, &format!("imported {counts}"));
    assert_eq!(stderr(&output), expected_stderr);
}

fn assert_imported(output: &Output, summary: &str) {
    assert!(
        output.status.success(),
        "import failed: {}\n{}",
        stderr(output),
        stdout(output)
    );
    assert_eq!(
        stdout(output).lines().last(),
        Some(summary),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

#[track_caller]
fn assert_failed(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    assert_eq!(stdout(output), "");
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line: {err}");
    assert!(lines[0].contains(message), "{message:?} not in {err:?}");
}

/// How many rows a latchkey table holds.
macro_rules! count {
    ($url:expr, $table:expr) => {{
        use diesel::QueryDsl;
        let db = open($url);
        let mut conn = db.get().unwrap();
        $table.count().get_result::<i64>(&mut **conn).unwrap()
    }};
}

fn user(url: &str, id: i64) -> Option<User> {
    let db = open(url);
    let mut conn = db.get().unwrap();
    User::find(&mut conn, id).unwrap()
}

fn find<'a>(made: &'a Value, email: &str) -> &'a Value {
    made["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {made}"))
}

fn token<'a>(made: &'a Value, email: &str, blacklisted: bool) -> &'a Value {
    made["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == email && t["blacklisted"] == blacklisted && t["expired"] == false)
        .unwrap_or_else(|| panic!("a token of {email} in {made}"))
}

fn blacklisted() -> Value {
    json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
}

fn no_active_account() -> Value {
    json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
}

const STANDARD_SUMMARY: &str = "imported 8 users (3 skipped), 3 tokens, 1 blacklisted";

async fn imports_the_users_and_tokens_of_a_django_database(mut ctx: Ctx) {
    let (django, made) = DjangoDb::standard(ctx.backend);
    assert_eq!(made["table"], "user_user");
    let url = ctx.new_database();
    let output = import(&url, &["--from", &django.url]);
    assert_imported(&output, STANDARD_SUMMARY);
    assert_eq!(stdout(&output).lines().count(), 1, "{}", stdout(&output));
    let id = |email: &str| find(&made, email)["id"].as_i64().unwrap();
    let alice = id("alice@example.com");
    assert_eq!(
        stderr(&output),
        format!(
            "skipped id {}: email alice@example.com is already taken by id {alice}\n\
             skipped id {}: empty email\n\
             skipped id {}: invalid email \"not-an-email\"\n\
             not imported: 2 group memberships, 1 user permissions\n",
            id("ALICE@example.com"),
            id(""),
            id("not-an-email"),
        )
    );

    // Ids kept, emails trimmed and lowercased, hashes as stored, flags.
    let bob = user(&url, id("  Bob.Mixed@Example.COM ")).unwrap();
    assert_eq!(bob.email, "bob.mixed@example.com");
    for u in made["users"].as_array().unwrap() {
        let Some(stored) = user(&url, u["id"].as_i64().unwrap()) else {
            continue;
        };
        assert_eq!(stored.password_hash, u["hash"].as_str().unwrap());
        assert_eq!(stored.is_active, u["is_active"] == true, "{u}");
        assert_eq!(stored.is_staff, u["is_staff"] == true, "{u}");
        assert_eq!(stored.is_superuser, u["is_superuser"] == true, "{u}");
        assert!(stored.email_verified && stored.imported_from_django);
        assert!(stored.created_at <= stored.updated_at);
        assert!(stored.tokens_valid_after <= stored.created_at);
    }
    assert!(user(&url, id("ALICE@example.com")).is_none());
    assert!(user(&url, id("")).is_none());
    assert_eq!(count!(&url, users::table), 8);
    // One record of the run; the tokens became sessions of one token each.
    assert_eq!(count!(&url, django_imports::table), 1);
    assert_eq!(count!(&url, outstanding_tokens::table), 3);
    assert_eq!(count!(&url, sessions::table), 3);
    {
        let db = open(&url);
        let mut conn = db.get().unwrap();
        assert!(latest_import_at(&mut conn).unwrap().is_some());
    }

    // Django's SECRET_KEY: every hash Django made logs in over HTTP.
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    for u in made["users"].as_array().unwrap() {
        let (Some(password), Some(email)) = (u["password"].as_str(), u["email"].as_str()) else {
            continue;
        };
        let response = app.login(email, password).await;
        let skipped = ["ALICE@example.com", "", "not-an-email"].contains(&email);
        let expected = if email.is_empty() {
            400
        } else if skipped || u["is_active"] == false {
            401
        } else {
            200
        };
        assert_eq!(
            response.status, expected,
            "{} ({}): {}",
            email, u["hasher"], response.text
        );
    }
    // The unusable password never matches.
    app.login("grace@example.com", "some-password-0")
        .await
        .assert_status(401);

    // Django's tokens: the access token works, the recorded refresh token
    // refreshes, the blacklisted one stays refused.
    let alice_token = token(&made, "alice@example.com", false);
    let me = app.me(alice_token["access"].as_str().unwrap()).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], alice);
    let refreshed = app
        .refresh_token(alice_token["refresh"].as_str().unwrap())
        .await;
    refreshed.assert_status(200);
    app.refresh_token(
        token(&made, "carol@example.com", true)["refresh"]
            .as_str()
            .unwrap(),
    )
    .await
    .assert_status(401);
    app.refresh_token(
        token(&made, "carol@example.com", false)["refresh"]
            .as_str()
            .unwrap(),
    )
    .await
    .assert_status(200);

    // Ids continue after the highest imported one.
    let highest = made["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let registered = app.registered("newcomer@example.com").await;
    assert_eq!(registered.body["user"]["id"], highest + 1);
    assert_eq!(registered.body["user"]["email_verified"], false);
}

async fn imports_across_backends_without_the_blacklist_app(mut ctx: Ctx) {
    let django = DjangoDb::create(other(ctx.backend));
    let made = django.django(&["--no-blacklist"], None);
    let url = ctx.new_database();
    let output = import(&url, &["--from", &django.url]);
    assert_imported(
        &output,
        "imported 8 users (3 skipped), 0 tokens, 0 blacklisted",
    );
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    let erin = find(&made, "erin@example.com");
    app.login("erin@example.com", erin["password"].as_str().unwrap())
        .await
        .assert_status(200);
    let me = app
        .me(token(&made, "carol@example.com", false)["access"]
            .as_str()
            .unwrap())
        .await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "carol@example.com");
}

async fn a_dry_run_writes_nothing(mut ctx: Ctx) {
    let (django, _) = DjangoDb::standard(ctx.backend);
    let url = ctx.new_database();
    let output = import(&url, &["--from", &django.url, "--dry-run"]);
    assert_imported(
        &output,
        "would import 8 users (3 skipped), 3 tokens, 1 blacklisted",
    );
    assert!(stderr(&output).contains("not imported: 2 group memberships, 1 user permissions"));
    assert_eq!(count!(&url, users::table), 0);
    assert_eq!(count!(&url, outstanding_tokens::table), 0);
    assert_eq!(count!(&url, sessions::table), 0);
    assert_eq!(count!(&url, django_imports::table), 0);
    // The real run afterwards does what the dry run announced, and the ids
    // the dry run used are free again.
    assert_imported(&import(&url, &["--from", &django.url]), STANDARD_SUMMARY);
    assert_eq!(count!(&url, users::table), 8);
    // A dry run after an import announces the update of the same users.
    assert_imported(
        &import(&url, &["--from", &django.url, "--dry-run"]),
        "would import 8 users (3 skipped), 0 tokens, 0 blacklisted",
    );
    assert_eq!(count!(&url, django_imports::table), 1);
}

async fn a_second_run_updates_users_and_adds_new_ones_and_tokens(mut ctx: Ctx) {
    let (django, made) = DjangoDb::standard(ctx.backend);
    let url = ctx.new_database();
    assert_imported(&import(&url, &["--from", &django.url]), STANDARD_SUMMARY);
    let alice_token = token(&made, "alice@example.com", false);

    let carol_token = token(&made, "carol@example.com", false);

    // Meanwhile in Django: alice changes her password, erin loses staff,
    // henry joins and logs in, carol's token is blacklisted.
    let changed = django.django(
        &[],
        Some(&json!({
            "users": [{"email": "henry@example.com", "hasher": "argon2"}],
            "set_password": [{"email": "alice@example.com", "password": "a-new-password-8",
                              "hasher": "pbkdf2_sha256"}],
            "tokens": [{"email": "henry@example.com"}],
            "blacklist": [carol_token["jti"]],
        })),
    );
    django.execute("UPDATE user_user SET is_staff = FALSE WHERE email = 'erin@example.com'");
    let output = import(&url, &["--from", &django.url]);
    assert_imported(
        &output,
        "imported 9 users (3 skipped), 1 tokens, 1 blacklisted",
    );
    assert_eq!(count!(&url, users::table), 9);
    assert_eq!(count!(&url, django_imports::table), 2);
    let erin = find(&made, "erin@example.com")["id"].as_i64().unwrap();
    assert!(!user(&url, erin).unwrap().is_staff);
    let alice = find(&made, "alice@example.com")["id"].as_i64().unwrap();
    assert_eq!(
        user(&url, alice).unwrap().password_hash,
        find(&changed, "alice@example.com")["hash"]
            .as_str()
            .unwrap()
    );

    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    app.login("alice@example.com", "a-new-password-8")
        .await
        .assert_status(200);
    app.login("alice@example.com", "pbkdf2-sha1-pass-2")
        .await
        .assert_status(401);
    let henry = find(&changed, "henry@example.com");
    app.login("henry@example.com", henry["password"].as_str().unwrap())
        .await
        .assert_status(200);
    app.refresh_token(
        token(&changed, "henry@example.com", false)["refresh"]
            .as_str()
            .unwrap(),
    )
    .await
    .assert_status(200);
    // Django blacklisted carol's token; alice's ended with her new hash.
    for refresh in [carol_token, alice_token] {
        app.refresh_token(refresh["refresh"].as_str().unwrap())
            .await
            .assert(401, blacklisted());
    }
    // A third run with nothing new adds nothing.
    assert_imported(
        &import(&url, &["--from", &django.url]),
        "imported 9 users (3 skipped), 0 tokens, 0 blacklisted",
    );
}

async fn refuses_a_latchkey_database_with_native_users(mut ctx: Ctx) {
    let (django, _) = DjangoDb::standard(ctx.backend);
    let app = ctx.spawn().await;
    let url = app.database_url.clone();
    app.registered("native@example.com").await;
    let output = import(&url, &["--from", &django.url]);
    assert_failed(
        &output,
        "the latchkey database holds 1 user(s) that were not imported from Django",
    );
    assert_eq!(count!(&url, users::table), 1);
    assert_eq!(count!(&url, django_imports::table), 0);
}

async fn table_errors_name_the_table_and_write_nothing(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    django.django(&["--migrate-only"], None);
    let url = ctx.new_database();
    assert_failed(
        &import(&url, &["--from", &django.url, "--table", "nope"]),
        "the Django database has no table \"nope\"",
    );
    assert_failed(
        &import(&url, &["--from", &django.url, "--table", "auth_group"]),
        "the table \"auth_group\" has no email, password column",
    );
    django.execute(
        "CREATE TABLE legacy_accounts (id BIGINT PRIMARY KEY, email VARCHAR(100), password VARCHAR(128))",
    );
    assert_failed(
        &import(&url, &["--from", &django.url]),
        "several tables of the Django database have both an email and a password column (legacy_accounts, user_user); name the user table with --table",
    );
    // --table picks one of them.
    assert_imported(
        &import(
            &url,
            &[
                "--from",
                &django.url,
                "--table",
                "legacy_accounts",
                "--dry-run",
            ],
        ),
        "would import 0 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    let empty = DjangoDb::create(ctx.backend);
    empty.execute("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT)");
    assert_failed(
        &import(&url, &["--from", &empty.url]),
        "no table of the Django database has both an email and a password column; name the user table with --table",
    );
    if ctx.backend == Backend::Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sqlite3");
        assert_failed(
            &import(
                &url,
                &["--from", &format!("sqlite://{}", missing.display())],
            ),
            "does not exist",
        );
        assert!(!missing.exists(), "the Django file must never be created");
    }
    assert_failed(
        &import(&url, &["--from", "mysql://root@localhost/django"]),
        "--from must be sqlite://PATH or postgres://USER@HOST/DB",
    );
    // Only the dry run touched latchkey's database: no user, no record.
    assert_eq!(count!(&url, users::table), 0);
    assert_eq!(count!(&url, django_imports::table), 0);
}

async fn a_large_import_streams_in_pages_and_reports_progress(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    django.django(&["--migrate-only"], None);
    // A well-formed hash (made by Django, password "correct horse battery
    // staple"), so that no row is listed as unusable.
    let hash =
        "pbkdf2_sha256$1000$tNh2jouFfs70SJy1g4ZMj8$AoCskOUOygI5G+jaGT/Oh3n6JD35v124G67+REPdMH4=";
    django.execute(&match ctx.backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000) \
             INSERT INTO user_user (id, password, email, is_superuser, is_active, is_staff, created_at, updated_at) \
             SELECT i, '{hash}', 'user' || i || '@Example.com', 0, 1, 0, '2026-01-01 00:00:00.000001', '2026-01-02 00:00:00' FROM n"
        ),
        Backend::Postgres => format!(
            "INSERT INTO user_user (id, password, email, is_superuser, is_active, is_staff, created_at, updated_at) \
             SELECT i, '{hash}', 'user' || i || '@Example.com', false, true, false, '2026-01-01 00:00:00.000001+00', '2026-01-02 00:00:00+00' \
             FROM generate_series(1, 25000) AS i"
        ),
    });
    let url = ctx.new_database();
    let output = import(&url, &["--from", &django.url]);
    assert_imported(
        &output,
        "imported 25000 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    assert_eq!(
        stderr(&output),
        "read 10000 users\nread 20000 users\nnot imported: 0 group memberships, 0 user permissions\n"
    );
    assert_eq!(count!(&url, users::table), 25000);
    let last = user(&url, 25000).unwrap();
    assert_eq!(last.email, "user25000@example.com");
    assert_eq!(
        last.created_at.to_string(),
        "2026-01-01 00:00:00.000001",
        "instants read back exactly"
    );
    assert_eq!(last.updated_at.to_string(), "2026-01-02 00:00:00");
}

/// The Django users of the re-run tests: a staff member and four others.
fn rerun_spec() -> Value {
    json!({"users": [
        {"email": "staff@example.com", "password": "staff-django-pass-1", "staff": true},
        {"email": "alice@example.com", "password": "alice-django-pass-2"},
        {"email": "mallory@example.com", "password": "mallory-django-pass-3"},
        {"email": "carol@example.com", "password": "carol-django-pass-4", "hasher": "pbkdf2_sha1"},
        {"email": "dan@example.com", "password": "dan-django-pass-5"},
    ]})
}

const ALICE_NEW: &str = "alice-latchkey-pass-81";

/// Logs `email` in (asserting the 200) as a user of the app.
async fn logged_in(app: &latchkey_tests::TestApp, email: &str, password: &str) -> TestUser {
    TestUser::of(app, &app.login(email, password).await)
}

async fn a_rerun_keeps_the_users_latchkey_changed_and_lists_them(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(&[], Some(&rerun_spec()));
    let id = |email: &str| find(&made, email)["id"].as_i64().unwrap();
    let url = ctx.new_database();
    assert_imported(
        &import(&url, &["--from", &django.url]),
        "imported 5 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;

    // In latchkey: alice changes her password, staff deactivates mallory.
    let alice = logged_in(&app, "alice@example.com", "alice-django-pass-2").await;
    app.change_password(&alice.access, "alice-django-pass-2", ALICE_NEW)
        .await
        .assert_status(200);
    let staff = logged_in(&app, "staff@example.com", "staff-django-pass-1").await;
    app.deactivate(&staff, id("mallory@example.com")).await;
    app.login("mallory@example.com", "mallory-django-pass-3")
        .await
        .assert(401, no_active_account());
    // What does not count: carol's hash upgraded at her login (and her
    // last_login), dan logging out everywhere.
    let carol_before = user(&url, id("carol@example.com")).unwrap();
    let carol = logged_in(&app, "carol@example.com", "carol-django-pass-4").await;
    let carol_after = user(&url, id("carol@example.com")).unwrap();
    assert_ne!(
        carol_before.password_hash, carol_after.password_hash,
        "carol's pbkdf2_sha1 hash is upgraded at her login"
    );
    assert_eq!(carol_after.changed_in_latchkey_at, None);
    let dan = logged_in(&app, "dan@example.com", "dan-django-pass-5").await;
    dan.logout_everywhere()
        .await
        .assert(202, json!({"message": "Logout success"}));
    let dan = logged_in(&app, "dan@example.com", "dan-django-pass-5").await;
    for email in ["staff@example.com", "carol@example.com", "dan@example.com"] {
        assert_eq!(
            user(&url, id(email)).unwrap().changed_in_latchkey_at,
            None,
            "{email}"
        );
    }
    for email in ["alice@example.com", "mallory@example.com"] {
        assert!(
            user(&url, id(email))
                .unwrap()
                .changed_in_latchkey_at
                .is_some(),
            "{email}"
        );
    }

    // Meanwhile in Django: dan changes his password.
    django.django(
        &[],
        Some(&json!({"set_password": [{"email": "dan@example.com", "password": "dan-django-pass-6"}]})),
    );
    let expected_stderr = format!(
        "kept id {}: changed in latchkey since the previous import\n\
         kept id {}: changed in latchkey since the previous import\n\
         kept latchkey's changes for 2 users (--overwrite replaces them with Django's)\n\
         not imported: 0 group memberships, 0 user permissions\n",
        id("alice@example.com"),
        id("mallory@example.com"),
    );
    dry_run_then_import(
        &url,
        &django.url,
        "3 users (0 skipped), 0 tokens, 0 blacklisted",
        &expected_stderr,
    );

    // alice keeps her latchkey password, mallory stays deactivated; the
    // others follow Django.
    let me = app
        .me(&logged_in(&app, "alice@example.com", ALICE_NEW).await.access)
        .await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "alice@example.com");
    app.login("alice@example.com", "alice-django-pass-2")
        .await
        .assert(401, no_active_account());
    app.login("mallory@example.com", "mallory-django-pass-3")
        .await
        .assert(401, no_active_account());
    assert!(!user(&url, id("mallory@example.com")).unwrap().is_active);
    app.login("dan@example.com", "dan-django-pass-6")
        .await
        .assert_status(200);
    app.login("dan@example.com", "dan-django-pass-5")
        .await
        .assert(401, no_active_account());
    app.login("carol@example.com", "carol-django-pass-4")
        .await
        .assert_status(200);
    // Django's password of carol did not change: her upgraded hash stays,
    // and so does her session; dan's did, and his session ended with it.
    assert_eq!(
        user(&url, id("carol@example.com")).unwrap().password_hash,
        carol_after.password_hash
    );
    carol.me().await.assert_status(200);
    dan.me().await.assert_status(401);
    // They stay kept on every later run.
    let again = import(&url, &["--from", &django.url]);
    assert_imported(
        &again,
        "imported 3 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    assert!(stderr(&again).contains("kept latchkey's changes for 2 users"));
}

async fn a_rerun_with_overwrite_replaces_them_and_a_replaced_hash_revokes(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(&[], Some(&rerun_spec()));
    let id = |email: &str| find(&made, email)["id"].as_i64().unwrap();
    let url = ctx.new_database();
    assert_imported(
        &import(&url, &["--from", &django.url]),
        "imported 5 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    let smtp = SmtpServer::start();
    let smtp_url = smtp.url();
    let app = ctx
        .spawn_on(
            &url,
            &[
                ("SECRET_KEY", DJANGO_SECRET_KEY),
                ("SMTP_URL", &smtp_url),
                ("PUBLIC_URL", "http://latchkey.test"),
            ],
        )
        .await;

    // alice changes her password in latchkey (a new session), then asks
    // for a reset; staff deactivates mallory.
    let alice = logged_in(&app, "alice@example.com", "alice-django-pass-2").await;
    let changed = app
        .change_password(&alice.access, "alice-django-pass-2", ALICE_NEW)
        .await;
    let alice = alice.with_tokens_of(&changed);
    app.me(&alice.access).await.assert_status(200);
    app.post_json(
        "/auth/password/reset/",
        json!({"email": "alice@example.com"}),
    )
    .await
    .assert_status(200);
    let messages = smtp.wait_for(1, std::time::Duration::from_secs(20)).await;
    let reset_link = link(&messages[0]);
    let staff = logged_in(&app, "staff@example.com", "staff-django-pass-1").await;
    app.deactivate(&staff, id("mallory@example.com")).await;

    let output = import(&url, &["--from", &django.url, "--overwrite"]);
    assert_imported(
        &output,
        "imported 5 users (0 skipped), 0 tokens, 0 blacklisted",
    );
    assert_eq!(
        stderr(&output),
        "not imported: 0 group memberships, 0 user permissions\n"
    );

    // alice's hash is Django's again: her latchkey session is over, the
    // reset token issued before the import is dead, the Django password
    // logs in and the latchkey one no longer does.
    let stored = user(&url, id("alice@example.com")).unwrap();
    assert_eq!(
        stored.password_hash,
        find(&made, "alice@example.com")["hash"].as_str().unwrap()
    );
    assert_eq!(stored.changed_in_latchkey_at, None);
    let me = app.me(&alice.access).await;
    me.assert_status(401);
    assert_eq!(me.body["code"], "token_not_valid", "{}", me.text);
    app.refresh_token(&alice.refresh)
        .await
        .assert(401, blacklisted());
    app.post_json(
        "/auth/password/reset/confirm/",
        json!({
            "uid": param(&reset_link, "uid"),
            "token": param(&reset_link, "token"),
            "new_password1": "alice-reset-pass-93",
            "new_password2": "alice-reset-pass-93",
        }),
    )
    .await
    .assert(400, json!({"token": ["Invalid value"]}));
    app.login("alice@example.com", ALICE_NEW)
        .await
        .assert(401, no_active_account());
    let me = app
        .me(&logged_in(&app, "alice@example.com", "alice-django-pass-2")
            .await
            .access)
        .await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "alice@example.com");
    // mallory is active again, as in Django.
    app.login("mallory@example.com", "mallory-django-pass-3")
        .await
        .assert_status(200);
    // staff's hash was Django's already (no change, only an upgrade at
    // login may differ): nothing of theirs was kept.
    assert_eq!(
        user(&url, id("staff@example.com"))
            .unwrap()
            .changed_in_latchkey_at,
        None
    );
}

async fn rows_whose_hash_can_never_verify_are_imported_and_listed(mut ctx: Ctx) {
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(
        &[],
        Some(&json!({"users": [
            {"email": "fine@example.com", "password": "fine-django-pass-1"},
            // Django's removed unsalted SHA-1 and crypt hashers: formats no
            // hasher reads any more.
            {"email": "sha1@example.com", "hash": "sha1$$0123456789abcdef0123456789abcdef01234567"},
            {"email": "crypt@example.com", "hash": "crypt$$ab1234567890"},
            // Past the bounds: a bcrypt cost of 31 would take days.
            {"email": "costly@example.com", "hash": "bcrypt$$2b$31$abcdefghijklmnopqrstuuAbcdefghijklmnopqrstuvwxyz01234"},
            // Django's own unusable password is no surprise: not listed.
            {"email": "grace@example.com", "unusable": true},
        ]})),
    );
    let id = |email: &str| find(&made, email)["id"].as_i64().unwrap();
    let url = ctx.new_database();
    let expected_stderr = format!(
        "unusable password hash for id {} (in no format latchkey reads): imported, but it cannot log in until a password reset\n\
         unusable password hash for id {} (in no format latchkey reads): imported, but it cannot log in until a password reset\n\
         unusable password hash for id {} (with bcrypt cost 31 above the bound 14): imported, but it cannot log in until a password reset\n\
         not imported: 0 group memberships, 0 user permissions\n",
        id("sha1@example.com"),
        id("crypt@example.com"),
        id("costly@example.com"),
    );
    dry_run_then_import(
        &url,
        &django.url,
        "5 users (0 skipped), 0 tokens, 0 blacklisted",
        &expected_stderr,
    );
    // Imported as stored; nothing logs in with them.
    assert_eq!(
        user(&url, id("crypt@example.com")).unwrap().password_hash,
        "crypt$$ab1234567890"
    );
    let app = ctx.spawn_on(&url, &[]).await;
    app.login("sha1@example.com", "some-password-0")
        .await
        .assert(401, no_active_account());
    app.login("fine@example.com", "fine-django-pass-1")
        .await
        .assert_status(200);
}

/// Django issued its refresh tokens only at a password login: the session
/// that adopts one has `amr` `["pwd"]` at `aal` 1, and so has every token it
/// issues (How a login completes, v3).
async fn an_adopted_django_token_starts_a_pwd_session_at_aal1(mut ctx: Ctx) {
    let (django, made) = DjangoDb::standard(ctx.backend);
    let url = ctx.new_database();
    import(&url, &["--from", &django.url]);
    let app = ctx
        .spawn_on(&url, &[("SECRET_KEY", DJANGO_SECRET_KEY)])
        .await;
    let minted = token(&made, "alice@example.com", false);
    let refresh = minted["refresh"].as_str().unwrap();
    assert!(latchkey_tests::payload(refresh).get("amr").is_none());
    let adopted = app.refresh_token(refresh).await;
    adopted.assert_status(200);
    for name in ["access", "refresh"] {
        let claims = latchkey_tests::payload(adopted.body[name].as_str().unwrap());
        assert_eq!(
            (&claims["amr"], &claims["aal"]),
            (&json!(["pwd"]), &json!(1))
        );
    }
    let listed = app.sessions(adopted.body["access"].as_str().unwrap()).await;
    listed.assert_status(200);
    let results = listed.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", listed.text);
    assert_eq!(results[0]["amr"], json!(["pwd"]));
    assert_eq!(results[0]["aal"], json!(1));
}
