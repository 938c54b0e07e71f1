//! Living with a second factor (Second factor: TOTP and recovery codes,
//! v3): the `aal2_required` gate on what changes how an account is
//! protected, for a TOTP user whose session is at `aal` 1 (a token re-signed
//! with `aal` 1 by the test signing key, or one without `aal`; the sessions
//! Django started are in `import_second_factors`), passed at `aal` 2, never
//! met by users without TOTP; a staff reset (`DELETE /list/{id}/mfa/`) under
//! the deactivation rule, ending every session of the user at once;
//! `latchkey disable-mfa LOGIN` against a running server; and the five
//! security notices, through a real SMTP server, each naming its event and
//! holding no code, secret or `mfa_token`. Codes come from pyotp
//! (`latchkey_tests::mfa_enrol`), so most are Django tests (the venv); each
//! runs on both backends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use latchkey_persistence::outbox::{OutboxEmail, QUEUED};
use latchkey_tests::app::Req;
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::mfa_enrol::{
    Enrolled, aal2_required, assert_ended, assert_live, assurance, enrol, enrolled_user,
    login_with_recovery_code, mfa_status, mfa_token_for, notices, paths, recovery_codes_of,
    verify_mfa,
};
use latchkey_tests::smtp::SmtpServer;
use latchkey_tests::{
    Ctx, DENIED, PASSWORD, Response, TEST_SECRET, TestApp, TestUser, forge, payload, roles, tests,
};
use serde_json::{Value, json};

tests![
    users_without_totp_are_never_gated,
    disable_mfa_of_an_unknown_login_is_exit_1,
];

tests![
    django:
    a_totp_user_at_aal1_is_refused_every_gated_action,
    the_gated_actions_pass_at_aal2,
    a_staff_reset_follows_the_deactivation_rule,
    a_staff_reset_ends_every_session_of_the_user_at_once,
    disable_mfa_turns_totp_off_and_ends_the_sessions_on_a_running_server,
    each_change_sends_one_notice_naming_it_without_codes_or_secrets,
];

const NEW_PASSWORD: &str = "another-horse-battery-7";
const THIRD_PASSWORD: &str = "yet-another-horse-5";
const WAIT: Duration = Duration::from_secs(20);

/// The access token of `user`'s session signed again with `claims`
/// changed (`Null` removes one): the same session at another level.
fn resigned(access: &str, changes: &[(&str, Value)]) -> String {
    let mut claims = payload(access);
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes {
        if value.is_null() {
            map.remove(*name);
        } else {
            map.insert((*name).to_owned(), value.clone());
        }
    }
    forge(Algorithm::HS256, TEST_SECRET, &claims)
}

