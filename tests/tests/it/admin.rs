//! The admin listener's bearer token: GET and HEAD need none; every
//! mutation without it, or with a wrong one, is refused with 401 and has no
//! effect; with it, the mutation happens. Without a token a loopback
//! listener accepts mutations.

use lacquer_tests::{Lacquer, Origin, Reply};

const TOKEN: &str = "s3cret-Token";

async fn with_token() -> (Origin, Lacquer) {
    let o = Origin::start(|_| Reply::ok("page").header("cache-control", "max-age=600")).await;
    let l = Lacquer::start(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[server]\ndebug_headers = true\n\
[[backends]]\nname = \"app\"\nurl = \"{}\"\n",
        o.url()
    ))
    .await
    .unwrap();
    (o, l)
}

/// Every mutation of the admin API, with what it takes.
const MUTATIONS: &[(&str, &str, &str)] = &[
    ("POST", "/purge?url=/p&host=127.0.0.1", ""),
    ("POST", "/ban?url=%5E/b", ""),
    ("POST", "/backends/app/health", "sick"),
    ("POST", "/reload", ""),
];

#[tokio::test]
async fn reads_need_no_token() {
    let (_o, l) = with_token().await;
    for path in [
        "/",
        "/status",
        "/metrics",
        "/backends",
        "/bans",
        "/fetch-errors",
    ] {
        let r = l.admin_with("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let r = l.admin_with("HEAD", path, &[], "").await;
        assert_ne!(r.status, 401, "HEAD {path} is not a mutation");
    }
}

#[tokio::test]
async fn mutations_without_the_right_token_are_refused_and_change_nothing() {
    let (o, l) = with_token().await;
    l.get("/p").await;
    let wrong = [
        vec![],
        vec![("authorization", "Bearer s3cret-Toke")],
        vec![("authorization", "Bearer s3cret-Token2")],
        vec![("authorization", "Bearer S3CRET-TOKEN")],
        vec![("authorization", TOKEN)],
        vec![("authorization", "Basic s3cret-Token")],
        vec![("x-admin-token", TOKEN)],
    ];
    for headers in &wrong {
        for (method, path, body) in MUTATIONS {
            let r = l.admin_with(method, path, headers, body).await;
            assert_eq!(
                r.status,
                401,
                "{method} {path} with {headers:?}: {}",
                r.text()
            );
            assert!(r.text().contains("Authorization: Bearer"), "{}", r.text());
        }
    }
    // Nothing happened: still cached, not banned, healthy, never reloaded.
    assert_eq!(l.get("/p").await.header("x-cache"), "HIT");
    assert_eq!(o.hits(), 1);
    let bans: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/bans", "").await.body).unwrap();
    assert_eq!(bans.as_array().map(Vec::len), Some(0), "{bans}");
    assert_eq!(l.backends().await["backends"][0]["forced"], "auto");
    assert_eq!(l.metric("lacquer_reloads_total{result=\"ok\"}").await, 0.0);
}

#[tokio::test]
async fn mutations_with_the_token_take_effect() {
    let (o, l) = with_token().await;
    let auth = format!("Bearer {TOKEN}");
    let auth = [("authorization", auth.as_str())];
    l.get("/p").await;
    assert_eq!(l.get("/p").await.header("x-cache"), "HIT");
    for (method, path, body) in MUTATIONS {
        let r = l.admin_with(method, path, &auth, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    }
    let bans: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/bans", "").await.body).unwrap();
    assert_eq!(bans.as_array().map(Vec::len), Some(1), "{bans}");
    assert_eq!(l.metric("lacquer_reloads_total{result=\"ok\"}").await, 1.0);
    // Forced sick: the purged URL cannot be fetched again.
    let r = l.get("/p").await;
    assert_eq!(
        (r.status, r.header("x-lacquer-error")),
        (503, "backend-unhealthy backend=app")
    );
    assert_eq!(o.hits(), 1);
    let r = l
        .admin_with("POST", "/backends/app/health", &auth, "auto")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(l.get("/p").await.header("x-cache"), "MISS", "it was purged");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn without_a_token_a_loopback_listener_accepts_mutations() {
    let o = Origin::start(|_| Reply::ok("page").header("cache-control", "max-age=600")).await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/p").await;
    let r = l
        .admin_with("POST", "/purge?url=/p&host=127.0.0.1", &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(l.get("/p").await.header("x-cache"), "MISS");
}
