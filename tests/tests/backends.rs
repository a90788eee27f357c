//! Backends end to end: every failure kind (status, metric, log line, time to
//! fail), connection limits, Host rewriting, probes, forced health, the
//! circuit breaker, directors, retries, rate limiting, and a flapping backend
//! under bounded load.
//!
//! Each test names its backends uniquely so its log lines can be told apart
//! from other tests' (they share one log capture). Timings are printed as
//! `MEASURE ...` lines (run with `--nocapture` to see them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, Tried, dead_addr, log_lines, wait_until};

/// Client-side bound on any single exchange in these tests.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3500);

fn backend(name: &str, url: &str, extra: &str) -> String {
    format!("[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

fn director(name: &str, kind: &str, members: &[&str], extra: &str) -> String {
    let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[directors]]\nname = \"{name}\"\nkind = \"{kind}\"\nbackends = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// Start with an admin listener, debug headers and one attempt per request
/// (so every failure is counted once), then `parts` in order.
async fn start(parts: &[String]) -> Lacquer {
    start_with("debug_headers = true\nmax_retries = 0\n", parts).await
}

async fn start_with(server: &str, parts: &[String]) -> Lacquer {
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\n{server}\n{}",
        parts.concat()
    );
    Lacquer::start(&toml).await.expect("lacquer starts")
}

async fn get(l: &Lacquer, path: &str) -> Tried {
    l.try_request("GET", path, &[("accept", "text/html")], "", CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A 503 from error-pages for `kind` on `backend` (debug headers are on).
fn assert_branded_503(t: &Tried, kind: &str, backend: &str) {
    assert_branded(t, 503, kind, backend);
}

/// An error-pages HTML page with this status naming the kind and backend.
fn assert_branded(t: &Tried, status: u16, kind: &str, backend: &str) {
    let g = &t.got;
    assert_eq!(g.status, status, "{:?} {}", g.headers, g.text());
    assert!(
        g.header("content-type").starts_with("text/html"),
        "{:?}",
        g.headers
    );
    assert_eq!(
        g.header("x-lacquer-error"),
        format!("{kind} backend={backend}"),
        "{:?}",
        g.headers
    );
}

/// A `fetch failed` log line for this backend and kind exists.
fn assert_logged(backend: &str, kind: &str) {
    let lines = log_lines(&format!("backend={backend} "));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("kind=\"{kind}\"")) && l.contains("failed")),
        "no log line for backend={backend} kind={kind}: {lines:#?}"
    );
}

// ---- Failure kinds ----

#[tokio::test]
async fn connect_refused_fails_fast() {
    let dead = dead_addr().await;
    let l = start(&[backend("refused", &format!("http://{dead}"), "")]).await;
    let t = get(&l, "/x").await;
    assert_branded_503(&t, "connect-refused", "refused");
    println!("MEASURE connect-refused: 503 in {:?}", t.elapsed);
    assert!(
        t.elapsed < CONNECT_TIMEOUT / 2,
        "refused is fast: {:?}",
        t.elapsed
    );
    assert_eq!(l.fetch_failures("refused", "connect-refused").await, 1.0);
    assert_logged("refused", "connect-refused");
}

#[tokio::test]
async fn first_byte_timeout_fails_at_the_timeout_not_the_origin_delay() {
    let slow_headers = Duration::from_secs(10);
    let origin = Origin::start(move |_| Reply {
        delay: slow_headers,
        ..Reply::ok("late")
    })
    .await;
    let l = start(&[backend(
        "slowhead",
        &origin.url(),
        "first_byte_timeout = \"200ms\"",
    )])
    .await;
    let t = get(&l, "/slow").await;
    assert_branded_503(&t, "first-byte-timeout", "slowhead");
    println!("MEASURE first-byte-timeout (200ms): 503 in {:?}", t.elapsed);
    assert!(
        t.elapsed >= Duration::from_millis(200),
        "not before the timeout: {:?}",
        t.elapsed
    );
    assert!(
        t.elapsed < Duration::from_secs(2),
        "fails at first_byte_timeout, not connect_timeout + first_byte_timeout or the origin's delay: {:?}",
        t.elapsed
    );
    assert_eq!(
        l.fetch_failures("slowhead", "first-byte-timeout").await,
        1.0,
        "not retried"
    );
    assert_eq!(origin.hits(), 1);
    assert_logged("slowhead", "first-byte-timeout");
}

#[tokio::test]
async fn between_bytes_timeout_cuts_the_body() {
    let origin = Origin::start(|_| Reply {
        chunks: vec!["first chunk;".into(), "never sent in time".into()],
        chunk_delay: Duration::from_secs(10),
        ..Reply::ok("").header("cache-control", "max-age=60")
    })
    .await;
    let l = start(&[backend(
        "stall",
        &origin.url(),
        "between_bytes_timeout = \"200ms\"",
    )])
    .await;
    let t = get(&l, "/stall").await;
    println!(
        "MEASURE between-bytes-timeout (200ms): body ended in {:?} ({:?})",
        t.elapsed, t.body_error
    );
    assert_eq!(t.got.status, 200, "the head was already sent");
    assert!(
        t.body_error.is_some() || !t.got.text().contains("never sent"),
        "the body is cut: {:?} {:?}",
        t.body_error,
        t.got.text()
    );
    assert!(!t.got.text().contains("never sent"));
    assert!(
        t.elapsed < Duration::from_secs(5),
        "cut at the timeout, not the origin's pace: {:?}",
        t.elapsed
    );
    let l2 = &l;
    wait_until(
        Duration::from_secs(5),
        "between-bytes-timeout counted",
        || async move { l2.fetch_failures("stall", "between-bytes-timeout").await == 1.0 },
    )
    .await;
    assert!(
        log_lines("between-bytes-timeout")
            .iter()
            .any(|l| l.contains("stall")),
        "logged"
    );
    // The cut object was not kept: the next request fetches again.
    let again = get(&l, "/stall").await;
    assert!(again.body_error.is_some() || !again.got.text().contains("never sent"));
    assert_eq!(origin.hits(), 2, "a failed fill is not cached");
}

