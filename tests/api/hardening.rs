//! The contract's v2 hardening rules, through real HTTP on both backends:
//! `nbf` and future `iat`, the Origin rule for every unsafe request,
//! `PUBLIC_URL` and forwarded headers, NUL characters, `current_password`,
//! password checks counted by the throttles, `Cache-Control`, bounded
//! `/metrics` labels, the body timeout and SQLite writes under load.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use latchkey_tests::app::Req;
use latchkey_tests::{
    Ctx, PASSWORD, Response, TEST_SECRET, TestApp, forge, now, paths, payload, tests,
};
use serde_json::{Value, json};

tests![
    a_token_not_yet_valid_is_refused_on_every_path,
    nbf_that_is_not_a_number_is_refused,
    nbf_in_the_past_is_accepted_as_an_integer_or_a_float,
    a_future_iat_is_refused_on_every_path_that_reads_a_token,
    a_foreign_origin_is_refused_on_login_and_register,
    a_bearer_request_from_a_foreign_origin_is_refused,
    allowed_origins_the_own_origin_and_no_origin_pass,
    public_url_gives_the_links_and_the_own_origin,
    forwarded_headers_from_an_untrusted_peer_are_ignored,
    forwarded_headers_from_a_trusted_proxy_are_believed,
    a_nul_in_search_is_a_field_error,
    a_nul_in_an_email_is_a_field_error,
    a_nul_in_a_password_is_a_field_error_wherever_one_is_sent,
    changing_your_own_password_or_email_needs_the_current_password,
    staff_changing_another_user_need_not_send_a_current_password,
    wrong_current_passwords_count_as_failed_logins,
    wrong_old_passwords_count_as_failed_logins,
    password_change_is_in_the_per_ip_bucket,
    current_user_and_every_list_response_are_not_cached,
    metrics_labels_stay_bounded_whatever_the_method_or_path,
    a_stalled_body_is_cut_off_after_the_client_body_timeout,
    sqlite_writes_under_concurrent_sessions_never_answer_5xx,
];

const NUL: &str = "Null characters are not allowed.";
const NEW_PASSWORD: &str = "a-brand-new-passphrase";
const WRONG_CURRENT: &str = "Your old password was entered incorrectly. Please enter it again.";
const EVIL: &str = "https://evil.example";

/// The 401 of an authenticated request with a bad access token.
fn invalid_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

/// The 401 of the token endpoints (refresh, verify, sliding refresh).
fn token_not_valid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

fn origin_refused(origin: &str) -> Value {
    json!({"detail": format!("CSRF Failed: Origin checking failed - {origin} does not match any trusted origins.")})
}

/// A real token's claims, changed and signed again with the server's key.
fn resign(token: &str, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = payload(token);
    change(claims.as_object_mut().unwrap());
    forge(Algorithm::HS256, TEST_SECRET, &claims)
}

fn user_id(response: &Response) -> i64 {
    response.body["user"]["id"].as_i64().unwrap()
}

/// Checks a 429 with the contract's body and `Retry-After`.
#[track_caller]
pub(crate) fn assert_throttled(response: &Response) {
    response.assert_status(429);
    let wait: u64 = response
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .unwrap();
    assert_eq!(
        response.body,
        json!({"detail": format!("Request was throttled. Expected available in {wait} second{}.", if wait == 1 { "" } else { "s" })}),
        "{}",
        response.text
    );
}

// ---------------------------------------------------------------- tokens

async fn a_token_not_yet_valid_is_refused_on_every_path(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let future = now() + 3600;
    let access = resign(&registered.access(), |c| {
        c.insert("nbf".into(), json!(future));
    });
    app.me(&access)
        .await
        .assert_unauthorized(invalid_access("Token is invalid"));
    app.get(paths::LIST, Req::bearer(&access))
        .await
        .assert(401, invalid_access("Token is invalid"));
    app.verify(&access).await.assert(401, token_not_valid());

    // the refresh token keeps its recorded jti: only nbf is wrong
    let refresh = resign(&registered.refresh(), |c| {
        c.insert("nbf".into(), json!(future));
    });
    app.verify(&refresh).await.assert(401, token_not_valid());
    app.refresh_token(&refresh)
        .await
        .assert(401, token_not_valid());
    // the refusal changed nothing: the genuine token still refreshes
    app.refresh_token(&registered.refresh())
        .await
        .assert_status(200);

    let token = app.sliding_token("jae@example.com").await;
    let not_yet = resign(&token, |c| {
        c.insert("nbf".into(), json!(future));
    });
    app.me(&not_yet)
        .await
        .assert(401, invalid_access("Token is invalid"));
    app.sliding_refresh(&not_yet)
        .await
        .assert(401, token_not_valid());
}

