//! The second step of a login racing itself on two instances of one
//! database (issue 22, "Replay": "two requests with the same code at once:
//! one succeeds, the other gets 400. A recovery code presented twice at
//! once: one succeeds."), on one PostgreSQL database and on one SQLite
//! file, started as `instances.rs` starts them.
//!
//! Each trial enrols a fresh user (a step counts once per user), then sends
//! eight `POST /auth/mfa/verify/` at once, four to each instance, from OS
//! threads released by one barrier over connections opened beforehand:
//!
//! - one TOTP code, each request with its own `mfa_token` (eight logins):
//!   the step's single use decides;
//! - one recovery code, the same way: the code's single use decides;
//! - one `mfa_token` with one TOTP code, eight times: the ceremony and the
//!   step decide (losers: the 401 of a spent token, as `docs/api.md`
//!   words it);
//! - one `mfa_token` with eight different valid codes (one TOTP code, seven
//!   recovery codes; eight TOTP codes of different steps cannot all be
//!   valid at once): only the ceremony's single use decides, and the
//!   losers' recovery codes stay unused.
//!
//! Exactly one 200 per trial. Logins are cheap (the tests' bcrypt 4).
//! `LATCHKEY_MFA_RACE_TRIALS` sets the trials (default 50); every run
//! prints an `mfa race summary` line.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use latchkey_tests::mfa_enrol::paths;
use latchkey_tests::{Ctx, TestApp, tests};
use serde_json::{Value, json};

use crate::mfa_login::{enrolled, incorrect, password_step, token_not_valid};
use crate::races::{Answer, Raw, exchange};

tests![
    django:
    one_totp_code_with_eight_mfa_tokens_on_two_instances_lets_exactly_one_in,
    one_recovery_code_with_eight_mfa_tokens_on_two_instances_lets_exactly_one_in,
    one_mfa_token_and_one_code_eight_times_on_two_instances_lets_exactly_one_in,
    one_mfa_token_with_eight_different_codes_on_two_instances_lets_exactly_one_in,
    twenty_wrong_codes_at_once_on_one_mfa_token_have_exactly_five_looked_at,
];

const RACERS: usize = 8;

fn trials() -> usize {
    std::env::var("LATCHKEY_MFA_RACE_TRIALS")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|trials| *trials > 0)
        .unwrap_or(50)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Eight logins, one TOTP code.
    TotpCode,
    /// Eight logins, one recovery code.
    RecoveryCode,
    /// One login, one TOTP code, eight times.
    OneToken,
    /// One login, one TOTP code and seven recovery codes.
    OneTokenManyCodes,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::TotpCode => "one TOTP code, eight mfa_tokens",
            Kind::RecoveryCode => "one recovery code, eight mfa_tokens",
            Kind::OneToken => "one mfa_token and one TOTP code, eight times",
            Kind::OneTokenManyCodes => "one mfa_token, a TOTP code and seven recovery codes",
        }
    }

    /// What a request that lost may answer.
    fn losing_answers(self) -> Vec<(u16, Value)> {
        match self {
            Kind::TotpCode => vec![(400, incorrect("code"))],
            Kind::RecoveryCode => vec![(400, incorrect("recovery_code"))],
            // docs/api.md: with one and the same mfa_token, the loser gets
            // the 401 of a spent token, on both backends.
            Kind::OneToken | Kind::OneTokenManyCodes => vec![(401, token_not_valid())],
        }
    }
}

async fn one_totp_code_with_eight_mfa_tokens_on_two_instances_lets_exactly_one_in(mut ctx: Ctx) {
    run(&mut ctx, Kind::TotpCode).await;
}

async fn one_recovery_code_with_eight_mfa_tokens_on_two_instances_lets_exactly_one_in(
    mut ctx: Ctx,
) {
    run(&mut ctx, Kind::RecoveryCode).await;
}

async fn one_mfa_token_and_one_code_eight_times_on_two_instances_lets_exactly_one_in(mut ctx: Ctx) {
    run(&mut ctx, Kind::OneToken).await;
}

async fn one_mfa_token_with_eight_different_codes_on_two_instances_lets_exactly_one_in(
    mut ctx: Ctx,
) {
    run(&mut ctx, Kind::OneTokenManyCodes).await;
}

