//! Every fetch failure kind: the client's status, the cause header, the
//! fetch-failure metric and the log line.

use std::time::{Duration, Instant};

use lacquer_tests::{Gate, Lacquer, Reply, TempDir, Transport, both_transports, log_lines};

use super::{assert_branded, assert_branded_503, assert_logged, backend, get, start};

async fn connect_refused_is_not_a_timeout(t: Transport) {
    let name = t.name("refused");
    let parked = t.parked();
    // A connect timeout longer than the client waits: only a refusal seen
    // as such answers in time.
    let l = start(&[backend(&name, &parked.url(), "connect_timeout = \"1h\"")]).await;
    let g = get(&l, "/x").await;
    assert_branded_503(&g, "connect-refused", &name);
    println!("MEASURE {t} connect-refused: 503 in {:?}", g.elapsed);
    assert_eq!(l.fetch_failures(&name, "connect-refused").await, 1.0);
    assert_logged(&name, "connect-refused");
}

async fn first_byte_timeout_fails_while_the_origin_still_holds_the_answer(t: Transport) {
    let name = t.name("slowhead");
    let never = Gate::new();
    let g = never.clone();
    let origin = t.origin(move |_| Reply::ok("late").held(&g)).await;
    let l = start(&[backend(
        &name,
        &origin.url(),
        "first_byte_timeout = \"200ms\"",
    )])
    .await;
    let sent = Instant::now();
    let r = get(&l, "/slow").await;
    let took = sent.elapsed();
    assert_branded_503(&r, "first-byte-timeout", &name);
    println!("MEASURE {t} first-byte-timeout (200ms): 503 in {took:?}");
    // Measured from before the request: load can only make it longer.
    assert!(
        took >= Duration::from_millis(200),
        "not before the timeout: {took:?}"
    );
    assert_eq!(
        l.fetch_failures(&name, "first-byte-timeout").await,
        1.0,
        "not retried"
    );
    assert_eq!(origin.hits(), 1);
    assert_logged(&name, "first-byte-timeout");
}

async fn between_bytes_timeout_cuts_the_body_and_nothing_is_kept(t: Transport) {
    let name = t.name("stall");
    let origin = t
        .origin(|_| Reply {
            chunks: vec!["first chunk;".into(), "never sent in time".into()],
            // Far beyond the client's patience: only the host's timeout ends it.
            chunk_delay: Duration::from_secs(3600),
            ..Reply::ok("").header("cache-control", "max-age=60")
        })
        .await;
    let l = start(&[backend(
        &name,
        &origin.url(),
        "between_bytes_timeout = \"200ms\"",
    )])
    .await;
    let r = get(&l, "/stall").await;
    println!(
        "MEASURE {t} between-bytes-timeout (200ms): body ended in {:?} ({:?})",
        r.elapsed, r.body_error
    );
    assert_eq!(r.got.status, 200, "the head was already sent");
    assert!(
        r.body_error.is_some(),
        "the body is cut, not ended cleanly: {:?}",
        r.got.text()
    );
    assert_eq!(r.got.text(), "first chunk;");
    lacquer_tests::wait_until(CLIENT_WAIT, "between-bytes-timeout counted", || async {
        l.fetch_failures(&name, "between-bytes-timeout").await == 1.0
    })
    .await;
    assert!(
        log_lines("between-bytes-timeout")
            .iter()
            .any(|x| x.contains(&format!("backend={name} "))),
        "logged"
    );
    // The cut object was not kept: the next request fetches again.
    let again = get(&l, "/stall").await;
    assert!(again.body_error.is_some());
    assert_eq!(origin.hits(), 2, "a failed fill is not cached");
}

const CLIENT_WAIT: Duration = Duration::from_secs(10);

async fn a_passed_body_cut_midway_is_recorded_with_its_request(t: Transport) {
    let name = t.name("passcut");
    let origin = t
        .origin(|_| Reply {
            chunks: vec!["first chunk;".into(), "never sent in time".into()],
            chunk_delay: Duration::from_secs(3600),
            ..Reply::ok("").header("cache-control", "no-store")
        })
        .await;
    let l = start(&[backend(
        &name,
        &origin.url(),
        "between_bytes_timeout = \"200ms\"",
    )])
    .await;
    let r = l
        .try_request("POST", "/upload?x=1", &[], "data", CLIENT_WAIT)
        .await
        .unwrap();
    assert_eq!(r.got.status, 200, "the head was already sent");
    assert!(
        r.body_error.is_some(),
        "the body is cut: {:?}",
        r.got.text()
    );
    lacquer_tests::wait_until(CLIENT_WAIT, "the cut response counted", || async {
        l.metric("lacquer_responses_truncated_total").await == 1.0
    })
    .await;
    assert_eq!(l.fetch_failures(&name, "between-bytes-timeout").await, 1.0);
    let recent: serde_json::Value =
        serde_json::from_str(&l.admin("GET", "/fetch-errors", "").await.text()).unwrap();
    let last = &recent[0];
    assert_eq!(last["kind"], "between-bytes-timeout", "{recent}");
    assert_eq!(last["request"], "POST /upload?x=1", "{recent}");
    assert_eq!(last["backend"], name.as_str());
}

