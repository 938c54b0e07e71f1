//! Sign-in with a provider from a client's side, for the `social_*` tests:
//! the routes, the contract's error bodies, servers configured against the
//! test providers ([`crate::oidc`]), a browser flow driven step by step
//! (authorize, the provider's pages, the callback, the exchange), native
//! logins, and what storage holds afterwards (read, never written, except
//! to age a ceremony past its lifetime).
//!
//! latchkey runs with `PUBLIC_URL` [`PUBLIC_URL`] (a name nothing resolves):
//! the `redirect_uri` it sends is `{PUBLIC_URL}/auth/social/{name}/callback/`,
//! registered at the providers before they start, and the landing a
//! provider sends the browser to is read, never followed: its path and
//! query (or its form) go to the test server's own address. The browser
//! comes back to [`NEXT`], under [`APP`], the one origin in
//! `SOCIAL_REDIRECT_URLS`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{Req, Response, TestApp};
use crate::oidc::{GitHub, GitHubApp, Landing, OidcProvider, OpAccount, OpClient, OpConfig};
use crate::{Ctx, payload};

/// latchkey's `PUBLIC_URL` in these tests.
pub const PUBLIC_URL: &str = "http://latchkey.test";
/// The browser app's origin: `SOCIAL_REDIRECT_URLS`.
pub const APP: &str = "http://app.test";
/// Where the browser comes back to after a provider.
pub const NEXT: &str = "http://app.test/signed-in";
/// A prefix entry of `SOCIAL_REDIRECT_URLS` (a string prefix).
pub const PREFIX: &str = "https://spa.test/app/";
/// `SOCIAL_TIMEOUT` in these tests (seconds).
pub const TIMEOUT_SECONDS: u64 = 2;
/// The secret of every web client at the OP.
pub const WEB_SECRET: &str = "web-secret";
/// A native app's client id at the OP (listed in `SOCIAL_OIDC_CLIENT_IDS`).
pub const NATIVE_CLIENT: &str = "ios-app";
/// A native app's client id at the OP that latchkey does not list.
pub const STRANGER_CLIENT: &str = "someone-elses-app";
/// The GitHub app latchkey is, and another app at the same GitHub.
pub const GITHUB_CLIENT: &str = "latchkey-app";
pub const GITHUB_SECRET: &str = "latchkey-app-secret";
pub const OTHER_GITHUB_CLIENT: &str = "other-app";
/// Apple's client id (a Services ID) at the OP playing Apple.
pub const APPLE_CLIENT: &str = "com.example.web";

/// The routes of sign-in with a provider.
pub mod paths {
    pub const PROVIDERS: &str = "/auth/social/providers/";
    pub const EXCHANGE: &str = "/auth/social/exchange/";
    /// `GET`: the caller's linked providers.
    pub const LINKED: &str = "/auth/social/";

    pub fn authorize(name: &str) -> String {
        format!("/auth/social/{name}/authorize/")
    }

    pub fn callback(name: &str) -> String {
        format!("/auth/social/{name}/callback/")
    }

    pub fn token(name: &str) -> String {
        format!("/auth/social/{name}/token/")
    }

    /// `DELETE`: unlink.
    pub fn unlink(name: &str) -> String {
        format!("/auth/social/{name}/")
    }
}

/// The `redirect_uri` latchkey sends for provider `name`.
pub fn callback_uri(name: &str) -> String {
    format!("{PUBLIC_URL}{}", paths::callback(name))
}

// --- the contract's bodies -------------------------------------------------

pub fn provider_token_invalid() -> Value {
    json!({"detail": "Invalid provider token.", "code": "provider_token_invalid"})
}

pub fn account_exists() -> Value {
    json!({
        "detail": "An account with this email already exists. Log in and link this provider.",
        "code": "account_exists",
    })
}

pub fn signup_closed() -> Value {
    json!({"detail": "Sign-up is closed.", "code": "signup_closed"})
}

