//! `latchkey users …` (the real binary) against the database of a running
//! server: what each command shows or changes, that the running server
//! refuses a revoked session's token at once (it hears of the change
//! through the change feed), and the one-line failures.

use std::process::Output;
use std::time::{Duration, Instant};

use latchkey_domain::Email;
use latchkey_persistence::{User, UserChanges};
use latchkey_tests::app::TestApp;
use latchkey_tests::binary::{open, run_latchkey, set_flags};
use latchkey_tests::mfa_enrol::{assert_ended, assert_live};
use latchkey_tests::user::TestUser;
use latchkey_tests::{Ctx, PASSWORD, TEST_SECRET, tests};

tests![
    users_list_shows_one_line_per_user,
    users_list_filters_by_search_staff_and_inactive,
    set_password_without_input_ends_every_session_on_a_running_server,
    set_password_refuses_a_weak_password_and_changes_nothing,
    set_password_prompts_twice_and_reprompts,
    deactivate_refuses_logins_and_ends_sessions_on_a_running_server_until_activate,
    end_sessions_ends_every_session_of_that_user_only,
    an_unknown_login_is_one_line_naming_it_and_exit_1,
];

const NEW_PASSWORD: &str = "a-brand-new-passphrase-42";

fn users(url: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    users_with_input(url, args, extra, None)
}