#[tokio::test]
async fn reset_before_the_response_is_connection_reset() {
    let origin = Origin::start(|_| Reply {
        reset: true,
        ..Reply::ok("")
    })
    .await;
    let l = start(&[backend("resets", &origin.url(), "")]).await;
    let t = get(&l, "/r").await;
    assert_branded_503(&t, "connection-reset", "resets");
    println!("MEASURE connection-reset: 503 in {:?}", t.elapsed);
    assert!(t.elapsed < CONNECT_TIMEOUT / 2);
    assert_eq!(l.fetch_failures("resets", "connection-reset").await, 1.0);
    assert_eq!(l.fetch_failures("resets", "protocol-error").await, 0.0);
    assert_eq!(origin.hits(), 1);
    assert_logged("resets", "connection-reset");
}

/// An origin that reads a request head, then writes `answer` raw and closes
/// (with a TCP RST instead of a FIN when `rst`).
async fn raw_origin(
    answer: &'static [u8],
    rst: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s.write_all(answer).await;
                if rst {
                    // Linger 0 makes the close an immediate RST (no blocking on drop).
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                }
                drop(s);
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn garbage_from_the_origin_is_a_protocol_error() {
    let (addr, _task) = raw_origin(b"SPEAKING GOPHER TODAY\r\n\r\n", false).await;
    let l = start(&[backend("garbage", &format!("http://{addr}"), "")]).await;
    let t = get(&l, "/g").await;
    assert_branded(&t, 502, "protocol-error", "garbage");
    println!("MEASURE protocol-error: 502 in {:?}", t.elapsed);
    assert!(t.elapsed < CONNECT_TIMEOUT / 2);
    assert_eq!(l.fetch_failures("garbage", "protocol-error").await, 1.0);
    assert_logged("garbage", "protocol-error");
}

#[tokio::test]
async fn tcp_rst_from_the_origin_is_connection_reset() {
    let (addr, _task) = raw_origin(b"", true).await;
    let l = start(&[backend("rst", &format!("http://{addr}"), "")]).await;
    let t = get(&l, "/r").await;
    assert_branded_503(&t, "connection-reset", "rst");
    assert!(t.elapsed < CONNECT_TIMEOUT / 2);
    assert_eq!(l.fetch_failures("rst", "connection-reset").await, 1.0);
    assert_logged("rst", "connection-reset");
}

#[tokio::test]
async fn connect_timeout_when_the_origin_does_not_accept() {
    // A listener with a full accept queue: the kernel drops further SYNs, so
    // connecting hangs (no refusal).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(0).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(c);
        }
    }
    let l = start(&[backend(
        "noaccept",
        &format!("http://{addr}"),
        "connect_timeout = \"300ms\"",
    )])
    .await;
    let t = get(&l, "/t").await;
    assert_branded_503(&t, "connect-timeout", "noaccept");
    println!("MEASURE connect-timeout (300ms): 503 in {:?}", t.elapsed);
    assert!(t.elapsed >= Duration::from_millis(300), "{:?}", t.elapsed);
    assert!(t.elapsed < Duration::from_secs(2), "{:?}", t.elapsed);
    assert_eq!(l.fetch_failures("noaccept", "connect-timeout").await, 1.0);
    assert_logged("noaccept", "connect-timeout");
}

#[tokio::test]
async fn origin_5xx_is_passed_through_and_counted() {
    let origin =
        Origin::start(|_| Reply::status(500, "origin broke").header("x-from", "origin")).await;
    let l = start(&[backend("fivehundred", &origin.url(), "")]).await;
    for i in 0..2 {
        let t = get(&l, &format!("/e{i}")).await;
        assert_eq!(t.got.status, 500, "passed through, not made a 503");
        assert_eq!(t.got.text(), "origin broke");
        assert_eq!(t.got.header("x-from"), "origin");
        assert_eq!(t.got.header("x-lacquer-error"), "");
    }
    assert_eq!(
        l.metric("lacquer_backend_requests_total{backend=\"fivehundred\",status=\"500\"}")
            .await,
        2.0
    );
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        !m.contains("lacquer_fetch_failures_total{backend=\"fivehundred\""),
        "a 5xx is an answer, not a fetch failure: {m}"
    );
}

