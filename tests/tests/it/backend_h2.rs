//! HTTP/2 to backends: chosen by ALPN on https or configured as h2c on
//! plain TCP; one connection multiplexes requests; a reset stream, a
//! first-byte timeout and `max_connections` behave as on HTTP/1.1.

use http::Version;
use lacquer_tests::tls::{TestCa, TlsOrigin, TlsSettings};
use lacquer_tests::{Gate, Lacquer, Origin, Reply, Seen, wait_until};

use crate::backends::{CLIENT_TIMEOUT, assert_branded_503, assert_logged, backend, get, start};

fn uncacheable(s: &Seen) -> Reply {
    Reply::ok(&format!("{} {:?}", s.uri, s.version)).header("cache-control", "no-store")
}

async fn h2_origin(ca: &TestCa, alpn: &[&str], f: fn(&Seen) -> Reply) -> TlsOrigin {
    let cert = ca.issue("origin", &["localhost"]);
    TlsOrigin::start(
        TlsSettings {
            cert: &cert,
            alpn,
            client_ca: None,
        },
        f,
    )
    .await
}

fn ca_key(ca: &TestCa) -> String {
    format!("ca = \"{}\"", ca.pem.display())
}

/// Two requests held at the origin at once: on HTTP/1.1 they would need two
/// connections.
async fn two_at_once(l: &Lacquer, gate: &Gate) -> (u16, u16) {
    let a = get(l, "/held/a");
    let b = get(l, "/held/b");
    let open = async {
        wait_until(CLIENT_TIMEOUT, "both requests at the origin", || async {
            gate.waiting() == 2
        })
        .await;
        gate.open();
    };
    let (a, b, ()) = tokio::join!(a, b, open);
    (a.got.status, b.got.status)
}

fn held(gate: &Gate) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let g = gate.clone();
    move |s| uncacheable(s).held(&g)
}

