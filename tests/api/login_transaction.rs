//! A login's writes are one transaction: the re-check, `last_login`, the
//! session and its first refresh token commit together or not at all. A
//! trigger in the test's own database refuses one insert of the login; the
//! login answers 500 and leaves no session and `last_login` as it was.

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use latchkey_persistence::{DbConnection, User};
use latchkey_tests::{Backend, Ctx, PASSWORD, TestApp, tests};
use serde_json::json;

tests![
    a_login_whose_token_cannot_be_stored_leaves_no_session_and_no_last_login,
    a_sliding_login_whose_session_cannot_be_stored_leaves_no_last_login,
];

async fn a_login_whose_token_cannot_be_stored_leaves_no_session_and_no_last_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    refuse_inserts(&app, "outstanding_tokens");
    let before = stored(&app, user.id);
    app.login("jae@example.com", PASSWORD)
        .await
        .assert(500, json!({"detail": "A server error occurred."}));
    assert_eq!(stored(&app, user.id), before);
}

async fn a_sliding_login_whose_session_cannot_be_stored_leaves_no_last_login(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let user = app.user("jae@example.com").await;
    refuse_inserts(&app, "sessions");
    let before = stored(&app, user.id);
    app.sliding("jae@example.com", PASSWORD)
        .await
        .assert(500, json!({"detail": "A server error occurred."}));
    assert_eq!(stored(&app, user.id), before);
}

/// What a login writes: the user's `last_login` and the number of sessions
/// and refresh tokens in the database.
fn stored(app: &TestApp, id: i64) -> (Option<chrono::NaiveDateTime>, i64, i64) {
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut pooled = db.get().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    let last_login = User::find(conn, id).unwrap().unwrap().last_login;
    (
        last_login,
        count(conn, "sessions"),
        count(conn, "outstanding_tokens"),
    )
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut DbConnection, table: &str) -> i64 {
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .unwrap()
        .n
}

/// A trigger that aborts every insert into `table`.
fn refuse_inserts(app: &TestApp, table: &str) {
    let db = latchkey_tests::binary::open(&app.database_url);
    let mut pooled = db.get().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    let statements = match app.backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                .to_owned(),
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            ),
        ],
    };
    for statement in statements {
        diesel::sql_query(statement).execute(conn).unwrap();
    }
}
