use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, tests};
use serde_json::json;

tests![
    register_returns_201_with_user_tokens_and_cookies,
    register_normalises_the_email,
    register_refuses_a_taken_email_in_any_case,
    register_requires_both_fields,
    register_refuses_blank_fields,
    register_refuses_an_invalid_email,
    register_refuses_an_email_over_254_characters,
    register_runs_the_password_validators,
    register_refuses_a_73_byte_multibyte_password,
    register_checks_password2_when_sent,
    register_ignores_privilege_fields,
    register_accepts_a_form_body,
    register_ignores_a_stale_authorization_header,
    concurrent_registrations_of_one_email_make_one_user,
];

async fn register_returns_201_with_user_tokens_and_cookies(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.register("jae@example.com", PASSWORD).await;
    response.assert_status(201);
    assert_eq!(response.body["message"], "register success");
    let user = &response.body["user"];
    assert_eq!(user["email"], "jae@example.com");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_staff"], false);
    assert_eq!(user["is_superuser"], false);
    assert_eq!(user["last_login"], json!(null));
    assert_eq!(user["email_verified"], false);
    assert!(user["id"].is_i64());
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert!(user.get("password").is_none() && !response.text.contains("$2b$"));
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let access = response.access();
    let refresh = response.refresh();
    assert_eq!(response.cookie_value("access"), Some(access.clone()));
    assert_eq!(response.cookie_value("refresh"), Some(refresh));
    let cookie = response.set_cookie("access").unwrap();
    for part in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=1800"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        response
            .set_cookie("refresh")
            .unwrap()
            .contains("Max-Age=604800")
    );
    assert!(response.set_cookie("csrftoken").is_some());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    app.me(&access).await.assert_status(200);
}

async fn register_normalises_the_email(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.register("  Jae.Kim@Example.COM ", PASSWORD).await;
    response.assert_status(201);
    assert_eq!(response.body["user"]["email"], "jae.kim@example.com");
    app.login("jae.kim@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn register_refuses_a_taken_email_in_any_case(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.registered("jae@example.com").await;
    app.register("JAE@example.com", PASSWORD).await.assert(
        400,
        json!({"email": ["user with this email already exists."]}),
    );
}

async fn register_requires_both_fields(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json("/register/", json!({})).await.assert(
        400,
        json!({"email": ["This field is required."], "password": ["This field is required."]}),
    );
    app.post_json("/register/", json!({"email": "a@example.com"}))
        .await
        .assert(400, json!({"password": ["This field is required."]}));
}

async fn register_refuses_blank_fields(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.register("", "")
        .await
        .assert(400, json!({"email": ["This field may not be blank."], "password": ["This field may not be blank."]}));
}

async fn register_refuses_an_invalid_email(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.register("not-an-email", PASSWORD)
        .await
        .assert(400, json!({"email": ["Enter a valid email address."]}));
}

async fn register_refuses_an_email_over_254_characters(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let long = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long.len(), 255);
    app.register(&long, PASSWORD).await.assert(
        400,
        json!({"email": ["Ensure this field has no more than 254 characters."]}),
    );
    let fits = format!("{}@example.com", "a".repeat(242));
    app.register(&fits, PASSWORD).await.assert_status(201);
}

async fn register_runs_the_password_validators(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.register("jae@example.com", "1234").await.assert(
        400,
        json!({"password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]}),
    );
    app.register("jae@example.com", "password123")
        .await
        .assert(400, json!({"password": ["This password is too common."]}));
    app.register("jae.kim@example.com", "jae.kim@example")
        .await
        .assert(
            400,
            json!({"password": ["The password is too similar to the email."]}),
        );
}

async fn register_refuses_a_73_byte_multibyte_password(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    // 24 Hangul syllables (72 bytes) and one ASCII letter: 25 characters, 73 bytes.
    let password = format!("{}a", "한".repeat(24));
    assert_eq!(password.len(), 73);
    app.register("jae@example.com", &password).await.assert(
        400,
        json!({"password": ["This password is too long. It must contain at most 72 bytes."]}),
    );
    let fits = "한".repeat(24);
    app.register("jae@example.com", &fits)
        .await
        .assert_status(201);
    app.login("jae@example.com", &fits).await.assert_status(200);
    app.login("jae@example.com", &password)
        .await
        .assert_status(401);
}

async fn register_checks_password2_when_sent(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    app.post_json(
        "/register/",
        json!({"email": "a@example.com", "password": PASSWORD, "password2": "other-thing-77"}),
    )
    .await
    .assert(400, json!({"password2": ["Password fields didn't match."]}));
    app.post_json(
        "/register/",
        json!({"email": "a@example.com", "password": PASSWORD, "password2": PASSWORD}),
    )
    .await
    .assert_status(201);
}

async fn register_ignores_privilege_fields(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app
        .post_json(
            "/register/",
            json!({"email": "a@example.com", "password": PASSWORD, "is_superuser": true, "is_staff": true, "id": 99}),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["user"]["is_superuser"], false);
    assert_eq!(response.body["user"]["is_staff"], false);
    assert_ne!(response.body["user"]["id"], 99);
}

async fn register_accepts_a_form_body(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let body = format!("email=form%40example.com&password={PASSWORD}");
    let response = app
        .post(
            "/register/",
            Req::default().with_raw("application/x-www-form-urlencoded", body),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["user"]["email"], "form@example.com");
}

async fn register_ignores_a_stale_authorization_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app
        .post(
            "/register/",
            Req::json(json!({"email": "a@example.com", "password": PASSWORD}))
                .with_bearer("garbage")
                .with_cookie("access", "stale"),
        )
        .await;
    response.assert_status(201);
}

async fn concurrent_registrations_of_one_email_make_one_user(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let attempts = (0..20).map(|_| app.register("race@example.com", PASSWORD));
    let responses = futures_util::future::join_all(attempts).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        responses
            .iter()
            .map(|r| (r.status, r.text.clone()))
            .collect::<Vec<_>>()
    );
    for response in responses.iter().filter(|r| r.status != 201) {
        response.assert(
            400,
            json!({"email": ["user with this email already exists."]}),
        );
    }
    let admin = app.user_with_flags("admin@example.com", true, true).await.1;
    let list = app.get("/list/?search=race", Req::bearer(&admin)).await;
    assert_eq!(list.body["count"], 1, "{}", list.text);
}
