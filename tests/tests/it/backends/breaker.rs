//! The passive circuit breaker: five consecutive failures (fetch failures,
//! or 502/503/504 answers) open it for 1 s, doubling while trials fail; an
//! open circuit answers `circuit-open` without touching the network; 500s
//! never open it.
//!
//! The open period is the host's constant (1 s). Times are only checked as
//! lower bounds measured from before the event that starts them (a loaded
//! machine can only make them longer).

use std::time::{Duration, Instant};

use lacquer_tests::{Gate, Reply, Transport, both_transports, log_lines, wait_until};

use super::{assert_branded_503, assert_logged, backend, get, start, start_with};

const LIMIT: Duration = Duration::from_secs(15);

async fn circuit_breaker_opens_half_opens_and_closes(t: Transport) {
    let name = t.name("breaker");
    let parked = t.parked();
    let l = start(&[backend(&name, &parked.url(), "")]).await;
    for i in 0..4 {
        assert_branded_503(&get(&l, &format!("/b{i}")).await, "connect-refused", &name);
    }
    let before_opening = Instant::now();
    assert_branded_503(&get(&l, "/b4").await, "connect-refused", &name);
    // The origin comes back, but the circuit is open: no request reaches it.
    let origin = parked.listen(|_| Reply::ok("back"));
    let r = get(&l, "/open").await;
    assert_branded_503(&r, "circuit-open", &name);
    assert_eq!(
        origin.hits(),
        0,
        "an open circuit does not touch the network"
    );
    assert_eq!(l.fetch_failures(&name, "circuit-open").await, 1.0);
    assert_eq!(l.fetch_failures(&name, "connect-refused").await, 5.0);
    assert_logged(&name, "circuit-open");
    assert!(
        log_lines("circuit opened")
            .iter()
            .any(|x| x.contains(&format!("backend={name}")))
    );
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], true);

    // After the backoff one trial request goes through, succeeds and closes the circuit.
    wait_until(LIMIT, "the trial request closes the circuit", || async {
        get(&l, "/trial").await.got.status == 200
    })
    .await;
    let since = before_opening.elapsed();
    println!("MEASURE {t} circuit breaker: open -> closed after {since:?} (backoff 1 s)");
    assert!(
        since >= Duration::from_secs(1),
        "not before the backoff: {since:?}"
    );
    assert_eq!(origin.hits(), 1, "exactly one trial request");
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
    for i in 0..3 {
        assert_eq!(get(&l, &format!("/after{i}")).await.got.status, 200);
    }
}

async fn a_failed_trial_reopens_with_a_longer_backoff(t: Transport) {
    let name = t.name("retrial");
    let parked = t.parked();
    let l = start(&[backend(&name, &parked.url(), "")]).await;
    for i in 0..5 {
        assert_branded_503(&get(&l, &format!("/b{i}")).await, "connect-refused", &name);
    }
    // Poll until the trial happens: a connect-refused after the circuit-opens.
    wait_until(LIMIT, "a trial request", || async {
        get(&l, "/p").await.got.header("x-lacquer-error")
            == format!("connect-refused backend={name}")
    })
    .await;
    let reopened = Instant::now();
    assert_branded_503(&get(&l, "/q").await, "circuit-open", &name);
    assert_eq!(
        l.fetch_failures(&name, "connect-refused").await,
        6.0,
        "5 + one trial"
    );
    // The second backoff is 2 s: still open after the first backoff's 1 s.
    let origin = parked.listen(|_| Reply::ok("back"));
    let open_at_least = std::cell::Cell::new(Duration::ZERO);
    wait_until(
        LIMIT,
        "traffic returns after the second backoff",
        || async {
            let r = get(&l, "/r").await;
            if r.got.header("x-lacquer-error") == format!("circuit-open backend={name}") {
                // Measured from after the reopening: the host's circuit was open at least this long.
                open_at_least.set(reopened.elapsed());
            }
            r.got.status == 200
        },
    )
    .await;
    let open_at_least = open_at_least.get();
    println!("MEASURE {t} circuit breaker: reopened, still open after {open_at_least:?}");
    assert!(
        open_at_least >= Duration::from_millis(1200),
        "the second backoff is longer than the first: open for {open_at_least:?}"
    );
    assert_eq!(origin.hits(), 1);
}

