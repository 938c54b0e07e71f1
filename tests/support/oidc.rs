//! The providers the social-login tests sign in through, each a Node process
//! of its own started like the SMTP sink (`smtp.rs`):
//!
//! - [`OidcProvider`]: a real OpenID Provider, npm `oidc-provider`
//!   (`tests/oidc/provider.mjs`), with the clients, accounts and signing keys
//!   a test gives it, key rotation, Apple's client-secret JWT checked with
//!   `jose`, and an https mode;
//! - [`GitHub`]: a GitHub imitation on Node's `http` (`tests/oidc/github.mjs`):
//!   the OAuth web flow, `/user`, `/user/emails` and the token check.
//!
//! Both have a control port (modes `normal`, `silent`, `down`, the log of
//! the requests they got) and pages a test drives over HTTP:
//! [`OidcProvider::log_in`] and [`GitHub::log_in`] take the authorization URL
//! latchkey redirects to and return where the provider sends the browser
//! back ([`Landing`]). `tests/oidc/README.md` lists every route and config
//! field.
//!
//! The npm packages (`tests/oidc/package-lock.json`) are installed into
//! `tests/oidc/node_modules` with `npm ci` the first time a test needs them
//! (nothing is fetched when the pinned versions are there already). The
//! runner calls [`setup`] before any test registered with `tests![node: …]`:
//! without Node those tests are listed as ignored, or fail under `CI`.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// How long a provider may take to print that it listens: about half a
/// second alone, 6 s when 14 start at once on two cores, and more when the
/// machine is busy with builds (a start took over 30 s at a load of 16).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one request to a provider (a page, a control call) may take: a
/// bound for a hung request, not a latency expected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects and pages a login may go through before it is called stuck.
const MAX_LOGIN_STEPS: usize = 12;

/// `tests/oidc/`.
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

/// Node found and the pinned packages installed, once per test run; why
/// not, else. `npm ci` runs only when a pinned package is missing or at
/// another version, its output going to stderr.
pub fn setup() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let version = Command::new("node")
                .arg("--version")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("node does not run ({e}); install Node.js and npm"))?;
            if !version.status.success() {
                return Err(format!("node --version failed ({})", version.status));
            }
            let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
            if !node_is_recent_enough(&version) {
                return Err(format!(
                    "node {version} is older than {MINIMUM_NODE:?}, which oidc-provider 9 needs (crypto.hash)"
                ));
            }
            if pinned_packages_installed() {
                return Ok(());
            }
            let dir = project();
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(std::io::stderr())
                .stderr(std::io::stderr())
                .status()
                .map_err(|e| format!("npm does not run ({e}); install npm"))?;
            if !status.success() {
                return Err(format!("npm ci in {} failed ({status})", dir.display()));
            }
            if !pinned_packages_installed() {
                return Err(format!(
                    "npm ci in {} left the pinned packages missing",
                    dir.display()
                ));
            }
            Ok(())
        })
        .clone()
}

/// The oldest Node that runs oidc-provider 9 (it asks for 22, and runs on
/// 20 from 20.12, where `crypto.hash` came).
const MINIMUM_NODE: (u32, u32) = (20, 12);

/// Whether `node --version` (`v20.20.2`) is at least [`MINIMUM_NODE`].
fn node_is_recent_enough(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= MINIMUM_NODE
}

/// Whether every dependency `tests/oidc/package.json` pins is in
/// `node_modules` at that version.
fn pinned_packages_installed() -> bool {
    let read = |path: PathBuf| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let Some(manifest) = read(project().join("package.json")) else {
        return false;
    };
    let Some(dependencies) = manifest["dependencies"].as_object() else {
        return false;
    };
    dependencies.iter().all(|(name, version)| {
        read(
            project()
                .join("node_modules")
                .join(name)
                .join("package.json"),
        )
        .is_some_and(|installed| installed["version"] == *version)
    })
}

