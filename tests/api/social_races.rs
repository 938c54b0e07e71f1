//! Sign-in with a provider under concurrency, on each backend, several
//! trials each: whatever is used once (a flow, a social code, a native id
//! token) has exactly one winner; two first logins of one new identity make
//! one user; a reclaim racing a password login leaves the squatter no
//! session.

use futures_util::future::join_all;
use latchkey_tests::social::*;
use latchkey_tests::{Ctx, PASSWORD, TestUser, tests};

tests![node:
    of_two_callbacks_of_one_flow_exactly_one_gets_a_social_code,
    of_two_exchanges_of_one_social_code_exactly_one_logs_in,
    of_two_posts_of_one_id_token_exactly_one_logs_in,
    concurrent_first_logins_of_one_new_identity_make_one_user,
    a_reclaim_racing_a_password_login_leaves_the_squatter_no_session,
];

const TRIALS: usize = 4;

async fn of_two_callbacks_of_one_flow_exactly_one_gets_a_social_code(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for trial in 0..TRIALS {
        let flow = begin(&app, "oidc").await;
        // Two codes for one state (the provider does not care that it sees
        // a state twice), so that the provider's own single use of a code
        // does not decide the race: only the claim of the flow can.
        let landings = [
            op.log_in(&flow.location, "alice").await,
            op.log_in(&flow.location, "alice").await,
        ];

        let answers = join_all(
            landings
                .iter()
                .map(|landing| callback(&app, &flow, landing)),
        )
        .await;

        let codes: Vec<String> = answers
            .iter()
            .filter(|a| {
                a.status == 302
                    && a.header("location")
                        .is_some_and(|l| l.contains("#social_code="))
            })
            .map(code_of)
            .collect();
        assert_eq!(codes.len(), 1, "trial {trial}: {answers:#?}");
        for answer in &answers {
            assert!(
                answer.status == 302 || answer.status == 400,
                "trial {trial}: {}",
                answer.text
            );
            if answer.status == 302 && !answer.header("location").unwrap().contains("social_code") {
                assert!(
                    answer
                        .header("location")
                        .unwrap()
                        .contains("#social_error="),
                    "trial {trial}: {answer:?}"
                );
            }
        }
        assert_federated_login(&exchange(&app, &codes[0]).await, "alice@example.com");
    }
    assert_eq!(user_count(&app), 1);
}

async fn of_two_exchanges_of_one_social_code_exactly_one_logs_in(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for trial in 0..TRIALS {
        let code = social_code_as(&app, &op, "oidc", "alice").await;

        let answers = join_all((0..2).map(|_| exchange(&app, &code))).await;

        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "trial {trial}: {answers:#?}");
        for answer in &answers {
            if answer.status == 400 {
                answer.assert(400, invalid_social_code());
            } else {
                assert_federated_login(answer, "alice@example.com");
            }
        }
    }
}

async fn of_two_posts_of_one_id_token_exactly_one_logs_in(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for trial in 0..TRIALS {
        let claims = claims_for(&op, "oidc-web", "alice", Some("alice@example.com"));
        let token = signed(&op, claims).await;

        let answers =
            join_all((0..2).map(|_| native_id_token(&app, "oidc", &token, CLAIMS_NONCE))).await;

        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "trial {trial}: {answers:#?}");
        for answer in &answers {
            if answer.status == 401 {
                answer.assert_unauthorized(provider_token_invalid());
            }
        }
    }
    assert_eq!(user_count(&app), 1);
}

async fn concurrent_first_logins_of_one_new_identity_make_one_user(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for trial in 0..TRIALS {
        let sub = format!("new-{trial}");
        let email = format!("new-{trial}@example.com");
        let mut tokens = Vec::new();
        for _ in 0..3 {
            tokens.push(signed(&op, claims_for(&op, "oidc-web", &sub, Some(&email))).await);
        }
        let before = user_count(&app);

        let answers = join_all(
            tokens
                .iter()
                .map(|token| native_id_token(&app, "oidc", token, CLAIMS_NONCE)),
        )
        .await;

        assert_eq!(user_count(&app), before + 1, "trial {trial}: one user made");
        let stored = stored_user(&app, &email).unwrap();
        assert_eq!(
            identity(&app, "oidc", &sub).map(|i| i.user_id),
            Some(stored.id),
            "trial {trial}"
        );
        for answer in &answers {
            assert_federated_login(answer, &email);
            assert_eq!(user_id_of(answer), stored.id, "trial {trial}");
        }
    }
}

async fn a_reclaim_racing_a_password_login_leaves_the_squatter_no_session(mut ctx: Ctx) {
    let op = start_op(accounts());
    let app = spawn_oidc(&mut ctx, &op).await;

    for trial in 0..TRIALS {
        let email = format!("squatted-{trial}@example.com");
        let squatter = app.user(&email).await;
        let token = signed(
            &op,
            claims_for(&op, "oidc-web", &format!("owner-{trial}"), Some(&email)),
        )
        .await;

        let (password, reclaim) = futures_util::future::join(
            app.login(&email, PASSWORD),
            native_id_token(&app, "oidc", &token, CLAIMS_NONCE),
        )
        .await;

        assert_federated_login(&reclaim, &email);
        assert_eq!(user_id_of(&reclaim), squatter.id, "trial {trial}");
        match password.status {
            200 => {
                // It started a session before the reclaim: that session ended.
                let raced = TestUser::of(&app, &password);
                raced.me().await.assert_status(401);
                app.refresh_token(&raced.refresh).await.assert_status(401);
            }
            401 => {
                password.assert_unauthorized(no_active_account());
            }
            other => panic!(
                "trial {trial}: the password login answered {other}: {}",
                password.text
            ),
        }
        squatter.me().await.assert_status(401);
        app.login(&email, PASSWORD)
            .await
            .assert_unauthorized(no_active_account());
        app.me(&reclaim.access()).await.assert_status(200);
    }
}
