//! What people read and try: the OpenAPI description, the docs page, the
//! demo page.

use latchkey_tests::app::Req;
use latchkey_tests::{Ctx, tests};

tests![
    openapi_describes_every_route,
    docs_page_is_served_by_the_binary,
    demo_page_is_served,
];

async fn openapi_describes_every_route(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let response = app.get("/openapi.json", Req::default()).await;
    response.assert_status(200);
    let spec = &response.body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    // Every route the server serves, from its own route table.
    let table = latchkey_server::routes::resources()
        .into_iter()
        .map(|r| {
            (
                r.path.to_owned(),
                r.methods()
                    .iter()
                    .map(|m| m.as_str().to_lowercase())
                    .collect::<Vec<_>>(),
            )
        })
        .chain(
            latchkey_server::routes::user_resources()
                .into_iter()
                .map(|r| {
                    (
                        format!("/list{}", r.path),
                        r.methods()
                            .iter()
                            .map(|m| m.as_str().to_lowercase())
                            .collect(),
                    )
                }),
        );
    let mut count = 0;
    for (path, methods) in table {
        for method in methods {
            assert!(
                paths[&path].get(&method).is_some(),
                "{method} {path} missing"
            );
            count += 1;
        }
    }
    assert!(count >= 27, "only {count} operations in the route table");
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["csrf"]["name"], "X-CSRFToken");
    let user = &spec["components"]["schemas"]["UserView"]["properties"];
    assert!(
        user.get("email").is_some()
            && user.get("password").is_none()
            && user.get("password_hash").is_none()
    );
}

async fn docs_page_is_served_by_the_binary(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let redirect = app.get("/docs", Req::default()).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/docs/"));
    let page = app.get("/docs/", Req::default()).await;
    page.assert_status(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("swagger-ui"));
    assert!(
        !page.text.contains("https://"),
        "no asset comes from the network"
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js", Req::default()).await;
    bundle.assert_status(200);
    assert!(bundle.text.len() > 100_000);
    let init = app
        .get("/docs/swagger-initializer.js", Req::default())
        .await;
    assert!(init.text.contains("/openapi.json"), "{}", init.text);
}

async fn demo_page_is_served(mut ctx: Ctx) {
    let app = ctx.spawn().await;
    let page = app.get("/demo/", Req::default()).await;
    page.assert_status(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for needle in [
        "/register/",
        "/auth/",
        "/list/",
        "/auth/password/",
        "X-CSRFToken",
        "credentials",
    ] {
        assert!(page.text.contains(needle), "{needle}");
    }
}