/// What the main port does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answers.
    #[default]
    Normal,
    /// Accepts connections (TLS included) and never answers; requests held
    /// are cut when the mode changes.
    Silent,
    /// Not listening (connections refused); the process and its state
    /// (sessions, codes, tokens, keys) stay, and `Normal` listens again on
    /// the same port.
    Down,
}

/// The cert and key an https provider serves (and the CA that signed
/// them, for clients): see [`TestCa`].
#[derive(Clone, Debug, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Not read by the provider: what a client must trust.
    pub ca: PathBuf,
}

/// A CA made for one test with the `openssl` command, and a server
/// certificate it signed for `127.0.0.1` and `localhost`. A client trusts
/// it by [`TestCa::ca_file`]: latchkey (native-tls, OpenSSL) when started
/// with `SSL_CERT_FILE` set to it (read once per process; the system's
/// certificate directories still count), reqwest here by
/// [`TestCa::certificate`].
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn make() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(
            path("server.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .expect("the openssl command runs (Debian: apt-get install openssl)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=latchkey test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        TestCa { dir }
    }

    /// The CA's certificate (PEM): `SSL_CERT_FILE` for latchkey.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA for a reqwest client (`add_root_certificate`).
    pub fn certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(&std::fs::read(self.ca_file()).unwrap()).unwrap()
    }

    /// For a provider's `tls`.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server.key"),
            ca: self.ca_file(),
        }
    }
}

/// One Node server: its process, ports and a client for it.
pub struct NodeServer {
    script: &'static str,
    /// Where it listens: `http(s)://127.0.0.1:PORT` (the OP's issuer).
    pub origin: String,
    pub port: u16,
    control_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    ca: Option<PathBuf>,
}

impl NodeServer {
    fn start(script: &'static str, config: &Value) -> NodeServer {
        setup().unwrap_or_else(|reason| panic!("the test providers cannot run: {reason}"));
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new("node")
            .arg(project().join(script))
            .arg(&config_path)
            .current_dir(project())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("node {script} starts: {e}"));
        // The first stdout line says where it listens; the thread drains
        // the rest so the child never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            for _ in lines {}
        });
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {script} did not say it listens ({other:?}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("node {script} printed {line:?}: {e}"));
        NodeServer {
            script,
            origin: ready["origin"].as_str().unwrap().to_owned(),
            port: u16::try_from(ready["port"].as_u64().unwrap()).unwrap(),
            control_port: u16::try_from(ready["control_port"].as_u64().unwrap()).unwrap(),
            dir,
            child: Some(child),
            ca: config["tls"]["ca"].as_str().map(PathBuf::from),
        }
    }

    /// A client for the main port: no redirects followed, trusting the
    /// test CA in https mode, a cookie jar when `cookies` (a browser).
    pub fn client(&self, cookies: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(cookies)
            .timeout(REQUEST_TIMEOUT)
            .user_agent("latchkey-tests");
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).unwrap();
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    /// `origin` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}/__control/{path}", self.control_port);
        let mut request = reqwest::Client::new()
            .request(method.clone(), &url)
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Sets the main port's mode; returns when it is in effect.
    pub async fn set_mode(&self, mode: Mode) {
        self.control(reqwest::Method::POST, "mode", Some(json!({ "mode": mode })))
            .await;
    }

    /// Every request the main port got, oldest first: `{"method", "path",
    /// "query", "authorization" (the scheme only), "accept", "user_agent",
    /// "content_type", "body" (a form or JSON body, parsed)}` and what the
    /// server noted (`"held"` in silent mode, `"refusal"`,
    /// `"apple_client_secret"`, `"client_authentication"`).
    pub async fn requests(&self) -> Vec<Value> {
        let log = self.control(reqwest::Method::GET, "requests", None).await;
        log.as_array().unwrap().clone()
    }

    /// The requests to one path.
    pub async fn requests_to(&self, path: &str) -> Vec<Value> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }

    /// Empties the request log.
    pub async fn clear_requests(&self) {
        self.control(reqwest::Method::DELETE, "requests", None)
            .await;
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the process (its port is free again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.script, self.origin)
    }
}

