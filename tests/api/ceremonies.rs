//! The ceremonies table on a real database of each backend: a ceremony is
//! used up by exactly one of any number of concurrent steps, expired and
//! spent ones are refused, a step whose transaction rolls back gives it
//! back, wrong answers are counted up to their limit and no further however
//! many race, and the table holds the handle's hash, never the handle.

use std::sync::{Arc, Barrier};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use latchkey_persistence::schema::ceremonies;
use latchkey_persistence::{
    Ceremony, CeremonyKind, Database, DbConnection, NewCeremony, StoreError, db_now,
    run_pending_migrations, write_transaction,
};
use latchkey_tests::{Ctx, tests};
use sha2::{Digest, Sha256};

tests![
    of_sixteen_concurrent_steps_exactly_one_uses_a_ceremony_up,
    expired_spent_and_unknown_ceremonies_are_refused,
    a_step_rolled_back_leaves_the_ceremony_usable,
    wrong_answers_are_counted_up_to_the_limit_under_concurrency,
    the_table_holds_the_handles_hash_never_the_handle,
    flush_deletes_only_expired_ceremonies,
];

const RACERS: usize = 16;

fn migrated(ctx: &mut Ctx) -> Database {
    let url = ctx.new_database();
    let db = latchkey_tests::binary::open_for_racers(&url, RACERS as u32);
    run_pending_migrations(&db).unwrap();
    db
}