async fn an_abandoned_trial_does_not_wedge_the_circuit(t: Transport) {
    let name = t.name("wedge");
    let gate = Gate::new();
    let g = gate.clone();
    let origin = t
        .origin(move |s| match s.uri.as_str() {
            "/fail" => Reply::reset(),
            "/slow" => Reply::ok("slow")
                .header("cache-control", "no-store")
                .held(&g),
            _ => Reply::ok("ok").header("cache-control", "no-store"),
        })
        .await;
    let l = start(&[backend(&name, &origin.url(), "")]).await;
    for _ in 0..5 {
        assert_branded_503(&get(&l, "/fail").await, "connection-reset", &name);
    }
    // Due for a trial: the circuit is open but the backend counts as usable.
    wait_until(LIMIT, "due for a trial", || async {
        let b = l.backends().await;
        b["backends"][0]["circuit_open"] == true && b["backends"][0]["healthy"] == true
    })
    .await;
    // The trial goes to a URL the origin holds, and its client gives up:
    // the request is dropped mid-fetch.
    let gave_up = l
        .try_request("GET", "/slow", &[], "", Duration::from_millis(300))
        .await;
    assert!(gave_up.is_err(), "the client gave up: {gave_up:?}");
    assert_eq!(gate.waiting(), 1, "the trial was in flight");
    // Another request becomes the trial, succeeds and closes the circuit.
    wait_until(LIMIT, "a new trial closes the circuit", || async {
        get(&l, "/ok").await.got.status == 200
    })
    .await;
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
    gate.open();
}

async fn consecutive_502_503_504_answers_open_the_circuit(t: Transport) {
    for status in [502u16, 503, 504] {
        let name = t.name(&format!("answers{status}"));
        let origin = t
            .origin(move |s| {
                if s.uri.starts_with("/down") {
                    Reply::status(status, "overloaded").header("x-from", "origin")
                } else {
                    Reply::ok("fine").header("cache-control", "no-store")
                }
            })
            .await;
        let l = start(&[backend(&name, &origin.url(), "")]).await;
        // Four, then a success: the count starts again.
        for i in 0..4 {
            assert_eq!(get(&l, &format!("/down/a{i}")).await.got.status, status);
        }
        assert_eq!(get(&l, "/fine").await.got.text(), "fine");
        for i in 0..5 {
            let r = get(&l, &format!("/down/b{i}")).await;
            assert_eq!(
                (r.got.status, r.got.header("x-from")),
                (status, "origin"),
                "{status} #{i}: the origin's answer is passed through"
            );
        }
        assert_eq!(origin.hits(), 10);
        let r = get(&l, "/fine").await;
        assert_branded_503(&r, "circuit-open", &name);
        assert_eq!(
            origin.hits(),
            10,
            "{status}: the open circuit kept the request off the origin"
        );
        assert_eq!(l.fetch_failures(&name, "circuit-open").await, 1.0);
        assert_eq!(l.backends().await["backends"][0]["circuit_open"], true);
    }
}

async fn a_broken_url_answering_500_does_not_eject_the_backend(t: Transport) {
    let name = t.name("oneurl");
    let origin = t
        .origin(|s| {
            if s.uri.starts_with("/broken") {
                Reply::status(500, "origin broke")
            } else {
                Reply::ok("fine").header("cache-control", "no-store")
            }
        })
        .await;
    let l = start(&[backend(&name, &origin.url(), "")]).await;
    // A client hammering one broken page...
    for i in 0..8 {
        let r = get(&l, &format!("/broken/{i}")).await;
        assert_eq!(
            r.got.status, 500,
            "request {i}: the origin's answer, not {:?}",
            r.got.headers
        );
        assert_eq!(r.got.text(), "origin broke");
    }
    // ...does not take the rest of the site down: the backend answered every time.
    let r = get(&l, "/home").await;
    assert_eq!(
        (r.got.status, r.got.text().as_str()),
        (200, "fine"),
        "{:?}",
        r.got.headers
    );
    assert_eq!(origin.hits(), 9);
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
    assert_eq!(l.fetch_failures(&name, "circuit-open").await, 0.0);
}