#[tokio::test]
async fn alpn_h2_is_used_and_one_connection_carries_concurrent_requests() {
    let ca = TestCa::new("h2-alpn CA");
    let gate = Gate::new();
    let hold = std::sync::Arc::new(std::sync::Mutex::new(Some(gate.clone())));
    let h = hold.clone();
    let cert = ca.issue("origin", &["localhost"]);
    let origin = TlsOrigin::start(
        TlsSettings {
            cert: &cert,
            alpn: &["h2", "http/1.1"],
            client_ca: None,
        },
        move |s| match h.lock().unwrap().as_ref() {
            Some(g) => uncacheable(s).held(g),
            None => uncacheable(s),
        },
    )
    .await;
    let l = start(&[backend("h2-alpn", &origin.url(), &ca_key(&ca))]).await;

    // The first connection learns by ALPN that the backend speaks h2 (until
    // then, requests racing at a cold start may each open one).
    gate.open();
    let r = get(&l, "/first").await.got;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "/first HTTP/2.0");
    let gate = Gate::new();
    *hold.lock().unwrap() = Some(gate.clone());
    assert_eq!(two_at_once(&l, &gate).await, (200, 200));
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.version == Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(origin.connections(), 1, "one h2 connection, multiplexed");
    // The Host the backend sees travels as :authority (not the backend's address).
    assert!(
        seen.iter()
            .all(|s| s.authority.as_deref() == Some("127.0.0.1")
                && s.headers.get("host").is_some_and(|h| h == "127.0.0.1")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn protocol_http1_keeps_http11_even_where_alpn_offers_h2() {
    let ca = TestCa::new("h2-forced1 CA");
    let origin = h2_origin(&ca, &["h2", "http/1.1"], uncacheable).await;
    let extra = format!("{}\nprotocol = \"http1\"", ca_key(&ca));
    let l = start(&[backend("h2-forced1", &origin.url(), &extra)]).await;
    let r = get(&l, "/one").await.got;
    assert_eq!(r.text(), "/one HTTP/1.1");
    assert_eq!(origin.seen()[0].version, Version::HTTP_11);
}

#[tokio::test]
async fn an_h2c_backend_speaks_http2_over_plain_tcp() {
    let gate = Gate::new();
    let origin = Origin::start(held(&gate)).await;
    let l = start(&[backend("h2c", &origin.url(), "protocol = \"h2c\"")]).await;
    assert_eq!(two_at_once(&l, &gate).await, (200, 200));
    let seen = origin.seen();
    assert!(
        seen.iter().all(|s| s.version == Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(origin.connections(), 1);

    // Without h2c the same origin is spoken to in HTTP/1.1.
    let plain = start(&[backend("h2c-off", &origin.url(), "")]).await;
    assert_eq!(get(&plain, "/p").await.got.text(), "/p HTTP/1.1");
}

#[tokio::test]
async fn a_reset_stream_is_connection_reset_and_the_connection_lives_on() {
    let origin = Origin::start(|s| {
        if s.uri == "/reset" {
            Reply::reset()
        } else {
            uncacheable(s)
        }
    })
    .await;
    let l = start(&[backend("h2-reset", &origin.url(), "protocol = \"h2c\"")]).await;
    let r = get(&l, "/reset").await;
    assert_branded_503(&r, "connection-reset", "h2-reset");
    assert_eq!(l.fetch_failures("h2-reset", "connection-reset").await, 1.0);
    assert_logged("h2-reset", "connection-reset");
    let v: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/fetch-errors", "").await.body).unwrap();
    let detail = v[0]["detail"].as_str().unwrap();
    assert!(detail.contains("HTTP/2"), "{detail}");

    let ok = get(&l, "/fine").await.got;
    assert_eq!(ok.text(), "/fine HTTP/2.0");
    assert_eq!(
        origin.connections(),
        1,
        "a reset stream keeps the connection"
    );
}

#[tokio::test]
async fn first_byte_timeout_holds_on_h2() {
    let never = Gate::new();
    let g = never.clone();
    let origin = Origin::start(move |s| uncacheable(s).held(&g)).await;
    let l = start(&[backend(
        "h2-slow",
        &origin.url(),
        "protocol = \"h2c\"\nfirst_byte_timeout = \"200ms\"",
    )])
    .await;
    let r = get(&l, "/slow").await;
    assert_branded_503(&r, "first-byte-timeout", "h2-slow");
    assert_eq!(l.fetch_failures("h2-slow", "first-byte-timeout").await, 1.0);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn max_connections_counts_streams_in_flight_on_h2() {
    let gate = Gate::new();
    let origin = Origin::start(held(&gate)).await;
    let l = start(&[backend(
        "h2-limit",
        &origin.url(),
        "protocol = \"h2c\"\nmax_connections = 1",
    )])
    .await;
    let first = get(&l, "/first");
    let second = async {
        wait_until(
            CLIENT_TIMEOUT,
            "the first request at the origin",
            || async { gate.waiting() == 1 },
        )
        .await;
        let r = get(&l, "/second").await;
        gate.open();
        r
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.got.status, 200);
    assert_branded_503(&second, "backend-busy", "h2-limit");
    assert_eq!(origin.hits(), 1, "the second stream was never opened");
}

/// An h2c origin that answers one request per connection, then sends
/// GOAWAY and closes it. Counts connections opened and closed.
struct GoawayOrigin {
    addr: std::net::SocketAddr,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GoawayOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn goaway_origin() -> GoawayOrigin {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, c) = (opened.clone(), closed.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let n = o.fetch_add(1, Ordering::SeqCst) + 1;
            let c = c.clone();
            tokio::spawn(async move {
                let (tx, mut answered) = tokio::sync::mpsc::channel::<()>(1);
                let svc = hyper::service::service_fn(move |_req| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.try_send(());
                        let body = Full::new(Bytes::from(format!("connection {n}")));
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    }
                });
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = &mut conn => {}
                    _ = answered.recv() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    GoawayOrigin {
        addr,
        opened,
        closed,
        task,
    }
}

#[tokio::test]
async fn after_goaway_new_requests_reconnect() {
    use std::sync::atomic::Ordering;

    let origin = goaway_origin().await;
    let l = start(&[backend(
        "h2-goaway",
        &format!("http://{}", origin.addr),
        "protocol = \"h2c\"",
    )])
    .await;
    let first = get(&l, "/one").await.got;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "connection 1");
    wait_until(
        CLIENT_TIMEOUT,
        "the origin closed its connection",
        || async { origin.closed.load(Ordering::SeqCst) == 1 },
    )
    .await;
    let second = get(&l, "/two").await.got;
    assert_eq!(second.status, 200, "{:?} {}", second.headers, second.text());
    assert_eq!(second.text(), "connection 2");
    assert_eq!(origin.opened.load(Ordering::SeqCst), 2);
    assert_eq!(l.fetch_failures("h2-goaway", "connection-reset").await, 0.0);
}

#[tokio::test]
async fn between_bytes_timeout_cuts_an_h2_body() {
    let origin = Origin::start(|_| Reply {
        chunks: vec!["first chunk;".into(), "never sent in time".into()],
        // Far beyond the client's patience: only the host's timeout ends it.
        chunk_delay: std::time::Duration::from_secs(3600),
        ..Reply::ok("").header("cache-control", "max-age=60")
    })
    .await;
    let l = start(&[backend(
        "h2-stall",
        &origin.url(),
        "protocol = \"h2c\"\nbetween_bytes_timeout = \"200ms\"",
    )])
    .await;
    let r = get(&l, "/stall").await;
    assert_eq!(r.got.status, 200, "the head was already sent");
    assert!(r.body_error.is_some(), "cut: {:?}", r.got.text());
    assert_eq!(r.got.text(), "first chunk;");
    wait_until(CLIENT_TIMEOUT, "between-bytes-timeout counted", || async {
        l.fetch_failures("h2-stall", "between-bytes-timeout").await == 1.0
    })
    .await;
    assert_eq!(origin.seen()[0].version, Version::HTTP_2);
}

#[tokio::test]
async fn a_passed_post_body_reaches_an_h2_backend() {
    let origin = Origin::start(|s| {
        Reply::ok(&format!(
            "{} {:?} {}",
            s.method,
            s.version,
            s.headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        ))
    })
    .await;
    let l = start(&[backend("h2-post", &origin.url(), "protocol = \"h2c\"")]).await;
    let r = l
        .try_request("POST", "/form", &[], "a=1&b=2", CLIENT_TIMEOUT)
        .await
        .unwrap()
        .got;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST HTTP/2.0 7");
}

/// Clients choose the Host, which HTTP/2 carries as `:authority` and
/// hyper's pool keys connections by: past a bound of distinct Hosts the
/// backend's own authority is used, so new Hosts cannot each open and keep
/// a connection to the backend.
#[tokio::test]
async fn distinct_client_hosts_open_a_bounded_number_of_h2_connections() {
    let origin = Origin::start(uncacheable).await;
    let l = start(&[backend("h2c-hosts", &origin.url(), "protocol = \"h2c\"")]).await;
    for i in 0..300 {
        let host = format!("h{i}.example");
        let r = l.request("GET", "/", &[("host", host.as_str())], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = origin.seen();
    let own = origin.url().trim_start_matches("http://").to_owned();
    assert_eq!(seen[0].authority.as_deref(), Some("h0.example"));
    assert_eq!(
        seen[299].authority.as_deref(),
        Some(own.as_str()),
        "past the bound, the backend's own authority"
    );
    assert!(
        origin.connections() <= 257,
        "{} connections",
        origin.connections()
    );
}
