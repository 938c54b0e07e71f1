//! `latchkey import-django` carrying django-allauth's social accounts over
//! as linked provider identities, from Django databases made by the REAL
//! django-allauth 65.21.1 (`make_django_db.py --scenario social`): social
//! apps for google, github, apple (its private key in `settings`, as
//! allauth keeps it) and an OpenID Connect app with the `provider_id`
//! "corp", each secret a string found nowhere else; accounts made as
//! allauth makes them at a login (`sociallogin_from_response`, then
//! `connect`), so the provider names and uids are allauth's own. Each
//! identity is linked to the same user id under the same provider name and
//! subject, `date_joined` its `linked_at`; a skipped user's account is left
//! behind; each app is listed on stderr by name and client id, and no
//! secret appears in the output nor in latchkey's database (on PostgreSQL
//! the import even runs as a role that may not read those columns); a dry
//! run writes nothing; a re-run links only what is new and keeps latchkey's
//! link of an identity Django moved to another user. Then through the
//! server: signing in with a real OpenID Provider (npm `oidc-provider`) as
//! the OpenID Connect account's subject, under the app's `provider_id`, and
//! with the GitHub imitation as the GitHub account's numeric id, lands on
//! the user Django had, whose provider addresses are not the user's (so
//! only the imported link can find them). Each test runs on both latchkey
//! backends.

use std::process::Output;

use chrono::{DateTime, NaiveDateTime};
use diesel::{Connection, PgConnection, RunQueryDsl};
use latchkey_persistence::schema::provider_identities;
use latchkey_persistence::{Identity, User};
use latchkey_tests::app::Req;
use latchkey_tests::binary::{open, run_latchkey};
use latchkey_tests::database::postgres_admin_url;
use latchkey_tests::oidc::{
    GitHub, GitHubApp, GitHubConfig, GitHubUser, OidcProvider, OpAccount, OpClient, OpConfig,
    random_value,
};
use latchkey_tests::{Backend, Ctx, Response, TestApp, tests};
use serde_json::{Value, json};

use crate::import_django::{DjangoDb, other, stderr, stdout};

tests![
    django:
    imports_allauths_social_accounts_as_linked_identities,
    no_secret_of_a_social_app_is_printed_or_stored,
    the_import_reads_no_column_that_holds_a_secret,
    a_dry_run_from_the_other_backend_writes_nothing,
    a_rerun_links_only_what_is_new,
    an_identity_latchkey_links_to_another_user_stays_there_and_is_reported,
    an_account_latchkey_cannot_hold_is_listed_and_its_user_imported,
    without_allauths_social_accounts_there_is_no_identities_line,
];

tests![
    django + node:
    signing_in_with_the_imported_identities_lands_on_the_users_django_had,
];

const IDENTITIES_LINE: &str = "imported 4 provider identities";
const SUMMARY: &str = "imported 4 users (1 skipped), 0 tokens, 0 blacklisted";

fn social_database(backend: Backend) -> (DjangoDb, Value) {
    let db = DjangoDb::create(backend);
    let made = db.django(&["--scenario", "social"], None);
    (db, made)
}

fn import(url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["import-django", "--from"];
    all.extend_from_slice(args);
    run_latchkey(dir.path(), &all, &[("DATABASE_URL", url)], None)
}

#[track_caller]
fn assert_lines(output: &Output, expected: &[&str]) {
    assert!(
        output.status.success(),
        "import failed: {}\n{}",
        stderr(output),
        stdout(output)
    );
    let out = stdout(output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "stderr: {}", stderr(output));
}

fn accounts(made: &Value) -> &Vec<Value> {
    made["social"]["accounts"].as_array().unwrap()
}

fn account<'a>(made: &'a Value, provider: &str, email: &str) -> &'a Value {
    accounts(made)
        .iter()
        .find(|a| a["provider"] == provider && a["email"] == email)
        .unwrap_or_else(|| panic!("{provider} of {email} in {made}"))
}

fn user_id(made: &Value, email: &str) -> i64 {
    made["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {made}"))["id"]
        .as_i64()
        .unwrap()
}