pub fn invalid_social_code() -> Value {
    json!({"social_code": ["Invalid value"]})
}

pub fn no_active_account() -> Value {
    json!({"detail": "No active account found with the given credentials", "code": "no_active_account"})
}

pub fn email_not_verified() -> Value {
    json!({"detail": "E-mail is not verified.", "code": "email_not_verified"})
}

/// Asserts a `{"detail": "…", "code": code}` body whose text the contract
/// leaves open (`email_missing`, `last_login_method`).
#[track_caller]
pub fn assert_coded(response: &Response, status: u16, code: &str) {
    assert_eq!(
        response.status, status,
        "{}: {}",
        response.request, response.text
    );
    let detail = response.body["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.is_empty(),
        "{}: a detail: {}",
        response.request,
        response.text
    );
    assert_eq!(
        response.body,
        json!({"detail": detail, "code": code}),
        "{}",
        response.request
    );
}

/// Asserts a `{"detail": "…"}` error body with `status` (the contract
/// names the status, not the text).
#[track_caller]
pub fn assert_detail(response: &Response, status: u16) {
    assert_eq!(
        response.status, status,
        "{}: {}",
        response.request, response.text
    );
    assert!(
        response.body["detail"].is_string(),
        "{}: a JSON detail: {}",
        response.request,
        response.text
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}: {:?}",
        response.request,
        response.headers
    );
}

// --- the providers -----------------------------------------------------------

/// The web client of provider `name` at the OP (`{name}-web`, HTTP Basic).
pub fn web_client(name: &str) -> OpClient {
    OpClient::web(&format!("{name}-web"), WEB_SECRET, &callback_uri(name))
}

/// A native app's client at the OP (public, PKCE): `client_id` is the
/// audience of its id tokens.
pub fn native_client(client_id: &str) -> OpClient {
    OpClient::native(client_id, "http://127.0.0.1:9/native/callback")
}

/// The fixture RSA key the OP signs with (`tests/fixtures/keys/rs256.pem`,
/// kid `op-key`), so tests know its public half.
pub fn fixture_key(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join("keys")
            .join(name),
    )
    .unwrap()
}

/// The kid of the OP's fixture key.
pub const OP_KID: &str = "op-key";

/// An OP with the web clients of `oidc` and `partner` (two providers of
/// latchkey at one OP), the native apps, and `accounts`; signing with the
/// fixture RSA key.
pub fn op_config(accounts: Vec<OpAccount>) -> OpConfig {
    OpConfig {
        clients: vec![
            web_client("oidc"),
            web_client("partner"),
            native_client(NATIVE_CLIENT),
            native_client(STRANGER_CLIENT),
        ],
        accounts,
        keys: vec![json!({"kid": OP_KID, "alg": "RS256", "pem": fixture_key("rs256.pem")})],
        ..OpConfig::default()
    }
}

/// [`op_config`] started.
pub fn start_op(accounts: Vec<OpAccount>) -> OidcProvider {
    OidcProvider::start(&op_config(accounts))
}

/// The usual accounts: `alice` (verified), `bob` (`email_verified` false),
/// `carol` (Apple's string `"true"`), `dave` (no `email_verified`), `erin`
/// (no email at all).
pub fn accounts() -> Vec<OpAccount> {
    let mut erin = OpAccount::new("erin", "unused@example.com").email_verified(Value::Null);
    erin.email = None;
    vec![
        OpAccount::new("alice", "alice@example.com"),
        OpAccount::new("bob", "bob@example.com").email_verified(json!(false)),
        OpAccount::new("carol", "carol@example.com").email_verified(json!("true")),
        OpAccount::new("dave", "dave@example.com").email_verified(Value::Null),
        erin,
    ]
}