/// Where a provider sends the browser back when its pages are done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Landing {
    /// A redirect to the client's `redirect_uri` (query response mode):
    /// `?code=…&state=…&iss=…`, or `?error=…`.
    Redirect(String),
    /// A `form_post` page: the form the browser posts to `action` (the
    /// `redirect_uri`), fields `code`, `state`, `iss` (or `error`).
    FormPost {
        action: String,
        fields: Vec<(String, String)>,
    },
    /// Anything else: the page where the flow stopped (an error, a refused
    /// request).
    Stopped {
        url: String,
        status: u16,
        body: String,
    },
}

impl Landing {
    /// A parameter of the response: a query parameter of the redirect, or a
    /// field of the form_post form.
    pub fn param(&self, name: &str) -> Option<String> {
        match self {
            Landing::Redirect(url) => reqwest::Url::parse(url)
                .ok()?
                .query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned()),
            Landing::FormPost { fields, .. } => fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone()),
            Landing::Stopped { .. } => None,
        }
    }

    /// The `code`; panics with the landing when there is none.
    pub fn code(&self) -> String {
        self.param("code")
            .unwrap_or_else(|| panic!("no code in {self:?}"))
    }

    /// Where the browser goes: the redirect's URL or the form's action.
    pub fn target(&self) -> &str {
        match self {
            Landing::Redirect(url) => url,
            Landing::FormPost { action, .. } => action,
            Landing::Stopped { url, .. } => url,
        }
    }
}

/// A login's last response, read into a [`Landing`] unless it is a redirect
/// within the provider.
async fn landing_of(response: reqwest::Response, origin: &str) -> Result<Landing, String> {
    let url = response.url().clone();
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("a {status} from {url} without Location"));
        let target = url.join(location).unwrap().to_string();
        return if target.starts_with(&format!("{origin}/")) {
            Err(target)
        } else {
            Ok(Landing::Redirect(target))
        };
    }
    let body = response.text().await.unwrap();
    Ok(form_post_of(&body).unwrap_or(Landing::Stopped {
        url: url.to_string(),
        status,
        body,
    }))
}

/// The form of oidc-provider's form_post page (`<form method="post"
/// action="…">` and hidden `<input name="…" value="…"/>`s).
fn form_post_of(html: &str) -> Option<Landing> {
    if !html.contains("<title>Submitting Callback</title>") {
        return None;
    }
    let action = attribute(html.split("<form").nth(1)?, "action")?;
    let fields = html
        .split("<input")
        .skip(1)
        .filter_map(|input| Some((attribute(input, "name")?, attribute(input, "value")?)))
        .collect();
    Some(Landing::FormPost { action, fields })
}

/// The value of `name="…"` in the start of a tag, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let tag = &tag[..tag.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A PKCE pair (RFC 7636, S256).
#[derive(Clone, Debug)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        use base64::Engine;
        use sha2::Digest;
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// A random value for `state` or `nonce`.
pub fn random_value() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// --- the OpenID Provider -------------------------------------------------

/// A client registered at the OP.
#[derive(Clone, Debug, Serialize)]
pub struct OpClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    /// The response modes the OP allows this client (`query`, `form_post`,
    /// …); `None`: any. Another one is refused with 400 at `/auth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_modes: Option<Vec<String>>,
    /// Apple's way: the client secret is an ES256 JWT checked with jose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apple_client_secret: Option<AppleSecretCheck>,
    /// Any other oidc-provider client metadata
    /// (`id_token_signed_response_alg`, …).
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
}

impl OpClient {
    /// A confidential web client authenticating with HTTP Basic.
    pub fn web(client_id: &str, client_secret: &str, redirect_uri: &str) -> OpClient {
        OpClient {
            client_id: client_id.to_owned(),
            client_secret: Some(client_secret.to_owned()),
            redirect_uris: vec![redirect_uri.to_owned()],
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            response_modes: None,
            apple_client_secret: None,
            metadata: Map::new(),
        }
    }