#[tokio::test]
async fn a_broken_url_does_not_eject_the_backend() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/broken") {
            Reply::status(500, "origin broke")
        } else {
            Reply::ok("fine").header("cache-control", "no-store")
        }
    })
    .await;
    let l = start(&[backend("oneurl", &origin.url(), "")]).await;
    // A client hammering one broken page...
    for i in 0..8 {
        let t = get(&l, &format!("/broken/{i}")).await;
        assert_eq!(
            t.got.status, 500,
            "request {i}: the origin's answer, not {:?}",
            t.got.headers
        );
    }
    // ...does not take the rest of the site down: the backend answered every time.
    let t = get(&l, "/home").await;
    assert_eq!(
        (t.got.status, t.got.text().as_str()),
        (200, "fine"),
        "{:?}",
        t.got.headers
    );
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
    assert_eq!(l.fetch_failures("oneurl", "circuit-open").await, 0.0);
}

// ---- Connection limits ----

#[tokio::test]
async fn max_connections_busy_fails_fast() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/slow") {
            Reply {
                delay: Duration::from_secs(3),
                ..Reply::ok("slow")
            }
        } else {
            Reply::ok("quick")
        }
    })
    .await;
    let l = Arc::new(start(&[backend("one", &origin.url(), "max_connections = 1")]).await);
    let first = tokio::spawn({
        let l = l.clone();
        async move { get(&l, "/slow").await }
    });
    let o = &origin;
    wait_until(
        Duration::from_secs(5),
        "the slow request reached the origin",
        || async move { o.hits() == 1 },
    )
    .await;
    let t = get(&l, "/quick").await;
    assert_branded_503(&t, "backend-busy", "one");
    println!("MEASURE backend-busy: 503 in {:?}", t.elapsed);
    assert!(
        t.elapsed < Duration::from_millis(1500),
        "busy fails at once: {:?}",
        t.elapsed
    );
    assert!(l.fetch_failures("one", "backend-busy").await >= 1.0);
    assert_logged("one", "backend-busy");
    assert_eq!(
        origin.hits(),
        1,
        "the busy request never reached the origin"
    );
    let f = first.await.unwrap();
    assert_eq!((f.got.status, f.got.text().as_str()), (200, "slow"));
    // The slot is free again once the slow response is done.
    assert_eq!(get(&l, "/quick").await.got.status, 200);
}

#[tokio::test]
async fn max_connections_wait_queues_instead_of_failing() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/slow") {
            Reply {
                delay: Duration::from_millis(500),
                ..Reply::ok("slow")
            }
        } else {
            Reply::ok("quick")
        }
    })
    .await;
    let l = Arc::new(
        start(&[backend(
            "queue",
            &origin.url(),
            "max_connections = 1\nmax_connections_wait = \"2s\"",
        )])
        .await,
    );
    let first = tokio::spawn({
        let l = l.clone();
        async move { get(&l, "/slow").await }
    });
    let o = &origin;
    wait_until(
        Duration::from_secs(5),
        "the slow request reached the origin",
        || async move { o.hits() == 1 },
    )
    .await;
    let t = get(&l, "/quick").await;
    println!(
        "MEASURE max_connections_wait: queued request answered in {:?}",
        t.elapsed
    );
    assert_eq!((t.got.status, t.got.text().as_str()), (200, "quick"));
    let f = first.await.unwrap();
    assert_eq!(f.got.status, 200);
    assert_eq!(l.fetch_failures("queue", "backend-busy").await, 0.0);
}

#[tokio::test]
async fn host_header_is_rewritten() {
    let origin = Origin::start(|_| Reply::ok("h")).await;
    let l = start(&[backend(
        "hosted",
        &origin.url(),
        "host_header = \"internal.example\"",
    )])
    .await;
    let t = l
        .try_request(
            "GET",
            "/h",
            &[("host", "public.example")],
            "",
            CLIENT_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(t.got.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("host").unwrap(), "internal.example");
}

// ---- Health: probes, forcing, circuit breaker ----

fn health_origin(
    up: Arc<AtomicBool>,
) -> impl Fn(&lacquer_tests::Seen) -> Reply + Send + Sync + 'static {
    move |s| {
        if s.uri == "/health" {
            if up.load(Ordering::SeqCst) {
                Reply::ok("fine")
            } else {
                Reply::status(500, "sick")
            }
        } else {
            Reply::ok("app").header("cache-control", "no-store")
        }
    }
}