/// How a client's handle is stored: its SHA-256, in hex.
fn hash(handle: &str) -> String {
    Sha256::digest(handle.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn begin(db: &Database, handle: &str, expires_at: NaiveDateTime) {
    let mut conn = db.get().unwrap();
    Ceremony::begin(
        &mut conn,
        &NewCeremony {
            kind: CeremonyKind::MfaPending,
            handle_hash: &hash(handle),
            user_id: None,
            payload: r#"{"amr":["pwd"]}"#,
            created_at: db_now(),
            expires_at,
        },
    )
    .unwrap();
}

fn in_a_minute() -> NaiveDateTime {
    db_now() + TimeDelta::minutes(1)
}

/// Runs `step` on `RACERS` threads at once, each on its own connection
/// inside its own write transaction; returns what each got.
fn race<T: Send + 'static>(
    db: &Database,
    step: fn(&mut DbConnection) -> Result<T, StoreError>,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|_| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = db.get().unwrap();
                barrier.wait();
                write_transaction(&mut conn, step).unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

async fn of_sixteen_concurrent_steps_exactly_one_uses_a_ceremony_up(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    begin(&db, "the-handle", in_a_minute());
    let won = race(&db, |conn| {
        Ceremony::consume(
            conn,
            CeremonyKind::MfaPending,
            &hash("the-handle"),
            db_now(),
        )
    });
    let winners: Vec<_> = won.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].payload, r#"{"amr":["pwd"]}"#);
    assert!(winners[0].consumed_at.is_some());
}

async fn expired_spent_and_unknown_ceremonies_are_refused(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    let consume = |conn: &mut DbConnection, kind, handle: &str| {
        Ceremony::consume(conn, kind, &hash(handle), db_now()).unwrap()
    };
    begin(&db, "expired", db_now() - TimeDelta::seconds(1));
    assert!(consume(&mut conn, CeremonyKind::MfaPending, "expired").is_none());
    assert!(
        Ceremony::find_live(
            &mut conn,
            CeremonyKind::MfaPending,
            &hash("expired"),
            db_now()
        )
        .unwrap()
        .is_none()
    );
    begin(&db, "live", in_a_minute());
    // Another kind with the same handle is another ceremony.
    assert!(consume(&mut conn, CeremonyKind::OidcState, "live").is_none());
    assert!(consume(&mut conn, CeremonyKind::MfaPending, "unknown").is_none());
    assert!(
        Ceremony::find_live(&mut conn, CeremonyKind::MfaPending, &hash("live"), db_now())
            .unwrap()
            .is_some()
    );
    assert!(consume(&mut conn, CeremonyKind::MfaPending, "live").is_some());
    assert!(consume(&mut conn, CeremonyKind::MfaPending, "live").is_none());
    // A spent ceremony takes no more tries either.
    assert_eq!(
        Ceremony::spend_try(
            &mut conn,
            CeremonyKind::MfaPending,
            &hash("live"),
            5,
            db_now()
        )
        .unwrap(),
        None
    );
    // A handle is never begun twice.
    let again = Ceremony::begin(
        &mut conn,
        &NewCeremony {
            kind: CeremonyKind::MfaPending,
            handle_hash: &hash("live"),
            user_id: None,
            payload: "{}",
            created_at: db_now(),
            expires_at: in_a_minute(),
        },
    );
    assert!(again.is_err(), "{again:?}");
}

async fn a_step_rolled_back_leaves_the_ceremony_usable(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    begin(&db, "the-handle", in_a_minute());
    let mut conn = db.get().unwrap();
    let refused: Result<(), StoreError> = write_transaction(&mut conn, |conn| {
        let used = Ceremony::consume(
            conn,
            CeremonyKind::MfaPending,
            &hash("the-handle"),
            db_now(),
        )?;
        assert!(used.is_some());
        let tries = Ceremony::spend_try(
            conn,
            CeremonyKind::MfaPending,
            &hash("the-handle"),
            5,
            db_now(),
        )?;
        // Used up inside this transaction: no try is left to spend.
        assert_eq!(tries, None);
        // The step is refused after the consume: everything rolls back.
        Err(StoreError::NotFound)
    });
    assert!(matches!(refused, Err(StoreError::NotFound)));
    let live = Ceremony::find_live(
        &mut conn,
        CeremonyKind::MfaPending,
        &hash("the-handle"),
        db_now(),
    )
    .unwrap()
    .unwrap();
    assert_eq!((live.consumed_at, live.tries), (None, 0));
    assert!(
        Ceremony::consume(
            &mut conn,
            CeremonyKind::MfaPending,
            &hash("the-handle"),
            db_now()
        )
        .unwrap()
        .is_some()
    );
}

async fn wrong_answers_are_counted_up_to_the_limit_under_concurrency(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    begin(&db, "the-handle", in_a_minute());
    let counted = race(&db, |conn| {
        Ceremony::spend_try(
            conn,
            CeremonyKind::MfaPending,
            &hash("the-handle"),
            5,
            db_now(),
        )
    });
    let mut counts: Vec<i32> = counted.into_iter().flatten().collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    let mut conn = db.get().unwrap();
    let live = Ceremony::find_live(
        &mut conn,
        CeremonyKind::MfaPending,
        &hash("the-handle"),
        db_now(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(live.tries, 5);
}

async fn the_table_holds_the_handles_hash_never_the_handle(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    let handle = "a-handle-only-the-client-holds-7f3c";
    begin(&db, handle, in_a_minute());
    let mut conn = db.get().unwrap();
    let rows: Vec<(String, String, String)> = ceremonies::table
        .select((
            ceremonies::kind,
            ceremonies::handle_hash,
            ceremonies::payload,
        ))
        .load(&mut *conn as &mut DbConnection)
        .unwrap();
    assert_eq!(
        rows,
        vec![(
            "mfa_pending".to_owned(),
            hash(handle),
            r#"{"amr":["pwd"]}"#.to_owned()
        )]
    );
    assert!(rows.iter().all(|(kind, stored, payload)| {
        !kind.contains(handle) && !stored.contains(handle) && !payload.contains(handle)
    }));
}

async fn flush_deletes_only_expired_ceremonies(mut ctx: Ctx) {
    let db = migrated(&mut ctx);
    begin(&db, "expired", db_now() - TimeDelta::seconds(1));
    begin(&db, "live", in_a_minute());
    let mut conn = db.get().unwrap();
    assert_eq!(Ceremony::flush_expired(&mut conn, db_now()).unwrap(), 1);
    let left: Vec<String> = ceremonies::table
        .select(ceremonies::handle_hash)
        .load(&mut *conn as &mut DbConnection)
        .unwrap();
    assert_eq!(left, vec![hash("live")]);
}