/// The GitHub app latchkey is, and another one (its tokens must log no
/// one in).
pub fn github_apps() -> Vec<GitHubApp> {
    vec![
        GitHubApp {
            client_id: GITHUB_CLIENT.to_owned(),
            client_secret: GITHUB_SECRET.to_owned(),
            redirect_uris: vec![callback_uri("github")],
        },
        GitHubApp {
            client_id: OTHER_GITHUB_CLIENT.to_owned(),
            client_secret: "other-secret".to_owned(),
            redirect_uris: vec!["http://127.0.0.1:9/other/callback".to_owned()],
        },
    ]
}

// --- latchkey's settings -----------------------------------------------------

/// latchkey's settings for the social tests, built up provider by provider.
#[derive(Clone, Debug, Default)]
pub struct Social {
    providers: Vec<String>,
    vars: Vec<(String, String)>,
}

impl Social {
    /// `PUBLIC_URL`, `SOCIAL_REDIRECT_URLS` ([`APP`] and [`PREFIX`]) and
    /// `SOCIAL_TIMEOUT`; no provider yet.
    pub fn new() -> Social {
        Social::default()
            .set("PUBLIC_URL", PUBLIC_URL)
            .set("SOCIAL_REDIRECT_URLS", &format!("{APP},{PREFIX}"))
            .set("SOCIAL_TIMEOUT", &TIMEOUT_SECONDS.to_string())
    }

    /// One variable (replacing an earlier value).
    pub fn set(mut self, name: &str, value: &str) -> Social {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Leaves a variable unset.
    pub fn unset(mut self, name: &str) -> Social {
        self.vars.retain(|(k, _)| k != name);
        self
    }

    /// A generic OpenID Connect provider `name` at `op` (its web client,
    /// the native app in `_CLIENT_IDS`).
    pub fn oidc(self, name: &str, op: &OidcProvider) -> Social {
        self.oidc_at(name, &op.issuer)
    }

    /// A generic OpenID Connect provider `name` whose issuer is `issuer`.
    pub fn oidc_at(mut self, name: &str, issuer: &str) -> Social {
        self.providers.push(name.to_owned());
        let var = |field: &str| format!("SOCIAL_{}_{field}", name.to_ascii_uppercase());
        self.set(&var("CLIENT_ID"), &format!("{name}-web"))
            .set(&var("CLIENT_SECRET"), WEB_SECRET)
            .set(&var("CLIENT_IDS"), NATIVE_CLIENT)
            .set(&var("ISSUER"), issuer)
    }

    /// The `github` preset at the imitation.
    pub fn github(mut self, github: &GitHub) -> Social {
        self.providers.push("github".to_owned());
        self.set("SOCIAL_GITHUB_CLIENT_ID", GITHUB_CLIENT)
            .set("SOCIAL_GITHUB_CLIENT_SECRET", GITHUB_SECRET)
            .set("SOCIAL_GITHUB_URL", &github.origin)
            .set("SOCIAL_GITHUB_API_URL", &github.origin)
    }

    /// The `apple` preset with its issuer at `op` and the fixture key.
    pub fn apple(mut self, op: &OidcProvider) -> Social {
        self.providers.push("apple".to_owned());
        let key = crate::oidc::AppleKey::fixture();
        self.set("SOCIAL_APPLE_CLIENT_ID", APPLE_CLIENT)
            .set("SOCIAL_APPLE_ISSUER", &op.issuer)
            .set("SOCIAL_APPLE_TEAM_ID", &key.team_id)
            .set("SOCIAL_APPLE_KEY_ID", &key.key_id)
            .set("SOCIAL_APPLE_PRIVATE_KEY", &key.private_pem)
    }

    /// Every variable, `SOCIAL_PROVIDERS` included.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars = self.vars.clone();
        if !self.providers.is_empty() && !vars.iter().any(|(k, _)| k == "SOCIAL_PROVIDERS") {
            vars.push(("SOCIAL_PROVIDERS".to_owned(), self.providers.join(",")));
        }
        vars
    }