/// Each gated request, as `(what, method, path, body)`, for user `id`
/// whose password is [`PASSWORD`], with `code` a right TOTP code.
fn gated_requests(id: i64, code: &str) -> Vec<(&'static str, &'static str, String, Value)> {
    let own = latchkey_tests::paths::user(id);
    vec![
        (
            "new recovery codes",
            "POST",
            paths::RECOVERY_CODES.into(),
            json!({"code": code}),
        ),
        (
            "disabling TOTP",
            "DELETE",
            paths::TOTP.into(),
            json!({"current_password": PASSWORD, "code": code}),
        ),
        (
            "a password change",
            "POST",
            latchkey_tests::paths::PASSWORD.into(),
            json!({"old_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ),
        (
            "a PATCH of the own email",
            "PATCH",
            own.clone(),
            json!({"email": "renamed@example.com", "current_password": PASSWORD}),
        ),
        (
            "a PATCH of the own password",
            "PATCH",
            own.clone(),
            json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
        ),
        (
            "a PUT of the own email",
            "PUT",
            own.clone(),
            json!({"email": "renamed@example.com", "current_password": PASSWORD}),
        ),
        (
            "a PUT of the own password",
            "PUT",
            own,
            json!({"email": "jae@example.com", "password": NEW_PASSWORD, "current_password": PASSWORD}),
        ),
    ]
}

async fn send_as(app: &TestApp, token: &str, method: &str, path: &str, body: Value) -> Response {
    app.request(method, path, Req::bearer(token).with_json(body))
        .await
}

/// Nothing of `enrolled` changed: same email, TOTP on with ten codes, the
/// password still asks for the second step.
async fn assert_unchanged(app: &TestApp, enrolled: &Enrolled) {
    let me = enrolled.user.me().await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com", "{}", me.text);
    let status = mfa_status(&enrolled.user).await;
    status.assert_status(200);
    assert_eq!(
        (
            &status.body["totp"]["enabled"],
            &status.body["recovery_codes"]
        ),
        (&json!(true), &json!({"unused": 10})),
        "{}",
        status.text
    );
    mfa_token_for(app, "jae@example.com", PASSWORD).await;
}

// ------------------------------------------------------------ the gate

async fn a_totp_user_at_aal1_is_refused_every_gated_action(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut enrolled = enrolled_user(&app, "jae@example.com").await;
    let id = enrolled.user.id;
    let at_aal1 = resigned(
        &enrolled.user.access,
        &[("amr", json!(["pwd"])), ("aal", json!(1))],
    );
    let without_aal = resigned(
        &enrolled.user.access,
        &[("amr", Value::Null), ("aal", Value::Null)],
    );
    let code = enrolled.totp.next_code().await;

    for token in [&at_aal1, &without_aal] {
        for (what, method, path, body) in gated_requests(id, &code) {
            let response = send_as(&app, token, method, &path, body).await;
            assert_eq!(
                (response.status, &response.body),
                (403, &aal2_required()),
                "{what}: {}",
                response.text
            );
        }
    }

    assert_unchanged(&app, &enrolled).await;
    // What changes no protection is open at aal 1: reading the state,
    // the session list, asking to enrol (already on).
    let status = app.get(paths::MFA, Req::bearer(&at_aal1)).await;
    status.assert_status(200);
    app.sessions(&at_aal1).await.assert_status(200);
    send_as(
        &app,
        &at_aal1,
        "POST",
        paths::TOTP,
        json!({"current_password": PASSWORD}),
    )
    .await
    .assert(409, json!({"detail": "TOTP is already enabled."}));
}

async fn a_staff_totp_user_at_aal1_may_still_change_another_user(
    app: &TestApp,
    staff: &TestUser,
    other_id: i64,
) {
    let enrolled = enrol(staff).await;
    let at_aal1 = resigned(
        &enrolled.user.access,
        &[("amr", json!(["pwd"])), ("aal", json!(1))],
    );
    let response = send_as(
        app,
        &at_aal1,
        "PATCH",
        &latchkey_tests::paths::user(other_id),
        json!({"email": "moved@example.com"}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["email"], "moved@example.com");
}

async fn the_gated_actions_pass_at_aal2(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let mut enrolled = enrolled_user(&app, "jae@example.com").await;
    let session = enrolled.user.clone();
    assert_eq!(
        assurance(&session.access),
        (json!(["pwd", "otp"]), json!(2))
    );
    let code = enrolled.totp.next_code().await;

    let renewed = session
        .post(paths::RECOVERY_CODES, json!({"code": code}))
        .await;
    renewed.assert_status(200);
    let codes = recovery_codes_of(&renewed);

    let patched = session
        .patch(
            session.id,
            json!({"email": "renamed@example.com", "current_password": PASSWORD}),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(patched.body["email"], "renamed@example.com");

    let changed = session.change_password(PASSWORD, NEW_PASSWORD).await;
    changed.assert_status(200);
    let after_change = session.with_tokens_of(&changed);
    assert_eq!(
        assurance(&after_change.access),
        (json!(["pwd", "otp"]), json!(2))
    );

    let put = after_change
        .put(
            session.id,
            json!({"email": "renamed@example.com", "password": THIRD_PASSWORD, "current_password": NEW_PASSWORD}),
        )
        .await;
    put.assert_status(200);

    // Every session ended with the password; both steps again, then off.
    let token = mfa_token_for(&app, "renamed@example.com", THIRD_PASSWORD).await;
    let done = verify_mfa(&app, &token, json!({"recovery_code": codes[0]})).await;
    done.assert_status(200);
    let again = TestUser::of(&app, &done);
    again
        .send(
            "DELETE",
            paths::TOTP,
            again
                .bearer()
                .with_json(json!({"current_password": THIRD_PASSWORD, "code": codes[1]})),
        )
        .await
        .assert(204, Value::Null);

    // A staff member with TOTP, at aal 1, still changes another user.
    let staff = app.staff("staff@example.com").await;
    let other = app.user("other@example.com").await;
    a_staff_totp_user_at_aal1_may_still_change_another_user(&app, &staff, other.id).await;
}

async fn users_without_totp_are_never_gated(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    assert_eq!(assurance(&user.access), (json!(["pwd"]), json!(1)));
    let not_enabled = json!({"detail": "TOTP is not enabled."});
    user.post(paths::RECOVERY_CODES, json!({"code": "123456"}))
        .await
        .assert(400, not_enabled.clone());
    user.send(
        "DELETE",
        paths::TOTP,
        user.bearer()
            .with_json(json!({"current_password": PASSWORD, "code": "123456"})),
    )
    .await
    .assert(400, not_enabled);

    let patched = user
        .patch(
            user.id,
            json!({"email": "renamed@example.com", "current_password": PASSWORD}),
        )
        .await;
    patched.assert_status(200);
    let changed = user.change_password(PASSWORD, NEW_PASSWORD).await;
    changed.assert_status(200);
    let session = user.with_tokens_of(&changed);
    assert_eq!(assurance(&session.access), (json!(["pwd"]), json!(1)));
    session
        .put(
            user.id,
            json!({"email": "renamed@example.com", "password": THIRD_PASSWORD, "current_password": NEW_PASSWORD}),
        )
        .await
        .assert_status(200);
    app.login("renamed@example.com", THIRD_PASSWORD)
        .await
        .assert_status(200);
}

// -------------------------------------------------------- staff reset

async fn a_staff_reset_follows_the_deactivation_rule(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let app = &r.app;
    let other = enrol(&r.other).await;
    let reset = |actor: &TestUser, id: i64| {
        let actor = actor.clone();
        async move {
            actor
                .send("DELETE", &paths::user_mfa(id), actor.bearer())
                .await
        }
    };
    app.request("DELETE", &paths::user_mfa(other.user.id), Req::default())
        .await
        .assert_unauthorized(json!({"detail": "Authentication credentials were not provided."}));
    // Not staff: refused, on another user and on themself.
    reset(&r.user, other.user.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    reset(&other.user, other.user.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    // A superuser's only by a superuser.
    reset(&r.staff, r.superuser.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    reset(&r.staff, 999_999)
        .await
        .assert(404, json!({"detail": "Not found."}));
    let status = mfa_status(&other.user).await;
    assert_eq!(status.body["totp"]["enabled"], true, "{}", status.text);

    reset(&r.staff, other.user.id)
        .await
        .assert(204, Value::Null);

    // A user without TOTP: nothing to remove, still 204.
    reset(&r.staff, r.user.id).await.assert(204, Value::Null);
    reset(&r.staff, other.user.id)
        .await
        .assert(204, Value::Null);
    let another = app.superuser("super2@example.com").await;
    reset(&r.superuser, another.id)
        .await
        .assert(204, Value::Null);
    reset(&r.superuser, r.staff.id)
        .await
        .assert(204, Value::Null);
    // After the reset the password alone logs in.
    let login = app.login("other@example.com", PASSWORD).await;
    login.assert_status(200);
    mfa_status(&TestUser::of(app, &login)).await.assert(
        200,
        json!({"totp": {"enabled": false}, "recovery_codes": {"unused": 0}, "passkeys": 0}),
    );
}

async fn a_staff_reset_ends_every_session_of_the_user_at_once(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let staff = app.staff("staff@example.com").await;
    let enrolled = enrolled_user(&app, "jae@example.com").await;
    let second =
        login_with_recovery_code(&app, "jae@example.com", &enrolled.recovery_codes[0]).await;
    assert_live(&enrolled.user).await;
    assert_live(&second).await;

    staff
        .send("DELETE", &paths::user_mfa(enrolled.user.id), staff.bearer())
        .await
        .assert(204, Value::Null);

    assert_ended(&app, &enrolled.user).await;
    assert_ended(&app, &second).await;
    assert_live(&staff).await;
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    let after = TestUser::of(&app, &login);
    mfa_status(&after).await.assert(
        200,
        json!({"totp": {"enabled": false}, "recovery_codes": {"unused": 0}, "passkeys": 0}),
    );
    // The codes went with it: none opens the second step of anything, and
    // enrolment starts afresh.
    after
        .post(paths::TOTP, json!({"current_password": PASSWORD}))
        .await
        .assert_status(200);
}

// ------------------------------------------------------- disable-mfa

fn disable_mfa(url: &str, login: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    run_latchkey(
        dir.path(),
        &["disable-mfa", login],
        &[("DATABASE_URL", url), ("SECRET_KEY", TEST_SECRET)],
        None,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `GET /auth/` with `session`'s access token until it is refused (the
/// revocation came from another process, which the server hears of within
/// a bound), then the whole check of an ended session.
async fn assert_ended_within_bound(app: &TestApp, session: &TestUser) {
    let started = Instant::now();
    while session.me().await.status == 200 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted {:?} after disable-mfa",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ended(app, session).await;
}

async fn disable_mfa_turns_totp_off_and_ends_the_sessions_on_a_running_server(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let enrolled = enrolled_user(&app, "jae@example.com").await;
    let second =
        login_with_recovery_code(&app, "jae@example.com", &enrolled.recovery_codes[0]).await;
    let bystander = app.user("kim@example.com").await;

    let output = disable_mfa(&app.database_url, "JAE@example.com");

    assert_eq!(
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr)
        ),
        (
            Some(0),
            "disabled the second factor of JAE@example.com and ended their sessions\n".into(),
            String::new()
        )
    );
    assert_ended_within_bound(&app, &enrolled.user).await;
    assert_ended(&app, &second).await;
    assert_live(&bystander).await;
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    mfa_status(&TestUser::of(&app, &login)).await.assert(
        200,
        json!({"totp": {"enabled": false}, "recovery_codes": {"unused": 0}, "passkeys": 0}),
    );
    // Again, with nothing left to disable: the same answer.
    let again = disable_mfa(&app.database_url, "jae@example.com");
    assert_eq!(
        (again.status.code(), text(&again.stdout)),
        (
            Some(0),
            "disabled the second factor of jae@example.com and ended their sessions\n".into()
        ),
        "{}",
        text(&again.stderr)
    );
}

async fn disable_mfa_of_an_unknown_login_is_exit_1(mut ctx: Ctx) {
    let url = ctx.migrated_database();

    let output = disable_mfa(&url, "nobody@example.com");

    // One line on stderr (with the binary's `error: ` before every
    // failure), nothing on stdout.
    let err = text(&output.stderr);
    assert_eq!(
        (
            output.status.code(),
            text(&output.stdout),
            err.lines().count()
        ),
        (Some(1), String::new(), 1),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("no user with login nobody@example.com"),
        "{err}"
    );
}

// ------------------------------------------------------------ notices

/// Waits until the outbox holds no queued email (each one sent or failed),
/// then returns the messages the SMTP server accepted.
async fn settled_messages(app: &TestApp, smtp: &SmtpServer) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let queued = {
            let db = open(&app.database_url);
            let mut conn = db.get().unwrap();
            OutboxEmail::all(&mut conn)
                .unwrap()
                .iter()
                .filter(|row| row.status == QUEUED)
                .count()
        };
        if queued == 0 {
            return smtp.messages();
        }
        assert!(started.elapsed() < WAIT, "{queued} email(s) still queued");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The event sentence a notice's text names (exactly one).
#[track_caller]
fn event_of(message: &Value) -> &'static str {
    let text = message["text"].as_str().unwrap();
    let html = message["html"].as_str().unwrap();
    let named: Vec<&'static str> = [
        notices::ENABLED,
        notices::DISABLED,
        notices::REMOVED_BY_ADMIN,
        notices::RECOVERY_CODE_USED,
        notices::NEW_RECOVERY_CODES,
    ]
    .into_iter()
    .filter(|sentence| text.contains(sentence))
    .collect();
    assert_eq!(named.len(), 1, "{message}");
    assert!(
        html.contains(named[0]),
        "the HTML part names it too: {html}"
    );
    named[0]
}

async fn each_change_sends_one_notice_naming_it_without_codes_or_secrets(mut ctx: Ctx) {
    let smtp = SmtpServer::start();
    let smtp_url = smtp.url();
    let app = ctx
        .spawn_with(&[
            ("SMTP_URL", smtp_url.as_str()),
            ("PUBLIC_URL", "http://latchkey.test"),
            ("EMAIL_RETRY_MAX", "1s"),
        ])
        .await;
    let staff = app.staff("staff@example.com").await;
    let mut secrets: Vec<String> = Vec::new();
    let mut codes_sent: Vec<String> = Vec::new();

    // jae: enabled, a new set, a recovery code at a login, then off with a
    // recovery code (used, and disabled).
    let mut jae = enrolled_user(&app, "jae@example.com").await;
    secrets.push(jae.secret.clone());
    secrets.extend(jae.recovery_codes.iter().cloned());
    let code = jae.totp.next_code().await;
    codes_sent.push(code.clone());
    let renewed = jae
        .user
        .post(paths::RECOVERY_CODES, json!({"code": code}))
        .await;
    renewed.assert_status(200);
    let new_codes = recovery_codes_of(&renewed);
    secrets.extend(new_codes.iter().cloned());
    let mfa_token = mfa_token_for(&app, "jae@example.com", PASSWORD).await;
    verify_mfa(&app, &mfa_token, json!({"recovery_code": new_codes[0]}))
        .await
        .assert_status(200);
    secrets.push(mfa_token);
    jae.user
        .send(
            "DELETE",
            paths::TOTP,
            jae.user
                .bearer()
                .with_json(json!({"current_password": PASSWORD, "code": new_codes[1]})),
        )
        .await
        .assert(204, Value::Null);

    // kim: enabled, then off with a TOTP code.
    let mut kim = enrolled_user(&app, "kim@example.com").await;
    secrets.push(kim.secret.clone());
    secrets.extend(kim.recovery_codes.iter().cloned());
    let code = kim.totp.next_code().await;
    codes_sent.push(code.clone());
    kim.user
        .send(
            "DELETE",
            paths::TOTP,
            kim.user
                .bearer()
                .with_json(json!({"current_password": PASSWORD, "code": code})),
        )
        .await
        .assert(204, Value::Null);

    // lee: enabled, then a staff reset; max: enabled, then disable-mfa.
    let lee = enrolled_user(&app, "lee@example.com").await;
    secrets.push(lee.secret.clone());
    secrets.extend(lee.recovery_codes.iter().cloned());
    staff
        .send("DELETE", &paths::user_mfa(lee.user.id), staff.bearer())
        .await
        .assert(204, Value::Null);
    let max = enrolled_user(&app, "max@example.com").await;
    secrets.push(max.secret.clone());
    secrets.extend(max.recovery_codes.iter().cloned());
    let output = disable_mfa(&app.database_url, "max@example.com");
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The confirmations' codes too.
    for enrolled in [&jae, &kim, &lee, &max] {
        let last = enrolled.totp.last.unwrap();
        codes_sent.extend(enrolled.totp.codes_at(&[last - 1, last]));
    }

    let expected: BTreeMap<&str, Vec<&str>> = [
        (
            "jae@example.com",
            vec![
                notices::ENABLED,
                notices::NEW_RECOVERY_CODES,
                notices::RECOVERY_CODE_USED,
                notices::RECOVERY_CODE_USED,
                notices::DISABLED,
            ],
        ),
        ("kim@example.com", vec![notices::ENABLED, notices::DISABLED]),
        (
            "lee@example.com",
            vec![notices::ENABLED, notices::REMOVED_BY_ADMIN],
        ),
        (
            "max@example.com",
            vec![notices::ENABLED, notices::REMOVED_BY_ADMIN],
        ),
    ]
    .into_iter()
    .map(|(to, mut events)| {
        events.sort_unstable();
        (to, events)
    })
    .collect();
    let total: usize = expected.values().map(Vec::len).sum();
    smtp.wait_for(total, WAIT).await;
    let messages = settled_messages(&app, &smtp).await;

    let mut got: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for message in &messages {
        assert_eq!(message["subject"], notices::SUBJECT, "{message}");
        assert_eq!(message["from"], "latchkey <no-reply@localhost>");
        let to = message["to"].as_str().unwrap();
        let to = expected
            .keys()
            .find(|address| **address == to)
            .unwrap_or_else(|| panic!("a notice to {to}: {message}"));
        got.entry(to).or_default().push(event_of(message));
    }
    for events in got.values_mut() {
        events.sort_unstable();
    }
    assert_eq!(got, expected);

    // No secret, recovery code (as shown, in upper case, without dashes)
    // or mfa_token anywhere in a message; no TOTP code in its text.
    let raw = smtp.raw_messages().join("\n");
    let decoded: String = messages
        .iter()
        .map(|m| format!("{}\n{}\n", m["text"], m["html"]))
        .collect();
    for secret in &secrets {
        for form in [secret.clone(), secret.replace('-', "")] {
            for haystack in [&raw, &decoded] {
                assert!(
                    !haystack.to_lowercase().contains(&form.to_lowercase()),
                    "{form} in a notice"
                );
            }
        }
    }
    for code in &codes_sent {
        assert!(!decoded.contains(code.as_str()), "code {code} in a notice");
    }
}
