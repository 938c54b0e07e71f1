//! The test providers themselves (`tests/oidc/`, `tests/support/oidc.rs`),
//! checked against the real libraries before any latchkey test leans on
//! them: oidc-provider's discovery, its pages driven over HTTP to a code,
//! id tokens that verify against its JWKS with jsonwebtoken, key rotation,
//! the silent mode, the https mode, Apple's client secret checked with jose,
//! and the GitHub imitation's flow and token check. No latchkey server runs
//! here; the bodies run under both backend names like every trial.

use std::time::Duration;

use latchkey_tests::oidc::{
    AppleKey, GitHub, GitHubApp, GitHubConfig, GitHubUser, Landing, Mode, OidcProvider, OpAccount,
    OpClient, OpConfig, Pkce, TestCa, random_value,
};
use latchkey_tests::{Ctx, tests};
use serde_json::{Value, json};

tests![node:
    discovery_names_the_issuer_its_keys_and_s256,
    a_pkce_login_through_the_pages_gives_an_id_token_that_verifies_against_the_jwks,
    rotating_the_keys_changes_the_kid_that_signs,
    silent_mode_accepts_connections_and_never_answers,
    https_mode_serves_a_certificate_of_the_test_ca,
    an_apple_client_gets_form_post_and_its_secret_jwt_is_checked_with_jose,
    the_github_imitation_checks_pkce_and_answers_the_token_check_by_app,
];

/// Where the tests' clients say they come back to (nothing listens there:
/// the landing is read, not followed).
const CALLBACK: &str = "http://127.0.0.1:9/auth/social/test/callback/";

fn web_client() -> OpClient {
    OpClient::web("web-app", "web-secret", CALLBACK)
}

fn accounts() -> Vec<OpAccount> {
    vec![
        OpAccount::new("alice", "alice@example.com"),
        OpAccount::new("bob", "bob@example.com").email_verified(json!(false)),
        OpAccount::new("carol", "carol@example.com").email_verified(json!("true")),
        OpAccount::new("dave", "dave@example.com").email_verified(Value::Null),
    ]
}

fn provider() -> OidcProvider {
    OidcProvider::start(&OpConfig {
        clients: vec![web_client()],
        accounts: accounts(),
        keys: vec![json!({"kid": "first", "alg": "RS256"})],
        ..OpConfig::default()
    })
}

/// A browser login as `sub` with PKCE: the landing, and the verifier.
async fn pkce_login(op: &OidcProvider, sub: &str, nonce: &str) -> (Landing, Pkce, String) {
    let pkce = Pkce::new();
    let state = random_value();
    let url = op.authorization_url(
        "web-app",
        CALLBACK,
        &[
            ("state", &state),
            ("nonce", nonce),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    (op.log_in(&url, sub).await, pkce, state)
}

async fn discovery_names_the_issuer_its_keys_and_s256(_ctx: Ctx) {
    let op = provider();

    let discovery = op.discovery().await;

    assert_eq!(discovery["issuer"], op.issuer.as_str());
    assert_eq!(discovery["jwks_uri"], format!("{}/jwks", op.issuer));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let response_modes = discovery["response_modes_supported"].as_array().unwrap();
    assert!(response_modes.contains(&json!("form_post")), "{discovery}");
    let jwks = op.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], "first");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "a private part published: {jwks}"
    );
}

