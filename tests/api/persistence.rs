//! The persistence layer on a real database of each backend.

use chrono::{Duration, Timelike};
use latchkey_domain::{Email, UserFlags};
use latchkey_persistence::{
    NewOutstandingToken, NewUser, OutstandingToken, StoreError, User, UserChanges, db_now,
    run_pending_migrations,
};
use latchkey_tests::binary::open;
use latchkey_tests::{Ctx, tests};

tests![
    migrations_apply_once,
    create_then_find_by_email_in_any_case,
    a_duplicate_email_is_its_own_error,
    timestamps_round_trip_with_microseconds,
    update_of_a_missing_user_is_not_found,
    deleting_a_user_deletes_their_tokens,
    flush_deletes_only_expired_tokens,
];

fn flags() -> UserFlags {
    UserFlags {
        is_active: true,
        is_staff: false,
        is_superuser: false,
    }
}

fn migrated(ctx: &mut Ctx) -> latchkey_persistence::Database {
    let url = ctx.new_database();
    let db = open(&url);
    run_pending_migrations(&db).unwrap();
    db
}

async fn migrations_apply_once(mut ctx: Ctx) {
    let url = ctx.new_database();
    let db = open(&url);
    assert_eq!(
        run_pending_migrations(&db).unwrap().len(),
        latchkey_tests::migration_count(ctx.backend)
    );
    assert!(run_pending_migrations(&db).unwrap().is_empty());
}

async fn create_then_find_by_email_in_any_case(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let email = Email::parse("Jae@Example.com").unwrap();
    let created = User::insert(
        &mut conn,
        &NewUser::new(&email, "$2b$04$hash", flags(), db_now()),
    )
    .unwrap();
    assert_eq!(created.email, "jae@example.com");
    let found = User::find_by_email(&mut conn, &Email::parse("JAE@EXAMPLE.COM").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(
        User::find(&mut conn, created.id).unwrap(),
        Some(created.clone())
    );
    assert!(
        !format!("{created:?}").contains("$2b$"),
        "Debug hides the hash"
    );
}

async fn a_duplicate_email_is_its_own_error(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let email = Email::parse("jae@example.com").unwrap();
    User::insert(&mut conn, &NewUser::new(&email, "h", flags(), db_now())).unwrap();
    let again = User::insert(&mut conn, &NewUser::new(&email, "h", flags(), db_now()));
    assert!(matches!(again, Err(StoreError::EmailTaken)), "{again:?}");
    let other = User::insert(
        &mut conn,
        &NewUser::new(
            &Email::parse("kim@example.com").unwrap(),
            "h",
            flags(),
            db_now(),
        ),
    )
    .unwrap();
    let clash = User::update(
        &mut conn,
        other.id,
        &UserChanges {
            email: Some("jae@example.com".into()),
            ..UserChanges::default()
        },
    );
    assert!(matches!(clash, Err(StoreError::EmailTaken)), "{clash:?}");
}

async fn timestamps_round_trip_with_microseconds(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let now = db_now();
    assert_eq!(now.nanosecond() % 1000, 0);
    let user = User::insert(
        &mut conn,
        &NewUser::new(&Email::parse("t@example.com").unwrap(), "h", flags(), now),
    )
    .unwrap();
    assert_eq!(user.created_at, now);
    assert_eq!(user.updated_at, now);
    assert_eq!(user.last_login, None);
    let later = now + Duration::microseconds(1_234_567);
    User::record_login(&mut conn, user.id, later).unwrap();
    assert_eq!(
        User::find(&mut conn, user.id).unwrap().unwrap().last_login,
        Some(later)
    );
}

async fn update_of_a_missing_user_is_not_found(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let result = User::update(
        &mut conn,
        4242,
        &UserChanges {
            is_staff: Some(true),
            ..UserChanges::default()
        },
    );
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert!(!User::delete(&mut conn, 4242).unwrap());
}

fn token<'a>(jti: &'a str, user_id: i64, expires_in: Duration) -> NewOutstandingToken<'a> {
    NewOutstandingToken {
        jti,
        user_id,
        session_id: "session",
        issued_at: db_now(),
        expires_at: db_now() + expires_in,
    }
}

async fn deleting_a_user_deletes_their_tokens(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let user = User::insert(
        &mut conn,
        &NewUser::new(
            &Email::parse("d@example.com").unwrap(),
            "h",
            flags(),
            db_now(),
        ),
    )
    .unwrap();
    OutstandingToken::record(&mut conn, &token("jti-1", user.id, Duration::days(1))).unwrap();
    assert!(
        OutstandingToken::find_by_jti(&mut conn, "jti-1")
            .unwrap()
            .is_some()
    );
    assert!(User::delete(&mut conn, user.id).unwrap());
    assert!(
        OutstandingToken::find_by_jti(&mut conn, "jti-1")
            .unwrap()
            .is_none()
    );
}

async fn flush_deletes_only_expired_tokens(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let user = User::insert(
        &mut conn,
        &NewUser::new(
            &Email::parse("f@example.com").unwrap(),
            "h",
            flags(),
            db_now(),
        ),
    )
    .unwrap();
    OutstandingToken::record(&mut conn, &token("old", user.id, Duration::seconds(-10))).unwrap();
    OutstandingToken::record(&mut conn, &token("live", user.id, Duration::days(1))).unwrap();
    let old = OutstandingToken::find_by_jti(&mut conn, "old")
        .unwrap()
        .unwrap();
    let live = OutstandingToken::find_by_jti(&mut conn, "live")
        .unwrap()
        .unwrap();
    OutstandingToken::blacklist(&mut conn, old.token.id, db_now()).unwrap();
    OutstandingToken::blacklist(&mut conn, live.token.id, db_now()).unwrap();
    assert_eq!(
        OutstandingToken::flush_expired(&mut conn, db_now()).unwrap(),
        (1, 1, 0)
    );
    assert!(
        OutstandingToken::find_by_jti(&mut conn, "old")
            .unwrap()
            .is_none()
    );
    let kept = OutstandingToken::find_by_jti(&mut conn, "live")
        .unwrap()
        .unwrap();
    assert!(kept.blacklisted_at.is_some());
}