async fn the_threshold_and_the_statuses_are_the_backends_own(t: Transport) {
    let name = t.name("tuned");
    let origin = t
        .origin(|s| {
            if s.uri.starts_with("/broken") {
                Reply::status(500, "origin broke")
            } else {
                Reply::ok("fine").header("cache-control", "no-store")
            }
        })
        .await;
    let lax = t.name("lax");
    let lax_origin = t.origin(|_| Reply::status(503, "down")).await;
    let server = format!("debug_headers = true\nmax_retries = 0\ndefault_backend = \"{name}\"\n");
    let l = start_with(&server, &[
        backend(
            &name,
            &origin.url(),
            "circuit = { failures = 2, statuses = [500], backoff = \"30s\" }",
        ),
        backend(&lax, &lax_origin.url(), "circuit = { failures = 0 }"),
        "[[plugins]]\nname = \"router\"\nbuiltin = \"router\"\nconfig = { rules = [{ path_prefix = \"/lax\", backend = \"LAX\" }] }\n[[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n"
            .replace("LAX", &lax),
    ])
    .await;
    let healthy = format!("lacquer_backend_healthy{{backend=\"{name}\"}}");
    let open = format!("lacquer_backend_circuit_open{{backend=\"{name}\"}}");
    assert_eq!(l.metric(&healthy).await, 1.0);
    assert_eq!(get(&l, "/broken/1").await.got.status, 500);
    assert_eq!(get(&l, "/broken/2").await.got.status, 500);
    // Two 500s were this backend's threshold: the circuit is open, and a
    // healthy URL is refused fast, saying why.
    assert_branded_503(&get(&l, "/home").await, "circuit-open", &name);
    assert_eq!(origin.hits(), 2);
    assert_eq!(l.metric(&open).await, 1.0);
    assert_eq!(
        l.metric(&healthy).await,
        0.0,
        "an open circuit is not healthy"
    );
    let line = log_lines("circuit opened")
        .into_iter()
        .find(|x| x.contains(&format!("backend={name}")))
        .expect("a log line when the circuit opens");
    assert!(
        line.contains("after 2 consecutive failures")
            && line.contains("status 500 to GET /broken/2"),
        "{line}"
    );
    let b = &l.backends().await["backends"][0];
    assert_eq!(b["circuit_open"], true);
    assert_eq!(b["last_failure"]["what"], "status 500 to GET /broken/2");
    // The refused request says why, in /fetch-errors too.
    let recent: serde_json::Value =
        serde_json::from_str(&l.admin("GET", "/fetch-errors", "").await.text()).unwrap();
    let refused = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "circuit-open")
        .expect("the circuit-open failure is recorded");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("(last: status 500 to GET /broken/2)"),
        "{refused}"
    );
    // A backend with the breaker off is never ejected by its 503s.
    for i in 0..8 {
        assert_eq!(get(&l, &format!("/lax/{i}")).await.got.status, 503);
    }
    assert_eq!(lax_origin.hits(), 8);
    assert_eq!(l.fetch_failures(&lax, "circuit-open").await, 0.0);
}

both_transports!(
    the_threshold_and_the_statuses_are_the_backends_own,
    circuit_breaker_opens_half_opens_and_closes,
    a_failed_trial_reopens_with_a_longer_backoff,
    an_abandoned_trial_does_not_wedge_the_circuit,
    consecutive_502_503_504_answers_open_the_circuit,
    a_broken_url_answering_500_does_not_eject_the_backend,
);
