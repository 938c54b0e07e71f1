//! Runs each test body on both backends with libtest-mimic, so a missing
//! PostgreSQL shows up as ignored tests (or failures in CI), never as passes.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::app::TestApp;
use crate::database::{
    Backend, TestDatabase, postgres_available, postgres_required, redis_available, redis_url,
};

pub type TestFuture = Pin<Box<dyn Future<Output = ()>>>;

/// One test body, run on each backend.
#[derive(Clone, Copy)]
pub struct Test {
    pub name: &'static str,
    pub body: fn(Ctx) -> TestFuture,
    /// Needs the Redis at `LATCHKEY_TEST_REDIS_URL`.
    pub redis: bool,
    /// Only meaningful on PostgreSQL (a server the test stops and starts).
    pub postgres_only: bool,
    /// Needs the Django test project's venv (`tests/django/setup.sh`).
    pub django: bool,
    /// Needs Node and the test providers' npm packages (`tests/oidc/`,
    /// [`crate::oidc::setup`]).
    pub node: bool,
}

/// What a test body gets: its backend, and a way to start servers on
/// databases of its own.
pub struct Ctx {
    pub backend: Backend,
    databases: Vec<TestDatabase>,
}

impl Ctx {
    /// A new, empty database URL for this test (dropped after it).
    pub fn new_database(&mut self) -> String {
        self.keep(TestDatabase::create(self.backend))
    }

    /// A new database with every migration applied (a copy of the run's
    /// migrated template), dropped after the test.
    pub fn migrated_database(&mut self) -> String {
        self.keep(TestDatabase::migrated(self.backend))
    }

    fn keep(&mut self, db: TestDatabase) -> String {
        let url = db.url.clone();
        self.databases.push(db);
        url
    }

    /// A server on a fresh database with the test defaults.
    pub async fn spawn(&mut self) -> TestApp {
        self.spawn_with(&[]).await
    }

    /// A server on a fresh database, with settings overridden. The database
    /// is already migrated (the server's own run of the migrations at start
    /// then finds none pending).
    pub async fn spawn_with(&mut self, overrides: &[(&str, &str)]) -> TestApp {
        let url = self.migrated_database();
        TestApp::spawn(self.backend, &url, overrides).await
    }

    /// Another server on an existing database (several instances).
    pub async fn spawn_on(&mut self, url: &str, overrides: &[(&str, &str)]) -> TestApp {
        TestApp::spawn(self.backend, url, overrides).await
    }
}

/// Registers the bodies of a module, as `pub fn tests()`:
///
/// - `tests![a, b]`: on both backends;
/// - `tests![redis: a, b]`: needs Redis, as `redis_tests()`;
/// - `tests![postgres_only: a, b]`: PostgreSQL only, as `postgres_tests()`;
/// - `tests![django: a, b]`: needs the Django venv, as `django_tests()`;
/// - `tests![node: a, b]`: needs Node and the test providers
///   (`tests/oidc/`), as `node_tests()`;
/// - `tests![django + node: a, b]`: needs both (a Django import, then a
///   sign-in through the test OpenID Provider), as `django_node_tests()`.
#[macro_export]
macro_rules! tests {
    (@list $function:ident, redis: $redis:expr, postgres_only: $postgres_only:expr, django: $django:expr, node: $node:expr; $($name:ident),*) => {
        pub fn $function() -> Vec<$crate::Test> {
            vec![$($crate::Test {
                name: concat!(module_path!(), "::", stringify!($name)),
                body: |ctx| Box::pin($name(ctx)),
                redis: $redis,
                postgres_only: $postgres_only,
                django: $django,
                node: $node,
            }),*]
        }
    };
    (redis: $($name:ident),* $(,)?) => {
        $crate::tests!(@list redis_tests, redis: true, postgres_only: false, django: false, node: false; $($name),*);
    };
    (postgres_only: $($name:ident),* $(,)?) => {
        $crate::tests!(@list postgres_tests, redis: false, postgres_only: true, django: false, node: false; $($name),*);
    };
    (django: $($name:ident),* $(,)?) => {
        $crate::tests!(@list django_tests, redis: false, postgres_only: false, django: true, node: false; $($name),*);
    };
    (node: $($name:ident),* $(,)?) => {
        $crate::tests!(@list node_tests, redis: false, postgres_only: false, django: false, node: true; $($name),*);
    };
    (django + node: $($name:ident),* $(,)?) => {
        $crate::tests!(@list django_node_tests, redis: false, postgres_only: false, django: true, node: true; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::tests!(@list tests, redis: false, postgres_only: false, django: false, node: false; $($name),*);
    };
}

/// Whether the arguments select a test that `needs` (so it is set up).
fn selected(args: &Arguments, tests: &[Test], needs: fn(&Test) -> bool) -> bool {
    !args.list
        && tests.iter().filter(|t| needs(t)).any(|test| {
            ["sqlite", "postgres"].iter().any(|backend| {
                let name = format!("{backend}::{}", short_name(test));
                !args.is_filtered_out(&Trial::test(name, || Ok(())))
            })
        })
}

/// The test's name without its crate (`module::body`).
fn short_name(test: &Test) -> &'static str {
    test.name
        .split_once("::")
        .map_or(test.name, |(_, rest)| rest)
}

fn run_body(backend: Backend, test: Test) -> Result<(), Failed> {
    let ctx = Ctx {
        backend,
        databases: Vec::new(),
    };
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(futures_util::FutureExt::catch_unwind(
        std::panic::AssertUnwindSafe((test.body)(ctx)),
    ));
    // Passed or failed, the test's servers stop before its thread moves on.
    system.block_on(crate::app::stop_all_servers());
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    Ok(())
}