fn users_with_input(
    url: &str,
    args: &[&str],
    extra: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["users"];
    argv.extend_from_slice(args);
    let mut env = vec![
        ("DATABASE_URL", url),
        ("SECRET_KEY", TEST_SECRET),
        ("BCRYPT_COST", "4"),
    ];
    env.extend_from_slice(extra);
    run_latchkey(dir.path(), &argv, &env, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(exit code, stdout, stderr)`.
fn outcome(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

fn success(line: &str) -> (Option<i32>, String, String) {
    (Some(0), format!("{line}\n"), String::new())
}

fn stored(url: &str, email: &str) -> User {
    let db = open(url);
    let mut conn = db.get().unwrap();
    User::find_by_email(&mut conn, &Email::parse(email).unwrap())
        .unwrap()
        .unwrap()
}

fn set_inactive(url: &str, id: i64) {
    let db = open(url);
    let mut conn = db.get().unwrap();
    User::update(
        &mut conn,
        id,
        &UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        },
    )
    .unwrap();
}

/// `GET /auth/` with `session`'s access token until the running server
/// refuses it (the change came from another process, which it hears of
/// within a bound), then the whole check of an ended session.
async fn assert_ended_within_bound(app: &TestApp, session: &TestUser) {
    let started = Instant::now();
    while session.me().await.status == 200 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted {:?} after the command",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ended(app, session).await;
}

/// The line `users list` prints for a user, last login aside.
fn line_start(user: &User, flags: &str) -> String {
    format!("{}\t{}\t{flags}\t", user.id, user.email)
}

async fn users_list_shows_one_line_per_user(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.user("jae@example.com").await;
    let admin = app.superuser("root@example.com").await;

    let output = users(&app.database_url, &["list"], &[]);

    let (code, out, err) = outcome(&output);
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let jae = stored(&app.database_url, "jae@example.com");
    let root = stored(&app.database_url, "root@example.com");
    assert!(lines[0].starts_with(&line_start(&jae, "active")), "{out}");
    assert!(
        lines[1].starts_with(&line_start(&root, "active,staff,superuser")),
        "{out}"
    );
    let last_login = match root.last_login {
        Some(at) => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "never".into(),
    };
    assert!(lines[1].ends_with(&format!("\t{last_login}")), "{out}");
    assert_eq!(root.id, admin.id);
}

async fn users_list_filters_by_search_staff_and_inactive(mut ctx: Ctx) {
    let url = ctx.migrated_database();
    let app = ctx.spawn_on(&url, &[]).await;
    let jae = app.user("jae@example.com").await;
    let kim = app.user("kim@example.com").await;
    let lee = app.user("lee@example.org").await;
    set_flags(&url, kim.id, true, false);
    set_inactive(&url, lee.id);

    let listed = |args: &[&str]| {
        let output = users(&url, args, &[]);
        let (code, out, err) = outcome(&output);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{args:?}: {out}");
        out.lines()
            .map(|line| line.split('\t').take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };

    assert_eq!(
        listed(&["list", "--search", "EXAMPLE.COM"]),
        vec![
            format!("{} jae@example.com active", jae.id),
            format!("{} kim@example.com active,staff", kim.id),
        ]
    );
    assert_eq!(
        listed(&["list", "--staff"]),
        vec![format!("{} kim@example.com active,staff", kim.id)]
    );
    assert_eq!(
        listed(&["list", "--inactive"]),
        vec![format!("{} lee@example.org inactive", lee.id)]
    );
    assert!(listed(&["list", "--staff", "--inactive"]).is_empty());
}

async fn set_password_without_input_ends_every_session_on_a_running_server(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user("jae@example.com").await;
    let other = app.logged_in("jae@example.com").await;
    let bystander = app.user("kim@example.com").await;
    let before = stored(&app.database_url, "jae@example.com");

    let output = users(
        &app.database_url,
        &["set-password", "--no-input", "JAE@example.com"],
        &[("LATCHKEY_NEW_PASSWORD", NEW_PASSWORD)],
    );

    assert_eq!(
        outcome(&output),
        success("changed the password of JAE@example.com and ended their sessions")
    );
    assert_ended_within_bound(&app, &session).await;
    assert_ended(&app, &other).await;
    assert_live(&bystander).await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(401);
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
    // Reset links sent before the change die with it.
    let after = stored(&app.database_url, "jae@example.com");
    assert!(after.password_changed_at.is_some());
    assert!(after.password_changed_at > before.password_changed_at);
}

async fn set_password_refuses_a_weak_password_and_changes_nothing(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user("jae@example.com").await;
    let before = stored(&app.database_url, "jae@example.com");

    let output = users(
        &app.database_url,
        &["set-password", "--no-input", "jae@example.com"],
        &[("LATCHKEY_NEW_PASSWORD", "1234")],
    );

    let (code, out, err) = outcome(&output);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (Some(1), "", 1),
        "{err}"
    );
    assert!(
        err.contains("LATCHKEY_NEW_PASSWORD") && err.contains("This password is too short"),
        "{err}"
    );
    let after = stored(&app.database_url, "jae@example.com");
    assert_eq!(after.password_hash, before.password_hash);
    assert_eq!(after.tokens_valid_after, before.tokens_valid_after);
    assert_live(&session).await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn set_password_prompts_twice_and_reprompts(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user("jae@example.com").await;
    // Mismatched passwords; a weak one refused at the bypass question;
    // then a good one, twice.
    let input =
        format!("one-thing-1\nanother-thing-2\n1234\n1234\nn\n{NEW_PASSWORD}\n{NEW_PASSWORD}\n");

    let output = users_with_input(
        &app.database_url,
        &["set-password", "jae@example.com"],
        &[],
        Some(&input),
    );

    let (code, out, err) = outcome(&output);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "changed the password of jae@example.com and ended their sessions\n"
        ),
        "{err}"
    );
    assert!(err.contains("Error: Your passwords didn't match."), "{err}");
    assert!(
        err.contains("Bypass password validation and set it anyway? [y/N]"),
        "{err}"
    );
    assert_ended_within_bound(&app, &session).await;
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
}

async fn deactivate_refuses_logins_and_ends_sessions_on_a_running_server_until_activate(
    mut ctx: Ctx,
) {
    let app = ctx.spawn().await;
    let session = app.user("jae@example.com").await;
    let bystander = app.user("kim@example.com").await;

    let output = users(&app.database_url, &["deactivate", "jae@example.com"], &[]);

    assert_eq!(
        outcome(&output),
        success("deactivated jae@example.com and ended their sessions")
    );
    assert!(!stored(&app.database_url, "jae@example.com").is_active);
    let started = Instant::now();
    while session.me().await.status == 200 {
        assert!(started.elapsed() < Duration::from_secs(2), "still accepted");
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    session.me().await.assert_unauthorized(
        serde_json::json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    assert_live(&bystander).await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(401);

    let output = users(&app.database_url, &["activate", "jae@example.com"], &[]);

    assert_eq!(outcome(&output), success("activated jae@example.com"));
    assert!(stored(&app.database_url, "jae@example.com").is_active);
    // The sessions the deactivation ended stay ended.
    assert_ended(&app, &session).await;
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn end_sessions_ends_every_session_of_that_user_only(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let session = app.user("jae@example.com").await;
    let other = app.logged_in("jae@example.com").await;
    let bystander = app.user("kim@example.com").await;

    let output = users(&app.database_url, &["end-sessions", "jae@example.com"], &[]);

    assert_eq!(
        outcome(&output),
        success("ended every session of jae@example.com")
    );
    assert_ended_within_bound(&app, &session).await;
    assert_ended(&app, &other).await;
    assert_live(&bystander).await;
    // Nothing else changed: the password still logs in.
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn an_unknown_login_is_one_line_naming_it_and_exit_1(mut ctx: Ctx) {
    let url = ctx.migrated_database();
    for args in [
        &["set-password", "--no-input", "nobody@example.com"][..],
        &["deactivate", "nobody@example.com"],
        &["activate", "nobody@example.com"],
        &["end-sessions", "nobody@example.com"],
    ] {
        let output = users(&url, args, &[("LATCHKEY_NEW_PASSWORD", NEW_PASSWORD)]);

        let (code, out, err) = outcome(&output);
        assert_eq!(
            (code, out.as_str(), err.lines().count()),
            (Some(1), "", 1),
            "{args:?}: {err}"
        );
        assert_eq!(
            err, "error: no user with login nobody@example.com\n",
            "{args:?}"
        );
    }
    // Not an email at all: the same answer.
    let output = users(&url, &["end-sessions", "not a login"], &[]);
    assert_eq!(
        outcome(&output),
        (
            Some(1),
            String::new(),
            "error: no user with login not a login\n".into()
        )
    );
}
