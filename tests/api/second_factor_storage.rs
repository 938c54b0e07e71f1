//! TOTP devices and recovery codes on a real database of each backend:
//! single use decided by one conditional statement. Of sixteen connections
//! accepting one step (or using one code) at once, exactly one succeeds; a
//! later step still works, an earlier or equal one never; a pending secret
//! is never written over an enabled one; disabling keeps the last step.

use std::sync::{Arc, Barrier};

use latchkey_domain::{Email, UserFlags};
use latchkey_persistence::{
    CodeFormat, Database, DbConnection, DeviceShape, NewUser, RecoveryCodes, SealedSecret,
    StoreError, TotpDevice, User, db_now, run_pending_migrations, write_transaction,
};
use latchkey_tests::{Ctx, tests};

tests![
    of_sixteen_concurrent_acceptances_of_one_step_exactly_one_wins,
    only_a_later_step_is_accepted,
    of_sixteen_concurrent_uses_of_one_recovery_code_exactly_one_wins,
    a_new_set_of_codes_ends_the_old_one,
    a_pending_secret_never_replaces_an_enabled_one,
    disabling_keeps_the_last_step,
];

const RACERS: usize = 16;

fn migrated(ctx: &mut Ctx) -> (Database, i64) {
    let url = ctx.new_database();
    let db = latchkey_tests::binary::open_for_racers(&url, RACERS as u32);
    run_pending_migrations(&db).unwrap();
    let mut conn = db.get().unwrap();
    let flags = UserFlags {
        is_active: true,
        is_staff: false,
        is_superuser: false,
    };
    let email = Email::parse("jae@example.com").unwrap();
    let user = User::insert(&mut conn, &NewUser::new(&email, "h", flags, db_now())).unwrap();
    (db, user.id)
}

fn sealed() -> SealedSecret<'static> {
    SealedSecret {
        blob: "c2VhbGVk",
        key_id: "0123abcd",
    }
}

fn enrolled(db: &Database, user_id: i64) {
    let mut conn = db.get().unwrap();
    assert!(
        TotpDevice::set_pending(
            &mut conn,
            user_id,
            sealed(),
            DeviceShape::default(),
            db_now()
        )
        .unwrap()
    );
    assert!(TotpDevice::enable(&mut conn, user_id, db_now()).unwrap());
}

/// Runs `step` for `user_id` on `RACERS` threads at once, each on its own
/// connection inside its own write transaction.
fn race(
    db: &Database,
    user_id: i64,
    step: fn(&mut DbConnection, i64) -> Result<bool, StoreError>,
) -> usize {
    let barrier = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|_| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = db.get().unwrap();
                barrier.wait();
                write_transaction(&mut conn, |conn| step(conn, user_id)).unwrap()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|won| *won)
        .count()
}

async fn of_sixteen_concurrent_acceptances_of_one_step_exactly_one_wins(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    enrolled(&db, user_id);
    let won = race(&db, user_id, |conn, user_id| {
        TotpDevice::accept_step(conn, user_id, 1_800_000_010)
    });
    assert_eq!(won, 1);
}

async fn only_a_later_step_is_accepted(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    enrolled(&db, user_id);
    let mut conn = db.get().unwrap();
    assert!(TotpDevice::accept_step(&mut conn, user_id, 1_800_000_010).unwrap());
    assert!(!TotpDevice::accept_step(&mut conn, user_id, 1_800_000_010).unwrap());
    assert!(!TotpDevice::accept_step(&mut conn, user_id, 1_799_999_980).unwrap());
    assert!(TotpDevice::accept_step(&mut conn, user_id, 1_800_000_040).unwrap());
    let device = TotpDevice::find(&mut conn, user_id).unwrap().unwrap();
    assert_eq!(device.last_step_at, Some(1_800_000_040));
    // No device, no step.
    assert!(!TotpDevice::accept_step(&mut conn, user_id + 1, 1_800_000_070).unwrap());
}

