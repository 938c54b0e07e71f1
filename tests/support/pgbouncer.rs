//! Debian's PgBouncer in front of the test PostgreSQL, on a free loopback
//! port, in the pool mode a test asks for (`.ci/run` installs it).
//!
//! One server connection per database: latchkey's pool uses named prepared
//! statements (diesel's statement cache), which PgBouncer 1.18 in
//! transaction mode cannot carry from one server connection to another.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

impl PgBouncer {
    /// PgBouncer in `pool_mode` in front of `upstream_url`'s server; panics
    /// (naming the remedy) when it is not installed.
    pub fn start(upstream_url: &str, pool_mode: &str) -> PgBouncer {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install pgbouncer (.ci/run's services stage does)"
        );
        let rest = upstream_url.split_once("://").unwrap().1;
        let authority = rest.split('/').next().unwrap();
        let (user, host_port) = authority
            .rsplit_once('@')
            .unwrap_or(("postgres", authority));
        let user = user.split(':').next().unwrap();
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        let dir = tempfile::Builder::new()
            .prefix("latchkey-pgbouncer-")
            .tempdir_in("/tmp")
            .unwrap();
        let listen_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(path("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            path("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 * = host={host} port={port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {listen_port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = {pool_mode}\n\
                 default_pool_size = 1\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {log}\n\
                 pidfile = {pid}\n",
                users = path("users.txt"),
                log = path("pgbouncer.log"),
                pid = path("pgbouncer.pid"),
            ),
        )
        .unwrap();
        // PgBouncer refuses to run as root.
        let mut command = if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", BINARY]);
            command
        } else {
            Command::new(BINARY)
        };
        let child = command
            .arg(path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts");
        let bouncer = PgBouncer {
            port: listen_port,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// `url` (a database of the upstream server) through PgBouncer.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority.rsplit_once('@').map(|(user, _)| user);
        format!(
            "{scheme}://{}127.0.0.1:{}/{path}",
            user.map(|u| format!("{u}@")).unwrap_or_default(),
            self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // The pid PgBouncer wrote (under runuser, the child is not it).
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