/// "After 5 wrong codes the mfa_token stops working", also when twenty
/// arrive at once on two instances: the token's tries are taken by one
/// statement before a code is looked at, so exactly five answer 400 and
/// the other fifteen the 401 of a dead token (the account's own limit is
/// off here, so only the token's decides).
async fn twenty_wrong_codes_at_once_on_one_mfa_token_have_exactly_five_looked_at(mut ctx: Ctx) {
    let off = [
        ("THROTTLE_LOGIN_FAILURES", "0"),
        ("THROTTLE_AUTH_PER_IP", "0"),
    ];
    let first = ctx.spawn_with(&off).await;
    let url = first.database_url.clone();
    let second = ctx.spawn_on(&url, &off).await;
    let instances = [&first, &second];
    let mut failures = Vec::new();
    for trial in 0..(trials() / 5).max(1) {
        let email = format!("burst-{trial}@example.com");
        let mut jae = enrolled(instances[trial % 2], &email).await;
        let mfa_token = password_step(instances[trial % 2], &email).await;
        let requests: Vec<(u16, Raw)> = (0..20)
            .map(|n| {
                let wrong = format!("wrong{n}");
                (instances[n % 2].port, verify(&mfa_token, "code", &wrong))
            })
            .collect();
        let answers = actix_web::rt::task::spawn_blocking(move || race(requests))
            .await
            .unwrap();
        let looked_at = answers
            .iter()
            .filter(|a| (a.status, a.body.clone()) == (400, incorrect("code")))
            .count();
        let dead = answers
            .iter()
            .filter(|a| (a.status, a.body.clone()) == (401, token_not_valid()))
            .count();
        if (looked_at, dead) != (5, 15) {
            failures.push(format!("trial {trial}: {looked_at} × 400, {dead} × 401"));
        }
        // and the right code no longer opens it
        let code = jae.totp.next_code().await;
        let late = first
            .request(
                "POST",
                paths::VERIFY,
                latchkey_tests::app::Req::json(json!({"mfa_token": mfa_token, "code": code})),
            )
            .await;
        if (late.status, late.body.clone()) != (401, token_not_valid()) {
            failures.push(format!(
                "trial {trial}: the right code afterwards: {}",
                late.status
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What the trials came to.
#[derive(Default)]
struct Tally {
    /// Trials by their number of 200s.
    winners: BTreeMap<usize, usize>,
    /// The losers' answers, `status body`, counted.
    losers: BTreeMap<String, usize>,
    /// What broke the rule, per trial.
    failures: Vec<String>,
}

async fn run(ctx: &mut Ctx, kind: Kind) {
    let first = ctx.spawn().await;
    let url = first.database_url.clone();
    let second = ctx.spawn_on(&url, &[]).await;
    let instances = [&first, &second];
    let trials = trials();
    let allowed = kind.losing_answers();
    let mut tally = Tally::default();
    let started = Instant::now();
    for trial in 0..trials {
        let email = format!("race-{trial}@example.com");
        let mut jae = enrolled(instances[trial % 2], &email).await;
        let requests = match kind {
            Kind::TotpCode | Kind::RecoveryCode => {
                let mut tokens = Vec::with_capacity(RACERS);
                for n in 0..RACERS {
                    let app = instances[n % 2];
                    tokens.push((app.port, password_step(app, &email).await));
                }
                // The code last, so it is sent well inside its window.
                let (field, code) = if kind == Kind::TotpCode {
                    ("code", jae.totp.next_code().await)
                } else {
                    ("recovery_code", jae.recovery_codes[0].clone())
                };
                tokens
                    .into_iter()
                    .map(|(port, mfa_token)| (port, verify(&mfa_token, field, &code)))
                    .collect()
            }
            Kind::OneToken => {
                let mfa_token = password_step(instances[trial % 2], &email).await;
                let code = jae.totp.next_code().await;
                (0..RACERS)
                    .map(|n| (instances[n % 2].port, verify(&mfa_token, "code", &code)))
                    .collect()
            }
            Kind::OneTokenManyCodes => {
                let mfa_token = password_step(instances[trial % 2], &email).await;
                let code = jae.totp.next_code().await;
                let mut requests = vec![(first.port, verify(&mfa_token, "code", &code))];
                for (n, recovery) in jae.recovery_codes.iter().take(RACERS - 1).enumerate() {
                    requests.push((
                        instances[(n + 1) % 2].port,
                        verify(&mfa_token, "recovery_code", recovery),
                    ));
                }
                requests
            }
        };
        let answers = actix_web::rt::task::spawn_blocking(move || race(requests))
            .await
            .unwrap();
        let wins = answers.iter().filter(|a| a.status == 200).count();
        *tally.winners.entry(wins).or_default() += 1;
        if wins != 1 {
            tally
                .failures
                .push(format!("trial {trial}: {wins} answers were 200"));
        }
        for answer in answers.iter().filter(|a| a.status != 200) {
            *tally
                .losers
                .entry(format!("{} {}", answer.status, answer.body))
                .or_default() += 1;
            if !allowed.contains(&(answer.status, answer.body.clone())) {
                tally.failures.push(format!(
                    "trial {trial}: a loser answered {} {}",
                    answer.status, answer.text
                ));
            }
        }
        if kind == Kind::OneTokenManyCodes {
            // The losers' recovery codes were given back.
            let used = answers.iter().skip(1).filter(|a| a.status == 200).count() as i64;
            let status = jae.user.get(paths::MFA).await;
            status.assert_status(200);
            if status.body["recovery_codes"] != json!({"unused": 10 - used}) {
                tally.failures.push(format!(
                    "trial {trial}: {used} recovery codes won, and GET /auth/mfa/ says {}",
                    status.body["recovery_codes"]
                ));
            }
        }
        if wins > 0 {
            check_one_session(&first, &jae.user.access, trial, &mut tally).await;
        }
    }
    let summary = format!(
        "mfa race summary: {} on {}, {trials} trials of {RACERS} requests on two instances: \
         trials by number of 200s {:?}; losing answers {:?}; failures {} ({:.1} s)",
        kind.name(),
        first.backend,
        tally.winners,
        tally.losers,
        tally.failures.len(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("{summary}");
    assert!(
        tally.failures.is_empty(),
        "{summary}\n{:#?}",
        tally.failures
    );
}

fn verify(mfa_token: &str, field: &str, code: &str) -> Raw {
    Raw::new("POST", paths::VERIFY).json(json!({"mfa_token": mfa_token, field: code}))
}

/// The user's sessions: the one `confirm/` started and the winner's.
async fn check_one_session(app: &TestApp, access: &str, trial: usize, tally: &mut Tally) {
    let listed = app.sessions(access).await;
    listed.assert_status(200);
    let sessions = listed.body["results"].as_array().unwrap().len();
    if sessions != 2 {
        tally.failures.push(format!(
            "trial {trial}: {sessions} live sessions (confirm's and the winner's expected)"
        ));
    }
}

/// Sends every request at once from a thread of its own, each over a
/// connection opened before the barrier.
fn race(requests: Vec<(u16, Raw)>) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let threads: Vec<_> = requests
        .into_iter()
        .map(|(port, request)| {
            let (mut stream, bytes) = request.prepare(port);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                exchange(&mut stream, &bytes)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}
