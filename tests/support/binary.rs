//! The real `latchkey` binary, and direct storage access for arranging
//! tests (never for mocking).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use latchkey_persistence::{Database, DatabaseUrl, PoolOptions, User, UserChanges};

use crate::app::{Req, Response};

/// Builds (once) and returns the debug `latchkey` binary of this workspace.
///
/// Built with the packages and targets `cargo test --workspace` selects
/// (every member, with targets that take dev-dependencies), so cargo
/// resolves the same dependency features and reuses what the test build
/// compiled: only the binary is left to build. `-p latchkey-server --bin
/// latchkey` resolves features for the server alone, and compiled about a
/// hundred dependencies a second time. `.ci/run e2e` builds it the same way.
pub fn latchkey_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "--workspace", "--bins", "--examples"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the latchkey binary failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("debug").join("latchkey")
        })
        .clone()
}

/// Runs the binary with only the given environment (plus PATH), in `dir`.
pub fn run_latchkey(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut command = Command::new(latchkey_binary());
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("latchkey starts");
    if let Some(mut handle) = child.stdin.take()
        && let Some(input) = stdin
    {
        let _ = handle.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("latchkey finishes")
}

pub fn open(database_url: &str) -> Database {
    Database::new(
        &DatabaseUrl::parse(database_url).unwrap(),
        PoolOptions::default(),
    )
    .unwrap()
}

/// [`open`] with room for `connections` at once and a patient pool, for
/// tests that race that many connections.
pub fn open_for_racers(database_url: &str, connections: u32) -> Database {
    Database::new(
        &DatabaseUrl::parse(database_url).unwrap(),
        PoolOptions {
            max_size: connections + 2,
            connection_timeout: std::time::Duration::from_secs(30),
        },
    )
    .unwrap()
}

/// Makes a user staff and/or superuser, as an operator would in the database.
pub fn set_flags(database_url: &str, id: i64, staff: bool, superuser: bool) {
    let db = open(database_url);
    let mut conn = db.get().unwrap();
    User::update(
        &mut conn,
        id,
        &UserChanges {
            is_staff: Some(staff),
            is_superuser: Some(superuser),
            ..UserChanges::default()
        },
    )
    .unwrap();
}

/// `latchkey serve` (the real binary) in the background with only the
/// given environment, its stdout and stderr kept in one file; killed when
/// dropped.
pub struct ServedBinary {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl ServedBinary {
    /// Starts it in `dir` and waits until `/healthz` answers.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> ServedBinary {
        let bind = format!("127.0.0.1:{}", crate::smtp::free_port());
        let log = dir.join("server.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(latchkey_binary());
        command
            .arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND", &bind)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut served = ServedBinary {
            child: command.spawn().expect("latchkey serve starts"),
            base: format!("http://{bind}"),
            log,
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/healthz", served.base)).send().await
                && response.status().is_success()
            {
                break;
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!("the server exited ({status}): {}", served.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not start: {}",
                served.output()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }

    /// Everything it wrote so far, stdout and stderr.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// A request to it, as [`TestApp::request`] makes them.
    pub async fn request(&self, method: &str, path: &str, req: Req) -> Response {
        crate::app::Http {
            address: self.base.clone(),
            client: reqwest::Client::new(),
        }
        .request(method, path, req)
        .await
    }
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
