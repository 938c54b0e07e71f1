//! The user viewset at /list/: every route for every role.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, TestApp, tests};
use serde_json::{Value, json};

tests![
    every_route_needs_credentials,
    any_user_may_list_and_retrieve,
    retrieve_of_a_missing_user_is_404,
    list_is_paginated_with_absolute_links,
    list_page_edges,
    page_size_is_capped_at_1000,
    search_matches_part_of_the_email,
    ordering_by_each_allowed_field,
    only_staff_may_create,
    only_a_superuser_may_create_a_superuser,
    create_validates_like_register,
    a_user_may_update_themself,
    a_user_may_not_update_another_user,
    a_user_may_not_change_their_own_flags,
    a_value_equal_to_the_current_one_is_not_a_change,
    staff_may_update_users_but_not_superusers,
    read_only_and_unknown_fields_are_ignored,
    changing_email_to_a_taken_one_is_400,
    password_set_through_the_viewset_is_validated_and_hashed,
    put_requires_the_email,
    only_staff_may_delete_and_only_a_superuser_deletes_a_superuser,
    deactivating_a_user_refuses_their_access_token_at_once,
    changing_a_password_revokes_existing_tokens,
    deleting_a_user_refuses_their_token,
    cookie_authenticated_writes_need_the_csrf_header,
];

const DENIED: &str = "You do not have permission to perform this action.";

struct Roles {
    app: TestApp,
    user: (i64, String),
    other: (i64, String),
    staff: (i64, String),
    superuser: (i64, String),
}

async fn roles(ctx: &mut Ctx) -> Roles {
    let app = ctx.spawn().await;
    let user = login_as(&app, "user@example.com").await;
    let other = login_as(&app, "other@example.com").await;
    let staff = app.user_with_flags("staff@example.com", true, false).await;
    let superuser = app.user_with_flags("super@example.com", true, true).await;
    Roles {
        app,
        user,
        other,
        staff,
        superuser,
    }
}

async fn login_as(app: &TestApp, email: &str) -> (i64, String) {
    let response = app.registered(email).await;
    (
        response.body["user"]["id"].as_i64().unwrap(),
        response.access(),
    )
}

fn path(id: i64) -> String {
    format!("/list/{id}/")
}

async fn patch(app: &TestApp, token: &str, id: i64, body: Value) -> latchkey_tests::Response {
    app.request("PATCH", &path(id), Req::bearer(token).with_json(body))
        .await
}

async fn every_route_needs_credentials(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let not_provided = json!({"detail": "Authentication credentials were not provided."});
    for (method, p) in [
        ("GET", "/list/".to_owned()),
        ("POST", "/list/".to_owned()),
        ("GET", path(r.user.0)),
        ("PUT", path(r.user.0)),
        ("PATCH", path(r.user.0)),
        ("DELETE", path(r.user.0)),
    ] {
        let response = r.app.request(method, &p, Req::json(json!({}))).await;
        response.assert(401, not_provided.clone());
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"api\""),
            "{method} {p}"
        );
    }
}

async fn any_user_may_list_and_retrieve(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    for (_, token) in [&r.user, &r.other, &r.staff, &r.superuser] {
        let list = r.app.get("/list/", Req::bearer(token)).await;
        list.assert_status(200);
        assert_eq!(list.body["count"], 4);
        assert!(!list.text.contains("password"));
        let one = r.app.get(&path(r.other.0), Req::bearer(token)).await;
        one.assert_status(200);
        assert_eq!(one.body["email"], "other@example.com");
    }
}

