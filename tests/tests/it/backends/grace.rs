//! Stale copies while a backend fails: grace, stale-if-error for every
//! waiting client, and a flapping backend under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lacquer_tests::{Gate, Reply, Transport, both_transports, wait_until};

use super::{backend, get, start};

const LIMIT: Duration = Duration::from_secs(15);

async fn grace_copy_is_served_for_as_long_as_the_backend_is_down(t: Transport) {
    let name = t.name("graceful");
    let up = Arc::new(AtomicBool::new(true));
    let origin = t
        .origin({
            let up = up.clone();
            move |_| {
                if up.load(Ordering::SeqCst) {
                    Reply::ok("cached").header("cache-control", "max-age=1")
                } else {
                    Reply::reset()
                }
            }
        })
        .await;
    let l = start(&[
        backend(&name, &origin.url(), ""),
        "[cache]\ndefault_grace = \"1h\"\n".to_owned(),
    ])
    .await;
    assert_eq!(get(&l, "/g").await.got.text(), "cached");
    up.store(false, Ordering::SeqCst);
    wait_until(LIMIT, "the copy goes stale", || async {
        get(&l, "/g").await.got.header("x-cache") == "STALE"
    })
    .await;
    wait_until(LIMIT, "the background refresh fails", || async {
        l.fetch_failures(&name, "connection-reset").await >= 1.0
    })
    .await;
    let asked = origin.hits();
    for i in 0..5 {
        let r = get(&l, "/g").await;
        assert_eq!(
            (r.got.status, r.got.text().as_str(), r.got.header("x-cache")),
            (200, "cached", "STALE"),
            "request {i} after a failed refresh: {:?}",
            r.got.headers
        );
    }
    // The backend kept being asked, and kept failing, while the copy was served.
    wait_until(
        LIMIT,
        "later refreshes reached the origin and failed",
        || async {
            origin.hits() > asked
                && l.fetch_failures(&name, "connection-reset").await == (origin.hits() - 1) as f64
        },
    )
    .await;
}

/// A failed background refresh does not end grace: the next client in
/// grace still gets the stale copy at once while another refresh runs
/// behind it (it does not wait for the backend).
async fn grace_survives_a_failed_background_refresh(t: Transport) {
    let name = t.name("regrace");
    // 0: up, 1: down (close unanswered), 2: hold every request at the gate.
    let mode = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let origin = t
        .origin({
            let (mode, gate) = (mode.clone(), gate.clone());
            move |_| match mode.load(Ordering::SeqCst) {
                0 => Reply::ok("cached").header("cache-control", "max-age=1"),
                1 => Reply::reset(),
                _ => Reply::ok("late")
                    .header("cache-control", "max-age=1")
                    .held(&gate),
            }
        })
        .await;
    let l = Arc::new(
        start(&[
            backend(&name, &origin.url(), ""),
            "[cache]\ndefault_grace = \"1h\"\n".to_owned(),
        ])
        .await,
    );
    assert_eq!(get(&l, "/g").await.got.text(), "cached");
    mode.store(1, Ordering::SeqCst);
    wait_until(LIMIT, "the copy goes stale", || async {
        get(&l, "/g").await.got.header("x-cache") == "STALE"
    })
    .await;
    wait_until(LIMIT, "the background refresh fails", || async {
        l.fetch_failures(&name, "connection-reset").await >= 1.0
    })
    .await;
    mode.store(2, Ordering::SeqCst);
    let client = tokio::spawn({
        let l = l.clone();
        async move { get(&l, "/g").await }
    });
    // The origin now holds whatever reaches it: a client that waits for a
    // fetch cannot finish.
    wait_until(
        LIMIT,
        "the client is answered from the stale copy",
        || async { client.is_finished() },
    )
    .await;
    let r = client.await.unwrap();
    assert_eq!(
        (r.got.status, r.got.text().as_str(), r.got.header("x-cache")),
        (200, "cached", "STALE"),
        "{:?}",
        r.got.headers
    );
    gate.open();
}

/// Concurrent clients of a stale object (stale-if-error, no grace) wait for
/// one fetch; when it fails, each of them gets the stale copy.
async fn every_waiter_gets_the_stale_copy_when_the_fetch_fails(t: Transport) {
    const WAITERS: usize = 8;
    let name = t.name("stalewait");
    let up = Arc::new(AtomicBool::new(true));
    let gate = Gate::new();
    let origin = t
        .origin({
            let (up, gate) = (up.clone(), gate.clone());
            move |_| {
                if up.load(Ordering::SeqCst) {
                    Reply::ok("cached").header("cache-control", "max-age=1, stale-if-error=600")
                } else {
                    // Fails when the test says so.
                    Reply::reset().held(&gate)
                }
            }
        })
        .await;
    let l = Arc::new(start(&[backend(&name, &origin.url(), "")]).await);
    assert_eq!(get(&l, "/s").await.got.text(), "cached");
    up.store(false, Ordering::SeqCst);
    let spawn = |l: &Arc<lacquer_tests::Lacquer>| {
        let l = l.clone();
        tokio::spawn(async move { get(&l, "/s").await })
    };
    // Clients arrive until one finds the copy stale and fetches (held at
    // the gate); those before it were hits.
    let mut clients = Vec::new();
    wait_until(LIMIT, "a client finds the copy stale and fetches", || {
        clients.push(spawn(&l));
        async { gate.waiting() == 1 }
    })
    .await;
    for _ in 0..WAITERS {
        clients.push(spawn(&l));
    }
    // Every client is in the host: cache-policy's on-recv ran (or was
    // skipped) for each, and for the first request.
    let arrived = (1 + clients.len()) as f64;
    wait_until(LIMIT, "every client is in the host", || async {
        l.plugin_reached("cache-policy", "on-recv").await == arrived
    })
    .await;
    assert_eq!(gate.waiting(), 1, "they wait for the one fetch");
    gate.open();
    let mut got = Vec::new();
    for c in clients {
        let r = c.await.unwrap();
        let body = if r.got.status == 200 {
            r.got.text()
        } else {
            "<error page>".to_owned()
        };
        got.push((
            r.got.status,
            body,
            r.got.header("x-lacquer-error").to_owned(),
        ));
    }
    assert_eq!(
        l.fetch_failures(&name, "connection-reset").await,
        1.0,
        "one fetch for all"
    );
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            (g.0, g.1.as_str()),
            (200, "cached"),
            "client {i} of {}: {g:?} (all: {got:?})",
            got.len()
        );
    }
}

