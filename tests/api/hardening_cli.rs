//! The contract's v2 hardening rules that live in the real binary and on
//! the file system: bounded settings, private SQLite files and development
//! key, `.env` from the working directory only, `create-superuser` refusing
//! a blank password, a short `SECRET_KEY` warned about, the bounded
//! password-hashing queue of a separately started server process; and v3's
//! production guards: `PUBLIC_URL` with email, `/metrics` never public.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use latchkey_domain::Email;
use latchkey_persistence::User;
use latchkey_tests::binary::{ServedBinary, open, run_latchkey};
use latchkey_tests::{Ctx, PASSWORD, tests};
use serde_json::{Value, json};

tests![
    out_of_bounds_durations_stop_start_up_naming_the_variable,
    durations_at_their_bounds_are_accepted,
    a_zero_length_secret_stops_start_up,
    a_short_secret_key_is_warned_about_in_development,
    sqlite_files_and_the_development_key_are_private,
    a_development_key_file_others_may_read_is_refused,
    a_short_development_key_file_is_refused,
    a_dotenv_in_a_parent_directory_is_not_read,
    create_superuser_refuses_a_blank_password_even_bypassing_validation,
    a_full_hashing_queue_answers_503_at_once,
    a_login_whose_client_has_gone_is_not_checked,
    production_email_needs_an_https_or_loopback_public_url,
    production_metrics_answer_only_with_the_token_or_on_their_own_address,
    metrics_false_answers_404,
];

const KEY: &str = "a-secret-key-for-the-cli-tests-0123456789";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A start-up refusal: a non-zero exit and one clear line on stderr that
/// names `needle`, never a panic.
#[track_caller]
fn assert_refused(output: &Output, needle: &str) {
    let err = stderr(output);
    assert!(!output.status.success(), "exit {:?}: {err}", output.status);
    assert!(err.contains(needle), "stderr does not name {needle}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `latchkey serve` started in the background, in `dir`, with only the
/// given environment (warnings and errors logged); killed when dropped.
struct Server;

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> ServedBinary {
        let mut all = vec![("RUST_LOG", "warn")];
        all.extend_from_slice(env);
        ServedBinary::start(dir, &all).await
    }
}

// -------------------------------------------------------------- settings

async fn out_of_bounds_durations_stop_start_up_naming_the_variable(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("LEEWAY", "9223372036854775807"),
        ("ACCESS_TOKEN_LIFETIME", "9223372036854775807"),
        ("REFRESH_TOKEN_LIFETIME", "9223372036854775807"),
        ("SLIDING_TOKEN_LIFETIME", "9223372036854775807"),
        ("SLIDING_TOKEN_REFRESH_LIFETIME", "9223372036854775807"),
        ("ACCESS_TOKEN_LIFETIME", "4000d"),
        ("REFRESH_TOKEN_LIFETIME", "3653d"),
        ("LEEWAY", "2d"),
        ("LEEWAY", "86401"),
    ] {
        let output = run_latchkey(
            dir.path(),
            &["migrate"],
            &[("DATABASE_URL", &url), ("SECRET_KEY", KEY), (name, value)],
            None,
        );
        assert_refused(&output, name);
    }
    // nothing was migrated by the refused runs
    let output = run_latchkey(
        dir.path(),
        &["migrate"],
        &[("DATABASE_URL", &url), ("SECRET_KEY", KEY)],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("Applied"), "{out}");
}

async fn durations_at_their_bounds_are_accepted(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("LEEWAY", "86400"),
        ("LEEWAY", "1d"),
        ("ACCESS_TOKEN_LIFETIME", "3600d"),
        ("REFRESH_TOKEN_LIFETIME", "3650d"),
    ] {
        let output = run_latchkey(
            dir.path(),
            &["migrate"],
            &[("DATABASE_URL", &url), ("SECRET_KEY", KEY), (name, value)],
            None,
        );
        assert!(
            output.status.success(),
            "{name}={value}: {}",
            stderr(&output)
        );
    }
}

