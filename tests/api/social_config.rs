//! Sign-in with a provider: configuration and reachability (contract:
//! "Configuration" and the provider rules' details): a misconfigured
//! provider stops start-up naming the variable, an unreachable or silent
//! one answers 503 on its routes until it answers again, and an https
//! issuer is reached through the CA the process trusts (`SSL_CERT_FILE`,
//! so the real binary).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey_tests::app::Req;
use latchkey_tests::binary::{ServedBinary, latchkey_binary};
use latchkey_tests::oidc::{GitHub, GitHubConfig, Mode, OidcProvider, OpConfig, TestCa};
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, TEST_SECRET, tests};
use serde_json::json;

tests![node:
    an_unreachable_provider_is_listed_and_answers_503_on_its_routes_until_it_is_back,
    a_silent_provider_answers_503_within_the_timeout,
    a_misconfigured_provider_stops_start_up_naming_the_variable,
    an_https_issuer_is_trusted_through_ssl_cert_file,
];

async fn an_unreachable_provider_is_listed_and_answers_503_on_its_routes_until_it_is_back(
    mut ctx: Ctx,
) {
    let op = start_op(accounts());
    let github = GitHub::start(&GitHubConfig {
        apps: github_apps(),
        ..GitHubConfig::default()
    });
    let id_token = id_token_of(&op, &web_client("oidc"), "alice", "n").await;
    op.set_mode(Mode::Down).await;
    let app = Social::new()
        .oidc("oidc", &op)
        .github(&github)
        .spawn(&mut ctx)
        .await;

    let listed = app.get(paths::PROVIDERS, Req::default()).await;
    listed.assert(
        200,
        json!({"providers": [
            {"name": "oidc", "authorize_url": format!("{PUBLIC_URL}/auth/social/oidc/authorize/")},
            {"name": "github", "authorize_url": format!("{PUBLIC_URL}/auth/social/github/authorize/")},
        ]}),
    );
    let refused = authorize(&app, "oidc", &[("next", NEXT)], Req::default()).await;
    assert_detail(&refused, 503);
    assert!(refused.set_cookies().is_empty(), "{:?}", refused.headers);
    assert_detail(&native_id_token(&app, "oidc", &id_token, "n").await, 503);
    // The callback (with a state that cannot be a live flow, since no flow
    // could begin): 503, or the bad state's 400 (both rules apply).
    let landing = landing_at("oidc", &[("code", "c"), ("state", "s")]);
    let callback = deliver(&app, &landing, Req::default()).await;
    assert!(
        callback.status == 503 || callback.status == 400,
        "{}",
        callback.text
    );
    assert_eq!(callback.header("location"), None);
    // Another provider is not affected.
    begin(&app, "github").await;
    assert_eq!(user_count(&app), 0);

    // Back: every route answers, and the id token was not spent.
    op.set_mode(Mode::Normal).await;
    answers_again(&app).await;
    let login = native_id_token(&app, "oidc", &id_token, "n").await;
    assert_federated_login(&login, "alice@example.com");
    let login = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&login, "alice@example.com");
}

async fn a_silent_provider_answers_503_within_the_timeout(mut ctx: Ctx) {
    let op = start_op(accounts());
    op.set_mode(Mode::Silent).await;
    let app = spawn_oidc(&mut ctx, &op).await;

    let started = Instant::now();
    let refused = authorize(&app, "oidc", &[("next", NEXT)], Req::default()).await;
    let took = started.elapsed();

    assert_detail(&refused, 503);
    assert!(
        took < Duration::from_secs(TIMEOUT_SECONDS * 3 + 2),
        "SOCIAL_TIMEOUT={TIMEOUT_SECONDS}, and authorize took {took:?}"
    );
    let started = Instant::now();
    let claims = claims_for(&op, "oidc-web", "alice", Some("alice@example.com"));
    let token = latchkey_tests::forge(jsonwebtoken::Algorithm::HS256, "x", &claims);
    assert_detail(
        &native_id_token(&app, "oidc", &token, CLAIMS_NONCE).await,
        503,
    );
    assert!(started.elapsed() < Duration::from_secs(TIMEOUT_SECONDS * 3 + 2));

    op.set_mode(Mode::Normal).await;
    answers_again(&app).await;
    let login = browser_login(&app, &op, "oidc", "alice").await;
    assert_federated_login(&login, "alice@example.com");
}