async fn flapping_backend_under_load_loses_nothing(t: Transport) {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 75;
    let name = t.name("flappy");
    let up = Arc::new(AtomicBool::new(true));
    let resets = Arc::new(AtomicUsize::new(0));
    let origin = t
        .origin({
            let (up, resets) = (up.clone(), resets.clone());
            move |s| {
                if !up.load(Ordering::SeqCst) {
                    resets.fetch_add(1, Ordering::SeqCst);
                    return Reply::reset();
                }
                let cc = if s.uri.starts_with("/live") {
                    "no-store"
                } else {
                    "max-age=1"
                };
                Reply::ok("origin").header("cache-control", cc)
            }
        })
        .await;
    let l = Arc::new(
        start(&[
            backend(
                &name,
                &origin.url(),
                "connect_timeout = \"1s\"\nfirst_byte_timeout = \"2s\"",
            ),
            "[cache]\ndefault_grace = \"1h\"\n".to_owned(),
        ])
        .await,
    );
    let done = Arc::new(AtomicBool::new(false));
    // The scenario, not synchronisation: the origin flips every 250 ms.
    let toggler = tokio::spawn({
        let (up, done) = (up.clone(), done.clone());
        async move {
            let mut flips = 0;
            while !done.load(Ordering::SeqCst) && flips < 40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                up.fetch_xor(true, Ordering::SeqCst);
                flips += 1;
            }
            up.store(true, Ordering::SeqCst);
        }
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..PER_WORKER {
                let path = match i % 3 {
                    0 => format!("/live/{w}/{i}"),
                    _ => format!("/c/{}", (w * PER_WORKER + i) % 10),
                };
                let r = l
                    .try_request(
                        "GET",
                        &path,
                        &[("accept", "text/html")],
                        "",
                        Duration::from_secs(10),
                    )
                    .await;
                out.push((path, r));
                // Pace the load (not synchronisation): ~300 requests over ~3 s.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            out
        }));
    }
    let (mut fresh, mut stale, mut branded) = (0, 0, 0);
    let mut total = 0;
    for task in tasks {
        for (path, r) in task.await.expect("worker") {
            total += 1;
            let r = r.unwrap_or_else(|e| panic!("{path}: hung or failed: {e}"));
            assert!(
                r.body_error.is_none(),
                "{path}: body cut: {:?}",
                r.body_error
            );
            let g = &r.got;
            match (g.status, g.header("x-cache")) {
                (200, "STALE") => {
                    assert_eq!(g.text(), "origin");
                    stale += 1;
                }
                (200, _) => {
                    assert_eq!(g.text(), "origin", "{path}");
                    fresh += 1;
                }
                (503, _) => {
                    assert!(
                        g.header("content-type").starts_with("text/html"),
                        "{path}: {:?}",
                        g.headers
                    );
                    assert!(g.text().contains("Lacquer"), "branded: {}", g.text());
                    assert!(
                        g.header("x-lacquer-error")
                            .ends_with(&format!("backend={name}")),
                        "{path}: the cause is named: {:?}",
                        g.headers
                    );
                    branded += 1;
                }
                (s, _) => panic!("{path}: unexpected {s} {:?} {}", g.headers, g.text()),
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    toggler.await.unwrap();
    println!(
        "MEASURE {t} flapping: {total} requests in {:?}: {fresh} fresh, {stale} stale, {branded} branded 503; origin resets {}",
        started.elapsed(),
        resets.load(Ordering::SeqCst)
    );
    assert_eq!(total, WORKERS * PER_WORKER, "none lost");
    assert!(fresh > 0, "some answers came from the origin");
    assert!(
        resets.load(Ordering::SeqCst) > 0,
        "the origin really went down under load"
    );
    assert!(stale + branded > 0, "the outages were visible");
    assert!(l.fetch_failures(&name, "connection-reset").await >= 1.0);
    // The origin is up for good now: traffic recovers.
    wait_until(LIMIT, "recovery after flapping", || async {
        get(&l, "/live/after").await.got.status == 200
    })
    .await;
}

both_transports!(
    grace_copy_is_served_for_as_long_as_the_backend_is_down,
    flapping_backend_under_load_loses_nothing,
);

mod every_waiter_gets_the_stale_copy_when_the_fetch_fails {
    use lacquer_tests::Transport;
    #[tokio::test]
    async fn tcp() {
        super::every_waiter_gets_the_stale_copy_when_the_fetch_fails(Transport::Tcp).await
    }
    #[tokio::test]
    async fn unix() {
        super::every_waiter_gets_the_stale_copy_when_the_fetch_fails(Transport::Unix).await
    }
}

mod grace_survives_a_failed_background_refresh {
    use lacquer_tests::Transport;
    #[tokio::test]
    async fn tcp() {
        super::grace_survives_a_failed_background_refresh(Transport::Tcp).await
    }
    #[tokio::test]
    async fn unix() {
        super::grace_survives_a_failed_background_refresh(Transport::Unix).await
    }
}
