//! The fast reproduction of issue 20's item 7: the test binary aborted
//! with `double free or corruption` after its last test. PostgreSQL here
//! encrypts loopback connections (`ssl = on`), so libpq runs the statically
//! linked OpenSSL 3, which registers an exit-time cleanup (`OPENSSL_cleanup`
//! through `atexit`) on first use unless it was initialised with
//! `OPENSSL_INIT_NO_ATEXIT`. The cleanup runs when `main` returns, while
//! threads that outlive `main` (the servers' change feed, pools, workers)
//! still read and write through their TLS connections.
//!
//! This starts latchkey servers on PostgreSQL as the test harness does,
//! keeps threads busy on TLS connections, and returns from `main` without
//! stopping anything:
//!
//!     cargo run --example exit_with_live_tls               # as the harness does now
//!     cargo run --example exit_with_live_tls -- --old      # as it did before: aborts
//!
//! Loop it (`for i in $(seq 50); do …; echo $?; done`): with `--old` some
//! runs die of SIGABRT/SIGSEGV (exit 134/139), without it none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use latchkey_tests::TestApp;
use latchkey_tests::database::{Backend, TestDatabase};

const THREADS: usize = 16;

fn main() {
    let old = std::env::args().any(|a| a == "--old");
    if !old {
        openssl_sys::init();
    }
    let database = TestDatabase::create(Backend::Postgres);
    // Threads that keep opening TLS connections (a handshake each) while
    // `main` exits, as the change feeds of servers that were never stopped
    // did: their databases dropped, each retried its connection every
    // second until the process ended.
    for _ in 0..THREADS {
        let url = database.url.clone();
        std::thread::spawn(move || {
            loop {
                if let Ok(mut conn) = PgConnection::establish(&url) {
                    let _ = diesel::sql_query("SELECT 1").execute(&mut conn);
                }
            }
        });
    }
    let system = actix_web::rt::System::new();
    let apps = system.block_on(async {
        let mut apps = Vec::new();
        for n in 0..2 {
            let app = TestApp::spawn(Backend::Postgres, &database.url, &[]).await;
            app.registered(&format!("user{n}@example.com")).await;
            apps.push(app);
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        apps
    });
    // Never stopped, never dropped: they live until the process exits.
    std::mem::forget(apps);
    std::mem::forget(system);
    std::mem::forget(database);
    std::thread::sleep(Duration::from_millis(300));
}