async fn nbf_that_is_not_a_number_is_refused(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    for nbf in [
        json!("x"),
        json!((now() - 60).to_string()),
        json!(null),
        json!(true),
        json!([now() - 60]),
    ] {
        let access = resign(&registered.access(), |c| {
            c.insert("nbf".into(), nbf.clone());
        });
        app.me(&access)
            .await
            .assert(401, invalid_access("Token is invalid"));
        app.verify(&access).await.assert(401, token_not_valid());
        let refresh = resign(&registered.refresh(), |c| {
            c.insert("nbf".into(), nbf.clone());
        });
        app.refresh_token(&refresh)
            .await
            .assert(401, token_not_valid());
    }
}

async fn nbf_in_the_past_is_accepted_as_an_integer_or_a_float(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    for nbf in [json!(now() - 60), json!(now() as f64 - 60.5), json!(now())] {
        let access = resign(&registered.access(), |c| {
            c.insert("nbf".into(), nbf.clone());
        });
        let me = app.me(&access).await;
        me.assert_status(200);
        assert_eq!(
            (me.body["id"].clone(), me.body["email"].clone()),
            (json!(id), json!("jae@example.com")),
            "nbf {nbf}: {}",
            me.text
        );
        app.verify(&access).await.assert(200, json!({}));
    }
    // a refresh token with a past nbf (its jti recorded) refreshes
    let refresh = resign(&registered.refresh(), |c| {
        c.insert("nbf".into(), json!(now() as f64 - 10.25));
    });
    app.verify(&refresh).await.assert(200, json!({}));
    let refreshed = app.refresh_token(&refresh).await;
    refreshed.assert_status(200);
    assert!(
        refreshed.body["access"].is_string() && refreshed.body["refresh"].is_string(),
        "{}",
        refreshed.text
    );
}

async fn a_future_iat_is_refused_on_every_path_that_reads_a_token(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let future = now() + 3600;
    let access = resign(&registered.access(), |c| {
        c.insert("iat".into(), json!(future));
        c.insert("exp".into(), json!(future + 1800));
    });
    app.me(&access)
        .await
        .assert(401, invalid_access("Token is invalid"));
    app.verify(&access).await.assert(401, token_not_valid());

    let refresh = resign(&registered.refresh(), |c| {
        c.insert("iat".into(), json!(future));
    });
    app.verify(&refresh).await.assert(401, token_not_valid());
    app.refresh_token(&refresh)
        .await
        .assert(401, token_not_valid());

    let token = app.sliding_token("jae@example.com").await;
    let from_the_future = resign(&token, |c| {
        c.insert("iat".into(), json!(future));
    });
    app.me(&from_the_future)
        .await
        .assert(401, invalid_access("Token is invalid"));
    app.verify(&from_the_future)
        .await
        .assert(401, token_not_valid());
    app.sliding_refresh(&from_the_future)
        .await
        .assert(401, token_not_valid());
    // the genuine sliding token still slides
    app.sliding_refresh(&token).await.assert_status(200);
}

// ------------------------------------------------------------ CSRF, origins

/// Percent-encodes a form value (every byte outside the unreserved set).
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn form(email: &str, password: &str) -> Vec<u8> {
    format!(
        "email={}&password={}",
        urlencode(email),
        urlencode(password)
    )
    .into_bytes()
}

/// Login and register bodies, JSON and form, from one origin.
fn from_origin(origin: &str, email: &str) -> [Req; 2] {
    [
        Req::json(json!({"email": email, "password": PASSWORD})).with_header("Origin", origin),
        Req::default()
            .with_raw("application/x-www-form-urlencoded", form(email, PASSWORD))
            .with_header("Origin", origin),
    ]
}

async fn a_foreign_origin_is_refused_on_login_and_register(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("victim@example.com").await;
    for req in from_origin(EVIL, "victim@example.com") {
        let response = app.post(paths::AUTH, req).await;
        response.assert(403, origin_refused(EVIL));
        assert_eq!(response.set_cookies(), Vec::<String>::new());
    }
    for req in from_origin(EVIL, "planted@example.com") {
        let response = app.post(paths::REGISTER, req).await;
        response.assert(403, origin_refused(EVIL));
        assert_eq!(response.set_cookies(), Vec::<String>::new());
    }
    // nothing was registered
    app.login("planted@example.com", PASSWORD).await.assert(
        401,
        json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}),
    );
    // and the other token endpoints, refresh and sliding included
    let session = app.login("victim@example.com", PASSWORD).await;
    for (path, body) in [
        (paths::REFRESH, json!({"refresh": session.refresh()})),
        (
            paths::SLIDING,
            json!({"email": "victim@example.com", "password": PASSWORD}),
        ),
        (paths::VERIFY, json!({"token": session.access()})),
    ] {
        app.post(path, Req::json(body).with_header("Origin", EVIL))
            .await
            .assert(403, origin_refused(EVIL));
    }
}

