//! Linked provider identities and accepted ID tokens on a real database of
//! each backend: the unique key decides, in one statement. Of sixteen
//! connections linking one new identity (to sixteen users) at once, or
//! accepting one ID token at once, exactly one succeeds.

use std::sync::{Arc, Barrier};

use chrono::Duration;
use latchkey_domain::{Email, UserFlags};
use latchkey_persistence::{
    AcceptedIdTokens, Database, Identity, NewIdentity, NewUser, User, db_now,
    run_pending_migrations,
};
use latchkey_tests::{Ctx, tests};

tests![
    of_sixteen_concurrent_first_links_of_one_identity_exactly_one_wins,
    an_identity_is_found_listed_and_unlinked,
    of_sixteen_concurrent_posts_of_one_id_token_exactly_one_is_accepted,
    accepted_id_tokens_are_flushed_once_expired,
];

const RACERS: usize = 16;

fn migrated(ctx: &mut Ctx) -> Database {
    let url = ctx.new_database();
    let db = latchkey_tests::binary::open_for_racers(&url, RACERS as u32);
    run_pending_migrations(&db).unwrap();
    db
}

fn user(db: &Database, email: &str) -> i64 {
    let flags = UserFlags {
        is_active: true,
        is_staff: false,
        is_superuser: false,
    };
    let email = Email::parse(email).unwrap();
    let mut conn = db.get().unwrap();
    User::insert(&mut conn, &NewUser::new(&email, "h", flags, db_now()))
        .unwrap()
        .id
}

/// Runs `work(i)` on RACERS threads released at once; its results.
fn race<T: Send + 'static>(
    db: &Database,
    work: impl Fn(&mut latchkey_persistence::DbConnection, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..RACERS)
        .map(|i| {
            let (db, barrier, work) = (db.clone(), Arc::clone(&barrier), Arc::clone(&work));
            std::thread::spawn(move || {
                let mut conn = db.get().unwrap();
                barrier.wait();
                work(&mut conn, i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

async fn of_sixteen_concurrent_first_links_of_one_identity_exactly_one_wins(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let users: Vec<i64> = (0..RACERS)
        .map(|i| user(&db, &format!("u{i}@example.com")))
        .collect();
    let now = db_now();
    let racers = users.clone();
    let linked = race(&db, move |conn, i| {
        Identity::link(
            conn,
            &NewIdentity {
                provider: "google",
                subject: "1078",
                user_id: racers[i],
                email: Some("owner@example.com"),
                linked_at: now,
            },
        )
        .unwrap()
    });
    let winners: Vec<usize> = (0..RACERS).filter(|i| linked[*i]).collect();
    assert_eq!(winners.len(), 1, "{linked:?}");
    let mut conn = db.get().unwrap();
    let held = Identity::find(&mut conn, "google", "1078")
        .unwrap()
        .unwrap();
    assert_eq!(held.user_id, users[winners[0]]);
    // the same subject at another provider is another identity
    assert!(
        Identity::link(
            &mut conn,
            &NewIdentity {
                provider: "github",
                subject: "1078",
                user_id: users[0],
                email: None,
                linked_at: now,
            },
        )
        .unwrap()
    );
}

async fn an_identity_is_found_listed_and_unlinked(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let (jae, kim) = (user(&db, "jae@example.com"), user(&db, "kim@example.com"));
    let mut conn = db.get().unwrap();
    let now = db_now();
    for (provider, subject, user_id) in [
        ("google", "g-1", jae),
        ("github", "42", jae),
        ("google", "g-2", kim),
    ] {
        assert!(
            Identity::link(
                &mut conn,
                &NewIdentity {
                    provider,
                    subject,
                    user_id,
                    email: Some("jae@example.com"),
                    linked_at: now,
                },
            )
            .unwrap()
        );
    }
    assert_eq!(Identity::find(&mut conn, "google", "g-3").unwrap(), None);
    let listed: Vec<(String, String)> = Identity::for_user(&mut conn, jae)
        .unwrap()
        .into_iter()
        .map(|i| (i.provider, i.subject))
        .collect();
    assert_eq!(
        listed,
        [
            ("google".into(), "g-1".into()),
            ("github".into(), "42".into())
        ]
    );
    let github = Identity::find(&mut conn, "github", "42").unwrap().unwrap();
    assert_eq!(github.last_login, None);
    assert!(Identity::record_login(&mut conn, "github", "42", now).unwrap());
    assert!(!Identity::record_login(&mut conn, "github", "nobody", now).unwrap());
    let github = Identity::find(&mut conn, "github", "42").unwrap().unwrap();
    assert_eq!(github.last_login, Some(now));
    // unlinking names the user: kim's google identity stays
    assert_eq!(Identity::unlink(&mut conn, jae, "google").unwrap(), 1);
    assert_eq!(Identity::unlink(&mut conn, jae, "google").unwrap(), 0);
    assert_eq!(Identity::for_user(&mut conn, kim).unwrap().len(), 1);
    assert_eq!(Identity::unlink_all(&mut conn, jae).unwrap(), 1);
    assert!(Identity::for_user(&mut conn, jae).unwrap().is_empty());
    // deleting a user deletes their identities
    assert!(User::delete(&mut conn, kim).unwrap());
    assert_eq!(Identity::find(&mut conn, "google", "g-2").unwrap(), None);
}

async fn of_sixteen_concurrent_posts_of_one_id_token_exactly_one_is_accepted(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let expires = db_now() + Duration::minutes(5);
    let accepted = race(&db, move |conn, _| {
        AcceptedIdTokens::accept_once(conn, &"ab".repeat(32), expires).unwrap()
    });
    assert_eq!(accepted.iter().filter(|a| **a).count(), 1, "{accepted:?}");
    let mut conn = db.get().unwrap();
    assert!(AcceptedIdTokens::accept_once(&mut conn, &"cd".repeat(32), expires).unwrap());
}

async fn accepted_id_tokens_are_flushed_once_expired(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let now = db_now();
    let (old, live) = ("01".repeat(32), "02".repeat(32));
    assert!(AcceptedIdTokens::accept_once(&mut conn, &old, now - Duration::seconds(1)).unwrap());
    assert!(AcceptedIdTokens::accept_once(&mut conn, &live, now + Duration::minutes(5)).unwrap());
    assert_eq!(AcceptedIdTokens::flush_expired(&mut conn, now).unwrap(), 1);
    // the live one is still recorded: presented again, refused
    assert!(!AcceptedIdTokens::accept_once(&mut conn, &live, now + Duration::minutes(5)).unwrap());
    assert!(AcceptedIdTokens::accept_once(&mut conn, &old, now + Duration::minutes(5)).unwrap());
}
