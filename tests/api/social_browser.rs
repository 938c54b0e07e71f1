//! Sign-in with a provider, the browser flow (contract: "The browser flow"
//! and its details): authorize's redirect, `next`, the flow's cookie, the
//! callback's state check and reasons, the one-time `social_code` and its
//! exchange, GitHub's and Apple's flows, through the test OpenID Provider's
//! and the GitHub imitation's real pages.

use std::time::{Duration, Instant};

use latchkey_tests::app::Req;
use latchkey_tests::oidc::{
    AppleKey, GitHub, GitHubConfig, GitHubEmail, GitHubUser, Landing, Mode, OidcProvider,
    OpAccount, OpConfig,
};
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, PASSWORD, tests};
use serde_json::{Value, json};

tests![node:
    the_providers_list_names_each_provider_with_an_absolute_authorize_url,
    authorize_redirects_to_the_provider_with_code_client_scopes_state_nonce_and_pkce,
    scopes_are_read_space_or_comma_separated,
    the_redirect_uri_is_the_request_origin_when_public_url_is_unset,
    authorize_of_an_unknown_provider_is_404,
    a_next_outside_the_redirect_urls_is_400_and_begins_no_flow,
    the_redirect_urls_default_to_public_url_and_the_cors_origins,
    a_browser_login_through_the_providers_pages_ends_in_the_login_response,
    a_social_code_works_once,
    a_social_code_older_than_60_seconds_is_refused,
    a_flow_older_than_10_minutes_is_refused,
    the_exchange_ignores_stale_credentials,
    the_exchange_is_in_the_per_ip_bucket,
    cancelling_at_the_provider_is_access_denied_and_the_flow_stays_usable,
    a_callback_without_code_is_invalid_request_and_the_flow_stays_usable,
    a_code_the_provider_refuses_is_provider_error_and_the_flow_stays_usable,
    an_id_token_that_does_not_verify_is_provider_error,
    a_silent_provider_at_the_callback_is_provider_error_within_the_timeout,
    a_missing_or_foreign_state_is_400_json_and_redirects_nowhere,
    the_email_comes_from_userinfo_when_the_id_token_lacks_it,
    a_github_login_reads_the_primary_verified_address,
    github_without_a_verified_primary_address_is_email_missing,
    an_apple_form_post_callback_from_the_providers_origin_is_accepted,
];

async fn the_providers_list_names_each_provider_with_an_absolute_authorize_url(mut ctx: Ctx) {
    let op = start_op(accounts());
    let github = GitHub::start(&GitHubConfig {
        apps: github_apps(),
        ..GitHubConfig::default()
    });
    let app = Social::new()
        .oidc("oidc", &op)
        .github(&github)
        .oidc("partner", &op)
        .spawn(&mut ctx)
        .await;

    // Anyone: no credentials.
    let listed = app.get(paths::PROVIDERS, Req::default()).await;

    listed.assert(
        200,
        json!({"providers": [
            {"name": "oidc", "authorize_url": format!("{PUBLIC_URL}/auth/social/oidc/authorize/")},
            {"name": "github", "authorize_url": format!("{PUBLIC_URL}/auth/social/github/authorize/")},
            {"name": "partner", "authorize_url": format!("{PUBLIC_URL}/auth/social/partner/authorize/")},
        ]}),
    );
}