async fn retrieve_of_a_missing_user_is_404(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.app
        .get("/list/999999/", Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Not found."}));
    r.app
        .get("/list/abc/", Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Not found."}));
}

async fn list_is_paginated_with_absolute_links(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let base = format!("http://127.0.0.1:{}/list/", r.app.port);
    let first = r
        .app
        .get("/list/?page_size=2", Req::bearer(&r.user.1))
        .await;
    first.assert_status(200);
    assert_eq!(first.body["count"], 4);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["previous"], json!(null));
    assert_eq!(
        first.body["next"],
        json!(format!("{base}?page_size=2&page=2"))
    );
    assert_eq!(first.body["results"][0]["id"], json!(r.user.0));
    let second = r
        .app
        .get("/list/?page_size=2&page=2", Req::bearer(&r.user.1))
        .await;
    assert_eq!(second.body["next"], json!(null));
    assert_eq!(
        second.body["previous"],
        json!(format!("{base}?page_size=2"))
    );
    assert_eq!(second.body["results"][1]["id"], json!(r.superuser.0));
}

async fn list_page_edges(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let last = r
        .app
        .get("/list/?page_size=3&page=2", Req::bearer(&r.user.1))
        .await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 1);
    r.app
        .get("/list/?page_size=3&page=3", Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    r.app
        .get("/list/?page=0", Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    r.app
        .get("/list/?page=abc", Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    let empty = r
        .app
        .get("/list/?search=nobody-matches", Req::bearer(&r.user.1))
        .await;
    empty.assert(
        200,
        json!({"count": 0, "next": null, "previous": null, "results": []}),
    );
}

async fn page_size_is_capped_at_1000(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let response = r
        .app
        .get("/list/?page_size=5000", Req::bearer(&r.user.1))
        .await;
    response.assert_status(200);
    assert_eq!(response.body["results"].as_array().unwrap().len(), 4);
    assert_eq!(response.body["next"], json!(null));
}

async fn search_matches_part_of_the_email(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let response = r
        .app
        .get("/list/?search=STAFF", Req::bearer(&r.user.1))
        .await;
    assert_eq!(response.body["count"], 1);
    assert_eq!(response.body["results"][0]["email"], "staff@example.com");
    let wildcard = r.app.get("/list/?search=%25", Req::bearer(&r.user.1)).await;
    assert_eq!(wildcard.body["count"], 0, "a % in the search is literal");
}

async fn ordering_by_each_allowed_field(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let emails = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_email = r
        .app
        .get("/list/?ordering=email", Req::bearer(&r.user.1))
        .await;
    assert_eq!(
        emails(&by_email.body),
        [
            "other@example.com",
            "staff@example.com",
            "super@example.com",
            "user@example.com"
        ]
    );
    let by_email_desc = r
        .app
        .get("/list/?ordering=-email", Req::bearer(&r.user.1))
        .await;
    assert_eq!(emails(&by_email_desc.body)[0], "user@example.com");
    let by_id_desc = r
        .app
        .get("/list/?ordering=-id", Req::bearer(&r.user.1))
        .await;
    assert_eq!(by_id_desc.body["results"][0]["id"], json!(r.superuser.0));
    let by_created = r
        .app
        .get("/list/?ordering=created_at", Req::bearer(&r.user.1))
        .await;
    assert_eq!(by_created.body["results"][0]["id"], json!(r.user.0));
    let by_created_desc = r
        .app
        .get("/list/?ordering=-created_at", Req::bearer(&r.user.1))
        .await;
    assert_eq!(
        by_created_desc.body["results"][0]["id"],
        json!(r.superuser.0)
    );
    let unknown = r
        .app
        .get("/list/?ordering=password_hash", Req::bearer(&r.user.1))
        .await;
    assert_eq!(unknown.body["results"][0]["id"], json!(r.user.0));
}

async fn only_staff_may_create(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let body = json!({"email": "new@example.com", "password": PASSWORD});
    r.app
        .post("/list/", Req::bearer(&r.user.1).with_json(body.clone()))
        .await
        .assert(403, json!({"detail": DENIED}));
    let created = r
        .app
        .post(
            "/list/",
            Req::bearer(&r.staff.1).with_json(
                json!({"email": "new@example.com", "password": PASSWORD, "is_staff": true}),
            ),
        )
        .await;
    created.assert_status(201);
    assert_eq!(created.body["email"], "new@example.com");
    assert_eq!(created.body["is_staff"], true);
    assert_eq!(created.body["is_superuser"], false);
    r.app
        .login("new@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn only_a_superuser_may_create_a_superuser(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let body = json!({"email": "root@example.com", "password": PASSWORD, "is_superuser": true});
    r.app
        .post("/list/", Req::bearer(&r.staff.1).with_json(body.clone()))
        .await
        .assert(403, json!({"detail": DENIED}));
    let created = r
        .app
        .post("/list/", Req::bearer(&r.superuser.1).with_json(body))
        .await;
    created.assert_status(201);
    assert_eq!(created.body["is_superuser"], true);
}

async fn create_validates_like_register(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.app
        .post(
            "/list/",
            Req::bearer(&r.staff.1)
                .with_json(json!({"email": "user@example.com", "password": "1234"})),
        )
        .await
        .assert(
            400,
            json!({
                "email": ["user with this email already exists."],
                "password": [
                    "This password is too short. It must contain at least 8 characters.",
                    "This password is too common.",
                    "This password is entirely numeric.",
                ],
            }),
        );
}

async fn a_user_may_update_themself(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let response = patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"email": "Renamed@Example.com", "current_password": PASSWORD}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["email"], "renamed@example.com");
    assert_ne!(response.body["updated_at"], response.body["created_at"]);
    r.app
        .login("renamed@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn a_user_may_not_update_another_user(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    patch(
        &r.app,
        &r.user.1,
        r.other.0,
        json!({"email": "hijack@example.com"}),
    )
    .await
    .assert(403, json!({"detail": DENIED}));
    patch(
        &r.app,
        &r.user.1,
        r.other.0,
        json!({"password": "new-password-for-you-1"}),
    )
    .await
    .assert(403, json!({"detail": DENIED}));
    r.app
        .login("other@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn a_user_may_not_change_their_own_flags(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    for body in [
        json!({"is_staff": true}),
        json!({"is_superuser": true}),
        json!({"is_active": false}),
    ] {
        patch(&r.app, &r.user.1, r.user.0, body)
            .await
            .assert(403, json!({"detail": DENIED}));
    }
    let me = r.app.get(&path(r.user.0), Req::bearer(&r.user.1)).await;
    assert_eq!(
        (me.body["is_staff"].clone(), me.body["is_superuser"].clone()),
        (json!(false), json!(false))
    );
}

async fn a_value_equal_to_the_current_one_is_not_a_change(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"is_staff": false, "is_superuser": false, "is_active": true}),
    )
    .await
    .assert_status(200);
}

