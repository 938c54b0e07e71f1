//! The user viewset at /list/: every route for every role.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, DENIED, PASSWORD, paths, roles, tests};
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

async fn every_route_needs_credentials(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let not_provided = json!({"detail": "Authentication credentials were not provided."});
    for (method, p) in [
        ("GET", "/list/".to_owned()),
        ("POST", "/list/".to_owned()),
        ("GET", paths::user(r.user.id)),
        ("PUT", paths::user(r.user.id)),
        ("PATCH", paths::user(r.user.id)),
        ("DELETE", paths::user(r.user.id)),
    ] {
        r.app
            .request(method, &p, Req::json(json!({})))
            .await
            .assert_unauthorized(not_provided.clone());
    }
}

async fn any_user_may_list_and_retrieve(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    for role in [&r.user, &r.other, &r.staff, &r.superuser] {
        let list = role.get("/list/").await;
        list.assert_status(200);
        assert_eq!(list.body["count"], 4);
        assert!(!list.text.contains("password"));
        let one = role.retrieve(r.other.id).await;
        one.assert_status(200);
        assert_eq!(one.body["email"], "other@example.com");
    }
}

async fn retrieve_of_a_missing_user_is_404(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.user
        .get("/list/999999/")
        .await
        .assert(404, json!({"detail": "Not found."}));
    r.user
        .get("/list/abc/")
        .await
        .assert(404, json!({"detail": "Not found."}));
}

async fn list_is_paginated_with_absolute_links(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let base = format!("http://127.0.0.1:{}/list/", r.app.port);
    let first = r.user.get("/list/?page_size=2").await;
    first.assert_status(200);
    assert_eq!(first.body["count"], 4);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["previous"], json!(null));
    assert_eq!(
        first.body["next"],
        json!(format!("{base}?page_size=2&page=2"))
    );
    assert_eq!(first.body["results"][0]["id"], json!(r.user.id));
    let second = r.user.get("/list/?page_size=2&page=2").await;
    assert_eq!(second.body["next"], json!(null));
    assert_eq!(
        second.body["previous"],
        json!(format!("{base}?page_size=2"))
    );
    assert_eq!(second.body["results"][1]["id"], json!(r.superuser.id));
}

async fn list_page_edges(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let last = r.user.get("/list/?page_size=3&page=2").await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 1);
    r.user
        .get("/list/?page_size=3&page=3")
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    r.user
        .get("/list/?page=0")
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    r.user
        .get("/list/?page=abc")
        .await
        .assert(404, json!({"detail": "Invalid page."}));
    let empty = r.user.get("/list/?search=nobody-matches").await;
    empty.assert(
        200,
        json!({"count": 0, "next": null, "previous": null, "results": []}),
    );
}

async fn page_size_is_capped_at_1000(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let response = r.user.get("/list/?page_size=5000").await;
    response.assert_status(200);
    assert_eq!(response.body["results"].as_array().unwrap().len(), 4);
    assert_eq!(response.body["next"], json!(null));
}

async fn search_matches_part_of_the_email(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let response = r.user.get("/list/?search=STAFF").await;
    assert_eq!(response.body["count"], 1);
    assert_eq!(response.body["results"][0]["email"], "staff@example.com");
    let wildcard = r.user.get("/list/?search=%25").await;
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
    let by_email = r.user.get("/list/?ordering=email").await;
    assert_eq!(
        emails(&by_email.body),
        [
            "other@example.com",
            "staff@example.com",
            "super@example.com",
            "user@example.com"
        ]
    );
    let by_email_desc = r.user.get("/list/?ordering=-email").await;
    assert_eq!(emails(&by_email_desc.body)[0], "user@example.com");
    let by_id_desc = r.user.get("/list/?ordering=-id").await;
    assert_eq!(by_id_desc.body["results"][0]["id"], json!(r.superuser.id));
    let by_created = r.user.get("/list/?ordering=created_at").await;
    assert_eq!(by_created.body["results"][0]["id"], json!(r.user.id));
    let by_created_desc = r.user.get("/list/?ordering=-created_at").await;
    assert_eq!(
        by_created_desc.body["results"][0]["id"],
        json!(r.superuser.id)
    );
    let unknown = r.user.get("/list/?ordering=password_hash").await;
    assert_eq!(unknown.body["results"][0]["id"], json!(r.user.id));
}

async fn only_staff_may_create(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let body = json!({"email": "new@example.com", "password": PASSWORD});
    r.user
        .create(body.clone())
        .await
        .assert(403, json!({"detail": DENIED}));
    let created = r
        .staff
        .create(json!({"email": "new@example.com", "password": PASSWORD, "is_staff": true}))
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
    r.staff
        .create(body.clone())
        .await
        .assert(403, json!({"detail": DENIED}));
    let created = r.superuser.create(body).await;
    created.assert_status(201);
    assert_eq!(created.body["is_superuser"], true);
}

