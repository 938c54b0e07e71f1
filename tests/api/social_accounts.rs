//! Sign-in with a provider: which account a provider identity signs in to
//! (contract: "Which account", its four rules, and "How a login
//! completes": inactive, unverified under `mandatory`, a second factor),
//! through native id tokens and the browser flow alike.

use latchkey_tests::app::Req;
use latchkey_tests::mfa_enrol::{
    assert_ended, assert_live, assurance, enrol, mfa_status, mfa_token_of, verify_mfa,
};
use latchkey_tests::oidc::{OidcProvider, OpAccount};
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, PASSWORD, TestUser, tests};
use serde_json::json;

tests![node:
    a_linked_identity_signs_in_its_user_whatever_email_it_now_has,
    a_verified_local_account_gets_the_identity_and_keeps_its_password_and_sessions,
    an_unverified_local_account_is_reclaimed_by_the_addresss_owner,
    a_taken_email_the_provider_does_not_vouch_for_is_account_exists,
    an_email_verified_that_is_not_json_true_counts_as_unverified,
    a_new_identity_makes_a_user_with_the_providers_verification_and_no_password,
    with_signup_closed_no_user_is_made_but_existing_accounts_sign_in,
    no_email_from_the_provider_is_email_missing,
    an_inactive_user_gets_a_social_code_and_the_exchange_answers_no_active_account,
    mandatory_verification_refuses_an_address_the_provider_has_not_verified,
];

tests![django + node:
    a_reclaim_removes_the_squatters_totp_and_recovery_codes,
    a_provider_login_of_a_totp_user_asks_for_the_second_factor,
];

/// An id token for `oidc` (signed by the OP) of `sub` with `email` and
/// `email_verified`.
async fn token_for(
    op: &OidcProvider,
    sub: &str,
    email: &str,
    verified: serde_json::Value,
) -> String {
    let mut claims = claims_for(op, "oidc-web", sub, Some(email));
    claims["email_verified"] = verified;
    signed(op, claims).await
}

async fn native_login(
    app: &latchkey_tests::TestApp,
    op: &OidcProvider,
    sub: &str,
    email: &str,
) -> latchkey_tests::Response {
    let token = token_for(op, sub, email, json!(true)).await;
    native_id_token(app, "oidc", &token, CLAIMS_NONCE).await
}

async fn a_linked_identity_signs_in_its_user_whatever_email_it_now_has(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let first = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&first, "alice@example.com");
    let user = user_id_of(&first);

    // The provider now says another address (one a local user holds, even).
    app.registered("renamed@example.com").await;
    op.set_accounts(&[OpAccount::new("alice", "renamed@example.com")])
        .await;
    let again = browser_login(&app, &op, "oidc", "alice").await;
    let native_again = native_login(&app, &op, "alice", "renamed@example.com").await;

    for login in [&again, &native_again] {
        assert_federated_login(login, "alice@example.com");
        assert_eq!(user_id_of(login), user);
    }
    assert_eq!(user_count(&app), 2);
    let linked = app.get(paths::LINKED, Req::bearer(&again.access())).await;
    linked.assert_status(200);
    assert!(
        linked.body["results"][0]["last_login"].is_string(),
        "{}",
        linked.text
    );
}

async fn a_verified_local_account_gets_the_identity_and_keeps_its_password_and_sessions(
    mut ctx: Ctx,
) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let local = app.user("alice@example.com").await;
    set_email_verified(&app, local.id, true);

    let login = browser_login(&app, &op, "oidc", "alice").await;

    assert_federated_login(&login, "alice@example.com");
    assert_eq!(user_id_of(&login), local.id);
    assert_eq!(
        identity(&app, "oidc", "alice").map(|i| i.user_id),
        Some(local.id)
    );
    assert_live(&local).await;
    app.logged_in("alice@example.com").await;
    // Native, the same.
    let native = native_login(&app, &op, "alice", "alice@example.com").await;
    assert_eq!(user_id_of(&native), local.id);
    assert_live(&local).await;
    assert_eq!(user_count(&app), 1);
}