    /// A server on a fresh database of the test's backend.
    pub async fn spawn(&self, ctx: &mut Ctx) -> TestApp {
        let vars = self.vars();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ctx.spawn_with(&pairs).await
    }

    /// Another server on `url` (a second instance).
    pub async fn spawn_on(&self, ctx: &mut Ctx, url: &str) -> TestApp {
        let vars = self.vars();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ctx.spawn_on(url, &pairs).await
    }
}

/// A server with provider `oidc` at `op`.
pub async fn spawn_oidc(ctx: &mut Ctx, op: &OidcProvider) -> TestApp {
    Social::new().oidc("oidc", op).spawn(ctx).await
}

// --- the browser flow ----------------------------------------------------------

/// A flow begun by `GET /auth/social/{name}/authorize/`: the 302, where it
/// sends the browser, and the flow's cookie.
#[derive(Clone, Debug)]
pub struct Flow {
    pub provider: String,
    pub response: Response,
    /// The provider's authorization URL (the 302's `Location`).
    pub location: String,
    /// The flow's cookie: name and value.
    pub cookie: (String, String),
    /// Its whole `Set-Cookie` line.
    pub set_cookie: String,
}

impl Flow {
    /// A query parameter of the authorization URL.
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&self.location, name)
    }

    /// `state`.
    pub fn state(&self) -> String {
        self.param("state")
            .unwrap_or_else(|| panic!("no state in {}", self.location))
    }

    /// The flow's cookie on a request.
    pub fn with_cookie(&self, req: Req) -> Req {
        req.with_cookie(&self.cookie.0, &self.cookie.1)
    }

    /// The authorization URL with `name` set to `value` (or removed when
    /// `None`): what a tampered browser would send the provider.
    pub fn location_with(&self, name: &str, value: Option<&str>) -> String {
        let mut url = reqwest::Url::parse(&self.location).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .into_owned()
            .filter(|(k, _)| k != name)
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (k, v) in &pairs {
                query.append_pair(k, v);
            }
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        url.to_string()
    }
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /auth/social/{name}/authorize/?query…` as `req` says.
pub async fn authorize(app: &TestApp, name: &str, query: &[(&str, &str)], req: Req) -> Response {
    let mut url = reqwest::Url::parse(&format!("http://x{}", paths::authorize(name))).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    app.get(&path, req).await
}

/// The flow cookie a response sets: the one `Set-Cookie` that is not a
/// token or CSRF cookie.
#[track_caller]
pub fn flow_cookie_of(response: &Response) -> (String, String, String) {
    let lines: Vec<String> = response
        .set_cookies()
        .into_iter()
        .filter(|line| {
            !["access=", "refresh=", "csrftoken="]
                .iter()
                .any(|p| line.starts_with(p))
        })
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{}: one flow cookie expected: {:?}",
        response.request,
        response.set_cookies()
    );
    let line = lines[0].clone();
    let pair = line.split(';').next().unwrap();
    let (name, value) = pair.split_once('=').unwrap();
    (name.trim().to_owned(), value.trim().to_owned(), line)
}

/// Begins a flow at `name` that comes back to [`NEXT`] (302 asserted).
pub async fn begin(app: &TestApp, name: &str) -> Flow {
    begin_with(app, name, &[("next", NEXT)], Req::default()).await
}

/// Begins a flow with this query and request (302 asserted).
pub async fn begin_with(app: &TestApp, name: &str, query: &[(&str, &str)], req: Req) -> Flow {
    let response = authorize(app, name, query, req).await;
    response.assert_status(302);
    let location = response
        .header("location")
        .unwrap_or_else(|| panic!("a Location: {:?}", response.headers))
        .to_owned();
    let (cookie_name, value, line) = flow_cookie_of(&response);
    Flow {
        provider: name.to_owned(),
        response,
        location,
        cookie: (cookie_name, value),
        set_cookie: line,
    }
}

/// Sends the landing to latchkey's callback as the browser would (a GET
/// with the query, or the form_post's POST with the form and, as a
/// provider's page posts it, `Origin` the provider's) with `req`'s extras
/// (the flow's cookie, usually).
pub async fn deliver(app: &TestApp, landing: &Landing, req: Req) -> Response {
    match landing {
        Landing::Redirect(url) => {
            let url = reqwest::Url::parse(url).unwrap();
            assert!(
                url.as_str().starts_with(PUBLIC_URL),
                "the provider sent the browser to {url}"
            );
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            app.get(&path, req).await
        }
        Landing::FormPost { action, fields } => {
            let url = reqwest::Url::parse(action).unwrap();
            assert!(
                url.as_str().starts_with(PUBLIC_URL),
                "the provider posts to {url}"
            );
            let body = form_body(fields);
            app.post(
                url.path(),
                req.with_raw("application/x-www-form-urlencoded", body),
            )
            .await
        }
        Landing::Stopped { url, status, body } => {
            panic!("the provider stopped at {url}: {status} {body}")
        }
    }
}

/// `k=v&…`, encoded.
pub fn form_body(fields: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(fields);
    url.query().unwrap_or_default().to_owned()
}

/// [`deliver`] with the flow's cookie.
pub async fn callback(app: &TestApp, flow: &Flow, landing: &Landing) -> Response {
    deliver(app, landing, flow.with_cookie(Req::default())).await
}

/// A landing of the browser back at latchkey's callback for `name`, made
/// up: `?k=v&…` (a state or code a test picks).
pub fn landing_at(name: &str, params: &[(&str, &str)]) -> Landing {
    let mut url = reqwest::Url::parse(&callback_uri(name)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    Landing::Redirect(url.to_string())
}

/// Where a callback sends the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Back {
    /// `#social_code=…`
    Code(String),
    /// `#social_error=…`
    Error(String),
    /// `#social_linked=…`
    Linked(String),
}

