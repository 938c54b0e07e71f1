//! A real SMTP server for the email tests: `tests/smtp/capture.py`
//! (aiosmtpd) in a process of its own, writing each message it accepts as
//! a JSON file into a folder the tests read back. It can refuse on demand
//! (`tempfail`/`permfail` marker files) and be stopped and started again
//! on the same port, for the retry and durability tests.
//!
//! The Python venv with aiosmtpd is `LATCHKEY_SMTP_VENV` (default
//! `/tmp/latchkey-smtp-venv`), created with pip from PyPI when missing
//! (`.ci/run` creates it too).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The venv's `python`, with aiosmtpd installed (once per test run).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = PathBuf::from(
                std::env::var("LATCHKEY_SMTP_VENV")
                    .unwrap_or_else(|_| "/tmp/latchkey-smtp-venv".into()),
            );
            let python = venv.join("bin").join("python");
            let ready = |python: &Path| {
                Command::new(python)
                    .args(["-c", "import aiosmtpd"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !ready(&python) {
                let status = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .expect("python3 runs");
                assert!(
                    status.success(),
                    "python3 -m venv {} failed",
                    venv.display()
                );
                let status = Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", "aiosmtpd"])
                    .status()
                    .expect("pip runs");
                assert!(status.success(), "pip install aiosmtpd failed");
                assert!(ready(&python), "aiosmtpd is not importable after install");
            }
            python
        })
        .clone()
}

/// A free TCP port on 127.0.0.1 (nothing listens on it when returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("smtp")
        .join("capture.py")
}

/// The capture server: a port, a folder, and (while running) its process.
pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// Started on a free port.
    pub fn start() -> SmtpServer {
        let mut server = SmtpServer::reserved();
        server.resume();
        server
    }

    /// A port and a folder, not listening yet ([`SmtpServer::resume`]
    /// starts it): latchkey finds SMTP down.
    pub fn reserved() -> SmtpServer {
        SmtpServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    /// `SMTP_URL` for latchkey.
    pub fn url(&self) -> String {
        format!("smtp+insecure://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (again) on the same port and folder, and waits until it
    /// accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the SMTP server runs already");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(python())
            .arg(script())
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the SMTP capture server starts");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the SMTP server did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (the folder and port stay).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Refuse the next `times` messages with a 451 (`None`: until
    /// [`SmtpServer::clear_refusals`]).
    pub fn tempfail(&self, times: Option<u32>) {
        std::fs::write(
            self.dir.path().join("tempfail"),
            times.map(|n| n.to_string()).unwrap_or_default(),
        )
        .unwrap();
    }

    /// Refuse with a 550 (permanent) until cleared.
    pub fn permfail(&self) {
        std::fs::write(self.dir.path().join("permfail"), "").unwrap();
    }

    pub fn clear_refusals(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("tempfail"));
        let _ = std::fs::remove_file(self.dir.path().join("permfail"));
    }

    /// Every DATA attempt so far: `recipient answer` lines.
    pub fn attempts(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("attempts.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The messages accepted so far, in order: `{"from", "to", "subject",
    /// "text", "html", "rcpt_tos", "content_type"}`.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The raw message files (`.eml`), in order.
    pub fn raw_messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    /// Waits until at least `count` messages arrived (panics after
    /// `within`), and returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                started.elapsed() < within,
                "{} message(s) after {within:?}, expected {count}; attempts: {:?}",
                messages.len(),
                self.attempts()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits `quiet` and checks that no more than `count` messages came.
    pub async fn assert_count_stays(&self, count: usize, quiet: Duration) {
        actix_web::rt::time::sleep(quiet).await;
        assert_eq!(
            self.messages().len(),
            count,
            "messages: {:?}",
            self.messages()
        );
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first link of a message's text part.
pub fn link(message: &Value) -> String {
    let text = message["text"].as_str().expect("a text part");
    let start = text.find("http").expect("a link in the text part");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// A query parameter of a link (after `?`, also inside a `#fragment`).
pub fn param(link: &str, name: &str) -> String {
    let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {link}"))
        .to_owned()
}