async fn authorize_redirects_to_the_provider_with_code_client_scopes_state_nonce_and_pkce(
    mut ctx: Ctx,
) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let discovery = op.discovery().await;

    let flow = begin(&app, "oidc").await;

    // To the provider's authorization endpoint, from its discovery.
    let endpoint = discovery["authorization_endpoint"].as_str().unwrap();
    assert!(
        flow.location.starts_with(&format!("{endpoint}?")),
        "{} is not at {endpoint}",
        flow.location
    );
    assert_eq!(flow.param("response_type").as_deref(), Some("code"));
    assert_eq!(flow.param("client_id").as_deref(), Some("oidc-web"));
    assert_eq!(
        flow.param("redirect_uri"),
        Some(format!("{PUBLIC_URL}/auth/social/oidc/callback/"))
    );
    let scopes = flow.param("scope").unwrap_or_default();
    let mut scopes: Vec<&str> = scopes.split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["email", "openid", "profile"], "{}", flow.location);
    assert_eq!(flow.param("code_challenge_method").as_deref(), Some("S256"));
    let challenge = flow.param("code_challenge").unwrap_or_default();
    assert_eq!(challenge.len(), 43, "S256 of a verifier: {}", flow.location);
    let state = flow.state();
    let nonce = flow.param("nonce").unwrap_or_default();
    assert!(state.len() >= 16 && nonce.len() >= 16, "{}", flow.location);
    assert_no_token_in(&flow.location);
    // The flow's cookie: HttpOnly, SameSite=Lax for a provider without
    // form_post.
    let attributes = flow.set_cookie.to_ascii_lowercase();
    assert!(attributes.contains("httponly"), "{}", flow.set_cookie);
    assert!(attributes.contains("samesite=lax"), "{}", flow.set_cookie);

    // Random each time: another flow has another state, nonce and verifier.
    let other = begin(&app, "oidc").await;
    assert_ne!(other.state(), state);
    assert_ne!(other.param("nonce").unwrap_or_default(), nonce);
    assert_ne!(other.param("code_challenge").unwrap_or_default(), challenge);
    assert_ne!(other.cookie.1, flow.cookie.1);

    // The URL is one the provider accepts: its pages lead back with a code.
    let landing = op.log_in(&flow.location, "alice").await;
    assert_eq!(landing.param("state"), Some(state));
    assert!(landing.param("code").is_some(), "{landing:?}");
    // The code is exchanged with the verifier of that challenge, the client
    // authenticating with HTTP Basic (client_secret_basic).
    let done = callback(&app, &flow, &landing).await;
    code_of(&done);
    let token_requests = op.requests_to("/token").await;
    let exchange = token_requests.last().unwrap();
    assert_eq!(exchange["authorization"], "Basic", "{exchange}");
    let verifier = exchange["body"]["code_verifier"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(s256(verifier), challenge, "{exchange}");
}

/// The S256 challenge of a verifier.
fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

async fn scopes_are_read_space_or_comma_separated(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .set("SOCIAL_OIDC_SCOPES", "openid,email")
        .oidc("partner", &op)
        .set("SOCIAL_PARTNER_SCOPES", "openid email")
        .spawn(&mut ctx)
        .await;

    for name in ["oidc", "partner"] {
        let flow = begin(&app, name).await;
        assert_eq!(
            flow.param("scope").as_deref(),
            Some("openid email"),
            "{}",
            flow.location
        );
    }
}

async fn the_redirect_uri_is_the_request_origin_when_public_url_is_unset(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .unset("PUBLIC_URL")
        .oidc("oidc", &op)
        .spawn(&mut ctx)
        .await;

    let flow = begin(&app, "oidc").await;
    let listed = app.get(paths::PROVIDERS, Req::default()).await;

    assert_eq!(
        flow.param("redirect_uri"),
        Some(format!("{}/auth/social/oidc/callback/", app.address))
    );
    listed.assert(
        200,
        json!({"providers": [
            {"name": "oidc", "authorize_url": format!("{}/auth/social/oidc/authorize/", app.address)},
        ]}),
    );
}

async fn authorize_of_an_unknown_provider_is_404(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for name in ["google", "nope", "OIDC2"] {
        let response = authorize(&app, name, &[("next", NEXT)], Req::default()).await;
        assert_detail(&response, 404);
        assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
        assert_eq!(response.header("location"), None);
    }
    assert!(op.requests_to("/auth").await.is_empty());
}

