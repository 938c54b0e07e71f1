//! What a provider login holds between its steps dies with the user's
//! earlier credentials: a `link=true` flow and a held `social_code` are
//! refused after a logout everywhere (as after a password change or a
//! reclaim, which move the same fields), and a native ID token is
//! accepted once however its signature is re-encoded.

use latchkey_tests::app::Req;
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, tests};

tests![node:
    a_link_flow_begun_before_a_logout_everywhere_links_nothing,
    a_social_code_held_across_a_logout_everywhere_is_refused,
    an_id_token_with_its_signature_re_encoded_is_the_same_token,
];

async fn a_link_flow_begun_before_a_logout_everywhere_links_nothing(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let user = app.user("me@example.com").await;
    let flow = begin_with(
        &app,
        "oidc",
        &[("next", NEXT), ("link", "true")],
        Req::default().with_cookie("access", &user.access),
    )
    .await;
    let landing = op.log_in(&flow.location, "alice").await;

    app.logout_everywhere(&user.access).await.assert_status(202);
    let back = callback(&app, &flow, &landing).await;

    assert_eq!(back_to(&back, NEXT), Back::Error("invalid_request".into()));
    assert_eq!(identity(&app, "oidc", "alice"), None);
}

async fn a_social_code_held_across_a_logout_everywhere_is_refused(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let first = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&first, "alice@example.com");
    let held = social_code_as(&app, &op, "oidc", "alice").await;

    app.logout_everywhere(&first.access())
        .await
        .assert_status(202);

    exchange(&app, &held)
        .await
        .assert(400, invalid_social_code());
    // A code of a flow begun after it works.
    let fresh = social_code_as(&app, &op, "oidc", "alice").await;
    assert_federated_login(&exchange(&app, &fresh).await, "alice@example.com");
}

async fn an_id_token_with_its_signature_re_encoded_is_the_same_token(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let token = signed(
        &op,
        claims_for(&op, "oidc-web", "alice", Some("alice@example.com")),
    )
    .await;
    // An RS256 signature is 256 bytes: its last base64url character carries
    // 2 bits, and its 4 low bits are not part of the signature.
    let (signed_part, signature) = token.rsplit_once('.').unwrap();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *signature.as_bytes().last().unwrap();
    let value = ALPHABET.iter().position(|c| *c == last).unwrap();
    let twin = ALPHABET[value ^ 0b0001] as char;
    let re_encoded = format!("{signed_part}.{}{twin}", &signature[..signature.len() - 1]);
    assert_ne!(re_encoded, token);

    assert_federated_login(
        &native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await,
        "alice@example.com",
    );
    native_id_token(&app, "oidc", &re_encoded, CLAIMS_NONCE)
        .await
        .assert_unauthorized(provider_token_invalid());
}
