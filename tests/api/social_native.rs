//! Sign-in with a provider, native apps (contract: "Native apps" and the
//! provider rules' details): `POST /auth/social/{name}/token/` with an id
//! token and its nonce, or GitHub's access token; every token that must
//! log no one in answers 401 `provider_token_invalid` and writes nothing.

use latchkey_tests::app::Req;
use latchkey_tests::oidc::{GitHub, GitHubConfig, GitHubUser};
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, now, tests};
use serde_json::{Value, json};

tests![node:
    a_native_id_token_logs_in_and_is_accepted_once,
    id_tokens_for_the_client_ids_are_accepted_and_for_other_clients_refused,
    the_nonce_must_equal_the_claim_or_its_sha256_must,
    tokens_that_must_log_no_one_in_are_401_provider_token_invalid,
    exp_and_iat_are_checked_with_leeway,
    a_key_rotation_at_the_provider_is_picked_up_by_fetching_the_keys_again,
    a_github_access_token_logs_in_only_when_the_token_check_says_it_is_this_apps,
    the_token_endpoint_ignores_stale_credentials,
    the_token_endpoint_of_an_unknown_provider_is_404,
    email_verified_as_the_string_true_counts_only_for_apple,
];

async fn a_native_id_token_logs_in_and_is_accepted_once(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let id_token = id_token_of(&op, &web_client("oidc"), "alice", "native-nonce-1").await;

    let login = native_id_token(&app, "oidc", &id_token, "native-nonce-1").await;

    assert_federated_login(&login, "alice@example.com");
    assert_eq!(login.body["user"]["email_verified"], true);
    let user = user_id_of(&login);
    assert_eq!(
        identity(&app, "oidc", "alice").map(|i| i.user_id),
        Some(user)
    );
    // The same id token again: refused, nothing more written.
    native_id_token(&app, "oidc", &id_token, "native-nonce-1")
        .await
        .assert_unauthorized(provider_token_invalid());
    // Another id token of the same person: the same user.
    let again = id_token_of(&op, &web_client("oidc"), "alice", "native-nonce-2").await;
    let second = native_id_token(&app, "oidc", &again, "native-nonce-2").await;
    assert_federated_login(&second, "alice@example.com");
    assert_eq!(user_id_of(&second), user);
    assert_eq!(user_count(&app), 1);
}

async fn id_tokens_for_the_client_ids_are_accepted_and_for_other_clients_refused(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    // The native app's own client id, listed in SOCIAL_OIDC_CLIENT_IDS.
    let ios = id_token_of(&op, &native_client(NATIVE_CLIENT), "alice", "n-ios").await;
    assert_federated_login(
        &native_id_token(&app, "oidc", &ios, "n-ios").await,
        "alice@example.com",
    );

    // A real id token of the same OP, for an app latchkey does not list.
    let stranger = id_token_of(&op, &native_client(STRANGER_CLIENT), "bob", "n-x").await;
    native_id_token(&app, "oidc", &stranger, "n-x")
        .await
        .assert_unauthorized(provider_token_invalid());
    // The partner provider's client, at the same OP, is not oidc's either.
    let partner = id_token_of(&op, &web_client("partner"), "bob", "n-p").await;
    native_id_token(&app, "oidc", &partner, "n-p")
        .await
        .assert_unauthorized(provider_token_invalid());
    assert!(stored_user(&app, "bob@example.com").is_none());
}

async fn the_nonce_must_equal_the_claim_or_its_sha256_must(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let claims = |nonce: Option<&str>| {
        let mut claims = claims_for(&op, "oidc-web", "alice", Some("alice@example.com"));
        match nonce {
            Some(nonce) => claims["nonce"] = json!(nonce),
            None => {
                claims.as_object_mut().unwrap().remove("nonce");
            }
        }
        claims
    };

    // Equal.
    let token = signed(&op, claims(Some("raw-nonce-1"))).await;
    native_id_token(&app, "oidc", &token, "raw-nonce-1")
        .await
        .assert_status(200);
    // Its SHA-256 in hex is the claim (Apple's SDKs).
    let token = signed(&op, claims(Some(&sha256_hex("raw-nonce-2")))).await;
    native_id_token(&app, "oidc", &token, "raw-nonce-2")
        .await
        .assert_status(200);

    // Wrong, missing, null, the hash sent for a raw claim, another case.
    let token = signed(&op, claims(Some("raw-nonce-3"))).await;
    for body in [
        json!({"id_token": token, "nonce": "raw-nonce-4"}),
        json!({"id_token": token}),
        json!({"id_token": token, "nonce": sha256_hex("raw-nonce-3")}),
        json!({"id_token": token, "nonce": "RAW-NONCE-3"}),
    ] {
        native(&app, "oidc", body.clone())
            .await
            .assert_unauthorized(provider_token_invalid());
    }
    // None of those spent it: with the right nonce it is accepted once.
    native_id_token(&app, "oidc", &token, "raw-nonce-3")
        .await
        .assert_status(200);

    // A token without a nonce needs none.
    let token = signed(&op, claims(None)).await;
    let login = native(&app, "oidc", json!({"id_token": token})).await;
    assert_federated_login(&login, "alice@example.com");
}