async fn a_next_outside_the_redirect_urls_is_400_and_begins_no_flow(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for next in [
        "https://evil.test/",
        "https://app.test/signed-in",
        "http://app.test.evil.test/",
        "http://app.test:8080/",
        "http://user:pw@app.test/signed-in",
        "http://user@app.test/signed-in",
        "javascript:alert(1)",
        "ftp://app.test/",
        "/signed-in",
        "//app.test/signed-in",
        "app.test/signed-in",
        "https://spa.test/application",
        "https://spa.test/app",
        "https://spa.test/",
        "http://spa.test/app/",
        "",
    ] {
        let response = authorize(&app, "oidc", &[("next", next)], Req::default()).await;

        assert_eq!(response.status, 400, "next={next:?}: {}", response.text);
        let messages = response.body["next"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            messages.len() == 1 && messages[0].is_string(),
            "next={next:?}: {}",
            response.text
        );
        assert_eq!(
            response.body.as_object().map(|o| o.len()),
            Some(1),
            "next={next:?}: {}",
            response.text
        );
        assert_eq!(response.header("location"), None, "next={next:?}");
        assert!(
            response.set_cookies().is_empty(),
            "next={next:?}: {:?}",
            response.headers
        );
    }

    // Within the list: an exact origin with any path, a URL under a prefix.
    for next in [
        "http://app.test/signed-in",
        "http://app.test",
        "http://app.test/",
        "http://app.test/deep/page?tab=2",
        "https://spa.test/app/",
        "https://spa.test/app/deep/page",
    ] {
        let flow = begin_with(&app, "oidc", &[("next", next)], Req::default()).await;
        assert!(flow.location.starts_with(&op.issuer), "next={next}");
    }
}

async fn the_redirect_urls_default_to_public_url_and_the_cors_origins(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .unset("SOCIAL_REDIRECT_URLS")
        .set("CORS_ALLOWED_ORIGINS", "http://spa.test,https://other.test")
        .oidc("oidc", &op)
        .spawn(&mut ctx)
        .await;

    for next in [
        "http://latchkey.test/demo/",
        "http://spa.test/signed-in",
        "https://other.test/",
    ] {
        begin_with(&app, "oidc", &[("next", next)], Req::default()).await;
    }
    for next in [
        "http://app.test/signed-in",
        "https://spa.test/",
        "https://latchkey.test/",
    ] {
        let response = authorize(&app, "oidc", &[("next", next)], Req::default()).await;
        assert_eq!(response.status, 400, "next={next}: {}", response.text);
        assert!(response.body["next"].is_array(), "{}", response.text);
    }
}

async fn a_browser_login_through_the_providers_pages_ends_in_the_login_response(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;

    let landing = op.log_in(&flow.location, "alice").await;
    assert_no_token_in(landing.target());
    let back = callback(&app, &flow, &landing).await;
    let code = code_of(&back);
    let login = exchange(&app, &code).await;

    assert_federated_login(&login, "alice@example.com");
    // A new user: the provider's verification, no usable password.
    assert_eq!(login.body["user"]["email_verified"], true, "{}", login.text);
    app.login("alice@example.com", PASSWORD)
        .await
        .assert_unauthorized(no_active_account());
    let me = app.me(&login.access()).await;
    me.assert_status(200);
    assert_eq!(me.body["email"], "alice@example.com");
    // The session lists amr and aal.
    let sessions = app.sessions(&login.access()).await;
    sessions.assert_status(200);
    assert_eq!(
        (
            &sessions.body["results"][0]["amr"],
            &sessions.body["results"][0]["aal"]
        ),
        (&json!(["fed"]), &json!(1)),
        "{}",
        sessions.text
    );
    // The identity, its subject a string.
    let linked = app.get(paths::LINKED, Req::bearer(&login.access())).await;
    linked.assert_status(200);
    let results = linked.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", linked.text);
    assert_eq!(results[0]["provider"], "oidc");
    assert_eq!(results[0]["subject"], "alice");
    assert_eq!(results[0]["email"], "alice@example.com");
    assert!(results[0]["linked_at"].is_string(), "{}", linked.text);
    assert!(results[0].get("last_login").is_some(), "{}", linked.text);
    // No token in any URL latchkey wrote or the OP was sent.
    assert_no_token_in(&flow.location);
    for request in op.requests().await {
        let query = request["query"].to_string();
        assert!(!query.contains(&login.access()), "{request}");
    }
}