/// The number of trials run at once when `--test-threads` is not given:
/// `RUST_TEST_THREADS` when set, else [`TEST_THREADS`]. libtest-mimic's own
/// default is the number of cores, but a trial mostly waits (on HTTP, the
/// databases, child processes, the clock), so two cores keep more busy.
fn default_test_threads() -> usize {
    std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(TEST_THREADS)
}

/// See [`default_test_threads`]; each trial's servers open at most a few
/// PostgreSQL connections (`DATABASE_POOL_SIZE` 4 in the test settings, the
/// change feed's listener, the email sender's), well inside PostgreSQL's
/// default `max_connections` (100) at this many trials at once.
pub const TEST_THREADS: usize = 8;

/// The test binary's `main`.
pub fn main(tests: Vec<Test>) -> std::process::ExitCode {
    // Before libpq's first TLS connection: OpenSSL initialised without its
    // exit-time cleanup, which freed what threads still running at exit
    // were using (the abort after the last test: `double free or
    // corruption`; `cargo run --example exit_with_live_tls -- --old`).
    latchkey_persistence::init_tls();
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(default_test_threads());
    }
    let postgres = postgres_available();
    let required = postgres_required();
    if let Err(reason) = &postgres {
        eprintln!(
            "\n*** PostgreSQL is not reachable ({reason}).\n*** {}\n",
            if required {
                "CI/LATCHKEY_REQUIRE_POSTGRES is set: every PostgreSQL test will FAIL."
            } else {
                "The PostgreSQL half of the suite was NOT run: its tests are listed as ignored. Set LATCHKEY_TEST_POSTGRES_URL to run it."
            }
        );
    }
    let redis = redis_available();
    if let Err(reason) = &redis {
        eprintln!(
            "\n*** Redis is not reachable at {} ({reason}).\n*** {}\n",
            redis_url(),
            if required {
                "CI/LATCHKEY_REQUIRE_POSTGRES is set: every Redis test will FAIL."
            } else {
                "The Redis tests were NOT run: they are listed as ignored."
            }
        );
    }
    // The venv is made (tests/django/setup.sh) only when a Django test is
    // about to run, so other filtered runs never wait for pip.
    let django = if selected(&args, &tests, |t| t.django) {
        crate::django::setup().map(|_| ())
    } else {
        Ok(())
    };
    if let Err(reason) = &django {
        eprintln!(
            "\n*** The Django tests cannot run: {reason}.\n*** {}\n",
            if required {
                "CI/LATCHKEY_REQUIRE_POSTGRES is set: every Django test will FAIL."
            } else {
                "They are listed as ignored."
            }
        );
    }
    // Node and the providers' npm packages, likewise only when a test
    // that starts a provider is about to run.
    let node = if selected(&args, &tests, |t| t.node) {
        crate::oidc::setup()
    } else {
        Ok(())
    };
    if let Err(reason) = &node {
        eprintln!(
            "\n*** The test providers (tests/oidc/, Node) cannot run: {reason}.\n*** {}\n",
            if required {
                "CI/LATCHKEY_REQUIRE_POSTGRES is set: every test that needs them will FAIL."
            } else {
                "The tests that need them are listed as ignored."
            }
        );
    }
    let mut trials = Vec::new();
    for test in tests {
        let short = short_name(&test);
        let missing = [
            (
                test.redis,
                redis
                    .as_ref()
                    .err()
                    .map(|r| format!("Redis unreachable: {r}")),
            ),
            (
                test.django,
                django
                    .as_ref()
                    .err()
                    .map(|r| format!("Django venv missing: {r}")),
            ),
            (
                test.node,
                node.as_ref()
                    .err()
                    .map(|r| format!("Node or the test providers missing: {r}")),
            ),
        ]
        .into_iter()
        .filter_map(|(needed, reason)| reason.filter(|_| needed))
        .reduce(|a, b| format!("{a}; {b}"));
        if let Some(reason) = missing {
            for backend in ["sqlite", "postgres"] {
                let reason = reason.clone();
                let trial = Trial::test(format!("{backend}::{short}"), move || {
                    Err(reason.clone().into())
                });
                trials.push(if required {
                    trial
                } else {
                    trial.with_ignored_flag(true)
                });
            }
            continue;
        }
        if !test.postgres_only {
            trials.push(Trial::test(format!("sqlite::{short}"), move || {
                run_body(Backend::Sqlite, test)
            }));
        }
        let trial = match &postgres {
            Ok(()) => Trial::test(format!("postgres::{short}"), move || {
                run_body(Backend::Postgres, test)
            }),
            Err(reason) if required => {
                let reason = reason.clone();
                Trial::test(format!("postgres::{short}"), move || {
                    Err(format!("PostgreSQL is required (CI) but unreachable: {reason}").into())
                })
            }
            Err(reason) => {
                let reason = reason.clone();
                Trial::test(format!("postgres::{short}"), move || {
                    Err(format!("PostgreSQL unreachable: {reason}").into())
                })
                .with_ignored_flag(true)
            }
        };
        trials.push(trial);
    }
    let conclusion = libtest_mimic::run(&args, trials);
    crate::database::drop_templates();
    if postgres.is_err() && !required {
        eprintln!(
            "\n*** Reminder: the PostgreSQL half of the suite was NOT run (PostgreSQL unreachable).\n"
        );
    }
    conclusion.exit_code()
}
