//! A TCP proxy on loopback between latchkey and PostgreSQL that can freeze
//! chosen flows: while a flow is frozen nothing is forwarded either way and
//! nothing is closed (no RST, no FIN), as with a flow that a NAT or a
//! firewall forgot, or a partition. Flows are told apart by the
//! `application_name` of their startup packet, so connect without TLS
//! (`sslmode=disable`, see [`TcpProxy::url`]).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub struct TcpProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    flows: Mutex<Vec<Arc<Flow>>>,
    stopping: AtomicBool,
}

struct Flow {
    application_name: Mutex<Option<String>>,
    frozen: Mutex<bool>,
    thawed: Condvar,
    /// Both ends, to shut them down when the proxy goes.
    sockets: Mutex<Vec<TcpStream>>,
}

impl Flow {
    fn wait_while_frozen(&self) {
        let frozen = self.frozen.lock().unwrap();
        drop(self.thawed.wait_while(frozen, |frozen| *frozen).unwrap());
    }

    fn set_frozen(&self, frozen: bool) {
        *self.frozen.lock().unwrap() = frozen;
        self.thawed.notify_all();
    }
}

impl TcpProxy {
    /// A proxy to `upstream` (`host:port`) on a free loopback port.
    pub fn start(upstream: &str) -> TcpProxy {
        let upstream: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(upstream)
            .unwrap()
            .next()
            .unwrap();
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only reaches loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            flows: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopping.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(client) = client {
                    accepting.open(client);
                }
            }
        });
        TcpProxy { port, shared }
    }

    /// A PostgreSQL URL through the proxy to the same database (the
    /// upstream of `url` must be the proxy's).
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority.rsplit_once('@').map(|(user, _)| user);
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        params.retain(|p| !p.starts_with("sslmode=") && !p.starts_with("gssencmode="));
        params.extend(["sslmode=disable", "gssencmode=disable"]);
        format!(
            "{scheme}://{}127.0.0.1:{}/{path}?{}",
            user.map(|u| format!("{u}@")).unwrap_or_default(),
            self.port,
            params.join("&")
        )
    }

    /// How many flows have opened with this `application_name`.
    pub fn flows_named(&self, application_name: &str) -> usize {
        self.named(application_name).len()
    }

    /// Freezes every open flow with this `application_name`; returns how
    /// many. Flows opened later are not frozen.
    pub fn freeze(&self, application_name: &str) -> usize {
        let flows = self.named(application_name);
        for flow in &flows {
            flow.set_frozen(true);
        }
        flows.len()
    }

    /// Forwards again whatever each frozen flow held back, in order.
    pub fn thaw(&self) {
        for flow in self.shared.flows.lock().unwrap().iter() {
            flow.set_frozen(false);
        }
    }

    fn named(&self, application_name: &str) -> Vec<Arc<Flow>> {
        self.shared
            .flows
            .lock()
            .unwrap()
            .iter()
            .filter(|flow| {
                flow.application_name.lock().unwrap().as_deref() == Some(application_name)
            })
            .cloned()
            .collect()
    }
}

impl Shared {
    fn open(&self, client: TcpStream) {
        let Ok(server) = TcpStream::connect(self.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let flow = Arc::new(Flow {
            application_name: Mutex::new(None),
            frozen: Mutex::new(false),
            thawed: Condvar::new(),
            sockets: Mutex::new(vec![
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
            ]),
        });
        self.flows.lock().unwrap().push(Arc::clone(&flow));
        let (client_in, server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let upstream_flow = Arc::clone(&flow);
        std::thread::spawn(move || {
            if forward_startup(&upstream_flow, &client_in, &server_out).is_ok() {
                pump(&upstream_flow, client_in, server_out, true);
            }
        });
        std::thread::spawn(move || pump(&flow, server, client, false));
    }
}

/// Forwards the client's first packets up to its StartupMessage, noting
/// the `application_name` it names.
fn forward_startup(flow: &Flow, mut from: &TcpStream, mut to: &TcpStream) -> std::io::Result<()> {
    loop {
        let mut length = [0u8; 4];
        from.read_exact(&mut length)?;
        let length = u32::from_be_bytes(length) as usize;
        let mut body = vec![0u8; length.saturating_sub(4)];
        from.read_exact(&mut body)?;
        let code = body
            .get(..4)
            .map(|code| u32::from_be_bytes(code.try_into().unwrap()));
        if code == Some(196_608) {
            *flow.application_name.lock().unwrap() =
                startup_parameter(&body[4..], "application_name");
        }
        to.write_all(&(length as u32).to_be_bytes())?;
        to.write_all(&body)?;
        // An SSL or GSS request is answered and followed by the real one.
        if code == Some(196_608) || code == Some(80_877_102) {
            return Ok(());
        }
    }
}

/// The name a `SET application_name = '...'` in these bytes sets.
fn set_application_name(bytes: &[u8]) -> Option<String> {
    const SET: &[u8] = b"SET application_name = '";
    let start = bytes.windows(SET.len()).position(|w| w == SET)? + SET.len();
    let end = bytes[start..].iter().position(|b| *b == b'\'')?;
    Some(String::from_utf8_lossy(&bytes[start..start + end]).into_owned())
}

/// `name`'s value in a StartupMessage's `key\0value\0...\0` list.
fn startup_parameter(mut list: &[u8], name: &str) -> Option<String> {
    while let Some(end) = list.iter().position(|b| *b == 0) {
        if end == 0 {
            return None;
        }
        let key = &list[..end];
        list = &list[end + 1..];
        let value_end = list.iter().position(|b| *b == 0)?;
        if key == name.as_bytes() {
            return Some(String::from_utf8_lossy(&list[..value_end]).into_owned());
        }
        list = &list[value_end + 1..];
    }
    None
}

/// Copies `from` to `to`, holding what it read while the flow is frozen;
/// passes a close on. Upstream, a connection that names itself later
/// with `SET application_name = '...'` is recognised too.
fn pump(flow: &Flow, mut from: TcpStream, mut to: TcpStream, upstream: bool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => 0,
            Ok(read) => read,
        };
        if upstream && let Some(name) = set_application_name(&buffer[..read]) {
            *flow.application_name.lock().unwrap() = Some(name);
        }
        flow.wait_while_frozen();
        if read == 0 || to.write_all(&buffer[..read]).is_err() {
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        for flow in self.shared.flows.lock().unwrap().iter() {
            flow.set_frozen(false);
            for socket in flow.sockets.lock().unwrap().iter() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        // Wakes the accepting thread so it sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