async fn staff_may_update_users_but_not_superusers(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let promoted = patch(&r.app, &r.staff.1, r.user.0, json!({"is_staff": true})).await;
    promoted.assert_status(200);
    assert_eq!(promoted.body["is_staff"], true);
    patch(&r.app, &r.staff.1, r.user.0, json!({"is_superuser": true}))
        .await
        .assert(403, json!({"detail": DENIED}));
    patch(
        &r.app,
        &r.staff.1,
        r.superuser.0,
        json!({"email": "x@example.com"}),
    )
    .await
    .assert(403, json!({"detail": DENIED}));
    let by_super = patch(
        &r.app,
        &r.superuser.1,
        r.user.0,
        json!({"is_superuser": true}),
    )
    .await;
    by_super.assert_status(200);
    assert_eq!(by_super.body["is_superuser"], true);
}

async fn read_only_and_unknown_fields_are_ignored(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let before = r.app.get(&path(r.user.0), Req::bearer(&r.user.1)).await;
    let response = patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"id": 999, "created_at": "2000-01-01T00:00:00Z", "last_login": "2000-01-01T00:00:00Z", "password_hash": "x", "nonsense": 1}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["id"], json!(r.user.0));
    assert_eq!(response.body["created_at"], before.body["created_at"]);
    assert_eq!(response.body["last_login"], before.body["last_login"]);
    r.app
        .login("user@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn changing_email_to_a_taken_one_is_400(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"email": "OTHER@example.com", "current_password": PASSWORD}),
    )
    .await
    .assert(
        400,
        json!({"email": ["user with this email already exists."]}),
    );
}

async fn password_set_through_the_viewset_is_validated_and_hashed(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"password": "zq9!x", "current_password": PASSWORD}),
    )
    .await
    .assert(
        400,
        json!({"password": ["This password is too short. It must contain at least 8 characters."]}),
    );
    let response = patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"password": "a-brand-new-passphrase", "current_password": PASSWORD}),
    )
    .await;
    response.assert_status(200);
    assert!(!response.text.contains("passphrase"));
    r.app
        .login("user@example.com", "a-brand-new-passphrase")
        .await
        .assert_status(200);
    r.app
        .login("user@example.com", PASSWORD)
        .await
        .assert_status(401);
}