async fn a_pkce_login_through_the_pages_gives_an_id_token_that_verifies_against_the_jwks(
    _ctx: Ctx,
) {
    let op = provider();
    let client = web_client();

    // Each form of email_verified comes through as the account has it.
    for (sub, verified) in [
        ("alice", json!(true)),
        ("bob", json!(false)),
        ("carol", json!("true")),
        ("dave", Value::Null),
    ] {
        let nonce = random_value();
        let (landing, pkce, state) = pkce_login(&op, sub, &nonce).await;
        assert!(landing.target().starts_with(CALLBACK), "{landing:?}");
        assert_eq!(landing.param("state").as_deref(), Some(state.as_str()));
        assert_eq!(landing.param("iss").as_deref(), Some(op.issuer.as_str()));

        let (status, tokens) = op
            .exchange_code(&client, &landing.code(), Some(&pkce.verifier))
            .await;

        assert_eq!(status, 200, "{tokens}");
        let claims = op
            .verify(tokens["id_token"].as_str().unwrap(), "web-app")
            .await;
        assert_eq!(claims["sub"], sub);
        assert_eq!(claims["nonce"], nonce.as_str());
        assert_eq!(claims["email"], format!("{sub}@example.com"));
        assert_eq!(
            claims.get("email_verified").cloned().unwrap_or(Value::Null),
            verified,
            "{sub}: {claims}"
        );
    }

    // The verifier is checked (a wrong one leaves the code usable), and a
    // code works once.
    let (landing, pkce, _) = pkce_login(&op, "alice", &random_value()).await;
    let code = landing.code();
    let (status, body) = op
        .exchange_code(
            &client,
            &code,
            Some("not-the-verifier-but-long-enough-0123456789"),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    let (status, body) = op.exchange_code(&client, &code, None).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    let (status, body) = op.exchange_code(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = op.exchange_code(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );

    // Cancelling at the login page sends access_denied back.
    let url = op.authorization_url("web-app", CALLBACK, &[("state", "s")]);
    let landing = op.cancel(&url).await;
    assert_eq!(
        landing.param("error").as_deref(),
        Some("access_denied"),
        "{landing:?}"
    );
    assert_eq!(landing.param("state").as_deref(), Some("s"));
}

async fn rotating_the_keys_changes_the_kid_that_signs(_ctx: Ctx) {
    let op = provider();
    let client = web_client();
    let first = op.id_token(&client, "alice", "n1").await;
    assert_eq!(
        jsonwebtoken::decode_header(&first).unwrap().kid.as_deref(),
        Some("first")
    );

    let rotated = op.rotate_keys().await;

    assert_ne!(rotated, "first");
    assert_eq!(op.signing_kid().await, rotated);
    let second = op.id_token(&client, "alice", "n2").await;
    assert_eq!(
        jsonwebtoken::decode_header(&second).unwrap().kid,
        Some(rotated.clone())
    );
    let kids: Vec<Value> = op.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!(rotated), json!("first")]);
    // Both verify while both are published.
    op.verify(&first, "web-app").await;
    op.verify(&second, "web-app").await;

    // Replaced outright: only the new key is published.
    let replaced = op
        .replace_keys(vec![json!({"kid": "third", "alg": "ES256"})])
        .await;
    assert_eq!(replaced, "third");
    let kids: Vec<Value> = op.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!("third")]);
    // A token signed by the OP's key for any claims (the forged-token tests).
    let forged = op
        .sign(
            json!({"iss": op.issuer, "aud": "web-app", "sub": "alice", "exp": latchkey_tests::now() + 60}),
            json!({}),
        )
        .await;
    assert_eq!(
        jsonwebtoken::decode_header(&forged).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert_eq!(op.verify(&forged, "web-app").await["sub"], "alice");
}

async fn silent_mode_accepts_connections_and_never_answers(_ctx: Ctx) {
    let op = provider();
    op.set_mode(Mode::Silent).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let url = op.url("/.well-known/openid-configuration");

    let started = std::time::Instant::now();
    let error = client.get(&url).send().await.unwrap_err();

    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let held = op.requests_to("/.well-known/openid-configuration").await;
    assert_eq!(
        held.len(),
        1,
        "the connection was accepted and the request read"
    );
    assert_eq!(held[0]["held"], true);

    // Down: refused; back to normal: answers on the same port, state kept.
    op.set_mode(Mode::Down).await;
    let error = client.get(&url).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    op.set_mode(Mode::Normal).await;
    assert_eq!(op.discovery().await["issuer"], op.issuer.as_str());
    assert_eq!(op.jwks().await["keys"][0]["kid"], "first");
}