#[tokio::test]
async fn probes_mark_sick_then_healthy_then_sick() {
    let up = Arc::new(AtomicBool::new(false));
    let origin = Origin::start(health_origin(up.clone())).await;
    let probe = "probe = { path = \"/health\", interval = \"100ms\", window = 3, threshold = 2, initial = 0 }";
    let l = start(&[backend("probed", &origin.url(), probe)]).await;

    // initial = 0 < threshold: sick from the start, and requests fail without a fetch.
    let t = get(&l, "/a").await;
    assert_branded_503(&t, "backend-unhealthy", "probed");
    println!(
        "MEASURE backend-unhealthy (sick by probes): 503 in {:?}",
        t.elapsed
    );
    assert!(
        t.elapsed < Duration::from_millis(500),
        "sick fails fast: {:?}",
        t.elapsed
    );
    assert!(l.fetch_failures("probed", "backend-unhealthy").await >= 1.0);
    assert_logged("probed", "backend-unhealthy");
    assert!(
        origin.seen().iter().all(|s| s.uri == "/health"),
        "only probes reached the origin"
    );
    assert_eq!(
        l.metric("lacquer_backend_healthy{backend=\"probed\"}")
            .await,
        0.0
    );

    let l2 = &l;
    wait_until(
        Duration::from_secs(5),
        "bad probes in the history",
        || async move {
            l2.backends().await["backends"][0]["probes"]
                .as_array()
                .is_some_and(|p| p.len() >= 2)
        },
    )
    .await;
    let b = l.backends().await;
    let me = &b["backends"][0];
    assert_eq!(me["name"], "probed");
    assert_eq!(me["healthy"], false);
    assert_eq!(me["probe"]["path"], "/health");
    let probes = me["probes"].as_array().unwrap();
    assert!(probes.iter().all(|p| p["ok"] == false), "{probes:?}");
    assert!(
        probes[0]["detail"].as_str().unwrap().starts_with("500"),
        "{probes:?}"
    );

    // Recovery: two good probes (threshold 2) bring traffic back.
    up.store(true, Ordering::SeqCst);
    let recovered = wait_until(Duration::from_secs(3), "traffic returns", || async move {
        get(l2, "/b").await.got.status == 200
    })
    .await;
    println!(
        "MEASURE probes: recovery (origin up -> traffic) in {recovered:?} (interval 100ms, threshold 2)"
    );
    assert_eq!(l.backends().await["backends"][0]["healthy"], true);
    assert_eq!(
        l.metric("lacquer_backend_healthy{backend=\"probed\"}")
            .await,
        1.0
    );
    assert!(
        log_lines("backend healthy")
            .iter()
            .any(|x| x.contains("probed"))
    );

    // Detection: two bad probes in the window of 3 make it sick again.
    up.store(false, Ordering::SeqCst);
    let detected = wait_until(Duration::from_secs(3), "sick detected", || async move {
        let t = get(l2, "/c").await;
        t.got.status == 503 && t.got.header("x-lacquer-error") == "backend-unhealthy backend=probed"
    })
    .await;
    println!("MEASURE probes: detection (origin sick -> fail fast) in {detected:?}");
    assert!(
        log_lines("backend sick")
            .iter()
            .any(|x| x.contains("probed"))
    );
}

#[tokio::test]
async fn forced_health_overrides_probes() {
    let up = Arc::new(AtomicBool::new(false));
    let origin = Origin::start(health_origin(up.clone())).await;
    let probe = "probe = { path = \"/health\", interval = \"100ms\", window = 3, threshold = 2, initial = 0 }";
    let l = start(&[backend("forced", &origin.url(), probe)]).await;
    assert_eq!(get(&l, "/a").await.got.status, 503, "sick by probes");

    l.force_health("forced", "healthy").await;
    let t = get(&l, "/b").await;
    assert_eq!(
        (t.got.status, t.got.text().as_str()),
        (200, "app"),
        "forced healthy"
    );
    let b = l.backends().await;
    assert_eq!(b["backends"][0]["forced"], "healthy");
    assert_eq!(b["backends"][0]["healthy"], true);

    up.store(true, Ordering::SeqCst);
    let l2 = &l;
    wait_until(
        Duration::from_secs(3),
        "probes report healthy",
        || async move {
            l2.backends().await["backends"][0]["probes"]
                .as_array()
                .is_some_and(|p| p.iter().rev().take(2).all(|x| x["ok"] == true))
        },
    )
    .await;
    l.force_health("forced", "sick").await;
    let t = get(&l, "/c").await;
    assert_branded_503(&t, "backend-unhealthy", "forced");
    assert_eq!(l.backends().await["backends"][0]["healthy"], false);
    assert_eq!(
        l.metric("lacquer_backend_healthy{backend=\"forced\"}")
            .await,
        0.0
    );

    l.force_health("forced", "auto").await;
    assert_eq!(
        get(&l, "/d").await.got.status,
        200,
        "auto: the probes (now good) decide"
    );

    let bad = l.admin("POST", "/backends/forced/health", "poorly").await;
    assert_eq!(bad.status, 400);
    let missing = l.admin("POST", "/backends/nope/health", "sick").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn circuit_breaker_opens_half_opens_and_closes() {
    let port = ParkedPort::new();
    let url = port.url();
    // One attempt per request, so every request is one breaker event.
    let l = start_with(
        "debug_headers = true\nmax_retries = 0\n",
        &[backend("breaker", &url, "")],
    )
    .await;
    for i in 0..5 {
        let t = get(&l, &format!("/b{i}")).await;
        assert_branded_503(&t, "connect-refused", "breaker");
    }
    let opened = Instant::now();
    assert!(
        log_lines("circuit opened")
            .iter()
            .any(|x| x.contains("backend=breaker"))
    );
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], true);

    // The origin comes back, but the circuit is open: no request reaches it.
    let origin = port.listen(|_| Reply::ok("back"));
    let t = get(&l, "/open").await;
    assert!(
        opened.elapsed() < Duration::from_secs(1),
        "still within the first backoff (1 s)"
    );
    assert_branded_503(&t, "circuit-open", "breaker");
    println!("MEASURE circuit-open: 503 in {:?}", t.elapsed);
    assert!(t.elapsed < Duration::from_millis(500));
    assert_eq!(
        origin.hits(),
        0,
        "an open circuit does not touch the network"
    );
    assert_eq!(l.fetch_failures("breaker", "circuit-open").await, 1.0);
    assert_logged("breaker", "circuit-open");

    // After the backoff one trial request goes through, succeeds and closes the circuit.
    let l2 = &l;
    let closed = wait_until(
        Duration::from_secs(5),
        "the trial request closes the circuit",
        || async move { get(l2, "/trial").await.got.status == 200 },
    )
    .await;
    let since_open = opened.elapsed();
    println!(
        "MEASURE circuit breaker: open -> closed after {since_open:?} (backoff 1 s; polled {closed:?})"
    );
    assert!(
        since_open >= Duration::from_millis(900),
        "not before the backoff: {since_open:?}"
    );
    assert_eq!(origin.hits(), 1, "exactly one trial request");
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
    for i in 0..3 {
        assert_eq!(get(&l, &format!("/after{i}")).await.got.status, 200);
    }
}