/// allauth's `date_joined` (ISO 8601 with its offset) as latchkey stores
/// instants: naive UTC.
fn date_joined(account: &Value) -> NaiveDateTime {
    DateTime::parse_from_rfc3339(account["date_joined"].as_str().unwrap())
        .unwrap()
        .naive_utc()
}

fn identity(url: &str, provider: &str, subject: &str) -> Option<Identity> {
    let db = open(url);
    let mut conn = db.get().unwrap();
    Identity::find(&mut conn, provider, subject).unwrap()
}

fn identity_count(url: &str) -> i64 {
    use diesel::QueryDsl;
    let db = open(url);
    let mut conn = db.get().unwrap();
    provider_identities::table
        .count()
        .get_result::<i64>(&mut **conn)
        .unwrap()
}

fn user_exists(url: &str, id: i64) -> bool {
    let db = open(url);
    let mut conn = db.get().unwrap();
    User::find(&mut conn, id).unwrap().is_some()
}

/// The social app lines, in the order of the apps' ids.
const APP_LINES: [&str; 4] = [
    "social app: google client id 123456789012-latchkey.apps.googleusercontent.com",
    "social app: github client id Iv1.5a7e0c3b9d2f4e61",
    "social app: apple client id com.example.latchkey.web",
    "social app: corp client id latchkey-corp-client",
];

/// Every string of a social app that is a secret: `secret`, `key` and each
/// string of `settings` (Apple's private key among them), and the private
/// key's body alone.
fn secrets(made: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for app in made["social"]["apps"].as_array().unwrap() {
        for field in ["secret", "key"] {
            let value = app[field].as_str().unwrap();
            if !value.is_empty() {
                found.push(value.to_owned());
            }
        }
        for value in app["settings"].as_object().unwrap().values() {
            let value = value.as_str().unwrap();
            if let Some(body) = value
                .strip_prefix("-----BEGIN PRIVATE KEY-----\n")
                .and_then(|rest| rest.strip_suffix("\n-----END PRIVATE KEY-----\n"))
            {
                found.push(body.to_owned());
            }
            found.push(value.to_owned());
        }
    }
    // The scenario's: one per app, and Apple's private key.
    assert!(found.len() >= 8, "{found:?}");
    assert!(
        found.iter().any(|s| s.contains("apple-private-key")),
        "{found:?}"
    );
    found
}

#[track_caller]
fn assert_no_secret_in(text: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "{secret:?} in the {what}");
    }
    assert!(!text.contains("never-printed"), "a secret in the {what}");
}

async fn imports_allauths_social_accounts_as_linked_identities(mut ctx: Ctx) {
    let (django, made) = social_database(ctx.backend);
    let url = ctx.new_database();

    let output = import(&url, &[&django.url]);

    assert_lines(&output, &[IDENTITIES_LINE, SUMMARY]);
    let skipped = user_id(&made, "social-skipped");
    let mut expected_stderr = vec![format!(
        "skipped id {skipped}: invalid email \"social-skipped\""
    )];
    expected_stderr.extend(APP_LINES.iter().map(|l| (*l).to_owned()));
    expected_stderr.push("not imported: 0 group memberships, 0 user permissions".into());
    assert_eq!(stderr(&output).lines().collect::<Vec<_>>(), expected_stderr);
    // Under the names allauth wrote: the OpenID Connect app's provider_id.
    for (provider, email) in [
        ("google", "ana@example.com"),
        ("github", "ana@example.com"),
        ("apple", "ben@example.com"),
        ("corp", "cy@example.com"),
    ] {
        let django_account = account(&made, provider, email);
        let subject = django_account["uid"].as_str().unwrap();
        let linked = identity(&url, provider, subject)
            .unwrap_or_else(|| panic!("{provider} {subject} linked"));
        assert_eq!(
            (
                linked.user_id,
                linked.linked_at,
                linked.email.as_deref(),
                linked.last_login
            ),
            (
                user_id(&made, email),
                date_joined(django_account),
                None,
                None
            ),
            "{provider} of {email}"
        );
    }
    // allauth wrote GitHub's numeric id in decimal, as latchkey's subject.
    assert_eq!(account(&made, "github", "ana@example.com")["uid"], "583231");
    // The skipped user's account is left behind with them.
    let theirs = account(&made, "github", "social-skipped");
    assert!(!user_exists(&url, skipped));
    assert!(identity(&url, "github", theirs["uid"].as_str().unwrap()).is_none());
    assert_eq!(identity_count(&url), 4);
}