async fn a_social_code_works_once(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let code = social_code_as(&app, &op, "oidc", "alice").await;

    assert_federated_login(&exchange(&app, &code).await, "alice@example.com");

    exchange(&app, &code)
        .await
        .assert(400, invalid_social_code());
    exchange(&app, "not-a-code")
        .await
        .assert(400, invalid_social_code());
    exchange(&app, "").await.assert_status(400);
    app.post_json(paths::EXCHANGE, json!({}))
        .await
        .assert(400, json!({"social_code": ["This field is required."]}));
    // A refused exchange sets no cookie.
    let refused = exchange(&app, &code).await;
    assert_eq!(refused.set_cookie("access"), None);
}

async fn a_social_code_older_than_60_seconds_is_refused(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let code = social_code_as(&app, &op, "oidc", "alice").await;

    // 61 seconds pass (written into storage: the ceremony's times).
    let aged = age_ceremonies(&app, "social_code", Duration::from_secs(61));
    assert_eq!(aged, 1, "the social code is a ceremony of kind social_code");

    exchange(&app, &code)
        .await
        .assert(400, invalid_social_code());
    // A fresh one still works.
    let code = social_code_as(&app, &op, "oidc", "alice").await;
    exchange(&app, &code).await.assert_status(200);
}

async fn a_flow_older_than_10_minutes_is_refused(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;
    let landing = op.log_in(&flow.location, "alice").await;

    let aged = age_ceremonies(&app, "oidc_state", Duration::from_secs(601));
    assert_eq!(aged, 1, "the flow is a ceremony of kind oidc_state");

    assert_bad_state(&callback(&app, &flow, &landing).await);
    assert_eq!(user_count(&app), 0);
}

async fn the_exchange_ignores_stale_credentials(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let someone = app.user("someone@example.com").await;
    app.logout(&someone.refresh).await;
    let code = social_code_as(&app, &op, "oidc", "alice").await;

    let login = app
        .post(
            paths::EXCHANGE,
            Req::json(json!({"social_code": code}))
                .with_header("authorization", "Bearer garbage.token.here")
                .with_cookie("access", &someone.access)
                .with_cookie("refresh", &someone.refresh),
        )
        .await;

    assert_federated_login(&login, "alice@example.com");
}

async fn the_exchange_is_in_the_per_ip_bucket(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .set("THROTTLE_AUTH_PER_IP", "3/1m")
        .spawn(&mut ctx)
        .await;

    for _ in 0..3 {
        exchange(&app, "not-a-code")
            .await
            .assert(400, invalid_social_code());
    }
    let throttled = exchange(&app, "not-a-code").await;
    let wait = throttled
        .header("retry-after")
        .unwrap_or_default()
        .to_owned();
    throttled.assert(
        429,
        json!({"detail": format!("Request was throttled. Expected available in {wait} seconds.")}),
    );
}

async fn cancelling_at_the_provider_is_access_denied_and_the_flow_stays_usable(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;

    let landing = op.cancel(&flow.location).await;
    assert_eq!(landing.param("error").as_deref(), Some("access_denied"));
    let refused = callback(&app, &flow, &landing).await;

    assert_eq!(error_of(&refused), "access_denied");
    assert_eq!(user_count(&app), 0);
    // The same flow, tried again, completes.
    let landing = op.log_in(&flow.location, "alice").await;
    let code = code_of(&callback(&app, &flow, &landing).await);
    assert_federated_login(&exchange(&app, &code).await, "alice@example.com");
}