async fn https_mode_serves_a_certificate_of_the_test_ca(_ctx: Ctx) {
    let ca = TestCa::make();
    let op = OidcProvider::start(&OpConfig {
        clients: vec![web_client()],
        accounts: accounts(),
        tls: Some(ca.files()),
        ..OpConfig::default()
    });
    assert!(op.issuer.starts_with("https://127.0.0.1:"), "{}", op.issuer);

    // A client that trusts the CA gets the document, and a login works.
    let discovery = op.discovery().await;
    assert_eq!(discovery["token_endpoint"], format!("{}/token", op.issuer));
    let claims = op
        .verify(&op.id_token(&web_client(), "alice", "n").await, "web-app")
        .await;
    assert_eq!(claims["iss"], op.issuer.as_str());

    // One that does not (the system's roots only) refuses the certificate.
    let error = reqwest::Client::new()
        .get(op.url("/jwks"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");

    // OpenSSL trusts it through SSL_CERT_FILE, as latchkey will be started.
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", op.port))
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1", "-brief"])
        .env("SSL_CERT_FILE", ca.ca_file())
        .env_remove("SSL_CERT_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl s_client with SSL_CERT_FILE: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn an_apple_client_gets_form_post_and_its_secret_jwt_is_checked_with_jose(_ctx: Ctx) {
    let key = AppleKey::fixture();
    let client = OpClient::apple("com.example.web", CALLBACK, &key);
    let op = OidcProvider::start(&OpConfig {
        clients: vec![client.clone()],
        accounts: accounts(),
        keys: vec![json!({"kid": "apple-like", "alg": "RS256"})],
        ..OpConfig::default()
    });
    let pkce = Pkce::new();
    let login = |response_mode: &'static str| {
        op.authorization_url(
            "com.example.web",
            CALLBACK,
            &[
                ("state", "st"),
                ("nonce", "nn"),
                ("response_mode", response_mode),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ],
        )
    };

    // Only form_post is allowed to this client.
    let refused = op.log_in(&login("query"), "carol").await;
    assert!(
        matches!(refused, Landing::Stopped { status: 400, .. }),
        "{refused:?}"
    );
    let landing = op.log_in(&login("form_post"), "carol").await;
    let Landing::FormPost { action, .. } = &landing else {
        panic!("not a form_post: {landing:?}");
    };
    assert_eq!(action, CALLBACK);
    assert_eq!(landing.param("state").as_deref(), Some("st"));
    let code = landing.code();
    let exchange = |secret: String| {
        let code = code.clone();
        let verifier = pkce.verifier.clone();
        let op = &op;
        async move {
            op.token_request(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", &verifier),
                    ("client_id", "com.example.web"),
                    ("client_secret", &secret),
                ],
                None,
            )
            .await
        }
    };

    // A secret signed by another key, or for another client: invalid_client.
    let foreign = AppleKey {
        private_pem: std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keys/es256.pem"
        ))
        .unwrap(),
        ..key.clone()
    };
    let (status, body) =
        exchange(foreign.client_secret("com.example.web", Duration::from_secs(600))).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    let (status, body) =
        exchange(key.client_secret("com.example.other", Duration::from_secs(600))).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    let checks: Vec<Value> = op
        .requests_to("/token")
        .await
        .iter()
        .map(|r| r["apple_client_secret"].clone())
        .collect();
    assert!(checks.iter().all(|c| c != "valid"), "{checks:?}");

    // Apple's own form: ES256 by the team's key, then the code is exchanged.
    let (status, tokens) =
        exchange(key.client_secret("com.example.web", Duration::from_secs(600))).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = op
        .verify(tokens["id_token"].as_str().unwrap(), "com.example.web")
        .await;
    assert_eq!(
        (&claims["sub"], &claims["email_verified"]),
        (&json!("carol"), &json!("true"))
    );
    assert_eq!(
        op.requests_to("/token").await.last().unwrap()["apple_client_secret"],
        "valid"
    );
}

async fn the_github_imitation_checks_pkce_and_answers_the_token_check_by_app(_ctx: Ctx) {
    let app = |id: &str| GitHubApp {
        client_id: id.to_owned(),
        client_secret: format!("{id}-secret"),
        redirect_uris: vec![CALLBACK.to_owned()],
    };
    let github = GitHub::start(&GitHubConfig {
        apps: vec![app("latchkey-app"), app("other-app")],
        users: vec![GitHubUser::new("octocat", 583231, "octocat@example.com")],
        ..GitHubConfig::default()
    });
    let pkce = Pkce::new();
    let mut authorize = reqwest::Url::parse(&github.url("/login/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", "latchkey-app")
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "read:user user:email")
        .append_pair("state", "st")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let landing = github.log_in(authorize.as_str(), "octocat").await;
    assert_eq!(landing.param("state").as_deref(), Some("st"), "{landing:?}");
    let client = github.client(false);
    let exchange = |verifier: &str, accept: &str| {
        client
            .post(github.url("/login/oauth/access_token"))
            .header("accept", accept)
            .form(&[
                ("client_id", "latchkey-app"),
                ("client_secret", "latchkey-app-secret"),
                ("code", &landing.code()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier),
            ])
            .send()
    };

    // A wrong verifier: GitHub's refusal, 200 with an error field.
    let refused = exchange(
        "wrong-verifier-wrong-verifier-wrong-verifier",
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 200);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "bad_verification_code"
    );
    // Without Accept: a form body.
    let answer = exchange(&pkce.verifier, "*/*").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let form = answer.text().await.unwrap();
    let token: String = reqwest::Url::parse(&format!("http://x/?{form}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no access_token in {form}"));

    let user: Value = client
        .get(github.url("/user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&user["id"], &user["login"]),
        (&json!(583231), &json!("octocat"))
    );
    let emails: Value = client
        .get(github.url("/user/emails"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        emails,
        json!([{"email": "octocat@example.com", "primary": true, "verified": true, "visibility": null}])
    );

    // The token check: 200 for this app's token, 404 for another app's.
    let check = |token: String| {
        client
            .post(github.url("/applications/latchkey-app/token"))
            .basic_auth("latchkey-app", Some("latchkey-app-secret"))
            .json(&json!({ "access_token": token }))
            .send()
    };
    let own = check(token.clone()).await.unwrap();
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.unwrap();
    assert_eq!(
        (&own["user"]["id"], &own["app"]["client_id"]),
        (&json!(583231), &json!("latchkey-app"))
    );
    let others = github.mint_token("other-app", "octocat", None).await;
    let other = check(others).await.unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(other.json::<Value>().await.unwrap()["message"], "Not Found");
}