/// The callback's 302 to `next` with one fragment parameter (asserted:
/// nothing else in the fragment, no token anywhere in the URL, no token
/// cookie set).
#[track_caller]
pub fn back_to(response: &Response, next: &str) -> Back {
    assert_eq!(
        response.status, 302,
        "{}: a redirect back: {}",
        response.request, response.text
    );
    let location = response.header("location").unwrap_or_default();
    let (target, fragment) = location
        .split_once('#')
        .unwrap_or_else(|| panic!("{}: no fragment in {location:?}", response.request));
    assert_eq!(target, next, "{}: {location}", response.request);
    assert_no_token_in(location);
    for name in ["access", "refresh"] {
        assert_eq!(
            response.set_cookie(name),
            None,
            "{}: a token cookie on the callback",
            response.request
        );
    }
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{fragment}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(pairs.len(), 1, "{}: {location}", response.request);
    let (key, value) = pairs.into_iter().next().unwrap();
    match key.as_str() {
        "social_code" => Back::Code(value),
        "social_error" => Back::Error(value),
        "social_linked" => Back::Linked(value),
        other => panic!("{}: a fragment {other}: {location}", response.request),
    }
}

/// The social code of a callback that succeeded.
#[track_caller]
pub fn code_of(response: &Response) -> String {
    match back_to(response, NEXT) {
        Back::Code(code) => {
            assert!(code.len() >= 16, "a guessable social code: {code:?}");
            code
        }
        other => panic!("{}: {other:?}", response.request),
    }
}

/// The reason of a callback that failed.
#[track_caller]
pub fn error_of(response: &Response) -> String {
    match back_to(response, NEXT) {
        Back::Error(reason) => reason,
        other => panic!(
            "{}: {other:?} where an error was expected",
            response.request
        ),
    }
}

/// Asserts that no JWT appears in a URL.
#[track_caller]
pub fn assert_no_token_in(url: &str) {
    assert!(
        !url.contains("eyJ") && !url.contains("access=") && !url.contains("refresh="),
        "a token in the URL {url}"
    );
}