/// Links the partner provider's identity `sub` to `user` (a `link=true`
/// flow with the user's access cookie).
async fn link_partner(
    app: &latchkey_tests::TestApp,
    op: &OidcProvider,
    user: &TestUser,
    sub: &str,
) {
    let flow = begin_with(
        app,
        "partner",
        &[("next", NEXT), ("link", "true")],
        Req::default().with_cookie("access", &user.access),
    )
    .await;
    let landing = op.log_in(&flow.location, sub).await;
    let back = callback(app, &flow, &landing).await;
    assert_eq!(back_to(&back, NEXT), Back::Linked("partner".into()));
}

fn reclaim_accounts() -> Vec<OpAccount> {
    vec![
        OpAccount::new("owner", "squatted@example.com"),
        OpAccount::new("mallory", "mallory@example.com"),
    ]
}

async fn an_unverified_local_account_is_reclaimed_by_the_addresss_owner(mut ctx: Ctx) {
    let op = start_op(reclaim_accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .oidc("partner", &op)
        .spawn(&mut ctx)
        .await;
    // Someone registered the owner's address first, linked a provider
    // identity of their own and holds two sessions.
    let squatter = app.user("squatted@example.com").await;
    link_partner(&app, &op, &squatter, "mallory").await;
    let other_session = app.logged_in("squatted@example.com").await;

    // The owner signs in through a provider that vouches for the address.
    let login = browser_login(&app, &op, "oidc", "owner").await;

    assert_federated_login(&login, "squatted@example.com");
    assert_eq!(
        user_id_of(&login),
        squatter.id,
        "the account is reclaimed, not a new one"
    );
    assert_eq!(login.body["user"]["email_verified"], true, "{}", login.text);
    // The squatter keeps no way back in: no password, no session, no
    // other identity.
    app.login("squatted@example.com", PASSWORD)
        .await
        .assert_unauthorized(no_active_account());
    for session in [&squatter, &other_session] {
        session.me().await.assert_status(401);
        app.refresh_token(&session.refresh).await.assert_status(401);
    }
    assert!(identity(&app, "partner", "mallory").is_none());
    let linked = app.get(paths::LINKED, Req::bearer(&login.access())).await;
    linked.assert_status(200);
    let results = linked.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", linked.text);
    assert_eq!(
        (&results[0]["provider"], &results[0]["subject"]),
        (&json!("oidc"), &json!("owner"))
    );
    let stored = stored_user(&app, "squatted@example.com").unwrap();
    assert!(!stored.has_usable_password());
    assert!(stored.email_verified);
    // mallory's identity now signs in to an account of its own.
    let mallory = browser_login(&app, &op, "partner", "mallory").await;
    assert_federated_login(&mallory, "mallory@example.com");
    assert_ne!(user_id_of(&mallory), squatter.id);
    // The owner's session is live.
    app.me(&login.access()).await.assert_status(200);
}

async fn a_taken_email_the_provider_does_not_vouch_for_is_account_exists(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let bob = app.user("bob@example.com").await;
    let dave = app.user("dave@example.com").await;
    // Even a verified local account is not linked on an unverified claim.
    set_email_verified(&app, dave.id, true);

    for (sub, verified, email) in [
        ("bob", json!(false), "bob@example.com"),
        ("dave", json!(null), "dave@example.com"),
        ("dave", json!("true"), "dave@example.com"),
    ] {
        let mut claims = claims_for(&op, "oidc-web", sub, Some(email));
        if verified.is_null() {
            claims.as_object_mut().unwrap().remove("email_verified");
        } else {
            claims["email_verified"] = verified.clone();
        }
        let token = signed(&op, claims).await;
        let refused = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
        assert_eq!(
            (refused.status, &refused.body),
            (409, &account_exists()),
            "email_verified {verified}: {}",
            refused.text
        );
    }
    for sub in ["bob", "dave"] {
        let refused = callback_as(&app, &op, "oidc", sub).await;
        assert_eq!(error_of(&refused), "account_exists", "{sub}");
    }

    assert!(identity(&app, "oidc", "bob").is_none());
    assert!(identity(&app, "oidc", "dave").is_none());
    assert_eq!(user_count(&app), 2);
    assert_live(&bob).await;
    assert_live(&dave).await;
    app.logged_in("bob@example.com").await;
}

/// `email_verified` counts only as the JSON `true`: any other value is
/// "not verified" (rule 3 for a taken address, an unverified new user),
/// not a token to refuse.
async fn an_email_verified_that_is_not_json_true_counts_as_unverified(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    app.user("taken@example.com").await;

    // Every value is tried; the answers that break the rule are listed
    // together.
    let mut wrong = Vec::new();
    for (i, verified) in [json!(1), json!("yes"), json!("True"), json!({"v": true})]
        .into_iter()
        .enumerate()
    {
        let token = token_for(&op, &format!("t{i}"), "taken@example.com", verified.clone()).await;
        let refused = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
        if (refused.status, &refused.body) != (409, &account_exists()) {
            wrong.push(format!(
                "taken address, email_verified {verified}: {} {}",
                refused.status, refused.text
            ));
        }
        let email = format!("new-{i}@example.com");
        let token = token_for(&op, &format!("n{i}"), &email, verified.clone()).await;
        let login = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
        if login.status != 200 || login.body["user"]["email_verified"] != false {
            wrong.push(format!(
                "new address, email_verified {verified}: {} {}",
                login.status, login.text
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

async fn a_new_identity_makes_a_user_with_the_providers_verification_and_no_password(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    let alice = browser_login(&app, &op, "oidc", "alice").await;
    let bob = browser_login(&app, &op, "oidc", "bob").await;
    let dave = browser_login(&app, &op, "oidc", "dave").await;

    for (login, email, verified) in [
        (&alice, "alice@example.com", true),
        (&bob, "bob@example.com", false),
        (&dave, "dave@example.com", false),
    ] {
        assert_federated_login(login, email);
        assert_eq!(login.body["user"]["email_verified"], verified, "{email}");
        let stored = stored_user(&app, email).unwrap();
        assert!(!stored.has_usable_password(), "{email}");
        assert_eq!(stored.email_verified, verified);
        app.login(email, PASSWORD)
            .await
            .assert_unauthorized(no_active_account());
        let unlink = app
            .request(
                "DELETE",
                &paths::unlink("oidc"),
                Req::bearer(&login.access()),
            )
            .await;
        assert_coded(&unlink, 400, "last_login_method");
    }
    assert_eq!(user_count(&app), 3);
}

async fn with_signup_closed_no_user_is_made_but_existing_accounts_sign_in(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .set("SOCIAL_SIGNUP", "false")
        .spawn(&mut ctx)
        .await;

    native_login(&app, &op, "alice", "alice@example.com")
        .await
        .assert(403, signup_closed());
    let refused = callback_as(&app, &op, "oidc", "alice").await;
    assert_eq!(error_of(&refused), "signup_closed");
    assert_eq!(user_count(&app), 0);
    assert!(identity(&app, "oidc", "alice").is_none());

    // A verified local account gets the identity linked all the same.
    let local = app.user("alice@example.com").await;
    set_email_verified(&app, local.id, true);
    let login = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&login, "alice@example.com");
    assert_eq!(user_id_of(&login), local.id);
}

async fn no_email_from_the_provider_is_email_missing(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    let claims = claims_for(&op, "oidc-web", "erin", None);
    let token = signed(&op, claims).await;
    let refused = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
    assert_coded(&refused, 400, "email_missing");
    let refused = callback_as(&app, &op, "oidc", "erin").await;
    assert_eq!(error_of(&refused), "email_missing");

    assert_eq!(user_count(&app), 0);
    assert!(identity(&app, "oidc", "erin").is_none());
}

async fn an_inactive_user_gets_a_social_code_and_the_exchange_answers_no_active_account(
    mut ctx: Ctx,
) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let admin = app.superuser("admin@example.com").await;
    let alice = browser_login(&app, &op, "oidc", "alice").await;
    app.deactivate(&admin, user_id_of(&alice)).await;

    let code = social_code_as(&app, &op, "oidc", "alice").await;
    let refused = exchange(&app, &code).await;

    refused.assert_unauthorized(no_active_account());
    assert_eq!(refused.set_cookie("access"), None);
    native_login(&app, &op, "alice", "alice@example.com")
        .await
        .assert_unauthorized(no_active_account());
}

async fn mandatory_verification_refuses_an_address_the_provider_has_not_verified(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .set("EMAIL_VERIFICATION", "mandatory")
        .spawn(&mut ctx)
        .await;

    let code = social_code_as(&app, &op, "oidc", "bob").await;
    exchange(&app, &code)
        .await
        .assert_unauthorized(email_not_verified());
    let token = token_for(&op, "bob", "bob@example.com", json!(false)).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert_unauthorized(email_not_verified());

    // A verified address signs in.
    let login = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&login, "alice@example.com");
}

async fn a_reclaim_removes_the_squatters_totp_and_recovery_codes(mut ctx: Ctx) {
    let op = start_op(reclaim_accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let squatter = app.user("squatted@example.com").await;
    let enrolled = enrol(&squatter).await;
    let status = mfa_status(&enrolled.user).await;
    assert_eq!(status.body["totp"]["enabled"], true, "{}", status.text);

    // The owner signs in: no second factor is asked (the squatter's is gone).
    let login = browser_login(&app, &op, "oidc", "owner").await;

    assert_federated_login(&login, "squatted@example.com");
    assert_eq!(user_id_of(&login), squatter.id);
    let owner = TestUser::of(&app, &login);
    let status = mfa_status(&owner).await;
    status.assert_status(200);
    assert_eq!(
        status.body["totp"],
        json!({"enabled": false}),
        "{}",
        status.text
    );
    assert_eq!(
        status.body["recovery_codes"]["unused"], 0,
        "{}",
        status.text
    );
    assert_ended(&app, &enrolled.user).await;
    // The squatter's recovery codes and TOTP no longer complete a login
    // (there is no password to start one with either).
    app.login("squatted@example.com", PASSWORD)
        .await
        .assert_unauthorized(no_active_account());
}

async fn a_provider_login_of_a_totp_user_asks_for_the_second_factor(mut ctx: Ctx) {
    let op = start_op(vec![OpAccount::new("t", "totp@example.com")]);
    let app = spawn_oidc(&mut ctx, &op).await;
    let local = app.user("totp@example.com").await;
    let mut enrolled = enrol(&local).await;
    set_email_verified(&app, local.id, true);

    // The browser flow: the exchange answers mfa_required.
    let code = social_code_as(&app, &op, "oidc", "t").await;
    let first = exchange(&app, &code).await;
    let mfa_token = mfa_token_of(&first);
    let code = enrolled.totp.next_code().await;
    let done = verify_mfa(&app, &mfa_token, json!({"code": code})).await;

    done.assert_status(200);
    assert_eq!(done.body["message"], "login success");
    assert_eq!(user_id_of(&done), local.id);
    assert_eq!(done.cookie_value("access"), Some(done.access()));
    assert_eq!(assurance(&done.access()), (json!(["fed", "otp"]), json!(2)));
    assert_eq!(
        assurance(&done.refresh()),
        (json!(["fed", "otp"]), json!(2))
    );
    // The mfa_token is spent.
    verify_mfa(
        &app,
        &mfa_token,
        json!({"code": enrolled.totp.next_code().await}),
    )
    .await
    .assert_unauthorized(
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    );

    // Native: the same, with a recovery code.
    let token = token_for(&op, "t", "totp@example.com", json!(true)).await;
    let first = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
    let mfa_token = mfa_token_of(&first);
    let done = verify_mfa(
        &app,
        &mfa_token,
        json!({"recovery_code": enrolled.recovery_codes[0]}),
    )
    .await;
    done.assert_status(200);
    assert_eq!(assurance(&done.access()), (json!(["fed", "rec"]), json!(2)));
}