async fn tokens_that_must_log_no_one_in_are_401_provider_token_invalid(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let good = || claims_for(&op, "oidc-web", "alice", Some("alice@example.com"));
    let with = |field: &str, value: Value| {
        let mut claims = good();
        claims[field] = value;
        claims
    };
    let without = |field: &str| {
        let mut claims = good();
        claims.as_object_mut().unwrap().remove(field);
        claims
    };
    let now = now();
    let mut refused: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            signed(&op, with("aud", json!("another-app"))).await,
        ),
        (
            "aud a list without us",
            signed(&op, with("aud", json!(["a", "b"]))).await,
        ),
        (
            "wrong iss",
            signed(&op, with("iss", json!("https://evil.test"))).await,
        ),
        (
            "iss with a trailing slash",
            signed(&op, with("iss", json!(format!("{}/", op.issuer)))).await,
        ),
        ("no iss", signed(&op, without("iss")).await),
        ("no sub", signed(&op, without("sub")).await),
        ("no exp", signed(&op, without("exp")).await),
        ("expired", signed(&op, with("exp", json!(now - 30))).await),
        (
            "iat ahead",
            signed(&op, with("iat", json!(now + 300))).await,
        ),
    ];
    // Headers and signatures.
    let claims = good();
    let none = jwt_parts(
        &json!({"alg": "none", "typ": "JWT", "kid": OP_KID}),
        &claims,
        b"",
    );
    refused.push(("alg none", none));
    let hs256_public = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(OP_KID.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(fixture_key("rs256.pub.pem").as_bytes()),
        )
        .unwrap()
    };
    refused.push(("HS256 keyed with the public key", hs256_public));
    let forged = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(OP_KID.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(fixture_key("rs256-old.pem").as_bytes())
                .unwrap(),
        )
        .unwrap()
    };
    refused.push(("signed by another key under the OP's kid", forged));
    let unknown_kid = op.sign(good(), json!({"kid": "a-kid-nobody-has"})).await;
    refused.push(("unknown kid", unknown_kid));
    let genuine = signed(&op, good()).await;
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    let tampered_claims = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with("sub", json!("mallory"))).unwrap())
    };
    parts[1] = tampered_claims;
    refused.push(("claims changed under a genuine signature", parts.join(".")));
    refused.push(("garbage", "not.a.jwt".to_owned()));

    for (what, token) in &refused {
        let response = native_id_token(&app, "oidc", token, CLAIMS_NONCE).await;
        assert_eq!(
            (response.status, &response.body),
            (401, &provider_token_invalid()),
            "{what}: {}",
            response.text
        );
        assert_eq!(response.set_cookie("access"), None, "{what}");
    }
    assert_eq!(user_count(&app), 0, "nothing was written");
    assert!(identity(&app, "oidc", "alice").is_none());

    // The genuine token, untouched, logs in.
    assert_federated_login(
        &native_id_token(&app, "oidc", &genuine, CLAIMS_NONCE).await,
        "alice@example.com",
    );
}

async fn exp_and_iat_are_checked_with_leeway(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .set("LEEWAY", "60")
        .spawn(&mut ctx)
        .await;
    let now = now();
    let at = |exp: i64, iat: i64| {
        let mut claims = claims_for(&op, "oidc-web", "alice", Some("alice@example.com"));
        claims["exp"] = json!(exp);
        claims["iat"] = json!(iat);
        claims
    };

    // Within the leeway.
    let token = signed(&op, at(now - 30, now - 600)).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert_status(200);
    let token = signed(&op, at(now + 600, now + 30)).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert_status(200);
    // Beyond it.
    let token = signed(&op, at(now - 120, now - 700)).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert_unauthorized(provider_token_invalid());
    let token = signed(&op, at(now + 900, now + 300)).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert_unauthorized(provider_token_invalid());
}