async fn no_secret_of_a_social_app_is_printed_or_stored(mut ctx: Ctx) {
    let (django, made) = social_database(ctx.backend);
    let secrets = secrets(&made);
    let url = ctx.new_database();

    let dry = import(&url, &[&django.url, "--dry-run"]);
    let real = import(&url, &[&django.url]);
    let again = import(&url, &[&django.url]);

    for output in [&dry, &real, &again] {
        assert!(output.status.success(), "{}", stderr(output));
        assert_no_secret_in(&stdout(output), &secrets, "stdout");
        assert_no_secret_in(&stderr(output), &secrets, "stderr");
        for line in APP_LINES {
            assert!(stderr(output).contains(line), "{line}: {}", stderr(output));
        }
    }
    if ctx.backend == Backend::Sqlite {
        let path = url.trim_start_matches("sqlite://");
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert_no_secret_in(&text, &secrets, "latchkey database");
    }
}

/// A PostgreSQL role that lives as long as this value (dropped after the
/// databases it was granted on).
struct PgRole {
    name: String,
}

impl PgRole {
    const PASSWORD: &'static str = "import-social-role";

    fn create() -> Self {
        let name = format!("latchkey_reader_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&postgres_admin_url()).unwrap();
        diesel::sql_query(format!(
            "CREATE ROLE \"{name}\" LOGIN PASSWORD '{}'",
            Self::PASSWORD
        ))
        .execute(&mut admin)
        .unwrap();
        PgRole { name }
    }

    /// `url` (postgres://USER[:PASS]@HOST/DB) as this role.
    fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        format!("{scheme}://{}:{}@{host_and_db}", self.name, Self::PASSWORD)
    }
}

impl Drop for PgRole {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&postgres_admin_url()) {
            let _ = diesel::sql_query(format!("DROP ROLE IF EXISTS \"{}\"", self.name))
                .execute(&mut admin);
        }
    }
}

/// The Django database on PostgreSQL whatever latchkey's backend, read by a
/// role that may select every column but the social apps' `secret`, `key`
/// and `settings`: the import succeeds, so it never selects them.
async fn the_import_reads_no_column_that_holds_a_secret(mut ctx: Ctx) {
    // Declared first, so dropped after the database it is granted on.
    let role = PgRole::create();
    let (django, made) = social_database(Backend::Postgres);
    django.execute(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{r}\"; \
         REVOKE SELECT ON socialaccount_socialapp FROM \"{r}\"; \
         GRANT SELECT (id, provider, provider_id, name, client_id) \
             ON socialaccount_socialapp TO \"{r}\";",
        r = role.name
    ));
    let reader = role.url_for(&django.url);
    // The role may indeed not read them.
    let mut as_reader = PgConnection::establish(&reader).unwrap();
    for column in ["secret", "key", "settings"] {
        let refused =
            diesel::sql_query(format!("SELECT \"{column}\" FROM socialaccount_socialapp"))
                .execute(&mut as_reader);
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("permission denied"),
            "{column}"
        );
    }
    drop(as_reader);
    let url = ctx.new_database();

    let output = import(&url, &[&reader]);

    assert_lines(&output, &[IDENTITIES_LINE, SUMMARY]);
    for line in APP_LINES {
        assert!(
            stderr(&output).contains(line),
            "{line}: {}",
            stderr(&output)
        );
    }
    let corp = account(&made, "corp", "cy@example.com");
    let linked = identity(&url, "corp", corp["uid"].as_str().unwrap()).unwrap();
    assert_eq!(linked.user_id, user_id(&made, "cy@example.com"));
}