/// Waits (at most 5 s) until authorize at `oidc` redirects again: a
/// provider back from an outage is tried again within a moment, not at
/// once (the server remembers a failure for a second, so a silent one
/// does not hold every request for its timeout).
async fn answers_again(app: &latchkey_tests::TestApp) {
    let started = Instant::now();
    loop {
        let response = authorize(app, "oidc", &[("next", NEXT)], Req::default()).await;
        if response.status == 302 {
            return;
        }
        assert_detail(&response, 503);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the provider is back, and authorize still answers 503 after {:?}",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `latchkey serve` with `env` (plus a database and a key): it must stop
/// by itself within a minute; its exit status and stderr.
fn serve_until_it_stops(dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(latchkey_binary());
    command
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BIND", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("latchkey starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.success(), stderr);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("latchkey serve kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn a_misconfigured_provider_stops_start_up_naming_the_variable(mut ctx: Ctx) {
    let op = start_op(accounts());
    // An origin that answers, but has no OpenID Connect discovery.
    let github = GitHub::start(&GitHubConfig::default());
    let url = ctx.migrated_database();
    let dir = tempfile::tempdir().unwrap();
    let key = latchkey_tests::oidc::AppleKey::fixture();
    let base = [("DATABASE_URL", url.as_str()), ("SECRET_KEY", TEST_SECRET)];

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("SOCIAL_PROVIDERS", "oidc"),
                ("SOCIAL_OIDC_ISSUER", &op.issuer),
            ],
            "SOCIAL_OIDC_CLIENT_ID",
        ),
        (
            vec![
                ("SOCIAL_PROVIDERS", "oidc"),
                ("SOCIAL_OIDC_CLIENT_ID", "oidc-web"),
            ],
            "SOCIAL_OIDC_ISSUER",
        ),
        (
            vec![
                ("SOCIAL_PROVIDERS", "oidc"),
                ("SOCIAL_OIDC_CLIENT_ID", "oidc-web"),
                ("SOCIAL_OIDC_ISSUER", &github.origin),
            ],
            "SOCIAL_OIDC_ISSUER",
        ),
        (
            vec![
                ("SOCIAL_PROVIDERS", "apple"),
                ("SOCIAL_APPLE_CLIENT_ID", APPLE_CLIENT),
                ("SOCIAL_APPLE_ISSUER", &op.issuer),
                ("SOCIAL_APPLE_KEY_ID", &key.key_id),
                ("SOCIAL_APPLE_PRIVATE_KEY", &key.private_pem),
            ],
            "SOCIAL_APPLE_TEAM_ID",
        ),
        (
            vec![
                ("SOCIAL_PROVIDERS", "apple"),
                ("SOCIAL_APPLE_CLIENT_ID", APPLE_CLIENT),
                ("SOCIAL_APPLE_ISSUER", &op.issuer),
                ("SOCIAL_APPLE_TEAM_ID", &key.team_id),
                ("SOCIAL_APPLE_PRIVATE_KEY", &key.private_pem),
            ],
            "SOCIAL_APPLE_KEY_ID",
        ),
        (
            vec![
                ("SOCIAL_PROVIDERS", "apple"),
                ("SOCIAL_APPLE_CLIENT_ID", APPLE_CLIENT),
                ("SOCIAL_APPLE_ISSUER", &op.issuer),
                ("SOCIAL_APPLE_TEAM_ID", &key.team_id),
                ("SOCIAL_APPLE_KEY_ID", &key.key_id),
            ],
            "SOCIAL_APPLE_PRIVATE_KEY",
        ),
    ];
    for (vars, named) in cases {
        let mut env = base.to_vec();
        env.extend(vars.iter().copied());

        let (succeeded, stderr) = serve_until_it_stops(dir.path(), &env);

        assert!(!succeeded, "{vars:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{vars:?}: stderr does not name {named}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !stderr.contains("BEGIN PRIVATE KEY"),
            "the key was printed: {stderr}"
        );
    }
}

async fn an_https_issuer_is_trusted_through_ssl_cert_file(mut ctx: Ctx) {
    let ca = TestCa::make();
    let op = OidcProvider::start(&OpConfig {
        tls: Some(ca.files()),
        ..op_config(accounts())
    });
    assert!(op.issuer.starts_with("https://"), "{}", op.issuer);
    let url = ctx.migrated_database();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.ca_file();
    let vars = Social::new().oidc("oidc", &op).vars();
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend([
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY", TEST_SECRET),
        ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
        ("RUST_LOG", "warn"),
    ]);
    let served = ServedBinary::start(dir.path(), &env).await;

    // Discovery over https: the authorize redirect (read, not followed).
    let http = latchkey_tests::app::Http {
        address: served.base.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let authorized = http
        .request(
            "GET",
            &format!("{}?next={NEXT}", paths::authorize("oidc")),
            Req::default(),
        )
        .await;
    assert_eq!(
        authorized.status,
        302,
        "{}: {}",
        authorized.text,
        served.output()
    );
    let location = authorized.header("location").unwrap_or_default();
    assert!(
        location.starts_with(&format!("{}/", op.issuer)),
        "{location}"
    );
    // The keys over https: a native login.
    let id_token = id_token_of(&op, &web_client("oidc"), "alice", "n").await;
    let login = http
        .request(
            "POST",
            &paths::token("oidc"),
            Req::json(json!({"id_token": id_token, "nonce": "n"})),
        )
        .await;
    assert_eq!(login.status, 200, "{}: {}", login.text, served.output());
    assert_eq!(login.body["user"]["email"], "alice@example.com");
}
