//! The real `latchkey` binary, run as a user would.

use latchkey_domain::Email;
use latchkey_persistence::User;
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::{Ctx, PASSWORD, tests};

tests![
    migrate_twice_applies_then_does_nothing,
    create_superuser_without_input_reads_the_environment,
    create_superuser_without_input_refuses_a_weak_password,
    create_superuser_without_input_may_bypass_validation,
    create_superuser_refuses_a_taken_email,
    create_superuser_without_input_needs_both_variables,
    create_superuser_prompts_and_reprompts,
    flush_expired_tokens_reports_counts,
    a_bad_database_url_is_one_clear_line,
    a_bad_setting_names_the_variable,
    production_without_a_secret_refuses_to_start,
    sigterm_drains_an_in_flight_request,
];

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn migrate_twice_applies_then_does_nothing(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let first = run_latchkey(dir.path(), &["migrate"], &[("DATABASE_URL", &url)], None);
    assert!(first.status.success(), "{}", stderr(&first));
    let expected = format!(
        "Applied {} migration(s)",
        latchkey_tests::migration_count(ctx.backend)
    );
    assert!(stdout(&first).contains(&expected), "{}", stdout(&first));
    let second = run_latchkey(dir.path(), &["migrate"], &[("DATABASE_URL", &url)], None);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("No migrations to apply"),
        "{}",
        stdout(&second)
    );
}

fn superuser_env<'a>(url: &'a str, email: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", url),
        ("BCRYPT_COST", "4"),
        ("LATCHKEY_SUPERUSER_EMAIL", email),
        ("LATCHKEY_SUPERUSER_PASSWORD", password),
    ]
}

fn stored_user(url: &str, email: &str) -> Option<User> {
    let db = open(url);
    let mut conn = db.get().unwrap();
    User::find_by_email(&mut conn, &Email::parse(email).unwrap()).unwrap()
}

async fn create_superuser_without_input_reads_the_environment(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input"],
        &superuser_env(&url, "Admin@Example.com", PASSWORD),
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let user = stored_user(&url, "admin@example.com").expect("superuser stored");
    assert!(user.is_superuser && user.is_staff && user.is_active);
    assert!(user.password_hash.starts_with("$2b$04$"));
    // and the server accepts the credentials
    let app = ctx.spawn_on(&url, &[]).await;
    let login = app.login("admin@example.com", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["is_superuser"], true);
}

async fn create_superuser_without_input_refuses_a_weak_password(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input"],
        &superuser_env(&url, "a@example.com", "1234"),
        None,
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("This password is too short") && err.contains("--bypass-validation"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(stored_user(&url, "a@example.com").is_none());
}

async fn create_superuser_without_input_may_bypass_validation(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input", "--bypass-validation"],
        &superuser_env(&url, "a@example.com", "1234"),
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stored_user(&url, "a@example.com").is_some());
}

async fn create_superuser_refuses_a_taken_email(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let env = superuser_env(&url, "a@example.com", PASSWORD);
    assert!(
        run_latchkey(dir.path(), &["create-superuser", "--no-input"], &env, None)
            .status
            .success()
    );
    let again = run_latchkey(dir.path(), &["create-superuser", "--no-input"], &env, None);
    assert!(!again.status.success());
    let err = stderr(&again);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

async fn create_superuser_without_input_needs_both_variables(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let no_password = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input"],
        &[
            ("DATABASE_URL", &url),
            ("LATCHKEY_SUPERUSER_EMAIL", "a@example.com"),
        ],
        None,
    );
    assert!(!no_password.status.success());
    assert!(
        stderr(&no_password).contains("LATCHKEY_SUPERUSER_PASSWORD"),
        "{}",
        stderr(&no_password)
    );
    let no_email = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input"],
        &[
            ("DATABASE_URL", &url),
            ("LATCHKEY_SUPERUSER_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert!(!no_email.status.success());
    assert!(
        stderr(&no_email).contains("LATCHKEY_SUPERUSER_EMAIL"),
        "{}",
        stderr(&no_email)
    );
}

async fn create_superuser_prompts_and_reprompts(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    // a bad email, then a good one; mismatched passwords; a weak one refused
    // at the bypass question; then a good one.
    let input = format!(
        "not-an-email\nroot@example.com\none-thing-1\nanother-thing-2\n1234\n1234\nn\n{PASSWORD}\n{PASSWORD}\n"
    );
    let output = run_latchkey(
        dir.path(),
        &["create-superuser"],
        &[("DATABASE_URL", &url), ("BCRYPT_COST", "4")],
        Some(&input),
    );
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("Error: Enter a valid email address."), "{err}");
    assert!(err.contains("Error: Your passwords didn't match."), "{err}");
    assert!(
        err.contains("Bypass password validation and create user anyway? [y/N]"),
        "{err}"
    );
    let user = stored_user(&url, "root@example.com").unwrap();
    assert!(user.is_superuser);
    assert!(
        latchkey_auth::PasswordHasher::new(4)
            .unwrap()
            .verify(PASSWORD, &user.password_hash)
    );
}

async fn flush_expired_tokens_reports_counts(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("a@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["flush-expired-tokens"],
        &[("DATABASE_URL", &app.database_url)],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Deleted 0 expired outstanding token(s)"),
        "{}",
        stdout(&output)
    );
}

async fn a_bad_database_url_is_one_clear_line(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    for url in ["mysql://root@localhost/db", "data/typo.db"] {
        let output = run_latchkey(dir.path(), &["migrate"], &[("DATABASE_URL", url)], None);
        assert!(!output.status.success());
        let err = stderr(&output);
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    }
    assert!(
        !dir.path().join("data").exists(),
        "a bad URL creates nothing"
    );
}

async fn a_bad_setting_names_the_variable(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["migrate"],
        &[("ACCESS_TOKEN_LIFETIME", "forever")],
        None,
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("ACCESS_TOKEN_LIFETIME") && err.contains("forever"),
        "{err}"
    );
}

async fn production_without_a_secret_refuses_to_start(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    let output = run_latchkey(
        dir.path(),
        &["serve"],
        &[("LATCHKEY_ENV", "production"), ("BIND", "127.0.0.1:0")],
        None,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("SECRET_KEY"),
        "{}",
        stderr(&output)
    );
}

async fn sigterm_drains_an_in_flight_request(mut ctx: Ctx) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    // cost 14: a login takes about a second, long enough to be in flight
    let mut server = Command::new(latchkey_tests::binary::latchkey_binary())
        .args(["serve"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("BIND", &bind)
        .env("BCRYPT_COST", "14")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{bind}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let login = client
        .post(format!("{base}/auth/"))
        .json(&serde_json::json!({"email": "nobody@example.com", "password": PASSWORD}))
        .send();
    let terminate = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let status = Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (response, ()) = futures_util::future::join(login, terminate).await;
    let response = response.expect("the in-flight login was answered, not cut off");
    assert_eq!(response.status().as_u16(), 401);
    let exit = server.wait().unwrap();
    assert!(exit.success(), "graceful exit after SIGTERM: {exit:?}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer serving"
    );
}