    /// A public client (a native app: no secret, PKCE).
    pub fn native(client_id: &str, redirect_uri: &str) -> OpClient {
        OpClient {
            client_secret: None,
            token_endpoint_auth_method: "none".to_owned(),
            ..OpClient::web(client_id, "", redirect_uri)
        }
    }

    /// A client as Apple treats one: form_post responses only, the client
    /// secret an ES256 JWT of [`AppleKey`] sent with `client_secret_post`.
    pub fn apple(client_id: &str, redirect_uri: &str, key: &AppleKey) -> OpClient {
        OpClient {
            client_secret: None,
            token_endpoint_auth_method: "client_secret_post".to_owned(),
            response_modes: Some(vec!["form_post".to_owned()]),
            apple_client_secret: Some(AppleSecretCheck {
                team_id: key.team_id.clone(),
                key_id: key.key_id.clone(),
                public_key: key.public_pem.clone(),
            }),
            ..OpClient::web(client_id, "", redirect_uri)
        }
    }
}

/// What the OP checks an Apple client secret against.
#[derive(Clone, Debug, Serialize)]
pub struct AppleSecretCheck {
    pub team_id: String,
    pub key_id: String,
    /// SPKI PEM of the ES256 key.
    pub public_key: String,
}

/// An Apple developer key (`tests/oidc/keys/apple-es256.pem`): what
/// `SOCIAL_APPLE_TEAM_ID`, `_KEY_ID` and `_PRIVATE_KEY` hold.
#[derive(Clone)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    pub private_pem: String,
    pub public_pem: String,
}

impl AppleKey {
    pub fn fixture() -> AppleKey {
        let read = |name: &str| std::fs::read_to_string(project().join("keys").join(name)).unwrap();
        AppleKey {
            team_id: "TEAM123456".to_owned(),
            key_id: "KEY1234567".to_owned(),
            private_pem: read("apple-es256.pem"),
            public_pem: read("apple-es256.pub.pem"),
        }
    }

    /// A client secret as Apple requires one: ES256, `kid` the key id,
    /// `iss` the team, `sub` the client id, `aud` Apple, living `lifetime`.
    pub fn client_secret(&self, client_id: &str, lifetime: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(
            &header,
            &json!({
                "iss": self.team_id,
                "iat": now,
                "exp": now + i64::try_from(lifetime.as_secs()).unwrap(),
                "aud": "https://appleid.apple.com",
                "sub": client_id,
            }),
            &jsonwebtoken::EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppleKey({}/{})", self.team_id, self.key_id)
    }
}

/// An account at the OP.
#[derive(Clone, Debug, Serialize)]
pub struct OpAccount {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// As the OP asserts it: `true`, `false`, `"true"` (Apple's string), or
    /// null for no claim at all.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub email_verified: Value,
    /// More claims, in the id token and at userinfo (as the scopes allow:
    /// `name`, … with `profile`).
    pub claims: Map<String, Value>,
    /// Claims only the id token carries (overriding the others).
    pub id_token_claims: Map<String, Value>,
    /// Claims only userinfo answers (a different `sub`, …).
    pub userinfo_claims: Map<String, Value>,
}

impl OpAccount {
    /// An account whose email is verified (`email_verified: true`).
    pub fn new(sub: &str, email: &str) -> OpAccount {
        OpAccount {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: Value::Bool(true),
            claims: Map::new(),
            id_token_claims: Map::new(),
            userinfo_claims: Map::new(),
        }
    }