#[tokio::test]
async fn circuit_breaker_failed_trial_reopens_with_longer_backoff() {
    let port = ParkedPort::new();
    let l = start_with(
        "debug_headers = true\nmax_retries = 0\n",
        &[backend("retrial", &port.url(), "")],
    )
    .await;
    for i in 0..5 {
        assert_eq!(get(&l, &format!("/b{i}")).await.got.status, 503);
    }
    let opened = Instant::now();
    // Poll until the trial happens (a connect-refused after the circuit-opens).
    let l2 = &l;
    wait_until(Duration::from_secs(5), "a trial request", || async move {
        get(l2, "/p").await.got.header("x-lacquer-error") == "connect-refused backend=retrial"
    })
    .await;
    let trial_at = opened.elapsed();
    assert!(
        trial_at >= Duration::from_millis(900),
        "trial only after the backoff: {trial_at:?}"
    );
    let reopened = Instant::now();
    let t = get(&l, "/q").await;
    assert_branded_503(&t, "circuit-open", "retrial");
    assert_eq!(
        l.fetch_failures("retrial", "connect-refused").await,
        6.0,
        "5 + one trial"
    );
    // The second backoff is 2 s: still open well after 1 s.
    let origin = port.listen(|_| Reply::ok("back"));
    let back = wait_until(
        Duration::from_secs(6),
        "traffic returns after the second backoff",
        || async move { get(l2, "/r").await.got.status == 200 },
    )
    .await;
    let open_for = reopened.elapsed();
    println!(
        "MEASURE circuit breaker: failed trial at {trial_at:?}, reopened for {open_for:?} (polled {back:?})"
    );
    assert!(
        open_for >= Duration::from_millis(1900),
        "doubled backoff: {open_for:?}"
    );
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn an_abandoned_trial_does_not_wedge_the_circuit() {
    let origin = Origin::start(|s| match s.uri.as_str() {
        "/fail" => Reply {
            reset: true,
            ..Reply::ok("")
        },
        "/slow" => Reply {
            delay: Duration::from_secs(10),
            ..Reply::ok("slow").header("cache-control", "no-store")
        },
        _ => Reply::ok("ok").header("cache-control", "no-store"),
    })
    .await;
    let l = start(&[backend("wedge", &origin.url(), "")]).await;
    for _ in 0..5 {
        assert_eq!(get(&l, "/fail").await.got.status, 503);
    }
    let l2 = &l;
    // Due for a trial: the circuit is open but the backend counts as usable.
    wait_until(Duration::from_secs(5), "due for a trial", || async move {
        let b = l2.backends().await;
        b["backends"][0]["circuit_open"] == true && b["backends"][0]["healthy"] == true
    })
    .await;
    // The trial goes to a slow URL and its client gives up: the request is dropped mid-fetch.
    let gave_up = l
        .try_request("GET", "/slow", &[], "", Duration::from_millis(300))
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    // Another request becomes the trial, succeeds and closes the circuit.
    wait_until(
        Duration::from_secs(5),
        "a new trial closes the circuit",
        || async move { get(l2, "/ok").await.got.status == 200 },
    )
    .await;
    assert_eq!(l.backends().await["backends"][0]["circuit_open"], false);
}

#[tokio::test]
async fn removing_a_probe_on_reload_forgets_its_verdict() {
    let up = Arc::new(AtomicBool::new(false));
    let origin = Origin::start(health_origin(up)).await;
    let probe = "probe = { path = \"/health\", interval = \"100ms\", window = 3, threshold = 2, initial = 0 }";
    let head = "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\ndebug_headers = true\n";
    let l = Lacquer::start(&format!(
        "{head}{}",
        backend("reprobe", &origin.url(), probe)
    ))
    .await
    .unwrap();
    assert_eq!(get(&l, "/a").await.got.status, 503, "sick by probes");
    l.write_config(&format!("{head}{}", backend("reprobe", &origin.url(), "")));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = get(&l, "/b").await;
    assert_eq!(
        (t.got.status, t.got.text().as_str()),
        (200, "app"),
        "no probe, no sick verdict"
    );
    assert_eq!(l.backends().await["backends"][0]["healthy"], true);
}

// ---- Directors ----

/// Two origins answering their own name, never cacheable.
async fn named_origins() -> (Origin, Origin) {
    let a = Origin::start(|_| Reply::ok("a").header("cache-control", "no-store")).await;
    let b = Origin::start(|_| Reply::ok("b").header("cache-control", "no-store")).await;
    (a, b)
}

#[tokio::test]
async fn round_robin_alternates() {
    let (a, b) = named_origins().await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"rr\"\n",
        &[
            backend("rr_a", &a.url(), ""),
            backend("rr_b", &b.url(), ""),
            director("rr", "round-robin", &["rr_a", "rr_b"], ""),
        ],
    )
    .await;
    let mut got = String::new();
    for i in 0..8 {
        got.push_str(&get(&l, &format!("/rr{i}")).await.got.text());
    }
    assert!(got == "abababab" || got == "babababa", "alternates: {got}");
    assert_eq!((a.hits(), b.hits()), (4, 4));
}

