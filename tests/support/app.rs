//! A running server and a client for it.

use std::collections::HashMap;

use actix_web::dev::ServerHandle;
use latchkey_server::{Application, Settings};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::database::Backend;
use crate::user::TestUser;
use crate::{PASSWORD, TEST_SECRET};

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The request that got it (`PATCH /list/3/`), for failure messages.
    pub request: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` line of one cookie.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value a `Set-Cookie` line gives a cookie.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name)
            .and_then(|line| line.split(';').next().map(str::to_owned))
            .and_then(|pair| pair.split_once('=').map(|(_, v)| v.to_owned()))
    }

    pub fn access(&self) -> String {
        self.body["token"]["access"]
            .as_str()
            .expect("access token in body")
            .to_owned()
    }

    pub fn refresh(&self) -> String {
        self.body["token"]["refresh"]
            .as_str()
            .expect("refresh token in body")
            .to_owned()
    }

    #[track_caller]
    pub fn assert(&self, status: u16, body: Value) -> &Self {
        assert_eq!(
            (self.status, &self.body),
            (status, &body),
            "{}: full response: {}",
            self.request,
            self.text
        );
        self
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{}: body: {}", self.request, self.text);
        self
    }

    /// A 401 with `body` and the `WWW-Authenticate` challenge every 401
    /// carries.
    #[track_caller]
    pub fn assert_unauthorized(&self, body: Value) -> &Self {
        self.assert(401, body);
        assert_eq!(
            self.header("www-authenticate"),
            Some(WWW_AUTHENTICATE),
            "{}",
            self.request
        );
        self
    }

    /// The `token` of a sliding login or a sliding refresh.
    pub fn sliding(&self) -> String {
        self.body["token"]
            .as_str()
            .expect("a sliding token in body")
            .to_owned()
    }
}

/// The challenge of every 401.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

/// The paths of the API, in one place.
pub mod paths {
    pub const REGISTER: &str = "/register/";
    /// `POST` logs in, `GET` is the current user, `DELETE` logs out.
    pub const AUTH: &str = "/auth/";
    pub const REFRESH: &str = "/auth/refresh/";
    pub const VERIFY: &str = "/auth/verify/";
    pub const SLIDING: &str = "/auth/sliding/";
    pub const SLIDING_REFRESH: &str = "/auth/sliding/refresh/";
    /// `GET` lists the caller's sessions, `DELETE` logs out everywhere.
    pub const SESSIONS: &str = "/auth/sessions/";
    pub const PASSWORD: &str = "/auth/password/";
    pub const LIST: &str = "/list/";

    /// One user of the viewset.
    pub fn user(id: i64) -> String {
        format!("/list/{id}/")
    }

    /// One session of the caller's.
    pub fn session(id: &str) -> String {
        format!("/auth/sessions/{id}/")
    }
}

/// A base URL and a client: what a request needs, cheap to clone (so a
/// `TestUser` can hold one).
#[derive(Debug, Clone)]
pub struct Http {
    pub address: String,
    pub client: reqwest::Client,
}

impl Http {
    pub async fn request(&self, method: &str, path: &str, req: Req) -> Response {
        let request = format!("{method} {path}");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut builder = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(body) = &req.json {
            builder = builder.json(body);
        }
        if let Some((content_type, body)) = req.raw {
            builder = builder.header("content-type", content_type).body(body);
        }
        if let Some(token) = &req.bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if !req.cookies.is_empty() {
            let cookie = req
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            builder = builder.header("cookie", HeaderValue::from_str(&cookie).unwrap());
        }
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Response {
            status,
            headers,
            body,
            text,
            request,
        }
    }
}

thread_local! {
    /// The servers this test thread started, with the tasks that run them.
    static RUNNING: std::cell::RefCell<Vec<(ServerHandle, actix_web::rt::task::JoinHandle<std::io::Result<()>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Stops every server this thread started and waits until each has: its
/// workers gone, its email sender told to stop. Run at the end of each
/// test, inside its actix system, so no server of a finished test keeps
/// threads and database connections alive up to the exit of the process
/// (where they raced the libraries' exit-time cleanup).
pub async fn stop_all_servers() {
    let running = RUNNING.with_borrow_mut(std::mem::take);
    for (handle, served) in running {
        handle.stop(false).await;
        let _ = served.await;
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub port: u16,
    pub database_url: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    handle: ServerHandle,
    _data_dir: tempfile::TempDir,
}

/// What a request sends besides method and path.
#[derive(Debug, Default, Clone)]
pub struct Req {
    pub json: Option<Value>,
    pub raw: Option<(String, Vec<u8>)>,
    pub bearer: Option<String>,
    pub cookies: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn json(body: Value) -> Self {
        Req {
            json: Some(body),
            ..Req::default()
        }
    }

    pub fn bearer(token: &str) -> Self {
        Req {
            bearer: Some(token.to_owned()),
            ..Req::default()
        }
    }

    pub fn with_json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }

    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    pub fn with_cookie(mut self, name: &str, value: &str) -> Self {
        self.cookies.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.raw = Some((content_type.to_owned(), body.into()));
        self
    }
}

/// A dropped server is told to stop at once (its workers then end without
/// waiting for idle keep-alive connections); [`stop_all_servers`] waits
/// for it at the end of the test.
impl Drop for TestApp {
    fn drop(&mut self) {
        // Sending the command is synchronous; the returned future only
        // waits for the outcome.
        drop(self.handle.stop(false));
    }
}

impl TestApp {
    pub fn test_settings(
        database_url: &str,
        data_dir: &str,
        overrides: &[(&str, &str)],
    ) -> Settings {
        let mut vars: HashMap<String, String> = [
            ("BIND", "127.0.0.1:0"),
            ("SECRET_KEY", TEST_SECRET),
            ("BCRYPT_COST", "4"),
            ("WORKERS", "2"),
            ("DATABASE_POOL_SIZE", "4"),
            ("THROTTLE_AUTH_PER_IP", "0"),
            ("THROTTLE_LOGIN_FAILURES", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.insert("DATABASE_URL".into(), database_url.to_owned());
        vars.insert("LATCHKEY_DATA_DIR".into(), data_dir.to_owned());
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Settings::from_lookup(&move |name| vars.get(name).cloned()).expect("test settings")
    }

    pub async fn spawn(
        backend: Backend,
        database_url: &str,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let settings =
            Self::test_settings(database_url, data_dir.path().to_str().unwrap(), overrides);
        let app = Application::build(settings.clone()).expect("server builds");
        let port = app.port();
        let handle = app.handle();
        let served = actix_web::rt::spawn(app.run_until_stopped());
        RUNNING.with_borrow_mut(|running| running.push((handle.clone(), served)));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // The server closes a keep-alive connection after 5 idle
            // seconds; a request that reuses one at that instant fails
            // (IncompleteMessage). Idle connections are dropped first.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        TestApp {
            backend,
            address: format!("http://127.0.0.1:{port}"),
            port,
            database_url: database_url.to_owned(),
            settings,
            client,
            handle,
            _data_dir: data_dir,
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// The base URL and client, for a [`TestUser`] to hold.
    pub fn http(&self) -> Http {
        Http {
            address: self.address.clone(),
            client: self.client.clone(),
        }
    }

    pub async fn request(&self, method: &str, path: &str, req: Req) -> Response {
        self.http().request(method, path, req).await
    }

    pub async fn get(&self, path: &str, req: Req) -> Response {
        self.request("GET", path, req).await
    }

    pub async fn post(&self, path: &str, req: Req) -> Response {
        self.request("POST", path, req).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.post(path, Req::json(body)).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            paths::REGISTER,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers with the default password and returns the response.
    pub async fn registered(&self, email: &str) -> Response {
        let response = self.register(email, PASSWORD).await;
        assert_eq!(response.status, 201, "register {email}: {}", response.text);
        response
    }

    /// [`TestApp::registered`] from a client behind a trusted proxy that
    /// forwards `client_ip` (the server must trust 127.0.0.1).
    pub async fn registered_from(&self, email: &str, client_ip: &str) -> Response {
        let response = self
            .post(
                paths::REGISTER,
                Req::json(json!({"email": email, "password": PASSWORD}))
                    .with_header("X-Forwarded-For", client_ip),
            )
            .await;
        assert_eq!(response.status, 201, "register {email}: {}", response.text);
        response
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(paths::AUTH, json!({ "email": email, "password": password }))
            .await
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get(paths::AUTH, Req::bearer(token)).await
    }

    pub async fn refresh_token(&self, refresh: &str) -> Response {
        self.post_json(paths::REFRESH, json!({ "refresh": refresh }))
            .await
    }

    /// Registers a user, sets their flags in storage (as an operator would)
    /// and logs in: staff and superusers for the viewset tests.
    pub async fn user_with_flags(
        &self,
        email: &str,
        staff: bool,
        superuser: bool,
    ) -> (i64, String) {
        let user = self.flagged(email, staff, superuser).await;
        (user.id, user.access)
    }

    /// Registers `email` with [`PASSWORD`]: the user and the session that
    /// registering starts.
    pub async fn user(&self, email: &str) -> TestUser {
        TestUser::of(self, &self.registered(email).await)
    }

    /// Another session of a registered user: a login with [`PASSWORD`].
    pub async fn logged_in(&self, email: &str) -> TestUser {
        let login = self.login(email, PASSWORD).await;
        assert_eq!(login.status, 200, "login {email}: {}", login.text);
        TestUser::of(self, &login)
    }

    /// A staff user (not a superuser), logged in after the flag was set.
    pub async fn staff(&self, email: &str) -> TestUser {
        self.flagged(email, true, false).await
    }

    /// A superuser (and staff), logged in after the flags were set.
    pub async fn superuser(&self, email: &str) -> TestUser {
        self.flagged(email, true, true).await
    }

    /// Registers a user, sets their flags in storage (as an operator would)
    /// and logs in.
    pub async fn flagged(&self, email: &str, staff: bool, superuser: bool) -> TestUser {
        let response = self.registered(email).await;
        let id = response.body["user"]["id"].as_i64().unwrap();
        crate::binary::set_flags(&self.database_url, id, staff, superuser);
        self.logged_in(email).await
    }

    /// `admin` sets user `id` inactive through the viewset (asserting the
    /// 200).
    pub async fn deactivate(&self, admin: &TestUser, id: i64) -> Response {
        let response = admin.patch(id, json!({"is_active": false})).await;
        response.assert_status(200);
        assert_eq!(response.body["id"], id, "{}", response.text);
        assert_eq!(response.body["is_active"], false, "{}", response.text);
        response
    }

    /// `POST /auth/verify/ {"token": ..}`.
    pub async fn verify(&self, token: &str) -> Response {
        self.post_json(paths::VERIFY, json!({ "token": token }))
            .await
    }

    /// `DELETE /auth/ {"refresh": ..}`: logout by the refresh token.
    pub async fn logout(&self, refresh: &str) -> Response {
        self.logout_with(Req::json(json!({ "refresh": refresh })))
            .await
    }

    /// `DELETE /auth/` with whatever `req` sends (a bearer, cookies).
    pub async fn logout_with(&self, req: Req) -> Response {
        self.request("DELETE", paths::AUTH, req).await
    }

    /// `GET /auth/sessions/` with a bearer token.
    pub async fn sessions(&self, token: &str) -> Response {
        self.get(paths::SESSIONS, Req::bearer(token)).await
    }

    /// `DELETE /auth/sessions/{id}/` with a bearer token.
    pub async fn end_session(&self, token: &str, id: &str) -> Response {
        self.request("DELETE", &paths::session(id), Req::bearer(token))
            .await
    }

    /// `DELETE /auth/sessions/` with a bearer token: logout everywhere.
    pub async fn logout_everywhere(&self, token: &str) -> Response {
        self.request("DELETE", paths::SESSIONS, Req::bearer(token))
            .await
    }

    /// `POST /auth/password/` with a bearer token.
    pub async fn change_password(&self, token: &str, old: &str, new: &str) -> Response {
        self.post(
            paths::PASSWORD,
            Req::bearer(token).with_json(json!({"old_password": old, "new_password": new})),
        )
        .await
    }

    /// `POST /auth/sliding/`: a sliding token for these credentials.
    pub async fn sliding(&self, email: &str, password: &str) -> Response {
        self.post_json(
            paths::SLIDING,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// A sliding token for `email` with [`PASSWORD`] (asserting the 200).
    pub async fn sliding_token(&self, email: &str) -> String {
        let obtained = self.sliding(email, PASSWORD).await;
        obtained.assert_status(200);
        obtained.sliding()
    }

    /// `POST /auth/sliding/refresh/ {"token": ..}`.
    pub async fn sliding_refresh(&self, token: &str) -> Response {
        self.post_json(paths::SLIDING_REFRESH, json!({ "token": token }))
            .await
    }
}
