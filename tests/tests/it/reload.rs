//! Live reload: plugins and config swap atomically, a broken config is
//! refused while the old one keeps serving, cache contents and backend health
//! survive, and requests in flight during reloads are never lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lacquer_tests::{Gate, Lacquer, Origin, Reply, guests, wait_until};

fn config(origin: &str, extra: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{origin}\"\n{extra}"
    )
}

fn with_hello(greeting: &str) -> String {
    format!(
        "[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n[[plugins]]\nname = \"hello\"\npath = \"{}\"\nconfig = {{ greeting = \"{greeting}\" }}\n",
        guests::HELLO_HEADER
    )
}

#[tokio::test]
async fn reload_swaps_plugins_and_keeps_the_cache() {
    let o = Origin::start(|_| Reply::ok("body").header("cache-control", "max-age=600")).await;
    let l = Lacquer::start(&config(&o.url(), "")).await.unwrap();
    assert_eq!(l.get("/c").await.header("x-cache"), "MISS");
    l.write_config(&config(&o.url(), &with_hello("one")));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hit = l.get("/c").await;
    assert_eq!(hit.header("x-hello"), "one", "the new plugin runs");
    assert_eq!(
        hit.header("x-cache"),
        "HIT",
        "cache contents survive the reload"
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn broken_config_is_refused_and_the_old_one_keeps_serving() {
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let l = Lacquer::start(&config(&o.url(), &with_hello("old")))
        .await
        .unwrap();
    l.write_config(&config(&o.url(), "[cache]\nmemroy = \"1GiB\"\n"));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("memroy"),
        "the error names the key: {}",
        r.text()
    );
    l.write_config(&config(
        &o.url(),
        &with_hello("new").replace("greeting", "greting"),
    ));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("hello") && r.text().contains("greting"),
        "{}",
        r.text()
    );
    let g = l.get("/x").await;
    assert_eq!((g.status, g.header("x-hello")), (200, "old"));
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        m.contains("lacquer_reloads_total{result=\"refused\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn forced_health_survives_a_reload() {
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let debug = "[server]\ndebug_headers = true\n";
    let l = Lacquer::start(&config(&o.url(), debug)).await.unwrap();
    assert_eq!(
        l.admin("POST", "/backends/app/health", "sick").await.status,
        200
    );
    let sick = l.get("/a").await;
    assert_eq!(
        (sick.status, sick.header("x-lacquer-error")),
        (503, "backend-unhealthy backend=app")
    );
    assert_eq!(l.admin("POST", "/reload", "").await.status, 200);
    let sick = l.get("/a").await;
    assert_eq!(
        (sick.status, sick.header("x-lacquer-error")),
        (503, "backend-unhealthy backend=app"),
        "still sick after reload"
    );
    assert_eq!(o.hits(), 0, "no request reached the sick backend");
    assert_eq!(
        l.admin("POST", "/backends/app/health", "auto").await.status,
        200
    );
    assert_eq!(l.get("/a").await.status, 200);
}

#[tokio::test]
async fn requests_in_flight_finish_on_the_generation_they_started_on() {
    let gate = Gate::new();
    let g = gate.clone();
    let o = Origin::start(move |s| {
        let r = Reply::ok(&s.uri).header("cache-control", "no-store");
        if s.uri.starts_with("/slow") {
            r.held(&g)
        } else {
            r
        }
    })
    .await;
    let l = Arc::new(
        Lacquer::start(&config(&o.url(), &with_hello("old")))
            .await
            .unwrap(),
    );
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move { l.get(&format!("/slow/{i}")).await })
        })
        .collect();
    wait_until(
        Duration::from_secs(20),
        "three requests held at the origin",
        || async { gate.waiting() == 3 },
    )
    .await;
    // Swap the plugin while they wait: new requests see the new one...
    l.write_config(&config(&o.url(), &with_hello("new")));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(l.get("/after").await.header("x-hello"), "new");
    // ...and without it, none.
    l.write_config(&config(&o.url(), ""));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let plain = l.get("/plain").await;
    assert_eq!((plain.status, plain.header("x-hello")), (200, ""));
    assert_eq!(gate.waiting(), 3, "the first three are still in flight");
    // The requests started before both reloads finish with the plugin they started with.
    gate.open();
    for (i, t) in in_flight.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!((r.status, r.text()), (200, format!("/slow/{i}")));
        assert_eq!(
            r.header("x-hello"),
            "old",
            "request {i} delivered by its own generation"
        );
    }
    assert_eq!(l.metric("lacquer_reloads_total{result=\"ok\"}").await, 2.0);
}

#[tokio::test]
async fn reloading_under_load_loses_no_request() {
    let o = Origin::start(|s| Reply::ok(&s.uri)).await;
    let l = Arc::new(
        Lacquer::start(&config(&o.url(), &with_hello("a")))
            .await
            .unwrap(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (l, done) = (l.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..100 {
                let r = l.get(&format!("/w{w}/{i}")).await;
                assert_eq!(r.status, 200, "request {w}/{i}: {}", r.text());
                assert_eq!(r.text(), format!("/w{w}/{i}"));
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let mut refused = 0;
    for round in 0..10 {
        let text = if round == 5 {
            config(
                &o.url(),
                "[[plugins]]\nname = \"x\"\nbuiltin = \"no-such-plugin\"\n",
            )
        } else {
            config(&o.url(), &with_hello(&format!("g{round}")))
        };
        l.write_config(&text);
        let r = l.admin("POST", "/reload", "").await;
        if r.status != 200 {
            refused += 1;
        }
    }
    for w in workers {
        w.await.expect("worker saw only successes");
    }
    assert_eq!(done.load(Ordering::SeqCst), 400, "every request answered");
    assert_eq!(refused, 1, "only the broken config was refused");
    assert_eq!(l.get("/final").await.header("x-hello"), "g9");
}