async fn a_key_rotation_at_the_provider_is_picked_up_by_fetching_the_keys_again(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let first = id_token_of(&op, &web_client("oidc"), "alice", "n1").await;
    native_id_token(&app, "oidc", &first, "n1")
        .await
        .assert_status(200);
    let fetched = op.requests_to("/jwks").await.len();
    assert!(fetched >= 1);

    // A second login with the same key uses the cached keys.
    let second = id_token_of(&op, &web_client("oidc"), "alice", "n2").await;
    native_id_token(&app, "oidc", &second, "n2")
        .await
        .assert_status(200);
    assert_eq!(
        op.requests_to("/jwks").await.len(),
        fetched,
        "the keys are cached"
    );

    // The OP rotates: a kid latchkey has not seen makes it fetch again.
    let rotated = op.rotate_keys().await;
    let third = id_token_of(&op, &web_client("oidc"), "alice", "n3").await;
    assert_eq!(
        jsonwebtoken::decode_header(&third).unwrap().kid,
        Some(rotated)
    );
    native_id_token(&app, "oidc", &third, "n3")
        .await
        .assert_status(200);
    assert!(op.requests_to("/jwks").await.len() > fetched);

    // A kid never published is refused.
    let unknown = op
        .sign(
            claims_for(&op, "oidc-web", "alice", Some("alice@example.com")),
            json!({"kid": "never-published"}),
        )
        .await;
    native_id_token(&app, "oidc", &unknown, CLAIMS_NONCE)
        .await
        .assert_unauthorized(provider_token_invalid());
}

async fn a_github_access_token_logs_in_only_when_the_token_check_says_it_is_this_apps(
    mut ctx: Ctx,
) {
    let github = GitHub::start(&GitHubConfig {
        apps: github_apps(),
        users: vec![GitHubUser::new("octocat", 583231, "octocat@example.com")],
        ..GitHubConfig::default()
    });
    let app = Social::new().github(&github).spawn(&mut ctx).await;

    // Another app's token of the same user, an unknown token, nothing.
    let others = github
        .mint_token(OTHER_GITHUB_CLIENT, "octocat", None)
        .await;
    for body in [
        json!({"access_token": others}),
        json!({"access_token": "gho_unknown0123456789"}),
    ] {
        native(&app, "github", body)
            .await
            .assert_unauthorized(provider_token_invalid());
    }
    assert_eq!(user_count(&app), 0);
    let checks = github
        .requests_to(&format!("/applications/{GITHUB_CLIENT}/token"))
        .await;
    assert!(!checks.is_empty(), "the token check was asked");
    assert_eq!(checks[0]["method"], "POST");
    assert_eq!(checks[0]["authorization"], "Basic", "{}", checks[0]);
    assert_eq!(
        checks[0]["body"]["access_token"],
        json!(others),
        "{}",
        checks[0]
    );

    // This app's token.
    let own = github.mint_token(GITHUB_CLIENT, "octocat", None).await;
    let login = native(&app, "github", json!({"access_token": own})).await;

    assert_federated_login(&login, "octocat@example.com");
    assert_eq!(
        identity(&app, "github", "583231").map(|i| i.user_id),
        Some(user_id_of(&login))
    );
}

async fn the_token_endpoint_ignores_stale_credentials(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let someone = app.user("someone@example.com").await;
    app.logout(&someone.refresh).await;
    let token = id_token_of(&op, &web_client("oidc"), "alice", "n").await;

    let login = app
        .post(
            &paths::token("oidc"),
            Req::json(json!({"id_token": token, "nonce": "n"}))
                .with_header("authorization", "Bearer garbage")
                .with_cookie("access", &someone.access)
                .with_cookie("refresh", &someone.refresh),
        )
        .await;

    assert_federated_login(&login, "alice@example.com");
}

async fn the_token_endpoint_of_an_unknown_provider_is_404(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let token = id_token_of(&op, &web_client("oidc"), "alice", "n").await;

    for name in ["google", "partner", "nope"] {
        let response = native_id_token(&app, name, &token, "n").await;
        assert_detail(&response, 404);
    }
    // Not spent by those.
    native_id_token(&app, "oidc", &token, "n")
        .await
        .assert_status(200);
}

async fn email_verified_as_the_string_true_counts_only_for_apple(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .apple(&op)
        .spawn(&mut ctx)
        .await;
    let claims = |aud: &str, sub: &str, email: &str| {
        let mut claims = claims_for(&op, aud, sub, Some(email));
        claims["email_verified"] = json!("true");
        claims
    };

    // A generic provider: "true" is not true.
    let token = signed(&op, claims("oidc-web", "g1", "generic@example.com")).await;
    let login = native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await;
    assert_federated_login(&login, "generic@example.com");
    assert_eq!(
        login.body["user"]["email_verified"], false,
        "{}",
        login.text
    );
    // So a local account with that address is not linked to it.
    app.registered("local@example.com").await;
    let token = signed(&op, claims("oidc-web", "g2", "local@example.com")).await;
    native_id_token(&app, "oidc", &token, CLAIMS_NONCE)
        .await
        .assert(409, account_exists());
    assert!(identity(&app, "oidc", "g2").is_none());

    // Apple: "true" is true.
    let token = signed(&op, claims(APPLE_CLIENT, "a1", "apple@example.com")).await;
    let login = native_id_token(&app, "apple", &token, CLAIMS_NONCE).await;
    assert_federated_login(&login, "apple@example.com");
    assert_eq!(login.body["user"]["email_verified"], true, "{}", login.text);
}
