//! A user with a live session, making requests as themself.

use serde_json::{Value, json};

use crate::app::{Http, Req, Response, TestApp, paths};
use crate::payload;

/// One user and the tokens of one of their sessions (as register, login or
/// a password change returned them), with the app's base URL and client, so
/// that `user.get("/list/")` or `user.patch(id, body)` makes the request as
/// them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub access: String,
    pub refresh: String,
    /// The `csrftoken` cookie, when the response set one.
    pub csrf: Option<String>,
    /// The user object of the response (`Null` when it had none, as after a
    /// password change).
    pub object: Value,
    http: Http,
}

impl TestUser {
    /// The user and session of a register, login or password-change
    /// response (asserting a 200 or 201).
    #[track_caller]
    pub fn of(app: &TestApp, response: &Response) -> TestUser {
        assert!(
            response.status == 200 || response.status == 201,
            "{}: {}",
            response.request,
            response.text
        );
        let access = response.access();
        let refresh = response.refresh();
        let id = payload(&access)["user_id"]
            .as_i64()
            .expect("user_id in the access token");
        let object = response.body["user"].clone();
        TestUser {
            id,
            email: object["email"].as_str().unwrap_or_default().to_owned(),
            access,
            refresh,
            csrf: response.cookie_value("csrftoken"),
            object,
            http: app.http(),
        }
    }

    /// The same user with the tokens of a refresh response (`access` and
    /// `refresh` at the top of the body), or of a password change (under
    /// `token`), in another session or the same one.
    #[track_caller]
    pub fn with_tokens_of(&self, response: &Response) -> TestUser {
        response.assert_status(200);
        let tokens = if response.body["token"].is_object() {
            &response.body["token"]
        } else {
            &response.body
        };
        TestUser {
            access: tokens["access"]
                .as_str()
                .expect("an access token")
                .to_owned(),
            refresh: tokens["refresh"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
            csrf: None,
            ..self.clone()
        }
    }

    /// The `sid` claim of the session's access token.
    pub fn sid(&self) -> Value {
        payload(&self.access)["sid"].clone()
    }

    /// The session's id, as `GET /auth/sessions/` lists it.
    pub fn session_id(&self) -> String {
        self.sid().as_str().expect("sid is a string").to_owned()
    }

    /// The `csrftoken` cookie, which the response must have set.
    #[track_caller]
    pub fn csrf(&self) -> &str {
        self.csrf.as_deref().expect("a csrftoken cookie")
    }

    /// The access token as a bearer header.
    pub fn bearer(&self) -> Req {
        Req::bearer(&self.access)
    }

    /// The access and `csrftoken` cookies, without the `X-CSRFToken`
    /// header (for the CSRF refusals).
    #[track_caller]
    pub fn cookies(&self) -> Req {
        Req::default()
            .with_cookie("access", &self.access)
            .with_cookie("csrftoken", self.csrf())
    }

    /// The access and `csrftoken` cookies with the matching `X-CSRFToken`
    /// header: how a browser authenticates a write.
    #[track_caller]
    pub fn cookies_with_csrf(&self) -> Req {
        self.cookies().with_header("X-CSRFToken", self.csrf())
    }

    /// Any request, sent as `req` says (add [`TestUser::bearer`] or
    /// [`TestUser::cookies`] to send it as this user).
    pub async fn send(&self, method: &str, path: &str, req: Req) -> Response {
        self.http.request(method, path, req).await
    }

    /// `GET path` with the bearer token.
    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, self.bearer()).await
    }

    /// `POST path` with a JSON body and the bearer token.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send("POST", path, self.bearer().with_json(body)).await
    }

    /// `GET /auth/`: the current user.
    pub async fn me(&self) -> Response {
        self.get(paths::AUTH).await
    }

    /// `GET /list/{id}/`.
    pub async fn retrieve(&self, id: i64) -> Response {
        self.get(&paths::user(id)).await
    }

    /// `POST /list/`: create a user.
    pub async fn create(&self, body: Value) -> Response {
        self.post(paths::LIST, body).await
    }

    /// `PATCH /list/{id}/`.
    pub async fn patch(&self, id: i64, body: Value) -> Response {
        self.send("PATCH", &paths::user(id), self.bearer().with_json(body))
            .await
    }

    /// `PUT /list/{id}/`.
    pub async fn put(&self, id: i64, body: Value) -> Response {
        self.send("PUT", &paths::user(id), self.bearer().with_json(body))
            .await
    }

    /// `DELETE /list/{id}/`.
    pub async fn delete(&self, id: i64) -> Response {
        self.send("DELETE", &paths::user(id), self.bearer()).await
    }

    /// `GET /auth/sessions/`.
    pub async fn sessions(&self) -> Response {
        self.get(paths::SESSIONS).await
    }

    /// `DELETE /auth/sessions/{id}/`.
    pub async fn end_session(&self, id: &str) -> Response {
        self.send("DELETE", &paths::session(id), self.bearer())
            .await
    }

    /// `DELETE /auth/sessions/`: logout everywhere.
    pub async fn logout_everywhere(&self) -> Response {
        self.send("DELETE", paths::SESSIONS, self.bearer()).await
    }

    /// `DELETE /auth/` with the bearer access token alone.
    pub async fn logout(&self) -> Response {
        self.send("DELETE", paths::AUTH, self.bearer()).await
    }

    /// `POST /auth/password/` with the bearer token.
    pub async fn change_password(&self, old: &str, new: &str) -> Response {
        self.post(
            paths::PASSWORD,
            json!({"old_password": old, "new_password": new}),
        )
        .await
    }
}