async fn a_dry_run_from_the_other_backend_writes_nothing(mut ctx: Ctx) {
    let (django, made) = social_database(other(ctx.backend));
    let url = ctx.new_database();

    let dry = import(&url, &[&django.url, "--dry-run"]);

    assert_lines(
        &dry,
        &[
            "would import 4 provider identities",
            "would import 4 users (1 skipped), 0 tokens, 0 blacklisted",
        ],
    );
    assert_eq!(identity_count(&url), 0);
    assert!(!user_exists(&url, user_id(&made, "ana@example.com")));
    // Then for real, across backends: what the dry run said.
    assert_lines(&import(&url, &[&django.url]), &[IDENTITIES_LINE, SUMMARY]);
    assert_eq!(identity_count(&url), 4);
    let corp = account(&made, "corp", "cy@example.com");
    let linked = identity(&url, "corp", corp["uid"].as_str().unwrap()).unwrap();
    assert_eq!(
        (linked.user_id, linked.linked_at),
        (user_id(&made, "cy@example.com"), date_joined(corp))
    );
}

async fn a_rerun_links_only_what_is_new(mut ctx: Ctx) {
    let (django, made) = social_database(ctx.backend);
    let url = ctx.new_database();
    assert_lines(&import(&url, &[&django.url]), &[IDENTITIES_LINE, SUMMARY]);
    let before: Vec<Identity> = accounts(&made)
        .iter()
        .filter_map(|a| {
            identity(
                &url,
                a["provider"].as_str().unwrap(),
                a["uid"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(before.len(), 4);

    // Nothing new in Django: nothing linked, nothing changed, no error.
    let again = import(&url, &[&django.url]);

    assert_lines(&again, &["imported 0 provider identities", SUMMARY]);
    assert!(
        !stderr(&again).contains("provider identity"),
        "{}",
        stderr(&again)
    );
    for linked in &before {
        assert_eq!(
            identity(&url, &linked.provider, &linked.subject).as_ref(),
            Some(linked)
        );
    }
    assert_eq!(identity_count(&url), 4);

    // Django kept running: dee connects Google there (through allauth, as
    // at a login); the next run links it, and only it.
    let more = django.django(
        &[],
        Some(&json!({
            "social_accounts": [{
                "email": "dee@example.com",
                "provider": "google",
                "data": {"sub": "117654321098765432109", "email": "dee@gmail.com",
                         "email_verified": true},
            }],
        })),
    );
    let dee = &more["social"]["accounts"][0];
    let third = import(&url, &[&django.url]);
    assert_lines(&third, &["imported 1 provider identities", SUMMARY]);
    let linked = identity(&url, "google", "117654321098765432109").unwrap();
    assert_eq!(
        (linked.user_id, linked.linked_at),
        (user_id(&made, "dee@example.com"), date_joined(dee))
    );
    assert_eq!(identity_count(&url), 5);
}

async fn an_identity_latchkey_links_to_another_user_stays_there_and_is_reported(mut ctx: Ctx) {
    let (django, made) = social_database(ctx.backend);
    let url = ctx.new_database();
    assert_lines(&import(&url, &[&django.url]), &[IDENTITIES_LINE, SUMMARY]);
    let ana = user_id(&made, "ana@example.com");
    let dee = user_id(&made, "dee@example.com");
    let github = account(&made, "github", "ana@example.com");
    // In Django the GitHub account moves from ana to dee.
    django.execute(&format!(
        "UPDATE socialaccount_socialaccount SET user_id = {dee} WHERE id = {}",
        github["id"]
    ));

    let output = import(&url, &[&django.url]);

    assert_lines(&output, &["imported 0 provider identities", SUMMARY]);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "provider identity github 583231 of id {dee} is linked to id {ana} in latchkey: kept as latchkey has it"
        )),
        "{err}"
    );
    let linked = identity(&url, "github", "583231").unwrap();
    assert_eq!(linked.user_id, ana);
    assert_eq!(linked.linked_at, date_joined(github));
    assert_eq!(identity_count(&url), 4);
}

async fn an_account_latchkey_cannot_hold_is_listed_and_its_user_imported(mut ctx: Ctx) {
    // allauth takes a provider_id of up to 200 characters; latchkey's
    // provider names are at most 64.
    let long = format!("corp-{}", "x".repeat(60));
    let django = DjangoDb::create(ctx.backend);
    let made = django.django(
        &[],
        Some(&json!({
            "users": [{"email": "eve@example.com"}],
            "social_apps": [{
                "provider": "openid_connect", "provider_id": long, "name": "Long",
                "client_id": "long-client", "secret": "long-secret-never-printed",
                "settings": {"server_url": "https://long.example"},
            }, {
                "provider": "github", "client_id": "gh-client",
                "secret": "gh-secret-never-printed",
            }],
            "social_accounts": [
                {"email": "eve@example.com", "provider": long,
                 "data": {"userinfo": {"sub": "eve-1"}}},
                {"email": "eve@example.com", "provider": "github",
                 "data": {"id": 31337, "login": "eve"}},
            ],
        })),
    );
    let eve = user_id(&made, "eve@example.com");
    let long_account = account(&made, &long, "eve@example.com");
    let url = ctx.new_database();

    let output = import(&url, &[&django.url]);

    assert_lines(
        &output,
        &[
            "imported 1 provider identities",
            "imported 1 users (0 skipped), 0 tokens, 0 blacklisted",
        ],
    );
    assert_eq!(
        stderr(&output).lines().collect::<Vec<_>>(),
        [
            format!(
                "unimportable provider identity for id {eve} (socialaccount_socialaccount id {}: the provider name is longer than 64 characters): not imported",
                long_account["id"]
            ),
            format!("social app: {long} client id long-client"),
            "social app: github client id gh-client".to_owned(),
            "not imported: 0 group memberships, 0 user permissions".to_owned(),
        ]
    );
    assert!(user_exists(&url, eve));
    assert_eq!(identity(&url, "github", "31337").unwrap().user_id, eve);
    assert_eq!(identity_count(&url), 1);
}

async fn without_allauths_social_accounts_there_is_no_identities_line(mut ctx: Ctx) {
    // allauth's account app without socialaccount: no such tables.
    let django = DjangoDb::create(ctx.backend);
    django.django(
        &["--mfa"],
        Some(&json!({"users": [{"email": "plain@example.com"}]})),
    );
    let url = ctx.new_database();

    let output = import(&url, &[&django.url]);

    assert_lines(
        &output,
        &[
            "imported 0 second factors (0 TOTP devices, 0 recovery codes)",
            "imported 1 users (0 skipped), 0 tokens, 0 blacklisted",
        ],
    );
    assert!(
        !stderr(&output).contains("social app"),
        "{}",
        stderr(&output)
    );
    assert_eq!(identity_count(&url), 0);
}

// ------------------------------------------------------- signing in

/// The `social` scenario imported, and the server on it with the `corp`
/// OpenID Connect app (its issuer the test OP) and `github` (the
/// imitation) configured under the names the import listed, with the
/// client ids the apps had in Django.
async fn served_with_providers(ctx: &mut Ctx) -> (TestApp, Value, OidcProvider, GitHub) {
    let (django, made) = social_database(ctx.backend);
    let url = ctx.new_database();
    assert_lines(&import(&url, &[&django.url]), &[IDENTITIES_LINE, SUMMARY]);
    let corp = account(&made, "corp", "cy@example.com");
    let github = account(&made, "github", "ana@example.com");
    // The people's addresses at the providers are not their users': an
    // identity latchkey did not know would make a new user.
    let op = OidcProvider::start(&OpConfig {
        clients: vec![corp_client()],
        accounts: vec![OpAccount::new(
            corp["uid"].as_str().unwrap(),
            "cy@corp.example",
        )],
        ..OpConfig::default()
    });
    let hub = GitHub::start(&GitHubConfig {
        apps: vec![GitHubApp {
            client_id: GITHUB_CLIENT.into(),
            client_secret: "github-test-secret".into(),
            redirect_uris: vec![CALLBACK.into()],
        }],
        users: vec![GitHubUser::new(
            "ana-codes",
            github["uid"].as_str().unwrap().parse().unwrap(),
            "ana-at-github@example.com",
        )],
        ..GitHubConfig::default()
    });
    let app = ctx
        .spawn_on(
            &url,
            &[
                ("SOCIAL_PROVIDERS", "corp,github"),
                ("SOCIAL_CORP_ISSUER", &op.issuer),
                ("SOCIAL_CORP_CLIENT_ID", CORP_CLIENT),
                ("SOCIAL_CORP_CLIENT_SECRET", "corp-test-secret"),
                ("SOCIAL_GITHUB_URL", &hub.origin),
                ("SOCIAL_GITHUB_API_URL", &hub.origin),
                ("SOCIAL_GITHUB_CLIENT_ID", GITHUB_CLIENT),
                ("SOCIAL_GITHUB_CLIENT_SECRET", "github-test-secret"),
            ],
        )
        .await;
    (app, made, op, hub)
}

/// The client ids of the scenario's `corp` and `github` apps.
const CORP_CLIENT: &str = "latchkey-corp-client";
const GITHUB_CLIENT: &str = "Iv1.5a7e0c3b9d2f4e61";
/// Where the providers' clients say they come back to (the native route
/// never follows it).
const CALLBACK: &str = "http://127.0.0.1:9/auth/social/callback/";

fn corp_client() -> OpClient {
    OpClient::web(CORP_CLIENT, "corp-test-secret", CALLBACK)
}

async fn native_sign_in(app: &TestApp, provider: &str, body: Value) -> Response {
    app.post(
        &format!("/auth/social/{provider}/token/"),
        Req::default().with_json(body),
    )
    .await
}

async fn signing_in_with_the_imported_identities_lands_on_the_users_django_had(mut ctx: Ctx) {
    let (app, made, op, hub) = served_with_providers(&mut ctx).await;
    let cy = user_id(&made, "cy@example.com");
    let ana = user_id(&made, "ana@example.com");
    let corp = account(&made, "corp", "cy@example.com");
    let github = account(&made, "github", "ana@example.com");

    // The OP's id token for the account's subject, as a native app posts it.
    let nonce = random_value();
    let id_token = op
        .id_token(&corp_client(), corp["uid"].as_str().unwrap(), &nonce)
        .await;
    let as_cy = native_sign_in(&app, "corp", json!({"id_token": id_token, "nonce": nonce})).await;
    // GitHub's token, for the account's numeric id.
    let token = hub.mint_token(GITHUB_CLIENT, "ana-codes", None).await;
    let as_ana = native_sign_in(&app, "github", json!({"access_token": token})).await;

    for (response, id, email) in [
        (&as_cy, cy, "cy@example.com"),
        (&as_ana, ana, "ana@example.com"),
    ] {
        response.assert_status(200);
        assert_eq!(
            (
                &response.body["user"]["id"],
                &response.body["user"]["email"]
            ),
            (&json!(id), &json!(email)),
            "{}",
            response.text
        );
    }
    // Their links are the imported ones, now used: no new link, no new user.
    let linked = app.get("/auth/social/", Req::bearer(&as_cy.access())).await;
    linked.assert_status(200);
    let results = linked.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", linked.text);
    assert_eq!(
        (&results[0]["provider"], &results[0]["subject"]),
        (&json!("corp"), &corp["uid"]),
        "{}",
        linked.text
    );
    assert!(!results[0]["last_login"].is_null(), "{}", linked.text);
    let ana_links = app
        .get("/auth/social/", Req::bearer(&as_ana.access()))
        .await;
    let providers: Vec<&Value> = ana_links.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["provider"])
        .collect();
    assert_eq!(
        providers,
        [&json!("google"), &json!("github")],
        "{}",
        ana_links.text
    );
    assert_eq!(
        identity(&app.database_url, "github", github["uid"].as_str().unwrap())
            .unwrap()
            .user_id,
        ana
    );
    assert_eq!(identity_count(&app.database_url), 4);
}
