//! Connection limits (`max_connections`, `max_connections_wait`), the Host
//! sent to backends, and pooled connections.

use std::sync::Arc;
use std::time::Duration;

use lacquer_tests::{Gate, Lacquer, Reply, Transport, both_transports, wait_until};

use super::{CLIENT_TIMEOUT, assert_branded_503, assert_logged, backend, get, start};

/// An origin holding `/slow` at `gate`, answering anything else at once.
async fn slow_and_quick(t: Transport, gate: &Gate) -> lacquer_tests::AnyOrigin {
    let gate = gate.clone();
    t.origin(move |s| {
        if s.uri.starts_with("/slow") {
            Reply::ok("slow").held(&gate)
        } else {
            Reply::ok("quick")
        }
    })
    .await
}

/// Start `GET /slow` in the background and wait until the origin holds it.
async fn occupy_the_slot(
    l: &Arc<Lacquer>,
    gate: &Gate,
) -> tokio::task::JoinHandle<lacquer_tests::Tried> {
    let first = tokio::spawn({
        let l = l.clone();
        async move { get(&l, "/slow").await }
    });
    wait_until(
        CLIENT_TIMEOUT,
        "the slow request reaches the origin",
        || async { gate.waiting() == 1 },
    )
    .await;
    first
}

async fn max_connections_busy_fails_while_the_slot_is_held(t: Transport) {
    let name = t.name("one");
    let gate = Gate::new();
    let origin = slow_and_quick(t, &gate).await;
    let l = Arc::new(start(&[backend(&name, &origin.url(), "max_connections = 1")]).await);
    let first = occupy_the_slot(&l, &gate).await;
    // Answered while the origin still holds the first request: it did not wait.
    let r = get(&l, "/quick").await;
    assert_branded_503(&r, "backend-busy", &name);
    assert_eq!(gate.waiting(), 1, "the slot was still taken");
    assert_eq!(l.fetch_failures(&name, "backend-busy").await, 1.0);
    assert_logged(&name, "backend-busy");
    assert_eq!(
        origin.hits(),
        1,
        "the busy request never reached the origin"
    );
    gate.open();
    let f = first.await.unwrap();
    assert_eq!((f.got.status, f.got.text().as_str()), (200, "slow"));
    // The slot is free again once the slow response is done.
    assert_eq!(get(&l, "/quick").await.got.text(), "quick");
}

async fn max_connections_wait_queues_until_the_slot_is_free(t: Transport) {
    let name = t.name("queue");
    let gate = Gate::new();
    let origin = slow_and_quick(t, &gate).await;
    let l = Arc::new(
        start(&[backend(
            &name,
            &origin.url(),
            "max_connections = 1\nmax_connections_wait = \"1h\"",
        )])
        .await,
    );
    let first = occupy_the_slot(&l, &gate).await;
    let second = tokio::spawn({
        let l = l.clone();
        async move { get(&l, "/quick").await }
    });
    // The second request is inside the host (cache-policy's on-recv ran or
    // was skipped for it), past which nothing but the slot can hold it.
    wait_until(
        CLIENT_TIMEOUT,
        "the second request is in the host",
        || async { l.plugin_reached("cache-policy", "on-recv").await == 2.0 },
    )
    .await;
    assert!(!second.is_finished(), "it waits: no busy answer");
    assert_eq!(origin.hits(), 1, "and has not reached the origin");
    gate.open();
    let f = first.await.unwrap();
    assert_eq!(f.got.text(), "slow");
    let s = second.await.unwrap();
    println!(
        "MEASURE {t} max_connections_wait: queued request answered in {:?}",
        s.elapsed
    );
    assert_eq!((s.got.status, s.got.text().as_str()), (200, "quick"));
    let order: Vec<String> = origin.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        order,
        ["/slow", "/quick"],
        "the queued request went after the slot freed"
    );
    assert_eq!(l.fetch_failures(&name, "backend-busy").await, 0.0);
}

async fn max_connections_wait_ends_in_backend_busy(t: Transport) {
    let name = t.name("queue_short");
    let gate = Gate::new();
    let origin = slow_and_quick(t, &gate).await;
    let l = Arc::new(
        start(&[backend(
            &name,
            &origin.url(),
            "max_connections = 1\nmax_connections_wait = \"200ms\"",
        )])
        .await,
    );
    let first = occupy_the_slot(&l, &gate).await;
    let r = get(&l, "/quick").await;
    println!(
        "MEASURE {t} max_connections_wait (200ms) expired: 503 in {:?}",
        r.elapsed
    );
    assert_branded_503(&r, "backend-busy", &name);
    assert!(
        r.elapsed >= Duration::from_millis(200),
        "it waited first: {:?}",
        r.elapsed
    );
    assert_eq!(gate.waiting(), 1, "the slot was held all along");
    gate.open();
    assert_eq!(first.await.unwrap().got.text(), "slow");
}

async fn host_header_is_rewritten(t: Transport) {
    let origin = t.origin(|_| Reply::ok("h")).await;
    let l = start(&[backend(
        &t.name("hosted"),
        &origin.url(),
        "host_header = \"internal.example\"",
    )])
    .await;
    let r = l
        .try_request(
            "GET",
            "/h",
            &[("host", "public.example")],
            "",
            CLIENT_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(r.got.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("host").unwrap(), "internal.example");
}

async fn serves_caches_and_keeps_connections_alive(t: Transport) {
    let origin = t
        .origin(|s| {
            if s.uri.starts_with("/fresh") {
                Reply::ok("fresh").header("cache-control", "no-store")
            } else {
                Reply::ok("stored").header("cache-control", "max-age=60")
            }
        })
        .await;
    let l = start(&[backend(&t.name("pooled"), &origin.url(), "")]).await;
    let host = [("host", "public.example")];
    let first = l
        .try_request("GET", "/u?q=1", &host, "", CLIENT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        (first.got.status, first.got.text().as_str()),
        (200, "stored")
    );
    let second = l
        .try_request("GET", "/u?q=1", &host, "", CLIENT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        second.got.header("x-cache"),
        "HIT",
        "{:?}",
        second.got.headers
    );
    assert_eq!(second.got.text(), "stored");
    assert_eq!(origin.hits(), 1, "the second request came from the cache");
    let seen = origin.seen();
    assert_eq!(seen[0].uri, "/u?q=1", "origin-form request target");
    assert_eq!(seen[0].headers.get("host").unwrap(), "public.example");
    // Uncached requests go to the origin over pooled connections.
    for i in 0..4 {
        assert_eq!(get(&l, &format!("/fresh/{i}")).await.got.text(), "fresh");
    }
    assert_eq!(origin.hits(), 5);
    println!(
        "MEASURE {t}: {} requests over {} connections",
        origin.hits(),
        origin.connections()
    );
    assert!(
        origin.connections() < origin.hits(),
        "keep-alive: {} connections for {} requests",
        origin.connections(),
        origin.hits()
    );
}

both_transports!(
    max_connections_busy_fails_while_the_slot_is_held,
    max_connections_wait_queues_until_the_slot_is_free,
    max_connections_wait_ends_in_backend_busy,
    host_header_is_rewritten,
    serves_caches_and_keeps_connections_alive,
);