async fn a_close_before_the_response_is_connection_reset(t: Transport) {
    let name = t.name("resets");
    let origin = t.origin(|_| Reply::reset()).await;
    let l = start(&[backend(&name, &origin.url(), "")]).await;
    let r = get(&l, "/r").await;
    assert_branded_503(&r, "connection-reset", &name);
    assert_eq!(l.fetch_failures(&name, "connection-reset").await, 1.0);
    assert_eq!(l.fetch_failures(&name, "protocol-error").await, 0.0);
    assert_eq!(origin.hits(), 1);
    assert_logged(&name, "connection-reset");
}

async fn garbage_from_the_origin_is_a_protocol_error(t: Transport) {
    let name = t.name("garbage");
    let raw = t.raw_origin(b"SPEAKING GOPHER TODAY\r\n\r\n").await;
    let l = start(&[backend(&name, &raw.url, "")]).await;
    let r = get(&l, "/g").await;
    assert_branded(&r, 502, "protocol-error", &name);
    assert_eq!(l.fetch_failures(&name, "protocol-error").await, 1.0);
    assert_logged(&name, "protocol-error");
}

async fn origin_5xx_is_passed_through_and_counted(t: Transport) {
    let name = t.name("fivehundred");
    let origin = t
        .origin(|_| Reply::status(500, "origin broke").header("x-from", "origin"))
        .await;
    let l = start(&[backend(&name, &origin.url(), "")]).await;
    for i in 0..2 {
        let r = get(&l, &format!("/e{i}")).await;
        assert_eq!(r.got.status, 500, "passed through, not made a 503");
        assert_eq!(r.got.text(), "origin broke");
        assert_eq!(r.got.header("x-from"), "origin");
        assert_eq!(r.got.header("x-lacquer-error"), "");
    }
    let series = format!("lacquer_backend_requests_total{{backend=\"{name}\",status=\"500\"}}");
    assert_eq!(l.metric(&series).await, 2.0);
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        !m.contains(&format!("lacquer_fetch_failures_total{{backend=\"{name}\"")),
        "a 5xx is an answer, not a fetch failure: {m}"
    );
}

both_transports!(
    connect_refused_is_not_a_timeout,
    first_byte_timeout_fails_while_the_origin_still_holds_the_answer,
    between_bytes_timeout_cuts_the_body_and_nothing_is_kept,
    a_passed_body_cut_midway_is_recorded_with_its_request,
    a_close_before_the_response_is_connection_reset,
    garbage_from_the_origin_is_a_protocol_error,
    origin_5xx_is_passed_through_and_counted,
);

// ---- TCP only: a reset segment, a full accept queue ----

#[tokio::test]
async fn tcp_rst_from_the_origin_is_connection_reset() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                // Linger 0 makes the close an immediate RST.
                #[allow(deprecated)]
                let _ = s.set_linger(Some(Duration::ZERO));
            });
        }
    });
    let l = start(&[backend("rst", &format!("http://{addr}"), "")]).await;
    let r = get(&l, "/r").await;
    assert_branded_503(&r, "connection-reset", "rst");
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
    let sent = Instant::now();
    let r = get(&l, "/t").await;
    let took = sent.elapsed();
    assert_branded_503(&r, "connect-timeout", "noaccept");
    println!("MEASURE connect-timeout (300ms): 503 in {took:?}");
    assert!(
        took >= Duration::from_millis(300),
        "not before the timeout: {took:?}"
    );
    assert_eq!(l.fetch_failures("noaccept", "connect-timeout").await, 1.0);
    assert_logged("noaccept", "connect-timeout");
}

// ---- Unix only: socket paths ----

#[tokio::test]
async fn a_socket_file_nobody_listens_on_is_connect_refused_and_logged_by_path() {
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
    let r = get(&l, "/x").await;
    assert_branded_503(&r, "connect-refused", "closedsock");
    assert_eq!(l.fetch_failures("closedsock", "connect-refused").await, 1.0);
    assert!(
        log_lines("backend=closedsock ")
            .iter()
            .any(|x| x.contains("closed.sock")),
        "the log names the socket"
    );
}

#[tokio::test]
async fn a_relative_or_empty_socket_path_is_refused() {
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