    /// `email_verified` as given (`json!(false)`, `json!("true")`,
    /// `Value::Null` for none).
    pub fn email_verified(mut self, value: Value) -> OpAccount {
        self.email_verified = value;
        self
    }
}

/// The OP's configuration (`tests/oidc/README.md`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpConfig {
    /// A fixed port (default: a free one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub clients: Vec<OpClient>,
    pub accounts: Vec<OpAccount>,
    /// Signing keys, the first signs: `{"kid", "alg"}` (generated),
    /// `{"kid", "alg", "pem"}` (PKCS#8) or a private JWK. None: one RS256
    /// key generated.
    pub keys: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    pub mode: Mode,
    /// The id token without the email claims (only userinfo has them).
    pub claims_only_at_userinfo: bool,
    /// Discovery fields to set, or to remove (null).
    pub discovery: Map<String, Value>,
    /// oidc-provider's default (PKCE required of public clients) unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkce_required: Option<bool>,
}

/// The OpenID Provider (`tests/oidc/provider.mjs`).
#[derive(Debug)]
pub struct OidcProvider {
    server: NodeServer,
    /// Its issuer: `http(s)://127.0.0.1:PORT` (`SOCIAL_<N>_ISSUER`).
    pub issuer: String,
}

impl Deref for OidcProvider {
    type Target = NodeServer;
    fn deref(&self) -> &NodeServer {
        &self.server
    }
}

impl std::ops::DerefMut for OidcProvider {
    fn deref_mut(&mut self) -> &mut NodeServer {
        &mut self.server
    }
}