async fn create_validates_like_register(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.staff
        .create(json!({"email": "user@example.com", "password": "1234"}))
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
    let response = r
        .user
        .patch(
            r.user.id,
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
    r.user
        .patch(r.other.id, json!({"email": "hijack@example.com"}))
        .await
        .assert(403, json!({"detail": DENIED}));
    r.user
        .patch(r.other.id, json!({"password": "new-password-for-you-1"}))
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
        r.user
            .patch(r.user.id, body)
            .await
            .assert(403, json!({"detail": DENIED}));
    }
    let me = r.user.retrieve(r.user.id).await;
    assert_eq!(
        (me.body["is_staff"].clone(), me.body["is_superuser"].clone()),
        (json!(false), json!(false))
    );
}

async fn a_value_equal_to_the_current_one_is_not_a_change(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.user
        .patch(
            r.user.id,
            json!({"is_staff": false, "is_superuser": false, "is_active": true}),
        )
        .await
        .assert_status(200);
}

async fn staff_may_update_users_but_not_superusers(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let promoted = r.staff.patch(r.user.id, json!({"is_staff": true})).await;
    promoted.assert_status(200);
    assert_eq!(promoted.body["is_staff"], true);
    r.staff
        .patch(r.user.id, json!({"is_superuser": true}))
        .await
        .assert(403, json!({"detail": DENIED}));
    r.staff
        .patch(r.superuser.id, json!({"email": "x@example.com"}))
        .await
        .assert(403, json!({"detail": DENIED}));
    let by_super = r
        .superuser
        .patch(r.user.id, json!({"is_superuser": true}))
        .await;
    by_super.assert_status(200);
    assert_eq!(by_super.body["is_superuser"], true);
}

async fn read_only_and_unknown_fields_are_ignored(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let before = r.user.retrieve(r.user.id).await;
    let response = r.user.patch(r.user.id,
        json!({"id": 999, "created_at": "2000-01-01T00:00:00Z", "last_login": "2000-01-01T00:00:00Z", "password_hash": "x", "nonsense": 1}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["id"], json!(r.user.id));
    assert_eq!(response.body["created_at"], before.body["created_at"]);
    assert_eq!(response.body["last_login"], before.body["last_login"]);
    r.app
        .login("user@example.com", PASSWORD)
        .await
        .assert_status(200);
}

async fn changing_email_to_a_taken_one_is_400(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.user
        .patch(
            r.user.id,
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
    r.user.patch(r.user.id,
        json!({"password": "zq9!x", "current_password": PASSWORD}),
    )
    .await
    .assert(
        400,
        json!({"password": ["This password is too short. It must contain at least 8 characters."]}),
    );
    let response = r
        .user
        .patch(
            r.user.id,
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
    r.user
        .put(r.user.id, json!({}))
        .await
        .assert(400, json!({"email": ["This field is required."]}));
    let response = r
        .user
        .put(
            r.user.id,
            json!({"email": "put@example.com", "current_password": PASSWORD}),
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.body["email"], "put@example.com");
}

async fn only_staff_may_delete_and_only_a_superuser_deletes_a_superuser(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.user
        .delete(r.other.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    r.user
        .delete(r.user.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    r.staff
        .delete(r.superuser.id)
        .await
        .assert(403, json!({"detail": DENIED}));
    let gone = r.staff.delete(r.other.id).await;
    assert_eq!((gone.status, gone.text.as_str()), (204, ""));
    r.user
        .retrieve(r.other.id)
        .await
        .assert(404, json!({"detail": "Not found."}));
    r.staff
        .delete(r.other.id)
        .await
        .assert(404, json!({"detail": "Not found."}));
    let second_super = r.app.superuser("super2@example.com").await;
    r.superuser.delete(second_super.id).await.assert_status(204);
}

async fn deactivating_a_user_refuses_their_access_token_at_once(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    r.user.me().await.assert_status(200);
    r.staff
        .patch(r.user.id, json!({"is_active": false}))
        .await
        .assert_status(200);
    r.user.get("/list/").await.assert(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
}

async fn changing_a_password_revokes_existing_tokens(mut ctx: Ctx) {
    let r = roles(&mut ctx).await;
    let session = r.app.login("user@example.com", PASSWORD).await;
    // Revocation has whole-second precision: wait for the next second.
    latchkey_tests::after_the_second_of(&session.access()).await;
    r.user
        .patch(
            r.user.id,
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
    r.staff.delete(r.user.id).await.assert_status(204);
    r.user.me().await.assert(
        401,
        json!({"detail": "User not found", "code": "user_not_found"}),
    );
}

async fn cookie_authenticated_writes_need_the_csrf_header(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let jae = app.user("jae@example.com").await;
    let path = paths::user(jae.id);
    jae.send("GET", &path, jae.cookies())
        .await
        .assert_status(200);
    jae.send(
        "PATCH",
        &path,
        jae.cookies().with_json(json!({"email": "new@example.com"})),
    )
    .await
    .assert(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let ok = jae
        .send(
            "PATCH",
            &path,
            jae.cookies_with_csrf()
                .with_json(json!({"email": "new@example.com", "current_password": PASSWORD})),
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body["email"], "new@example.com");
    jae.patch(
        jae.id,
        json!({"email": "hdr@example.com", "current_password": PASSWORD}),
    )
    .await
    .assert_status(200);
}