fn hashes() -> Vec<String> {
    (0..10).map(|i| format!("{i:064x}")).collect()
}

async fn of_sixteen_concurrent_uses_of_one_recovery_code_exactly_one_wins(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    {
        let mut conn = db.get().unwrap();
        RecoveryCodes::replace(
            &mut conn,
            user_id,
            &hashes(),
            CodeFormat::Latchkey,
            db_now(),
        )
        .unwrap();
    }
    let won = race(&db, user_id, |conn, user_id| {
        RecoveryCodes::use_up(conn, user_id, &[format!("{:064x}", 3)], db_now())
    });
    assert_eq!(won, 1);
    let mut conn = db.get().unwrap();
    assert_eq!(RecoveryCodes::unused(&mut conn, user_id).unwrap(), 9);
    // Another user's code is not theirs.
    assert!(
        !RecoveryCodes::use_up(&mut conn, user_id + 1, &[format!("{:064x}", 4)], db_now()).unwrap()
    );
}

async fn a_new_set_of_codes_ends_the_old_one(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    let mut conn = db.get().unwrap();
    RecoveryCodes::replace(
        &mut conn,
        user_id,
        &hashes(),
        CodeFormat::Latchkey,
        db_now(),
    )
    .unwrap();
    let fresh: Vec<String> = (100..110).map(|i| format!("{i:064x}")).collect();
    RecoveryCodes::replace(&mut conn, user_id, &fresh, CodeFormat::Latchkey, db_now()).unwrap();
    assert!(
        !RecoveryCodes::use_up(&mut conn, user_id, &[format!("{:064x}", 3)], db_now()).unwrap()
    );
    assert!(
        RecoveryCodes::use_up(&mut conn, user_id, &[format!("{:064x}", 103)], db_now()).unwrap()
    );
    assert_eq!(RecoveryCodes::unused(&mut conn, user_id).unwrap(), 9);
}

async fn a_pending_secret_never_replaces_an_enabled_one(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    enrolled(&db, user_id);
    let mut conn = db.get().unwrap();
    let other = SealedSecret {
        blob: "b3RoZXI",
        key_id: "0123abcd",
    };
    assert!(
        !TotpDevice::set_pending(&mut conn, user_id, other, DeviceShape::default(), db_now())
            .unwrap()
    );
    let device = TotpDevice::find(&mut conn, user_id).unwrap().unwrap();
    assert_eq!(device.secret_sealed.as_deref(), Some("c2VhbGVk"));
    assert!(device.enabled_at.is_some());
    assert!(!TotpDevice::enable(&mut conn, user_id, db_now()).unwrap());
    assert!(
        !format!("{device:?}").contains("c2VhbGVk"),
        "Debug hides the secret"
    );
}

async fn disabling_keeps_the_last_step(mut ctx: Ctx) {
    let (db, user_id) = migrated(&mut ctx);
    enrolled(&db, user_id);
    let mut conn = db.get().unwrap();
    assert!(TotpDevice::accept_step(&mut conn, user_id, 1_800_000_010).unwrap());
    assert!(TotpDevice::disable(&mut conn, user_id, db_now()).unwrap());
    let device = TotpDevice::find(&mut conn, user_id).unwrap().unwrap();
    assert_eq!((device.secret_sealed, device.enabled_at), (None, None));
    assert_eq!(device.last_step_at, Some(1_800_000_010));
    // Enrolling again: a new pending secret, the old last step kept.
    assert!(
        TotpDevice::set_pending(
            &mut conn,
            user_id,
            sealed(),
            DeviceShape::default(),
            db_now()
        )
        .unwrap()
    );
    assert!(TotpDevice::enable(&mut conn, user_id, db_now()).unwrap());
    assert!(!TotpDevice::accept_step(&mut conn, user_id, 1_800_000_010).unwrap());
    assert!(TotpDevice::accept_step(&mut conn, user_id, 1_800_000_040).unwrap());
}