impl OidcProvider {
    /// Started on a free port; returns once it listens (answers, unless the
    /// config's mode says otherwise).
    pub fn start(config: &OpConfig) -> OidcProvider {
        let server = NodeServer::start("provider.mjs", &serde_json::to_value(config).unwrap());
        OidcProvider {
            issuer: server.origin.clone(),
            server,
        }
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// The published keys (the JWKS at `jwks_uri`).
    pub async fn jwks(&self) -> Value {
        self.get_json("/jwks").await
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.client(false).get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// The authorization URL a client would send the browser to.
    pub fn authorization_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut url = reqwest::Url::parse(&self.url("/auth")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile")
            .extend_pairs(extra);
        url.to_string()
    }

    /// Signs in at the OP's pages as `sub` and consents, in a fresh browser
    /// (cookie jar): `GET authorization_url`, then at each
    /// `/interaction/{uid}` page `POST login=<sub>` (the login prompt, then
    /// the consent prompt), following the OP's redirects until it sends the
    /// browser elsewhere.
    pub async fn log_in(&self, authorization_url: &str, sub: &str) -> Landing {
        self.drive(authorization_url, Some(sub)).await
    }

    /// Cancels at the OP's login page (`POST /interaction/{uid}/abort`): the
    /// landing carries `error=access_denied`.
    pub async fn cancel(&self, authorization_url: &str) -> Landing {
        self.drive(authorization_url, None).await
    }

    async fn drive(&self, authorization_url: &str, sub: Option<&str>) -> Landing {
        let browser = self.client(true);
        let mut response = browser.get(authorization_url).send().await.unwrap();
        for _ in 0..MAX_LOGIN_STEPS {
            let next = match landing_of(response, &self.origin).await {
                Ok(landing) => return landing,
                Err(next) => next,
            };
            let path = reqwest::Url::parse(&next).unwrap().path().to_owned();
            response = if path.starts_with("/interaction/") {
                match sub {
                    Some(sub) => browser.post(&next).form(&[("login", sub)]).send(),
                    None => browser.post(format!("{next}/abort")).send(),
                }
                .await
                .unwrap()
            } else {
                browser.get(&next).send().await.unwrap()
            };
        }
        panic!("the login at {authorization_url} took more than {MAX_LOGIN_STEPS} steps");
    }

    /// A token request (`POST /token`) with a form and, for
    /// `client_secret_basic`, HTTP Basic: `(status, body)`.
    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut request = self.client(false).post(self.url("/token")).form(form);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Exchanges a code as `client` authenticates (Basic, or `client_id`
    /// alone for a public client; an Apple client's secret is the caller's
    /// to make: use [`OidcProvider::token_request`]).
    pub async fn exchange_code(
        &self,
        client: &OpClient,
        code: &str,
        verifier: Option<&str>,
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uris[0]),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        match client.token_endpoint_auth_method.as_str() {
            "client_secret_basic" => {
                let secret = client.client_secret.as_deref().unwrap_or_default();
                self.token_request(&form, Some((&client.client_id, secret)))
                    .await
            }
            "client_secret_post" => {
                let secret = client.client_secret.as_deref().unwrap_or_default();
                form.push(("client_id", &client.client_id));
                form.push(("client_secret", secret));
                self.token_request(&form, None).await
            }
            _ => {
                form.push(("client_id", &client.client_id));
                self.token_request(&form, None).await
            }
        }
    }

    /// An id token for `client` as the OP issues it after `sub` signs in
    /// (with PKCE and `nonce`): what a native app's SDK hands over.
    pub async fn id_token(&self, client: &OpClient, sub: &str, nonce: &str) -> String {
        let pkce = Pkce::new();
        let state = random_value();
        let url = self.authorization_url(
            &client.client_id,
            &client.redirect_uris[0],
            &[
                ("state", &state),
                ("nonce", nonce),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let landing = self.log_in(&url, sub).await;
        let (status, tokens) = self
            .exchange_code(client, &landing.code(), Some(&pkce.verifier))
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens["id_token"].as_str().unwrap().to_owned()
    }

    /// The claims of an id token whose signature verifies against the OP's
    /// JWKS (jsonwebtoken), issued by it for `audience`; panics otherwise.
    pub async fn verify(&self, id_token: &str, audience: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(self.jwks().await).unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        let kid = header.kid.expect("a kid in the id token's header");
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .unwrap_or_else(|e| panic!("the id token does not verify: {e}"))
            .claims
    }

    /// A new signing key of the current key's algorithm, in front: it signs
    /// from now on, the old keys stay published. Returns its `kid`.
    pub async fn rotate_keys(&self) -> String {
        let answer = self
            .control(reqwest::Method::POST, "rotate-keys", Some(json!({})))
            .await;
        answer["signing_kid"].as_str().unwrap().to_owned()
    }

    /// Exactly these keys from now on (the first signs; the old ones are no
    /// longer published). Returns the signing `kid`.
    pub async fn replace_keys(&self, keys: Vec<Value>) -> String {
        let answer = self
            .control(
                reqwest::Method::POST,
                "rotate-keys",
                Some(json!({ "keys": keys })),
            )
            .await;
        answer["signing_kid"].as_str().unwrap().to_owned()
    }

    /// The `kid` that signs now.
    pub async fn signing_kid(&self) -> String {
        let answer = self.control(reqwest::Method::GET, "keys", None).await;
        answer["signing_kid"].as_str().unwrap().to_owned()
    }

    /// Any claims signed with the OP's signing key (jose): tokens with a
    /// wrong `aud`, an `iat` ahead, … `header` fields override the
    /// protected header (`{"kid": "unknown"}`).
    pub async fn sign(&self, claims: Value, header: Value) -> String {
        let answer = self
            .control(
                reqwest::Method::POST,
                "sign",
                Some(json!({ "claims": claims, "header": header })),
            )
            .await;
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Replaces the accounts (an email changed, a new account, …).
    pub async fn set_accounts(&self, accounts: &[OpAccount]) {
        self.control(
            reqwest::Method::PUT,
            "accounts",
            Some(json!({ "accounts": accounts })),
        )
        .await;
    }
}

// --- the GitHub imitation ------------------------------------------------

/// An OAuth app registered at the imitation.
#[derive(Clone, Debug, Serialize)]
pub struct GitHubApp {
    pub client_id: String,
    pub client_secret: String,
    /// Callback URLs: a `redirect_uri` must equal one or lie below it.
    pub redirect_uris: Vec<String>,
}

/// A GitHub user.
#[derive(Clone, Debug, Serialize)]
pub struct GitHubUser {
    pub login: String,
    pub id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The public email of `/user` (null when unset, as is usual).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub emails: Vec<GitHubEmail>,
}

impl GitHubUser {
    /// A user whose only address is primary and verified.
    pub fn new(login: &str, id: u64, email: &str) -> GitHubUser {
        GitHubUser {
            login: login.to_owned(),
            id,
            name: None,
            email: None,
            emails: vec![GitHubEmail {
                email: email.to_owned(),
                primary: true,
                verified: true,
            }],
        }
    }
}

/// One entry of `/user/emails`.
#[derive(Clone, Debug, Serialize)]
pub struct GitHubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
}

/// The imitation's configuration (`tests/oidc/README.md`).
#[derive(Clone, Debug, Serialize)]
pub struct GitHubConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub apps: Vec<GitHubApp>,
    pub users: Vec<GitHubUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    pub mode: Mode,
    /// Refuse an authorization request without `code_challenge`.
    pub pkce_required: bool,
    /// As GitHub: 403 for an API request without a User-Agent.
    pub require_user_agent: bool,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        GitHubConfig {
            port: None,
            apps: Vec::new(),
            users: Vec::new(),
            tls: None,
            mode: Mode::Normal,
            pkce_required: false,
            require_user_agent: true,
        }
    }
}

/// The GitHub imitation (`tests/oidc/github.mjs`): the web flow and the
/// API on one origin (`SOCIAL_GITHUB_URL` and `SOCIAL_GITHUB_API_URL`).
#[derive(Debug)]
pub struct GitHub {
    server: NodeServer,
}

impl Deref for GitHub {
    type Target = NodeServer;
    fn deref(&self) -> &NodeServer {
        &self.server
    }
}

impl std::ops::DerefMut for GitHub {
    fn deref_mut(&mut self) -> &mut NodeServer {
        &mut self.server
    }
}

impl GitHub {
    pub fn start(config: &GitHubConfig) -> GitHub {
        GitHub {
            server: NodeServer::start("github.mjs", &serde_json::to_value(config).unwrap()),
        }
    }

    /// Signs in as `login` (or the numeric id) and authorizes the app:
    /// `GET authorization_url` (the login page), then `POST
    /// /login/oauth/authorize` with the URL's parameters and `login`.
    pub async fn log_in(&self, authorization_url: &str, login: &str) -> Landing {
        self.drive(authorization_url, &[("login", login)]).await
    }

    /// Refuses at the login page (`deny=1`): `error=access_denied`.
    pub async fn cancel(&self, authorization_url: &str) -> Landing {
        self.drive(authorization_url, &[("deny", "1")]).await
    }

    async fn drive(&self, authorization_url: &str, answer: &[(&str, &str)]) -> Landing {
        let browser = self.client(true);
        let page = browser.get(authorization_url).send().await.unwrap();
        if page.status() != 200 {
            return landing_of(page, &self.origin)
                .await
                .unwrap_or_else(|next| panic!("GitHub redirected within itself to {next}"));
        }
        let url = reqwest::Url::parse(authorization_url).unwrap();
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.extend(
            answer
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let response = browser
            .post(self.url("/login/oauth/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        landing_of(response, &self.origin)
            .await
            .unwrap_or_else(|next| panic!("GitHub redirected within itself to {next}"))
    }

    /// An access token as if `client_id`'s app had obtained it from
    /// `login` (scopes `read:user user:email` unless given).
    pub async fn mint_token(
        &self,
        client_id: &str,
        login: &str,
        scopes: Option<&[&str]>,
    ) -> String {
        let mut body = json!({ "client_id": client_id, "login": login });
        if let Some(scopes) = scopes {
            body["scopes"] = json!(scopes);
        }
        let answer = self
            .control(reqwest::Method::POST, "token", Some(body))
            .await;
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// Replaces the users.
    pub async fn set_users(&self, users: &[GitHubUser]) {
        self.control(
            reqwest::Method::PUT,
            "users",
            Some(json!({ "users": users })),
        )
        .await;
    }
}
