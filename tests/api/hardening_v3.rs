//! The contract's v3 hardening rules that are not races, one test per rule,
//! on both backends: session ids latchkey does not issue, verify's one
//! rule, the silent refresh in the per-IP bucket, `email_verified` after
//! any email change, and email domains compared in one form.

use diesel::RunQueryDsl;
use latchkey_persistence::{DbConnection, User, UserChanges};
use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TestApp, TestUser, paths, tests};
use serde_json::{Value, json};

use crate::hardening::assert_throttled;

tests![
    a_session_id_latchkey_does_not_issue_is_404_before_the_database,
    verify_refuses_the_tokens_of_a_user_deactivated_outside_the_api,
    verify_refuses_the_tokens_of_a_deleted_user_and_of_an_ended_session,
    the_silent_refresh_counts_in_the_per_ip_bucket,
    any_email_change_clears_email_verified_even_when_verification_is_off,
    an_idn_domain_and_its_a_label_are_one_address,
    stored_addresses_are_rewritten_to_the_a_label_form_and_collisions_left,
];

fn not_found() -> Value {
    json!({"detail": "Not found."})
}

fn token_not_valid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

fn set_user(app: &TestApp, id: i64, changes: UserChanges) {
    let db = latchkey_tests::binary::open(&app.database_url);
    User::update(&mut db.get().unwrap(), id, &changes).unwrap();
}

// ------------------------------------------------------------- sessions

async fn a_session_id_latchkey_does_not_issue_is_404_before_the_database(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    let live = user.session_id();
    for id in [
        "%00".to_owned(),
        "a%00b".to_owned(),
        format!("{}%00", &live[..31]),
        live.to_uppercase(),
        format!("{live}0"),
        "%FF%FE".to_owned(),
        "x".repeat(5000),
        "'%20OR%201=1--".to_owned(),
    ] {
        user.send("DELETE", &paths::session(&id), user.bearer())
            .await
            .assert(404, not_found());
    }
    // the session itself was untouched and still ends by its real id
    assert_eq!(user.me().await.body["email"], "jae@example.com");
    user.end_session(&live).await.assert_status(204);
    user.me().await.assert(
        401,
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
        }),
    );
}

// ---------------------------------------------------------------- verify

async fn verify_refuses_the_tokens_of_a_user_deactivated_outside_the_api(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    app.verify(&user.access).await.assert(200, json!({}));
    app.verify(&user.refresh).await.assert(200, json!({}));
    // as an operator or import-django would: no session is ended
    set_user(
        &app,
        user.id,
        UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        },
    );
    app.verify(&user.access)
        .await
        .assert(401, token_not_valid());
    app.verify(&user.refresh)
        .await
        .assert(401, token_not_valid());
    // and as every other endpoint does
    app.me(&user.access).await.assert(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    set_user(
        &app,
        user.id,
        UserChanges {
            is_active: Some(true),
            ..UserChanges::default()
        },
    );
    app.verify(&user.access).await.assert(200, json!({}));
}

async fn verify_refuses_the_tokens_of_a_deleted_user_and_of_an_ended_session(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let ended = app.user("ended@example.com").await;
    ended
        .logout_everywhere()
        .await
        .assert(202, json!({"message": "Logout success"}));
    for token in [&ended.access, &ended.refresh] {
        let refused = app.verify(token).await;
        refused.assert_status(401);
        assert_eq!(refused.body["code"], "token_not_valid", "{}", refused.text);
    }
    let admin = app.superuser("root@example.com").await;
    let deleted = app.user("deleted@example.com").await;
    admin.delete(deleted.id).await.assert_status(204);
    for token in [&deleted.access, &deleted.refresh] {
        app.verify(token).await.assert(401, token_not_valid());
    }
}

// --------------------------------------------------------------- throttle

async fn the_silent_refresh_counts_in_the_per_ip_bucket(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "3/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    let registered = app.registered_from("jae@example.com", "10.1.1.1").await;
    let mut refresh = registered.refresh();
    let silent = |refresh: &str| {
        Req::default()
            .with_cookie("refresh", refresh)
            .with_header("X-Forwarded-For", "10.2.2.2")
    };
    for _ in 0..3 {
        let me = app.get(paths::AUTH, silent(&refresh)).await;
        me.assert_status(200);
        assert_eq!(me.body["email"], "jae@example.com");
        refresh = me.cookie_value("refresh").expect("a new refresh cookie");
    }
    let fourth = app.get(paths::AUTH, silent(&refresh)).await;
    assert_throttled(&fourth);
    assert!(
        fourth.set_cookie("refresh").is_none(),
        "no rotation past the limit"
    );
    // one bucket with POST /auth/refresh/
    assert_throttled(
        &app.post(
            paths::REFRESH,
            Req::json(json!({"refresh": refresh})).with_header("X-Forwarded-For", "10.2.2.2"),
        )
        .await,
    );
    // an access token is no auth request: not counted, not refused
    let by_bearer = app
        .get(
            paths::AUTH,
            Req::bearer(&registered.access()).with_header("X-Forwarded-For", "10.2.2.2"),
        )
        .await;
    by_bearer.assert_status(200);
    assert_eq!(by_bearer.body["email"], "jae@example.com");
    // another client is not affected
    let other = app
        .get(
            paths::AUTH,
            Req::default()
                .with_cookie("refresh", &refresh)
                .with_header("X-Forwarded-For", "10.3.3.3"),
        )
        .await;
    other.assert_status(200);
    assert_eq!(other.body["email"], "jae@example.com");
    assert!(
        other.cookie_value("refresh").is_some(),
        "rotated for the other client"
    );
}