async fn a_callback_without_code_is_invalid_request_and_the_flow_stays_usable(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;

    let bare = landing_at("oidc", &[("state", &flow.state())]);
    assert_eq!(
        error_of(&callback(&app, &flow, &bare).await),
        "invalid_request"
    );
    let with_iss = landing_at("oidc", &[("state", &flow.state()), ("iss", &op.issuer)]);
    assert_eq!(
        error_of(&callback(&app, &flow, &with_iss).await),
        "invalid_request"
    );

    let landing = op.log_in(&flow.location, "alice").await;
    let code = code_of(&callback(&app, &flow, &landing).await);
    exchange(&app, &code).await.assert_status(200);
}

async fn a_code_the_provider_refuses_is_provider_error_and_the_flow_stays_usable(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;
    let landing = op.log_in(&flow.location, "alice").await;

    // A code the provider never issued: its token endpoint refuses it.
    let forged = landing_at(
        "oidc",
        &[
            ("code", "not-a-code-the-op-issued"),
            ("state", &flow.state()),
            ("iss", &op.issuer),
        ],
    );
    assert_eq!(
        error_of(&callback(&app, &flow, &forged).await),
        "provider_error"
    );
    // Any other error the provider reports.
    let reported = landing_at(
        "oidc",
        &[("error", "server_error"), ("state", &flow.state())],
    );
    assert_eq!(
        error_of(&callback(&app, &flow, &reported).await),
        "provider_error"
    );
    assert_eq!(user_count(&app), 0);

    // The real code, on the same flow.
    let code = code_of(&callback(&app, &flow, &landing).await);
    assert_federated_login(&exchange(&app, &code).await, "alice@example.com");
}

async fn an_id_token_that_does_not_verify_is_provider_error(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    // The browser changed the nonce on its way to the provider: the id
    // token carries another nonce than the flow's.
    let flow = begin(&app, "oidc").await;
    let tampered = flow.location_with("nonce", Some("a-nonce-latchkey-never-made"));
    let landing = op.log_in(&tampered, "alice").await;
    assert_eq!(
        error_of(&callback(&app, &flow, &landing).await),
        "provider_error"
    );

    // Or dropped it: the id token carries none.
    let flow = begin(&app, "oidc").await;
    let stripped = flow.location_with("nonce", None);
    let landing = op.log_in(&stripped, "alice").await;
    assert_eq!(
        error_of(&callback(&app, &flow, &landing).await),
        "provider_error"
    );

    assert_eq!(user_count(&app), 0);
    assert!(identity(&app, "oidc", "alice").is_none());
}

async fn a_silent_provider_at_the_callback_is_provider_error_within_the_timeout(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;
    let flow = begin(&app, "oidc").await;
    let landing = op.log_in(&flow.location, "alice").await;

    op.set_mode(Mode::Silent).await;
    let started = Instant::now();
    let refused = callback(&app, &flow, &landing).await;
    let took = started.elapsed();

    assert_eq!(error_of(&refused), "provider_error");
    assert!(
        took < Duration::from_secs(TIMEOUT_SECONDS * 3 + 2),
        "SOCIAL_TIMEOUT={TIMEOUT_SECONDS} and the callback took {took:?}"
    );
    assert!(
        !op.requests_to("/token").await.is_empty(),
        "the code exchange was attempted"
    );
    // The provider answers again: the flow and its code were kept.
    op.set_mode(Mode::Normal).await;
    let code = code_of(&callback(&app, &flow, &landing).await);
    assert_federated_login(&exchange(&app, &code).await, "alice@example.com");
}