async fn put_requires_the_email(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.app
        .request(
            "PUT",
            &path(r.user.0),
            Req::bearer(&r.user.1).with_json(json!({})),
        )
        .await
        .assert(400, json!({"email": ["This field is required."]}));
    let response = r
        .app
        .request(
            "PUT",
            &path(r.user.0),
            Req::bearer(&r.user.1)
                .with_json(json!({"email": "put@example.com", "current_password": PASSWORD})),
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.body["email"], "put@example.com");
}

async fn only_staff_may_delete_and_only_a_superuser_deletes_a_superuser(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let delete = |token: &str, id: i64| {
        let app = &r.app;
        let token = token.to_owned();
        async move { app.request("DELETE", &path(id), Req::bearer(&token)).await }
    };
    delete(&r.user.1, r.other.0)
        .await
        .assert(403, json!({"detail": DENIED}));
    delete(&r.user.1, r.user.0)
        .await
        .assert(403, json!({"detail": DENIED}));
    delete(&r.staff.1, r.superuser.0)
        .await
        .assert(403, json!({"detail": DENIED}));
    let gone = delete(&r.staff.1, r.other.0).await;
    assert_eq!((gone.status, gone.text.as_str()), (204, ""));
    r.app
        .get(&path(r.other.0), Req::bearer(&r.user.1))
        .await
        .assert(404, json!({"detail": "Not found."}));
    delete(&r.staff.1, r.other.0)
        .await
        .assert(404, json!({"detail": "Not found."}));
    let second_super = r
        .app
        .user_with_flags("super2@example.com", true, true)
        .await;
    delete(&r.superuser.1, second_super.0)
        .await
        .assert_status(204);
}

async fn deactivating_a_user_refuses_their_access_token_at_once(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.app.me(&r.user.1).await.assert_status(200);
    patch(&r.app, &r.staff.1, r.user.0, json!({"is_active": false}))
        .await
        .assert_status(200);
    r.app.get("/list/", Req::bearer(&r.user.1)).await.assert(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
}

async fn changing_a_password_revokes_existing_tokens(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let session = r.app.login("user@example.com", PASSWORD).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    patch(
        &r.app,
        &r.user.1,
        r.user.0,
        json!({"password": "a-brand-new-passphrase", "current_password": PASSWORD}),
    )
    .await
    .assert_status(200);
    let refused = r.app.me(&session.access()).await;
    refused.assert_status(401);
    assert_eq!(refused.body["messages"][0]["message"], "Token is invalid");
    r.app.refresh_token(&session.refresh()).await.assert(
        401,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
    let fresh = r
        .app
        .login("user@example.com", "a-brand-new-passphrase")
        .await;
    r.app.me(&fresh.access()).await.assert_status(200);
}

async fn deleting_a_user_refuses_their_token(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.app
        .request("DELETE", &path(r.user.0), Req::bearer(&r.staff.1))
        .await
        .assert_status(204);
    r.app.me(&r.user.1).await.assert(
        401,
        json!({"detail": "User not found", "code": "user_not_found"}),
    );
}

async fn cookie_authenticated_writes_need_the_csrf_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let registered = app.registered("jae@example.com").await;
    let id = registered.body["user"]["id"].as_i64().unwrap();
    let csrf = registered.cookie_value("csrftoken").unwrap();
    let cookies = || {
        Req::default()
            .with_cookie("access", &registered.access())
            .with_cookie("csrftoken", &csrf)
    };
    app.get(&path(id), cookies()).await.assert_status(200);
    app.request(
        "PATCH",
        &path(id),
        cookies().with_json(json!({"email": "new@example.com"})),
    )
    .await
    .assert(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let ok = app
        .request(
            "PATCH",
            &path(id),
            cookies()
                .with_header("X-CSRFToken", &csrf)
                .with_json(json!({"email": "new@example.com", "current_password": PASSWORD})),
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body["email"], "new@example.com");
    app.request(
        "PATCH",
        &path(id),
        Req::bearer(&registered.access())
            .with_json(json!({"email": "hdr@example.com", "current_password": PASSWORD})),
    )
    .await
    .assert_status(200);
}
