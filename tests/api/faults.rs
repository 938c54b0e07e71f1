//! Faults: a PostgreSQL of the test's own is stopped under load and
//! restarted. Only 503s while it is down, answers within the pool timeout,
//! recovery without a restart, and no acknowledged write lost.

use std::time::{Duration, Instant};

use latchkey_tests::app::Req;
use latchkey_tests::private_pg::PrivatePostgres;
use latchkey_tests::{Ctx, PASSWORD, TestApp, tests};
use serde_json::json;

tests![
    postgres_only:
    requests_get_503_while_the_database_is_down_and_it_recovers,
    the_server_starts_while_the_database_is_down,
];

const POOL_TIMEOUT: &str = "2s";
/// The pool timeout plus scheduling slack on a loaded 2-core machine.
const ANSWER_WITHIN: Duration = Duration::from_millis(4500);

async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if app.get("/readyz", Req::default()).await.status == 200 {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server did not recover within 30 s");
}

#[derive(Debug)]
struct Outcome {
    status: u16,
    started: Instant,
    elapsed: Duration,
    email: String,
}

async fn requests_get_503_while_the_database_is_down_and_it_recovers(mut ctx: Ctx) {
    let pg = PrivatePostgres::start();
    let app = ctx
        .spawn_on(
            &pg.url(),
            &[
                ("DATABASE_POOL_TIMEOUT", POOL_TIMEOUT),
                ("DATABASE_POOL_SIZE", "4"),
            ],
        )
        .await;
    let reader = app.registered("reader@example.com").await;
    let reader_id = reader.body["user"]["id"].as_i64().unwrap();
    let token = reader.access();

    let outage = std::cell::Cell::new((None::<Instant>, None::<Instant>));
    let stop_at = Instant::now() + Duration::from_secs(12);
    let worker = |n: usize| {
        let app = &app;
        let token = token.clone();
        async move {
            let mut outcomes = Vec::new();
            let mut i = 0;
            while Instant::now() < stop_at {
                i += 1;
                let email = format!("w{n}-{i}@example.com");
                let started = Instant::now();
                let status = if i % 2 == 0 {
                    app.register(&email, PASSWORD).await.status
                } else {
                    app.get(&format!("/list/{reader_id}/"), Req::bearer(&token))
                        .await
                        .status
                };
                outcomes.push(Outcome {
                    status,
                    started,
                    elapsed: started.elapsed(),
                    email,
                });
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            outcomes
        }
    };
    let controller = async {
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
        pg.stop_server();
        let down_from = Instant::now();
        let health = app.get("/healthz", Req::default()).await;
        health.assert(200, json!({"status": "ok"}));
        let ready = app.get("/readyz", Req::default()).await;
        ready.assert_status(503);
        assert!(ready.body["detail"].is_string());
        actix_web::rt::time::sleep(Duration::from_secs(5)).await;
        outage.set((Some(down_from), Some(Instant::now())));
        pg.start_server();
    };
    let (outcomes, ()) = futures_util::future::join(
        futures_util::future::join_all((0..3).map(worker)),
        controller,
    )
    .await;
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    wait_until_ready(&app).await;

    assert!(
        outcomes.iter().all(|o| matches!(o.status, 200 | 201 | 503)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o.elapsed < ANSWER_WITHIN),
        "{outcomes:?}"
    );
    // requests that started and ended while the database was down
    let (Some(down_from), Some(down_until)) = outage.get() else {
        panic!("no outage recorded")
    };
    let during = |o: &Outcome| o.started >= down_from && o.started + o.elapsed <= down_until;
    let down: Vec<&Outcome> = outcomes.iter().filter(|o| during(o)).collect();
    assert!(
        !down.is_empty() && down.iter().all(|o| o.status == 503),
        "{down:?}"
    );
    assert!(outcomes.iter().any(|o| o.status == 503));
    assert!(
        outcomes
            .iter()
            .filter(|o| !during(o))
            .any(|o| o.status == 201)
    );

    // every acknowledged registration survived the outage
    let acknowledged: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 201).collect();
    for outcome in &acknowledged {
        let login = app.login(&outcome.email, PASSWORD).await;
        assert_eq!(
            login.status, 200,
            "{} was acknowledged but is gone",
            outcome.email
        );
    }
    // and the server serves again without a restart
    app.register("after@example.com", PASSWORD)
        .await
        .assert_status(201);
    app.get(&format!("/list/{reader_id}/"), Req::bearer(&token))
        .await
        .assert_status(200);
}

async fn the_server_starts_while_the_database_is_down(mut ctx: Ctx) {
    let pg = PrivatePostgres::start();
    pg.stop_server();
    let app = ctx
        .spawn_on(&pg.url(), &[("DATABASE_POOL_TIMEOUT", POOL_TIMEOUT)])
        .await;
    app.get("/healthz", Req::default()).await.assert_status(200);
    app.get("/readyz", Req::default()).await.assert_status(503);
    let started = Instant::now();
    let refused = app.register("early@example.com", PASSWORD).await;
    refused.assert_status(503);
    assert!(started.elapsed() < ANSWER_WITHIN);
    assert!(
        !refused.text.contains("relation"),
        "no internals: {}",
        refused.text
    );
    pg.start_server();
    wait_until_ready(&app).await;
    app.register("later@example.com", PASSWORD)
        .await
        .assert_status(201);
}