async fn a_missing_or_foreign_state_is_400_json_and_redirects_nowhere(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = Social::new()
        .oidc("oidc", &op)
        .oidc("partner", &op)
        .spawn(&mut ctx)
        .await;
    let flow = begin(&app, "oidc").await;
    let landing = op.log_in(&flow.location, "alice").await;
    let code = landing.code();
    let other = begin(&app, "oidc").await;
    let partner = begin(&app, "partner").await;

    // No state at all.
    let no_state = landing_at("oidc", &[("code", &code)]);
    assert_bad_state(&callback(&app, &flow, &no_state).await);
    // No flow cookie.
    assert_bad_state(&deliver(&app, &landing, Req::default()).await);
    // The cookie of another flow of this provider.
    assert_bad_state(&callback(&app, &other, &landing).await);
    // A state latchkey never made, with the flow's cookie.
    let made_up = landing_at(
        "oidc",
        &[("code", &code), ("state", "made-up-state-0123456789")],
    );
    assert_bad_state(&callback(&app, &flow, &made_up).await);
    // A live flow of another provider, at this provider's callback.
    let partner_state = landing_at("oidc", &[("code", &code), ("state", &partner.state())]);
    assert_bad_state(&callback(&app, &partner, &partner_state).await);
    // This flow's state at the other provider's callback.
    let elsewhere = landing_at("partner", &[("code", &code), ("state", &flow.state())]);
    assert_bad_state(&callback(&app, &flow, &elsewhere).await);
    // Even without a code, a bad state is the 400, not a redirect.
    let bare = landing_at("oidc", &[("state", "made-up-state-0123456789")]);
    assert_bad_state(&callback(&app, &flow, &bare).await);
    assert_eq!(user_count(&app), 0);
    assert!(
        op.requests_to("/token").await.is_empty(),
        "no code was exchanged for a bad state"
    );

    // Nothing was spent: the flow completes.
    let code = code_of(&callback(&app, &flow, &landing).await);
    assert_federated_login(&exchange(&app, &code).await, "alice@example.com");
    // And once used, the flow is gone: its callback again is the 400.
    assert_bad_state(&callback(&app, &flow, &landing).await);
}

async fn the_email_comes_from_userinfo_when_the_id_token_lacks_it(mut ctx: Ctx) {
    let mut frank = OpAccount::new("frank", "frank@example.com");
    frank
        .userinfo_claims
        .insert("email".into(), json!("frank@example.com"));
    let op = OidcProvider::start(&OpConfig {
        claims_only_at_userinfo: true,
        ..op_config(vec![frank])
    });
    let app = spawn_oidc(&mut ctx, &op).await;

    let login = browser_login(&app, &op, "oidc", "frank").await;

    assert_federated_login(&login, "frank@example.com");
    assert_eq!(login.body["user"]["email_verified"], true);
    assert!(
        !op.requests_to("/me").await.is_empty(),
        "userinfo was asked"
    );
}

fn github_with(users: Vec<GitHubUser>) -> GitHub {
    GitHub::start(&GitHubConfig {
        apps: github_apps(),
        users,
        ..GitHubConfig::default()
    })
}

async fn a_github_login_reads_the_primary_verified_address(mut ctx: Ctx) {
    let mut octocat = GitHubUser::new("octocat", 583231, "octocat@example.com");
    octocat.emails.insert(
        0,
        GitHubEmail {
            email: "old@example.com".into(),
            primary: false,
            verified: true,
        },
    );
    let github = github_with(vec![octocat]);
    let app = Social::new().github(&github).spawn(&mut ctx).await;

    let flow = begin(&app, "github").await;
    assert!(
        flow.location
            .starts_with(&format!("{}/login/oauth/authorize?", github.origin)),
        "{}",
        flow.location
    );
    assert_eq!(flow.param("client_id").as_deref(), Some(GITHUB_CLIENT));
    assert_eq!(flow.param("redirect_uri"), Some(callback_uri("github")));
    let scopes = flow.param("scope").unwrap_or_default();
    let mut scopes: Vec<&str> = scopes.split([' ', ',']).collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["read:user", "user:email"]);
    assert!(flow.param("state").is_some_and(|s| s.len() >= 16));
    assert_eq!(flow.param("code_challenge_method").as_deref(), Some("S256"));
    assert!(
        flow.set_cookie
            .to_ascii_lowercase()
            .contains("samesite=lax")
    );
    let landing = github.log_in(&flow.location, "octocat").await;
    let code = code_of(&callback(&app, &flow, &landing).await);
    let login = exchange(&app, &code).await;

    assert_federated_login(&login, "octocat@example.com");
    assert_eq!(login.body["user"]["email_verified"], true);
    let linked = app.get(paths::LINKED, Req::bearer(&login.access())).await;
    linked.assert_status(200);
    assert_eq!(linked.body["results"][0]["provider"], "github");
    assert_eq!(linked.body["results"][0]["subject"], "583231");
    // The provider's API was called with the token in a header, never in a
    // URL.
    let api: Vec<Value> = github
        .requests()
        .await
        .into_iter()
        .filter(|r| r["path"] == "/user" || r["path"] == "/user/emails")
        .collect();
    assert!(api.len() >= 2, "{api:?}");
    for request in &api {
        assert!(request["authorization"].is_string(), "{request}");
        assert!(!request["query"].to_string().contains("gho_"), "{request}");
    }
}

