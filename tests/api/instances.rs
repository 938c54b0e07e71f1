//! Several instances on one database, as behind a load balancer.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, PASSWORD, tests};
use serde_json::json;

tests![a_token_blacklisted_through_one_instance_is_refused_by_the_others];

async fn a_token_blacklisted_through_one_instance_is_refused_by_the_others(mut ctx: Ctx) {
    let first = ctx.spawn().await;
    let url = first.database_url.clone();
    let second = ctx.spawn_on(&url, &[]).await;
    let third = ctx.spawn_on(&url, &[]).await;
    let registered = first.registered("jae@example.com").await;
    second.me(&registered.access()).await.assert_status(200);
    third
        .login("jae@example.com", PASSWORD)
        .await
        .assert_status(200);
    second
        .request(
            "DELETE",
            "/auth/",
            Req::json(json!({"refresh": registered.refresh()})),
        )
        .await
        .assert_status(202);
    for instance in [&first, &third] {
        instance.refresh_token(&registered.refresh()).await.assert(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
    }
}