/// Asserts a callback refused as the contract says for a state that is
/// not a live flow of that provider: 400 JSON, no redirect, no cookie.
#[track_caller]
pub fn assert_bad_state(response: &Response) {
    assert_detail_or_fields(response, 400);
    assert_eq!(
        response.header("location"),
        None,
        "{}: redirected",
        response.request
    );
    for name in ["access", "refresh"] {
        assert_eq!(response.set_cookie(name), None, "{}", response.request);
    }
}

/// A JSON error body (`{"detail"}` or field errors) with `status`.
#[track_caller]
pub fn assert_detail_or_fields(response: &Response, status: u16) {
    assert_eq!(
        response.status, status,
        "{}: {}",
        response.request, response.text
    );
    assert!(
        response.body.is_object() && !response.body.as_object().unwrap().is_empty(),
        "{}: a JSON body: {}",
        response.request,
        response.text
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}: {:?}",
        response.request,
        response.headers
    );
}

/// `POST /auth/social/exchange/ {"social_code"}`.
pub async fn exchange(app: &TestApp, code: &str) -> Response {
    app.post_json(paths::EXCHANGE, json!({"social_code": code}))
        .await
}

/// A flow at `name` through the OP's pages as `sub` to its callback's
/// answer.
pub async fn callback_as(app: &TestApp, op: &OidcProvider, name: &str, sub: &str) -> Response {
    let flow = begin(app, name).await;
    let landing = op.log_in(&flow.location, sub).await;
    callback(app, &flow, &landing).await
}

/// The social code of a browser login as `sub`.
pub async fn social_code_as(app: &TestApp, op: &OidcProvider, name: &str, sub: &str) -> String {
    code_of(&callback_as(app, op, name, sub).await)
}

/// A whole browser login as `sub`: the exchange's response.
pub async fn browser_login(app: &TestApp, op: &OidcProvider, name: &str, sub: &str) -> Response {
    let code = social_code_as(app, op, name, sub).await;
    exchange(app, &code).await
}

/// Asserts the login response (v1's 200: the user, the message, the
/// tokens and their cookies, no-store) of a provider login: `amr`
/// `["fed"]`, `aal` 1; the user's email.
#[track_caller]
pub fn assert_federated_login(response: &Response, email: &str) {
    response.assert_status(200);
    assert_eq!(
        response.body["message"], "login success",
        "{}",
        response.text
    );
    assert_eq!(response.body["user"]["email"], email, "{}", response.text);
    let access = response.access();
    let refresh = response.refresh();
    assert_eq!(response.cookie_value("access"), Some(access.clone()));
    assert_eq!(response.cookie_value("refresh"), Some(refresh.clone()));
    assert!(
        response.set_cookie("csrftoken").is_some(),
        "{:?}",
        response.headers
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(!response.text.contains("password"), "{}", response.text);
    for token in [&access, &refresh] {
        let claims = payload(token);
        assert_eq!(
            (&claims["amr"], &claims["aal"]),
            (&json!(["fed"]), &json!(1)),
            "{claims}"
        );
        assert_eq!(claims["user_id"], response.body["user"]["id"], "{claims}");
    }
}

/// The user id of a login response.
pub fn user_id_of(response: &Response) -> i64 {
    response.body["user"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}: a user: {}", response.request, response.text))
}

// --- native apps -----------------------------------------------------------------

/// `POST /auth/social/{name}/token/` with `body`.
pub async fn native(app: &TestApp, name: &str, body: Value) -> Response {
    app.post_json(&paths::token(name), body).await
}

/// `POST /auth/social/{name}/token/ {"id_token", "nonce"}`.
pub async fn native_id_token(app: &TestApp, name: &str, id_token: &str, nonce: &str) -> Response {
    native(app, name, json!({"id_token": id_token, "nonce": nonce})).await
}

/// An id token of the web client of `name` for `sub`, obtained through the
/// OP's pages (what a native SDK hands over), with `nonce`.
pub async fn id_token_of(op: &OidcProvider, client: &OpClient, sub: &str, nonce: &str) -> String {
    op.id_token(client, sub, nonce).await
}

/// Claims of an id token the OP would issue to client `aud` for `sub`
/// (signed by the OP with [`OidcProvider::sign`]): `iss`, `aud`, `sub`,
/// `iat`, `exp` in 10 minutes, the email, `nonce`.
pub fn claims_for(op: &OidcProvider, aud: &str, sub: &str, email: Option<&str>) -> Value {
    let now = crate::now();
    let mut claims = json!({
        "iss": op.issuer,
        "aud": aud,
        "sub": sub,
        "iat": now,
        "exp": now + 600,
        "nonce": "n-0123456789",
    });
    if let Some(email) = email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    claims
}

/// The nonce [`claims_for`] puts in.
pub const CLAIMS_NONCE: &str = "n-0123456789";

/// A token signed by the OP's key over `claims`, with a fresh `jti` so
/// no two are equal.
pub async fn signed(op: &OidcProvider, mut claims: Value) -> String {
    if claims.get("jti").is_none() {
        claims["jti"] = json!(crate::oidc::random_value());
    }
    op.sign(claims, json!({})).await
}

/// SHA-256 of `text`, in hex.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A JWT with this header and payload and `signature` (base64url parts).
pub fn jwt_parts(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        encode(&serde_json::to_vec(header).unwrap()),
        encode(&serde_json::to_vec(claims).unwrap()),
        encode(signature)
    )
}