// ----------------------------------------------------------------- email

async fn any_email_change_clears_email_verified_even_when_verification_is_off(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("EMAIL_VERIFICATION", "none")]).await;
    let admin = app.superuser("root@example.com").await;
    let user = app.user("jae@example.com").await;
    for who in [admin.id, user.id] {
        set_user(
            &app,
            who,
            UserChanges {
                email_verified: Some(true),
                ..UserChanges::default()
            },
        );
    }
    // by themself
    let changed = user
        .patch(
            user.id,
            json!({"email": "someone-else@victim.example", "current_password": PASSWORD}),
        )
        .await;
    changed.assert_status(200);
    assert_eq!(changed.body["email"], "someone-else@victim.example");
    assert_eq!(changed.body["email_verified"], false, "{}", changed.text);
    // by staff
    let by_staff = admin
        .patch(
            admin.id,
            json!({"email": "root2@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(by_staff.body["email_verified"], false, "{}", by_staff.text);
    // a PATCH that leaves the email as it is keeps the flag
    set_user(
        &app,
        user.id,
        UserChanges {
            email_verified: Some(true),
            ..UserChanges::default()
        },
    );
    let same = user
        .patch(user.id, json!({"email": "Someone-Else@Victim.example"}))
        .await;
    same.assert_status(200);
    assert_eq!(same.body["email_verified"], true, "{}", same.text);
    set_user(
        &app,
        user.id,
        UserChanges {
            email_verified: Some(false),
            ..UserChanges::default()
        },
    );
    // switched to mandatory later: the never-confirmed address is refused
    let url = app.database_url.clone();
    let strict = ctx
        .spawn_on(&url, &[("EMAIL_VERIFICATION", "mandatory")])
        .await;
    strict
        .login("someone-else@victim.example", PASSWORD)
        .await
        .assert(
            401,
            json!({"detail": "E-mail is not verified.", "code": "email_not_verified"}),
        );
}

async fn an_idn_domain_and_its_a_label_are_one_address(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.register("User@Bücher.example", PASSWORD).await;
    registered.assert_status(201);
    assert_eq!(
        registered.body["user"]["email"],
        "user@xn--bcher-kva.example"
    );
    app.register("user@xn--bcher-kva.example", PASSWORD)
        .await
        .assert(
            400,
            json!({"email": ["user with this email already exists."]}),
        );
    for form in ["user@bücher.example", "USER@XN--BCHER-KVA.EXAMPLE"] {
        let login = app.login(form, PASSWORD).await;
        login.assert_status(200);
        assert_eq!(login.body["user"]["email"], "user@xn--bcher-kva.example");
    }
    // one lockout counter for both forms
    let locked = ctx
        .spawn_on(
            &app.database_url.clone(),
            &[("THROTTLE_LOGIN_FAILURES", "2/15m")],
        )
        .await;
    locked
        .login("user@bücher.example", "wrong-password-1")
        .await
        .assert(401, no_active_account());
    locked
        .login("user@xn--bcher-kva.example", "wrong-password-2")
        .await
        .assert(401, no_active_account());
    assert_throttled(&locked.login("user@bücher.example", PASSWORD).await);
}

fn no_active_account() -> Value {
    json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
}

/// Addresses stored before the rule (in the Unicode form) are rewritten by
/// the migration; two accounts that turn out to be one address are both
/// left as they are (the start-up log names them).
async fn stored_addresses_are_rewritten_to_the_a_label_form_and_collisions_left(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let alone = TestUser::of(&app, &app.register("alone@example.com", PASSWORD).await);
    let first = TestUser::of(&app, &app.register("one@example.com", PASSWORD).await);
    let second = TestUser::of(
        &app,
        &app.register("two@xn--bcher-kva.example", PASSWORD).await,
    );
    // as a v2 latchkey stored them
    set_email(&app, alone.id, "alone@straße.example");
    set_email(&app, first.id, "two@bücher.example");
    app.stop().await;
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut pooled = db.get().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = '20261207000008'")
        .execute(conn)
        .unwrap();
    drop(pooled);
    let url = app.database_url.clone();
    let restarted = ctx.spawn_on(&url, &[]).await;
    let stored = |id: i64| {
        User::find(&mut db.get().unwrap(), id)
            .unwrap()
            .unwrap()
            .email
    };
    // UTS #46 (non-transitional): ß stays ß, encoded
    assert_eq!(stored(alone.id), "alone@xn--strae-oqa.example");
    assert_eq!(
        stored(first.id),
        "two@bücher.example",
        "a collision is left"
    );
    assert_eq!(stored(second.id), "two@xn--bcher-kva.example");
    let login = restarted.login("alone@straße.example", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["email"], "alone@xn--strae-oqa.example");
}

fn set_email(app: &TestApp, id: i64, email: &str) {
    set_user(
        app,
        id,
        UserChanges {
            email: Some(email.to_owned()),
            ..UserChanges::default()
        },
    );
}