async fn a_bearer_request_from_a_foreign_origin_is_refused(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    let access = registered.access();
    app.request(
        "PATCH",
        &paths::user(id),
        Req::bearer(&access)
            .with_json(json!({"email": "moved@example.com", "current_password": PASSWORD}))
            .with_header("Origin", EVIL),
    )
    .await
    .assert(403, origin_refused(EVIL));
    app.post(
        paths::PASSWORD,
        Req::bearer(&access)
            .with_json(json!({"old_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .with_header("Origin", EVIL),
    )
    .await
    .assert(403, origin_refused(EVIL));
    app.request(
        "DELETE",
        paths::AUTH,
        Req::json(json!({"refresh": registered.refresh()})).with_header("Origin", EVIL),
    )
    .await
    .assert(403, origin_refused(EVIL));
    app.request(
        "DELETE",
        paths::SESSIONS,
        Req::bearer(&access).with_header("Origin", EVIL),
    )
    .await
    .assert(403, origin_refused(EVIL));
    // none of them took effect
    let me = app.me(&access).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.refresh_token(&registered.refresh())
        .await
        .assert_status(200);
    // a safe request from anywhere is unaffected
    let listed = app
        .get(
            paths::LIST,
            Req::bearer(&access).with_header("Origin", EVIL),
        )
        .await;
    listed.assert_status(200);
    assert_eq!(listed.body["count"], 1);
}

async fn allowed_origins_the_own_origin_and_no_origin_pass(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")])
        .await;
    let own = format!("http://127.0.0.1:{}", app.port);
    let registered = app
        .post(
            paths::REGISTER,
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("Origin", "https://app.example"),
        )
        .await;
    registered.assert_status(201);
    assert_eq!(registered.body["message"], "register success");
    for origin in ["https://app.example", own.as_str()] {
        for req in from_origin(origin, "jae@example.com") {
            let response = app.post(paths::AUTH, req).await;
            response.assert_status(200);
            assert_eq!(response.body["message"], "login success", "{origin}");
            assert!(response.set_cookie("access").is_some(), "{origin}");
        }
    }
    let plain = app.login("jae@example.com", PASSWORD).await;
    plain.assert_status(200);
    assert_eq!(plain.body["user"]["email"], "jae@example.com");
    // a near miss of an allowed origin is foreign
    for near in [
        "https://app.example.evil",
        "http://app.example",
        "https://app.example:8443",
        "null",
    ] {
        app.post(
            paths::AUTH,
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("Origin", near),
        )
        .await
        .assert(403, origin_refused(near));
    }
    // a Bearer PATCH from an allowed origin passes
    let id = user_id(&registered);
    let patched = app
        .request(
            "PATCH",
            &paths::user(id),
            Req::bearer(&plain.access())
                .with_json(json!({}))
                .with_header("Origin", "https://app.example"),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(patched.body["id"], json!(id));
}

async fn public_url_gives_the_links_and_the_own_origin(mut ctx: Ctx) {
    let public = "https://auth.example.com";
    let app = ctx.spawn_with(&[("PUBLIC_URL", public)]).await;
    let root = app.get("/", Req::default()).await;
    root.assert_status(200);
    assert_eq!(root.body["list"], json!(format!("{public}/list/")));
    for (name, link) in root.body.as_object().unwrap() {
        assert!(
            link.as_str().unwrap().starts_with(&format!("{public}/")),
            "{name}: {link}"
        );
    }
    // the same with forwarded headers from an untrusted peer
    let spoofed = app
        .get(
            "/",
            Req::default().with_header("X-Forwarded-Host", "evil.example"),
        )
        .await;
    assert_eq!(spoofed.body["list"], json!(format!("{public}/list/")));

    let [json_register, _] = from_origin(public, "first@example.com");
    let [_, form_register] = from_origin(public, "second@example.com");
    for (req, email) in [
        (json_register, "first@example.com"),
        (form_register, "second@example.com"),
    ] {
        let response = app.post(paths::REGISTER, req).await;
        response.assert_status(201);
        assert_eq!(response.body["user"]["email"], email);
    }
    for req in from_origin(public, "first@example.com") {
        let response = app.post(paths::AUTH, req).await;
        response.assert_status(200);
        assert_eq!(response.body["user"]["email"], "first@example.com");
    }
    // with PUBLIC_URL set, the address the request was sent to is not the
    // server's own origin
    let by_address = format!("http://127.0.0.1:{}", app.port);
    app.post(
        paths::AUTH,
        Req::json(json!({"email": "first@example.com", "password": PASSWORD}))
            .with_header("Origin", &by_address),
    )
    .await
    .assert(403, origin_refused(&by_address));

    let token = app.login("first@example.com", PASSWORD).await.access();
    let page = app.get("/list/?page_size=1", Req::bearer(&token)).await;
    page.assert_status(200);
    assert_eq!(
        (page.body["count"].clone(), page.body["next"].clone()),
        (
            json!(2),
            json!(format!("{public}/list/?page_size=1&page=2"))
        ),
        "{}",
        page.text
    );
}

async fn forwarded_headers_from_an_untrusted_peer_are_ignored(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let own = format!("http://127.0.0.1:{}", app.port);
    let spoofing = [
        vec![
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
        ],
        vec![("Forwarded", "host=evil.example;proto=https")],
    ];
    for headers in &spoofing {
        let mut req = Req::default();
        for (name, value) in headers {
            req = req.with_header(name, value);
        }
        let root = app.get("/", req).await;
        root.assert_status(200);
        assert_eq!(
            root.body["list"],
            json!(format!("{own}/list/")),
            "{headers:?}"
        );
    }
    let registered = app.registered("jae@example.com").await;
    app.registered("kim@example.com").await;
    for headers in &spoofing {
        let mut page_req = Req::bearer(&registered.access());
        let mut login = Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
            .with_header("Origin", EVIL);
        for (name, value) in headers {
            page_req = page_req.with_header(name, value);
            login = login.with_header(name, value);
        }
        let page = app.get("/list/?page_size=1", page_req).await;
        page.assert_status(200);
        assert_eq!(
            page.body["next"],
            json!(format!("{own}/list/?page_size=1&page=2")),
            "{headers:?}"
        );
        // nor do they make a foreign Origin the server's own
        app.post(paths::AUTH, login)
            .await
            .assert(403, origin_refused(EVIL));
    }
}

async fn forwarded_headers_from_a_trusted_proxy_are_believed(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let proxied = |req: Req| {
        req.with_header("X-Forwarded-Host", "auth.proxy.example")
            .with_header("X-Forwarded-Proto", "https")
    };
    let root = app.get("/", proxied(Req::default())).await;
    root.assert_status(200);
    assert_eq!(root.body["list"], "https://auth.proxy.example/list/");
    let forwarded = app
        .get(
            "/",
            Req::default().with_header("Forwarded", "host=fwd.example;proto=https"),
        )
        .await;
    forwarded.assert_status(200);
    assert_eq!(forwarded.body["list"], "https://fwd.example/list/");

    let registered = app.registered("jae@example.com").await;
    app.registered("kim@example.com").await;
    let page = app
        .get(
            "/list/?page_size=1",
            proxied(Req::bearer(&registered.access())),
        )
        .await;
    page.assert_status(200);
    assert_eq!(
        page.body["next"],
        "https://auth.proxy.example/list/?page_size=1&page=2"
    );
    // the proxied origin is the server's own
    let login = app
        .post(
            paths::AUTH,
            proxied(
                Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                    .with_header("Origin", "https://auth.proxy.example"),
            ),
        )
        .await;
    login.assert_status(200);
    assert_eq!(login.body["message"], "login success");
    // another origin still is not
    app.post(
        paths::AUTH,
        proxied(
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("Origin", EVIL),
        ),
    )
    .await
    .assert(403, origin_refused(EVIL));
}

// ------------------------------------------------------------------- NUL

async fn a_nul_in_search_is_a_field_error(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let token = app.registered("jae@example.com").await.access();
    for query in ["a%00b", "%00", "jae%00"] {
        let response = app
            .get(&format!("/list/?search={query}"), Req::bearer(&token))
            .await;
        response.assert(400, json!({"search": [NUL]}));
        assert_eq!(response.header("content-type"), Some("application/json"));
    }
    // the server is fine afterwards
    let found = app.get("/list/?search=jae", Req::bearer(&token)).await;
    found.assert_status(200);
    assert_eq!(found.body["count"], 1);
}

async fn a_nul_in_an_email_is_a_field_error(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    for email in ["a\u{0}b@example.com", "jae@example.com\u{0}", "\u{0}"] {
        app.register(email, PASSWORD)
            .await
            .assert(400, json!({"email": [NUL]}));
        app.login(email, PASSWORD)
            .await
            .assert(400, json!({"email": [NUL]}));
        app.post_json(
            paths::SLIDING,
            json!({"email": email, "password": PASSWORD}),
        )
        .await
        .assert(400, json!({"email": [NUL]}));
    }
    // a form body too
    app.post(
        paths::REGISTER,
        Req::default().with_raw(
            "application/x-www-form-urlencoded",
            "email=a%00b%40example.com&password=correct-horse-battery-9",
        ),
    )
    .await
    .assert(400, json!({"email": [NUL]}));
    // and the viewset
    let id = user_id(&registered);
    app.request(
        "PATCH",
        &paths::user(id),
        Req::bearer(&registered.access())
            .with_json(json!({"email": "x\u{0}@example.com", "current_password": PASSWORD})),
    )
    .await
    .assert(400, json!({"email": [NUL]}));
    let (_, staff) = app.user_with_flags("staff@example.com", true, false).await;
    app.post(
        paths::LIST,
        Req::bearer(&staff).with_json(json!({"email": "n\u{0}@example.com", "password": PASSWORD})),
    )
    .await
    .assert(400, json!({"email": [NUL]}));
    let listed = app.get(paths::LIST, Req::bearer(&staff)).await;
    listed.assert_status(200);
    assert_eq!(listed.body["count"], 2, "{}", listed.text);
}

async fn a_nul_in_a_password_is_a_field_error_wherever_one_is_sent(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    // bcrypt would read "abc\0abc\0abc" as "abc"
    let with_nul = "correct-horse\u{0}battery-9";
    app.register("nul@example.com", with_nul)
        .await
        .assert(400, json!({"password": [NUL]}));
    app.register("nul@example.com", "abc\u{0}abc\u{0}abc")
        .await
        .assert(400, json!({"password": [NUL]}));
    app.post(
        paths::REGISTER,
        Req::default().with_raw(
            "application/x-www-form-urlencoded",
            "email=nul%40example.com&password=correct-horse%00battery-9",
        ),
    )
    .await
    .assert(400, json!({"password": [NUL]}));
    app.login("nul@example.com", PASSWORD).await.assert(
        401,
        json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}),
    );

    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    let access = registered.access();
    app.login("jae@example.com", &format!("{PASSWORD}\u{0}"))
        .await
        .assert(400, json!({"password": [NUL]}));
    app.post(
        paths::PASSWORD,
        Req::bearer(&access).with_json(json!({"old_password": PASSWORD, "new_password": with_nul})),
    )
    .await
    .assert(400, json!({"new_password": [NUL]}));
    app.post(
        paths::PASSWORD,
        Req::bearer(&access).with_json(
            json!({"old_password": format!("{PASSWORD}\u{0}"), "new_password": NEW_PASSWORD}),
        ),
    )
    .await
    .assert(400, json!({"old_password": [NUL]}));
    app.request(
        "PATCH",
        &paths::user(id),
        Req::bearer(&access).with_json(json!({"password": with_nul, "current_password": PASSWORD})),
    )
    .await
    .assert(400, json!({"password": [NUL]}));
    let (_, staff) = app.user_with_flags("staff@example.com", true, false).await;
    app.post(
        paths::LIST,
        Req::bearer(&staff).with_json(json!({"email": "new@example.com", "password": with_nul})),
    )
    .await
    .assert(400, json!({"password": [NUL]}));
    // nothing changed
    let login = app.login("jae@example.com", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["id"], json!(id));
}

// ------------------------------------------------------- current_password

async fn patch(app: &TestApp, token: &str, id: i64, body: Value) -> Response {
    app.request(
        "PATCH",
        &paths::user(id),
        Req::bearer(token).with_json(body),
    )
    .await
}

async fn changing_your_own_password_or_email_needs_the_current_password(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    let token = registered.access();
    let required = json!({"current_password": ["This field is required."]});
    let wrong = json!({"current_password": [WRONG_CURRENT]});
    patch(&app, &token, id, json!({"password": NEW_PASSWORD}))
        .await
        .assert(400, required.clone());
    patch(&app, &token, id, json!({"email": "moved@example.com"}))
        .await
        .assert(400, required.clone());
    app.request(
        "PUT",
        &paths::user(id),
        Req::bearer(&token).with_json(json!({"email": "moved@example.com"})),
    )
    .await
    .assert(400, required.clone());
    patch(
        &app,
        &token,
        id,
        json!({"password": NEW_PASSWORD, "current_password": "wrong-password-1"}),
    )
    .await
    .assert(400, wrong.clone());
    patch(
        &app,
        &token,
        id,
        json!({"email": "moved@example.com", "current_password": "wrong-password-1"}),
    )
    .await
    .assert(400, wrong.clone());
    // nothing changed
    let me = app.get(&paths::user(id), Req::bearer(&token)).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    app.login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.login("jae@example.com", NEW_PASSWORD)
        .await
        .assert_status(401);
    // a change of neither needs nothing
    patch(&app, &token, id, json!({})).await.assert_status(200);

    // the right current password
    let moved = patch(
        &app,
        &token,
        id,
        json!({"email": "moved@example.com", "current_password": PASSWORD}),
    )
    .await;
    moved.assert_status(200);
    assert_eq!(moved.body["email"], "moved@example.com");
    assert!(!moved.text.contains("password"), "{}", moved.text);
    let changed = patch(
        &app,
        &token,
        id,
        json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
    )
    .await;
    changed.assert_status(200);
    assert_eq!(changed.body["id"], json!(id));
    assert!(!changed.text.contains("passphrase"), "{}", changed.text);
    app.login("moved@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
    app.login("moved@example.com", PASSWORD).await.assert(
        401,
        json!({"detail": "No active account found with the given credentials", "code": "no_active_account"}),
    );
}

async fn staff_changing_another_user_need_not_send_a_current_password(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let (staff_id, staff) = app.user_with_flags("staff@example.com", true, false).await;
    let user = user_id(&app.registered("jae@example.com").await);
    let changed = patch(&app, &staff, user, json!({"password": NEW_PASSWORD})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["email"], "jae@example.com");
    let moved = patch(&app, &staff, user, json!({"email": "kim@example.com"})).await;
    moved.assert_status(200);
    assert_eq!(moved.body["email"], "kim@example.com");
    app.login("kim@example.com", NEW_PASSWORD)
        .await
        .assert_status(200);
    // but staff changing their own password are users like any other
    patch(&app, &staff, staff_id, json!({"password": NEW_PASSWORD}))
        .await
        .assert(
            400,
            json!({"current_password": ["This field is required."]}),
        );
    app.login("staff@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn wrong_current_passwords_count_as_failed_logins(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    let token = registered.access();
    for _ in 0..3 {
        patch(
            &app,
            &token,
            id,
            json!({"password": NEW_PASSWORD, "current_password": "wrong-password-1"}),
        )
        .await
        .assert(400, json!({"current_password": [WRONG_CURRENT]}));
    }
    assert_throttled(&app.login("jae@example.com", PASSWORD).await);
    // while locked, the PATCH with the right current password is refused too
    assert_throttled(
        &patch(
            &app,
            &token,
            id,
            json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
        )
        .await,
    );
    // and nothing changed
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
}

async fn wrong_old_passwords_count_as_failed_logins(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("THROTTLE_LOGIN_FAILURES", "3/15m")])
        .await;
    let registered = app.registered("jae@example.com").await;
    let token = registered.access();
    for _ in 0..3 {
        app.post(
            paths::PASSWORD,
            Req::bearer(&token).with_json(
                json!({"old_password": "wrong-password-1", "new_password": NEW_PASSWORD}),
            ),
        )
        .await
        .assert(400, json!({"old_password": [WRONG_CURRENT]}));
    }
    assert_throttled(&app.login("jae@example.com", PASSWORD).await);
    assert_throttled(
        &app.post(
            paths::PASSWORD,
            Req::bearer(&token)
                .with_json(json!({"old_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await,
    );
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
}

async fn password_change_is_in_the_per_ip_bucket(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[
            ("THROTTLE_AUTH_PER_IP", "3/1m"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    let registered = app.registered_from("jae@example.com", "10.1.1.1").await;
    let token = registered.access();
    let change = || {
        Req::bearer(&token)
            .with_json(json!({"old_password": "wrong-password-1", "new_password": NEW_PASSWORD}))
            .with_header("X-Forwarded-For", "10.2.2.2")
    };
    for _ in 0..3 {
        app.post(paths::PASSWORD, change())
            .await
            .assert(400, json!({"old_password": [WRONG_CURRENT]}));
    }
    assert_throttled(&app.post(paths::PASSWORD, change()).await);
    // the same bucket as the other auth endpoints
    assert_throttled(
        &app.post(
            paths::AUTH,
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("X-Forwarded-For", "10.2.2.2"),
        )
        .await,
    );
    // another client is not affected
    let other = app
        .post(
            paths::AUTH,
            Req::json(json!({"email": "jae@example.com", "password": PASSWORD}))
                .with_header("X-Forwarded-For", "10.3.3.3"),
        )
        .await;
    other.assert_status(200);
    assert_eq!(other.body["message"], "login success");
}

// --------------------------------------------------------------- caching

async fn current_user_and_every_list_response_are_not_cached(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = user_id(&registered);
    let token = registered.access();
    let no_store = |response: &Response, what: &str| {
        let value = response.header("cache-control").unwrap_or_default();
        assert!(
            value.split(',').any(|d| d.trim() == "no-store"),
            "{what}: Cache-Control {value:?}"
        );
    };
    let me = app.me(&token).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "jae@example.com");
    no_store(&me, "GET /auth/");
    let list = app.get(paths::LIST, Req::bearer(&token)).await;
    list.assert_status(200);
    assert_eq!(list.body["count"], 1);
    no_store(&list, "GET /list/");
    let one = app.get(&paths::user(id), Req::bearer(&token)).await;
    one.assert_status(200);
    assert_eq!(one.body["id"], json!(id));
    no_store(&one, "GET /list/{id}/");
    let missing = app.get("/list/999999/", Req::bearer(&token)).await;
    missing.assert(404, json!({"detail": "Not found."}));
    no_store(&missing, "GET /list/999999/");
    let unauthenticated = app.get(paths::LIST, Req::default()).await;
    unauthenticated.assert(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    no_store(&unauthenticated, "GET /list/ without credentials");
    let patched = patch(&app, &token, id, json!({})).await;
    patched.assert_status(200);
    assert_eq!(patched.body["id"], json!(id));
    no_store(&patched, "PATCH /list/{id}/");
}

// --------------------------------------------------------------- metrics

/// The values of one label across the series of a Prometheus text body.
fn label_values(text: &str, label: &str) -> BTreeSet<String> {
    let marker = format!("{label}=\"");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let start = line.find(&marker)? + marker.len();
            let end = line[start..].find('"')?;
            Some(line[start..start + end].to_owned())
        })
        .collect()
}

async fn metrics_labels_stay_bounded_whatever_the_method_or_path(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let scrape = || async {
        let response = app.get("/metrics", Req::default()).await;
        assert_eq!(response.status, 200, "{}", response.text);
        response.text
    };
    app.get("/healthz", Req::default())
        .await
        .assert(200, json!({"status": "ok"}));
    let before = scrape().await;
    let mut tokens = Vec::new();
    for _ in 0..50 {
        let method = format!("X{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        app.request(&method, "/healthz", Req::default())
            .await
            .assert(
                405,
                json!({"detail": format!("Method \"{method}\" not allowed.")}),
            );
        tokens.push(method);
    }
    let after_methods = scrape().await;
    let standard: BTreeSet<String> = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let methods = label_values(&after_methods, "method");
    assert!(
        methods.is_subset(&standard),
        "method labels outside the standard set: {:?}",
        methods.difference(&standard).collect::<Vec<_>>()
    );
    assert!(methods.contains("other"), "{methods:?}");
    for token in &tokens {
        assert!(
            !after_methods.contains(token.as_str()),
            "{token} in /metrics"
        );
    }

    let routes_before = label_values(&after_methods, "route");
    let mut paths = Vec::new();
    for _ in 0..30 {
        let path = format!("/scan-{}/", uuid::Uuid::new_v4().simple());
        app.get(&path, Req::default())
            .await
            .assert(404, json!({"detail": "Not found."}));
        paths.push(path);
    }
    let after = scrape().await;
    for path in &paths {
        assert!(!after.contains(path.as_str()), "{path} in /metrics");
    }
    let routes = label_values(&after, "route");
    // at most the one shared label for unmatched paths, and /metrics itself
    let new_routes: Vec<_> = routes.difference(&routes_before).collect();
    assert!(new_routes.len() <= 2, "new route labels: {new_routes:?}");
    assert!(
        after.len() < before.len() + 16 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

// ---------------------------------------------------------- body timeout

/// What a raw client saw: the bytes the server sent and how long until it
/// closed the connection (`None` when it was still open at the deadline).
fn stall_body(port: u16, path: &str) -> (Vec<u8>, Option<Duration>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"tok"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.flush().unwrap();
    let started = Instant::now();
    let deadline = Duration::from_secs(12);
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return (received, Some(started.elapsed())),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (received, Some(started.elapsed()));
            }
            Err(e) => panic!("reading from the server: {e}"),
        }
    }
    (received, None)
}

async fn a_stalled_body_is_cut_off_after_the_client_body_timeout(mut ctx: Ctx) {
    let app = ctx.spawn_with(&[("CLIENT_BODY_TIMEOUT", "1s")]).await;
    for path in [paths::VERIFY, paths::REGISTER] {
        let port = app.port;
        let (received, closed) =
            actix_web::rt::task::spawn_blocking(move || stall_body(port, path))
                .await
                .unwrap();
        let text = String::from_utf8_lossy(&received).into_owned();
        let closed_after =
            closed.unwrap_or_else(|| panic!("{path}: connection still open after 12 s: {text:?}"));
        assert!(
            closed_after >= Duration::from_millis(900),
            "{path}: closed after {closed_after:?}, before the timeout: {text:?}"
        );
        if !received.is_empty() {
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            assert!(head.starts_with("HTTP/1.1 408"), "{path}: {text:?}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/json"),
                "{path}: {text:?}"
            );
            let body: Value = serde_json::from_str(body.trim())
                .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text:?}"));
            assert!(
                body.as_object().is_some_and(|o| o.len() == 1)
                    && body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{path}: {body}"
            );
        }
    }
    // the server still serves, and the stalled register created nothing
    app.get("/healthz", Req::default())
        .await
        .assert(200, json!({"status": "ok"}));
    app.registered("jae@example.com").await;
}

// ------------------------------------------------------------ SQLite busy

async fn sqlite_writes_under_concurrent_sessions_never_answer_5xx(mut ctx: Ctx) {
    let app = ctx
        .spawn_with(&[("WORKERS", "4"), ("DATABASE_POOL_SIZE", "8")])
        .await;
    let run_for = Duration::from_secs(5);
    let client = |n: usize| {
        let app = &app;
        async move {
            let mut seen: Vec<(&'static str, u16, String)> = Vec::new();
            let started = Instant::now();
            let mut round = 0;
            while started.elapsed() < run_for {
                round += 1;
                let email = format!("c{n}-r{round}@example.com");
                let registered = app.register(&email, PASSWORD).await;
                seen.push(("register", registered.status, registered.text.clone()));
                if registered.status != 201 {
                    continue;
                }
                let refreshed = app.refresh_token(&registered.refresh()).await;
                seen.push(("refresh", refreshed.status, refreshed.text.clone()));
                let Some(refresh) = refreshed.body["refresh"].as_str() else {
                    continue;
                };
                let logout = app
                    .request(
                        "DELETE",
                        paths::AUTH,
                        Req::json(json!({ "refresh": refresh })),
                    )
                    .await;
                seen.push(("logout", logout.status, logout.text.clone()));
                let after = app.refresh_token(refresh).await;
                seen.push(("refresh after logout", after.status, after.text.clone()));
                let login = app.login(&email, PASSWORD).await;
                seen.push(("login", login.status, login.text.clone()));
                if login.status != 200 {
                    continue;
                }
                let everywhere = app
                    .request("DELETE", paths::SESSIONS, Req::bearer(&login.access()))
                    .await;
                seen.push(("logout everywhere", everywhere.status, everywhere.text));
                let after = app.refresh_token(&login.refresh()).await;
                seen.push((
                    "refresh after logout everywhere",
                    after.status,
                    after.text.clone(),
                ));
            }
            seen
        }
    };
    let results = futures_util::future::join_all((0..8).map(client)).await;
    let expected = |op: &str| -> &'static [u16] {
        match op {
            "register" => &[201],
            "refresh" | "login" => &[200],
            "logout" | "logout everywhere" => &[202],
            _ => &[401],
        }
    };
    let mut counts = std::collections::BTreeMap::new();
    let mut unexpected = Vec::new();
    for (op, status, text) in results.into_iter().flatten() {
        *counts.entry((op, status)).or_insert(0u32) += 1;
        if !expected(op).contains(&status) {
            unexpected.push(format!("{op}: {status} {text}"));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers (counts {counts:?}), first: {:?}",
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        counts.get(&("logout", 202)).copied().unwrap_or(0) >= 8,
        "too little load to mean anything: {counts:?}"
    );
}