// --- storage, read from outside ------------------------------------------------

/// How many users the database holds.
pub fn user_count(app: &TestApp) -> i64 {
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    latchkey_persistence::User::count(&mut conn).unwrap()
}

/// The stored user with `email`, if any.
pub fn stored_user(app: &TestApp, email: &str) -> Option<latchkey_persistence::User> {
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    let email = latchkey_domain::Email::parse(email).unwrap();
    latchkey_persistence::User::find_by_email(&mut conn, &email).unwrap()
}

/// The identity `(provider, subject)`, if linked.
pub fn identity(
    app: &TestApp,
    provider: &str,
    subject: &str,
) -> Option<latchkey_persistence::Identity> {
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    latchkey_persistence::Identity::find(&mut conn, provider, subject).unwrap()
}

/// The user's linked identities.
pub fn identities_of(app: &TestApp, user_id: i64) -> Vec<latchkey_persistence::Identity> {
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    latchkey_persistence::Identity::for_user(&mut conn, user_id).unwrap()
}

/// Sets a user's `email_verified` in storage (as a verification would).
pub fn set_email_verified(app: &TestApp, user_id: i64, verified: bool) {
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    latchkey_persistence::User::update(
        &mut conn,
        user_id,
        &latchkey_persistence::UserChanges {
            email_verified: Some(verified),
            ..latchkey_persistence::UserChanges::default()
        },
    )
    .unwrap();
}

/// Ages every live ceremony of `kind` (`social_code`, `oidc_state`) past
/// its lifetime, as if `age` had passed since it began: how many rows.
pub fn age_ceremonies(app: &TestApp, kind: &str, age: Duration) -> usize {
    use diesel::RunQueryDsl;
    let db = crate::binary::open(&app.database_url);
    let mut conn = db.get().unwrap();
    let at = |seconds: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(seconds))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let age = i64::try_from(age.as_secs()).unwrap();
    diesel::sql_query(format!(
        "UPDATE ceremonies SET created_at = '{}', expires_at = '{}' \
         WHERE kind = '{kind}' AND consumed_at IS NULL",
        at(age),
        at(1)
    ))
    .execute(&mut **conn)
    .unwrap()
}