async fn a_zero_length_secret_stops_start_up(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    for name in ["SECRET_KEY", "SIGNING_KEY"] {
        let mut env = vec![("DATABASE_URL", url.as_str())];
        if name == "SIGNING_KEY" {
            env.push(("SECRET_KEY", KEY));
        }
        env.push((name, ""));
        let output = run_latchkey(dir.path(), &["migrate"], &env, None);
        assert_refused(&output, name);
    }
    assert!(
        !dir.path().join("data").join("secret_key").exists(),
        "no development key was generated in place of the empty one"
    );
}

async fn a_short_secret_key_is_warned_about_in_development(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", "tiny-key-7q"),
            ("BCRYPT_COST", "4"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok", "database": "ok"})
    );
    let log = server.output();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("SECRET_KEY")),
        "no warning about the short SECRET_KEY: {log}"
    );
    assert!(
        !log.contains("tiny-key-7q"),
        "the key itself was logged: {log}"
    );
    // and production refuses it
    let output = run_latchkey(
        dir.path(),
        &["migrate"],
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", "tiny-key-7q"),
            ("LATCHKEY_ENV", "production"),
        ],
        None,
    );
    assert_refused(&output, "SECRET_KEY");
}

// ----------------------------------------------------------------- files

async fn sqlite_files_and_the_development_key_are_private(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = run_latchkey(dir.path(), &["migrate"], &[], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&data.join("latchkey.sqlite3")), 0o600, "database");
    assert_eq!(mode(&data.join("secret_key")), 0o600, "secret_key");
    let key = std::fs::read_to_string(data.join("secret_key")).unwrap();
    assert!(key.trim().len() >= 32, "{} bytes", key.trim().len());

    // a server writing to it: the WAL and shared-memory files are private too
    let server = Server::start(dir.path(), &[("BCRYPT_COST", "4")]).await;
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{}/register/", server.base))
        .json(&json!({"email": "jae@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    let body: Value = registered.json().await.unwrap();
    assert_eq!(body["message"], "register success");
    let mut checked = Vec::new();
    for suffix in ["-wal", "-shm"] {
        let path = data.join(format!("latchkey.sqlite3{suffix}"));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            checked.push(suffix);
        }
    }
    assert!(
        checked.contains(&"-wal"),
        "no WAL file beside the database while the server writes: {:?}",
        std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert_eq!(mode(&data.join("latchkey.sqlite3")), 0o600, "database");
    assert_eq!(
        std::fs::read_to_string(data.join("secret_key")).unwrap(),
        key,
        "the key was kept"
    );
    drop(server);

    // create-superuser writes through the same files
    let output = run_latchkey(
        dir.path(),
        &["create-superuser", "--no-input"],
        &[
            ("BCRYPT_COST", "4"),
            ("LATCHKEY_SUPERUSER_EMAIL", "root@example.com"),
            ("LATCHKEY_SUPERUSER_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
    }
}

async fn a_development_key_file_others_may_read_is_refused(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let key_file = data.join("secret_key");
    let key = "k".repeat(64);
    std::fs::write(&key_file, &key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_latchkey(dir.path(), &["migrate"], &[], None);
    assert_refused(&output, "secret_key");
    // left as it was: neither used, nor rewritten, nor silently chmod-ed
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    assert_eq!(mode(&key_file), 0o644);
    assert!(!data.join("latchkey.sqlite3").exists(), "start-up went on");
}

async fn a_short_development_key_file_is_refused(ctx: Ctx) {
    let _ = ctx.backend;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let key_file = data.join("secret_key");
    for short in ["0123456789", ""] {
        std::fs::write(&key_file, short).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let output = run_latchkey(dir.path(), &["migrate"], &[], None);
        assert_refused(&output, "secret_key");
        assert_eq!(std::fs::read_to_string(&key_file).unwrap(), short);
    }
    assert!(!data.join("latchkey.sqlite3").exists(), "start-up went on");
}

async fn a_dotenv_in_a_parent_directory_is_not_read(mut ctx: Ctx) {
    let url = ctx.new_database();
    let parent = tempfile::tempdir().unwrap();
    let work = parent.path().join("deploy");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        parent.path().join(".env"),
        "BCRYPT_COST=notanumber\nSIGNING_KEY=planted-by-someone-else\n",
    )
    .unwrap();
    let env = [("DATABASE_URL", url.as_str()), ("SECRET_KEY", KEY)];
    let output = run_latchkey(&work, &["migrate"], &env, None);
    assert!(
        output.status.success(),
        "the parent's .env was read: {}",
        stderr(&output)
    );
    // the same file in the working directory is read
    std::fs::copy(parent.path().join(".env"), work.join(".env")).unwrap();
    let output = run_latchkey(&work, &["migrate"], &env, None);
    assert_refused(&output, "BCRYPT_COST");
    assert!(
        stderr(&output).contains("notanumber"),
        "{}",
        stderr(&output)
    );
}

async fn create_superuser_refuses_a_blank_password_even_bypassing_validation(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    for password in ["        ", " \t ", ""] {
        let output = run_latchkey(
            dir.path(),
            &["create-superuser", "--no-input", "--bypass-validation"],
            &[
                ("DATABASE_URL", &url),
                ("BCRYPT_COST", "4"),
                ("LATCHKEY_SUPERUSER_EMAIL", "admin@example.com"),
                ("LATCHKEY_SUPERUSER_PASSWORD", password),
            ],
            None,
        );
        let err = stderr(&output);
        assert!(!output.status.success(), "{password:?}: {err}");
        assert!(
            ["LATCHKEY_SUPERUSER_PASSWORD", "blank", "empty"]
                .iter()
                .any(|w| err.contains(w)),
            "{password:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let db = open(&url);
        let mut conn = db.get().unwrap();
        assert!(
            User::find_by_email(&mut conn, &Email::parse("admin@example.com").unwrap())
                .unwrap()
                .is_none(),
            "{password:?}: a superuser was created"
        );
    }
}

// --------------------------------------------------------- hashing queue

async fn a_full_hashing_queue_answers_503_at_once(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", KEY),
            ("HASHING_QUEUE", "2"),
            ("BCRYPT_COST", "14"),
            ("WORKERS", "4"),
            ("THROTTLE_AUTH_PER_IP", "0"),
            ("THROTTLE_LOGIN_FAILURES", "0"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let login = |n: usize| {
        let client = client.clone();
        let url = format!("{}/auth/", server.base);
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .json(&json!({"email": format!("nobody{n}@example.com"), "password": PASSWORD}))
                .send()
                .await
                .expect("answered");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body, started.elapsed())
        }
    };
    let answers = futures_util::future::join_all((0..20).map(login)).await;
    let summary: Vec<_> = answers.iter().map(|(s, _, _, t)| (*s, *t)).collect();
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    let checked: Vec<_> = answers.iter().filter(|a| a.0 != 503).collect();
    assert!(!refused.is_empty(), "no 503 in {summary:?}");
    assert!(!checked.is_empty(), "every login was refused: {summary:?}");
    for (status, _, body, _) in &checked {
        assert_eq!(
            (*status, body),
            (
                401,
                &json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
            ),
            "{summary:?}"
        );
    }
    let slowest_check = checked.iter().map(|a| a.3).max().unwrap();
    for (_, retry_after, body, elapsed) in &refused {
        let wait: u64 = retry_after
            .as_deref()
            .expect("Retry-After on the 503")
            .parse()
            .unwrap();
        assert!(wait >= 1, "Retry-After {wait}");
        assert!(
            body.as_object().is_some_and(|o| o.len() == 1)
                && body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        // at once: not after waiting for the queue to drain
        assert!(
            *elapsed < slowest_check / 2,
            "a 503 took {elapsed:?}, the slowest check {slowest_check:?}: {summary:?}"
        );
    }
    // once the queue has drained, logins are checked again
    let (status, _, body, _) = login(99).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
        )
    );
}

/// A login for an unknown email (one password check): its status and how
/// long it took.
async fn timed_login(client: &reqwest::Client, base: &str, n: usize) -> (u16, Duration) {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/auth/"))
        .json(&json!({"email": format!("nobody{n}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .expect("answered");
    (response.status().as_u16(), started.elapsed())
}

async fn a_login_whose_client_has_gone_is_not_checked(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", KEY),
            ("HASHING_QUEUE", "32"),
            ("BCRYPT_COST", "14"),
            ("WORKERS", "4"),
            ("THROTTLE_AUTH_PER_IP", "0"),
            ("THROTTLE_LOGIN_FAILURES", "0"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.as_str();
    // the first unknown email may wait for the dummy hash: then one check alone
    assert_eq!(timed_login(&client, base, 0).await.0, 401);
    let (status, one) = timed_login(&client, base, 1).await;
    assert_eq!(status, 401);
    // two checks keep the hashing threads busy ...
    let blockers = futures_util::future::join_all((2..=3).map(|n| timed_login(&client, base, n)));
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let rest = async {
        actix_web::rt::time::sleep(one / 4).await;
        // ... while twenty more queue up and their clients hang up (a raw
        // socket: the whole request sent, then the connection closed)
        actix_web::rt::task::spawn_blocking(move || {
            use std::io::Write;
            let streams: Vec<_> = (10..30)
                .map(|n| {
                    let body = json!({"email": format!("nobody{n}@example.com"), "password": PASSWORD}).to_string();
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    write!(
                        stream,
                        "POST /auth/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .unwrap();
                    stream
                })
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            for stream in streams {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        })
        .await
        .unwrap();
        // then a client that waits
        timed_login(&client, base, 99).await
    };
    let (blocked, (status, waited)) = futures_util::future::join(blockers, rest).await;
    assert!(
        blocked.iter().all(|(status, _)| *status == 401),
        "{blocked:?}"
    );
    assert_eq!(status, 401);
    // The server counts the queued checks it did not run: the twenty whose
    // clients hung up (a count, not a timing, so a loaded machine cannot
    // make it flaky).
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let skipped: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("latchkey_password_checks_skipped_total "))
        .expect("the skipped-checks counter")
        .trim()
        .parse()
        .unwrap();
    // (Twenty when nothing is late; a heavily loaded machine may start one
    // or two blockers' successors before their clients' sockets close.)
    assert!(
        skipped >= 16.0,
        "of twenty abandoned checks only {skipped} were skipped (the waiting login took {waited:?}, one check {one:?})"
    );
}

// ------------------------------------------------------ production guards

/// The production environment of these tests, on `url`.
fn production<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("LATCHKEY_ENV", "production"),
        ("SECRET_KEY", KEY),
        ("DATABASE_URL", url),
    ];
    env.extend_from_slice(extra);
    env
}

/// A GET with an optional bearer token: status and body.
async fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[track_caller]
fn assert_json(answer: &(u16, String), status: u16, body: Value) {
    let parsed: Value = serde_json::from_str(&answer.1).unwrap_or(Value::Null);
    assert_eq!((answer.0, parsed), (status, body), "{}", answer.1);
}

async fn production_email_needs_an_https_or_loopback_public_url(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let smtp = ("SMTP_URL", "smtps://mail.example.com");
    for public_url in [
        None,
        Some("http://auth.example.com"),
        Some("http://10.0.0.7:8000"),
    ] {
        let mut extra = vec![smtp];
        extra.extend(public_url.map(|value| ("PUBLIC_URL", value)));
        let output = run_latchkey(dir.path(), &["serve"], &production(&url, &extra), None);
        assert_refused(&output, "PUBLIC_URL");
        if let Some(value) = public_url {
            assert!(stderr(&output).contains(value), "{}", stderr(&output));
        }
    }
    for public_url in ["https://auth.example.com", "http://127.0.0.1:8000"] {
        let server = Server::start(
            dir.path(),
            &production(&url, &[smtp, ("PUBLIC_URL", public_url)]),
        )
        .await;
        let (status, body) = get(&format!("{}/healthz", server.base), None).await;
        assert_eq!(status, 200, "{public_url}: {body}");
    }
    // Without email nothing is sent, so nothing asks for PUBLIC_URL.
    let server = Server::start(dir.path(), &production(&url, &[])).await;
    assert_eq!(get(&format!("{}/healthz", server.base), None).await.0, 200);
}

async fn production_metrics_answer_only_with_the_token_or_on_their_own_address(mut ctx: Ctx) {
    let url = ctx.new_database();
    let dir = tempfile::tempdir().unwrap();
    let not_found = json!({ "detail": "Not found." });
    // Neither METRICS_TOKEN nor METRICS_BIND: not served.
    let server = Server::start(dir.path(), &production(&url, &[])).await;
    let metrics = format!("{}/metrics", server.base);
    assert_json(&get(&metrics, None).await, 404, not_found.clone());
    assert_json(
        &get(&metrics, Some("anything")).await,
        404,
        not_found.clone(),
    );
    drop(server);

    // METRICS_TOKEN: only with `Authorization: Bearer <token>`.
    let token = "metrics-token-0123456789";
    let server = Server::start(dir.path(), &production(&url, &[("METRICS_TOKEN", token)])).await;
    let metrics = format!("{}/metrics", server.base);
    assert_json(
        &get(&metrics, None).await,
        401,
        json!({ "detail": "Authentication credentials were not provided." }),
    );
    assert_json(
        &get(&metrics, Some("metrics-token-012345678")).await,
        401,
        json!({ "detail": "Invalid token.", "code": "authentication_failed" }),
    );
    let (status, body) = get(&metrics, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("latchkey_emails_sent_total"), "{body}");
    drop(server);

    // METRICS_BIND: served there only; the API's address answers 404.
    let bind = format!("127.0.0.1:{}", free_port());
    let server = Server::start(dir.path(), &production(&url, &[("METRICS_BIND", &bind)])).await;
    assert_json(
        &get(&format!("{}/metrics", server.base), None).await,
        404,
        not_found.clone(),
    );
    let (status, body) = get(&format!("http://{bind}/metrics"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("latchkey_emails_sent_total"), "{body}");
    // nothing else is served on the metrics address
    assert_json(
        &get(&format!("http://{bind}/healthz"), None).await,
        404,
        not_found.clone(),
    );
    drop(server);

    // Both: the token is asked for on METRICS_BIND too.
    let bind = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        dir.path(),
        &production(&url, &[("METRICS_BIND", &bind), ("METRICS_TOKEN", token)]),
    )
    .await;
    let metrics = format!("http://{bind}/metrics");
    assert_eq!(get(&metrics, None).await.0, 401);
    assert_eq!(get(&metrics, Some(token)).await.0, 200);
    assert_json(
        &get(&format!("{}/metrics", server.base), Some(token)).await,
        404,
        not_found,
    );
}

async fn metrics_false_answers_404(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("METRICS", "false")]).await;
    app.get("/metrics", latchkey_tests::app::Req::default())
        .await
        .assert(404, json!({ "detail": "Not found." }));
    let app = ctx.spawn().await;
    let metrics = app
        .get("/metrics", latchkey_tests::app::Req::default())
        .await;
    metrics.assert_status(200);
    assert!(
        metrics.text.contains("latchkey_emails_sent_total"),
        "{}",
        metrics.text
    );
}
