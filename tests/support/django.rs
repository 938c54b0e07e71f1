//! The Python side of the Django tests: `tests/django/`, a Django project
//! with the seed's `user` app and simplejwt's blacklist app, and its venv
//! (`LATCHKEY_DJANGO_VENV`, default `/tmp/latchkey-django-venv`), made from
//! PyPI by `tests/django/setup.sh` on first use (`.ci/run` runs it too).
//! The script is idempotent and takes a lock beside the venv, so test
//! binaries started in parallel wait for one install.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `tests/django/`.
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("django")
}

fn venv() -> PathBuf {
    std::env::var_os("LATCHKEY_DJANGO_VENV")
        .map_or_else(|| "/tmp/latchkey-django-venv".into(), PathBuf::from)
}

/// Runs `setup.sh` once per process: the venv's `python`, or why there is
/// none. Its output goes to stderr, never into the harness's stdout.
pub fn setup() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = project().join("setup.sh");
            let status = Command::new("bash")
                .arg(&script)
                .env("LATCHKEY_DJANGO_VENV", venv())
                .stdin(Stdio::null())
                .stdout(std::io::stderr())
                .stderr(std::io::stderr())
                .status()
                .map_err(|e| format!("bash {} did not start: {e}", script.display()))?;
            if !status.success() {
                return Err(format!(
                    "bash {} failed ({status}): the Django venv at {} could not be made",
                    script.display(),
                    venv().display()
                ));
            }
            Ok(venv().join("bin").join("python"))
        })
        .clone()
}

/// The venv's `python`; the runner set it up before any Django test ran.
pub fn python() -> PathBuf {
    setup().unwrap_or_else(|reason| panic!("{reason}"))
}