async fn github_without_a_verified_primary_address_is_email_missing(mut ctx: Ctx) {
    let mut unverified = GitHubUser::new("hubber", 42, "hubber@example.com");
    unverified.emails[0].verified = false;
    unverified.emails.push(GitHubEmail {
        email: "verified-secondary@example.com".into(),
        primary: false,
        verified: true,
    });
    let github = github_with(vec![unverified]);
    let app = Social::new().github(&github).spawn(&mut ctx).await;

    let flow = begin(&app, "github").await;
    let landing = github.log_in(&flow.location, "hubber").await;
    let refused = callback(&app, &flow, &landing).await;

    assert_eq!(error_of(&refused), "email_missing");
    assert_eq!(user_count(&app), 0);
    assert!(identity(&app, "github", "42").is_none());
}

async fn an_apple_form_post_callback_from_the_providers_origin_is_accepted(mut ctx: Ctx) {
    let key = AppleKey::fixture();
    let apple_client =
        latchkey_tests::oidc::OpClient::apple(APPLE_CLIENT, &callback_uri("apple"), &key);
    let op = OidcProvider::start(&OpConfig {
        clients: vec![apple_client],
        ..op_config(accounts())
    });
    let app = Social::new().apple(&op).spawn(&mut ctx).await;

    let flow = begin(&app, "apple").await;
    assert_eq!(flow.param("response_mode").as_deref(), Some("form_post"));
    assert_eq!(flow.param("client_id").as_deref(), Some(APPLE_CLIENT));
    let attributes = flow.set_cookie.to_ascii_lowercase().replace(' ', "");
    assert!(attributes.contains(";samesite=none"), "{}", flow.set_cookie);
    assert!(attributes.contains(";secure"), "{}", flow.set_cookie);
    assert!(attributes.contains(";httponly"), "{}", flow.set_cookie);
    let landing = op.log_in(&flow.location, "carol").await;
    assert!(matches!(landing, Landing::FormPost { .. }), "{landing:?}");

    // The provider's page posts the form: a cross-site POST.
    let back = deliver(
        &app,
        &landing,
        flow.with_cookie(Req::default())
            .with_header("origin", &op.issuer)
            .with_header("sec-fetch-site", "cross-site"),
    )
    .await;

    let code = code_of(&back);
    let login = exchange(&app, &code).await;
    assert_federated_login(&login, "carol@example.com");
    // Apple's "true" counts as verified.
    assert_eq!(login.body["user"]["email_verified"], true, "{}", login.text);
    // The client secret was Apple's ES256 JWT, sent in the form.
    let token_requests = op.requests_to("/token").await;
    let exchange_request = token_requests.last().unwrap();
    assert_eq!(
        exchange_request["apple_client_secret"], "valid",
        "{exchange_request}"
    );
}