#[tokio::test]
async fn fallback_uses_the_first_healthy() {
    let (a, b) = named_origins().await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"fb\"\n",
        &[
            backend("fb_a", &a.url(), ""),
            backend("fb_b", &b.url(), ""),
            director("fb", "fallback", &["fb_a", "fb_b"], ""),
        ],
    )
    .await;
    for i in 0..3 {
        assert_eq!(get(&l, &format!("/f{i}")).await.got.text(), "a");
    }
    l.force_health("fb_a", "sick").await;
    for i in 0..3 {
        assert_eq!(
            get(&l, &format!("/g{i}")).await.got.text(),
            "b",
            "first is sick"
        );
    }
    l.force_health("fb_a", "auto").await;
    assert_eq!(get(&l, "/h").await.got.text(), "a", "first is back");
    assert_eq!((a.hits(), b.hits()), (4, 3));
}

#[tokio::test]
async fn hash_by_url_is_sticky_and_spreads() {
    let (a, b) = named_origins().await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"h\"\n",
        &[
            backend("h_a", &a.url(), ""),
            backend("h_b", &b.url(), ""),
            director("h", "hash", &["h_a", "h_b"], "key = \"url\""),
        ],
    )
    .await;
    let mut first = Vec::new();
    for i in 0..20 {
        first.push(get(&l, &format!("/item/{i}")).await.got.text());
    }
    for round in 0..2 {
        for (i, want) in first.iter().enumerate() {
            let got = get(&l, &format!("/item/{i}")).await.got.text();
            assert_eq!(&got, want, "URL /item/{i} moved (round {round})");
        }
    }
    assert!(
        first.iter().any(|x| x == "a") && first.iter().any(|x| x == "b"),
        "spreads: {first:?}"
    );
    assert_eq!(a.hits() + b.hits(), 60);
}

#[tokio::test]
async fn random_with_zero_weight_never_picks_it() {
    let (a, b) = named_origins().await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"rnd\"\n",
        &[
            backend("rnd_a", &a.url(), ""),
            backend("rnd_b", &b.url(), ""),
            director("rnd", "random", &["rnd_a", "rnd_b"], "weights = [1, 0]"),
        ],
    )
    .await;
    for i in 0..30 {
        assert_eq!(get(&l, &format!("/r{i}")).await.got.text(), "a");
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn director_with_every_member_sick_is_no_backend() {
    let (a, b) = named_origins().await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"allsick\"\n",
        &[
            backend("s_a", &a.url(), ""),
            backend("s_b", &b.url(), ""),
            director("allsick", "round-robin", &["s_a", "s_b"], ""),
        ],
    )
    .await;
    l.force_health("s_a", "sick").await;
    l.force_health("s_b", "sick").await;
    let t = get(&l, "/n").await;
    assert_branded_503(&t, "no-backend", "allsick");
    println!("MEASURE no-backend: 503 in {:?}", t.elapsed);
    assert!(t.elapsed < Duration::from_millis(500));
    assert_eq!(l.fetch_failures("allsick", "no-backend").await, 1.0);
    assert_logged("allsick", "no-backend");
    assert_eq!(a.hits() + b.hits(), 0);
    let dirs = l.backends().await["directors"].clone();
    assert_eq!(dirs[0]["name"], "allsick");
    assert_eq!(dirs[0]["healthy"], false);
}

// ---- Retries ----

#[tokio::test]
async fn get_is_retried_on_another_backend() {
    let dead = dead_addr().await;
    let alive = Origin::start(|_| Reply::ok("alive").header("cache-control", "no-store")).await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"retry_rr\"\n",
        &[
            backend("rt_dead", &format!("http://{dead}"), ""),
            backend("rt_alive", &alive.url(), ""),
            director("retry_rr", "round-robin", &["rt_dead", "rt_alive"], ""),
        ],
    )
    .await;
    for i in 0..4 {
        let t = get(&l, &format!("/g{i}")).await;
        assert_eq!(
            (t.got.status, t.got.text().as_str()),
            (200, "alive"),
            "request {i}"
        );
    }
    assert!(
        l.fetch_failures("rt_dead", "connect-refused").await >= 1.0,
        "the dead backend was picked at least once (and the request retried)"
    );
    assert_eq!(alive.hits(), 4);
}

#[tokio::test]
async fn post_is_not_retried() {
    let dead = dead_addr().await;
    let alive = Origin::start(|_| Reply::ok("alive").header("cache-control", "no-store")).await;
    let l = start_with(
        "debug_headers = true\ndefault_backend = \"retry_fb\"\n",
        &[
            backend("pt_dead", &format!("http://{dead}"), ""),
            backend("pt_alive", &alive.url(), ""),
            director("retry_fb", "fallback", &["pt_dead", "pt_alive"], ""),
        ],
    )
    .await;
    // Forced healthy: the dead one stays first in line whatever its breaker says.
    l.force_health("pt_dead", "healthy").await;
    let t = l
        .try_request(
            "POST",
            "/form",
            &[("accept", "text/html")],
            "a=1",
            CLIENT_TIMEOUT,
        )
        .await
        .unwrap();
    assert_branded_503(&t, "connect-refused", "pt_dead");
    assert_eq!(
        l.fetch_failures("pt_dead", "connect-refused").await,
        1.0,
        "one attempt only"
    );
    assert_eq!(alive.hits(), 0, "a POST is never sent twice");
    // The same route with a GET is retried on the next member.
    let g = get(&l, "/page").await;
    assert_eq!((g.got.status, g.got.text().as_str()), (200, "alive"));
    assert_eq!(l.fetch_failures("pt_dead", "connect-refused").await, 2.0);
}

#[tokio::test]
async fn a_single_backend_is_not_retried_against_itself() {
    let dead = dead_addr().await;
    // The default max_retries (1).
    let l = start_with(
        "debug_headers = true\n",
        &[backend("single", &format!("http://{dead}"), "")],
    )
    .await;
    let t = get(&l, "/s").await;
    assert_branded_503(&t, "connect-refused", "single");
    assert_eq!(
        l.fetch_failures("single", "connect-refused").await,
        1.0,
        "one attempt"
    );
}

// ---- Rate limiting ----

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let origin = Origin::start(|_| Reply::ok("ok").header("cache-control", "no-store")).await;
    let plugins = "[[plugins]]\nname = \"rate-limit\"\nbuiltin = \"rate-limit\"\nconfig = { requests_per_second = 1, burst = 2 }\n\
[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n[[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n";
    let l = start(&[backend("limited", &origin.url(), ""), plugins.to_owned()]).await;
    let start = Instant::now();
    let a = get(&l, "/1").await;
    let b = get(&l, "/2").await;
    let c = get(&l, "/3").await;
    let burst = start.elapsed();
    assert!(
        burst < Duration::from_millis(900),
        "the burst took {burst:?}: no token could refill"
    );
    assert_eq!((a.got.status, b.got.status), (200, 200), "burst = 2");
    assert_eq!(c.got.status, 429, "{:?}", c.got.headers);
    let retry: u64 = c
        .got
        .header("retry-after")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry >= 1);
    assert_eq!(
        origin.hits(),
        2,
        "the limited request did not reach the origin"
    );
}

#[tokio::test]
async fn grace_copy_is_served_for_as_long_as_the_backend_is_down() {
    let up = Arc::new(AtomicBool::new(true));
    let origin = Origin::start({
        let up = up.clone();
        move |_| {
            if up.load(Ordering::SeqCst) {
                Reply::ok("cached").header("cache-control", "max-age=1")
            } else {
                Reply {
                    reset: true,
                    ..Reply::ok("")
                }
            }
        }
    })
    .await;
    let l = start(&[
        backend("graceful", &origin.url(), ""),
        "[cache]\ndefault_grace = \"1h\"\n".to_owned(),
    ])
    .await;
    assert_eq!(get(&l, "/g").await.got.text(), "cached");
    up.store(false, Ordering::SeqCst);
    let l2 = &l;
    wait_until(
        Duration::from_secs(5),
        "the copy goes stale",
        || async move { get(l2, "/g").await.got.header("x-cache") == "STALE" },
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "the background refresh fails",
        || async move { l2.fetch_failures("graceful", "connection-reset").await >= 1.0 },
    )
    .await;
    for i in 0..5 {
        let t = get(&l, "/g").await;
        assert_eq!(
            (t.got.status, t.got.text().as_str(), t.got.header("x-cache")),
            (200, "cached", "STALE"),
            "request {i} after a failed refresh: {:?}",
            t.got.headers
        );
    }
}

// ---- Flapping under load ----

#[tokio::test]
async fn flapping_backend_under_load_loses_nothing() {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 75;
    let up = Arc::new(AtomicBool::new(true));
    let resets = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start({
        let (up, resets) = (up.clone(), resets.clone());
        move |s| {
            if !up.load(Ordering::SeqCst) {
                resets.fetch_add(1, Ordering::SeqCst);
                return Reply {
                    reset: true,
                    ..Reply::ok("")
                };
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
                "flappy",
                &origin.url(),
                "connect_timeout = \"1s\"\nfirst_byte_timeout = \"2s\"",
            ),
            "[cache]\ndefault_grace = \"1h\"\n".to_owned(),
        ])
        .await,
    );
    let done = Arc::new(AtomicBool::new(false));
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
    for t in tasks {
        for (path, r) in t.await.expect("worker") {
            total += 1;
            let t = r.unwrap_or_else(|e| panic!("{path}: hung or failed: {e}"));
            assert!(
                t.body_error.is_none(),
                "{path}: body cut: {:?}",
                t.body_error
            );
            let g = &t.got;
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
                    branded += 1;
                }
                (s, _) => panic!("{path}: unexpected {s} {:?} {}", g.headers, g.text()),
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    toggler.await.unwrap();
    let took = started.elapsed();
    println!(
        "MEASURE flapping: {total} requests in {took:?}: {fresh} fresh, {stale} stale, {branded} branded 503; origin resets {}",
        resets.load(Ordering::SeqCst)
    );
    assert_eq!(total, WORKERS * PER_WORKER, "none lost");
    assert!(fresh > 0, "some answers came from the origin");
    assert!(
        resets.load(Ordering::SeqCst) > 0,
        "the origin really went down under load"
    );
    assert!(stale + branded > 0, "the outages were visible");
    // The origin is up for good now: traffic recovers.
    let l2 = &l;
    wait_until(
        Duration::from_secs(10),
        "recovery after flapping",
        || async move { get(l2, "/live/after").await.got.status == 200 },
    )
    .await;
}

// ---- Unix domain socket backends ----

mod unix_socket {
    use super::*;
    use lacquer_tests::{TempDir, UnixOrigin};

    #[tokio::test]
    async fn serves_caches_and_keeps_connections_alive() {
        let origin = UnixOrigin::start(|s| {
            if s.uri.starts_with("/fresh") {
                Reply::ok("fresh").header("cache-control", "no-store")
            } else {
                Reply::ok("over a socket").header("cache-control", "max-age=60")
            }
        });
        let l = start(&[backend("sock", &origin.url(), "")]).await;
        let host = [("host", "public.example")];
        let first = l
            .try_request("GET", "/u?q=1", &host, "", CLIENT_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(first.got.status, 200, "{:?}", first.got.headers);
        assert_eq!(first.got.text(), "over a socket");
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
        assert_eq!(second.got.text(), "over a socket");
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
            "MEASURE unix socket: {} requests over {} connections",
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

    #[tokio::test]
    async fn host_header_overrides_the_clients() {
        let origin = UnixOrigin::start(|_| Reply::ok("h"));
        let l = start(&[backend(
            "sockhosted",
            &origin.url(),
            "host_header = \"internal.example\"",
        )])
        .await;
        let t = l
            .try_request(
                "GET",
                "/h",
                &[("host", "public.example")],
                "",
                CLIENT_TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(t.got.status, 200);
        let seen = origin.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].headers.get("host").unwrap(), "internal.example");
    }

    #[tokio::test]
    async fn a_missing_socket_file_is_connect_refused() {
        let dir = TempDir::new();
        let path = dir.path.join("absent.sock");
        let url = format!("unix:{}", path.display());
        let l = start(&[backend("nosock", &url, "")]).await;
        let t = get(&l, "/x").await;
        assert_branded_503(&t, "connect-refused", "nosock");
        println!("MEASURE unix socket missing: 503 in {:?}", t.elapsed);
        assert!(
            t.elapsed < CONNECT_TIMEOUT / 2,
            "refused is fast: {:?}",
            t.elapsed
        );
        assert_eq!(l.fetch_failures("nosock", "connect-refused").await, 1.0);
        assert_logged("nosock", "connect-refused");
        assert!(
            log_lines("backend=nosock ")
                .iter()
                .any(|x| x.contains("absent.sock")),
            "the log names the socket"
        );
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_is_connect_refused() {
        let dir = TempDir::new();
        let path = dir.path.join("closed.sock");
        // Binding creates the file; dropping the listener leaves it behind, unserved.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let l = start(&[backend(
            "closedsock",
            &format!("unix:{}", path.display()),
            "",
        )])
        .await;
        let t = get(&l, "/x").await;
        assert_branded_503(&t, "connect-refused", "closedsock");
        assert_eq!(l.fetch_failures("closedsock", "connect-refused").await, 1.0);
    }

    #[tokio::test]
    async fn first_byte_timeout_applies() {
        let origin = UnixOrigin::start(|_| Reply {
            delay: Duration::from_secs(10),
            ..Reply::ok("late")
        });
        let l = start(&[backend(
            "sockslow",
            &origin.url(),
            "first_byte_timeout = \"200ms\"",
        )])
        .await;
        let t = get(&l, "/slow").await;
        assert_branded_503(&t, "first-byte-timeout", "sockslow");
        assert!(
            t.elapsed >= Duration::from_millis(200) && t.elapsed < Duration::from_secs(2),
            "fails at first_byte_timeout: {:?}",
            t.elapsed
        );
        assert_eq!(
            l.fetch_failures("sockslow", "first-byte-timeout").await,
            1.0
        );
    }

    #[tokio::test]
    async fn probes_make_the_backend_healthy() {
        let origin = UnixOrigin::start(health_origin(Arc::new(AtomicBool::new(true))));
        let probe = "probe = { path = \"/health\", interval = \"100ms\", window = 3, threshold = 2, initial = 0 }";
        let l = start(&[backend("sockprobed", &origin.url(), probe)]).await;
        let l2 = &l;
        let took = wait_until(Duration::from_secs(5), "healthy by probes", || async move {
            l2.backends().await["backends"][0]["healthy"] == true
        })
        .await;
        println!("MEASURE unix socket probes: healthy in {took:?}");
        let b = l.backends().await;
        let probes = b["backends"][0]["probes"].as_array().unwrap();
        assert!(
            probes
                .iter()
                .any(|p| p["ok"] == true && p["detail"].as_str().unwrap().starts_with("200")),
            "{probes:?}"
        );
        assert_eq!(
            l.metric("lacquer_backend_healthy{backend=\"sockprobed\"}")
                .await,
            1.0
        );
        assert_eq!(get(&l, "/a").await.got.text(), "app");
        assert!(origin.seen().iter().any(|s| s.uri == "/health"));
    }

    #[tokio::test]
    async fn a_relative_or_empty_path_is_refused() {
        for url in ["unix:relative/path", "unix:", "unix://host/path"] {
            let e = Lacquer::start(&backend("bad", url, ""))
                .await
                .err()
                .unwrap_or_else(|| panic!("{url} is refused"));
            let e = format!("{e:#}");
            assert!(e.contains("backends[0].url"), "{url}: {e}");
            assert!(e.contains(&format!("{url:?}")), "{url}: {e}");
        }
    }
}
