//! What clients and backends send can't break the proxy: one Host for the
//! key and the backend, framing owned by the host, slow clients closed,
//! connections bounded, the admin token following the bound socket, and
//! large bodies streamed through without being kept.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use lacquer_tests::raw::{
    RawOrigin, closed_within, exchange, read_response, read_to_close, responses, status_of,
};
use lacquer_tests::{Lacquer, Origin, Progress, Reply, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(30);

fn cached(body: &str) -> Reply {
    Reply::ok(body).header("cache-control", "max-age=600")
}

// ---- Host: one host for the cache key and the backend (defect 4) ----

#[tokio::test]
async fn an_absolute_target_replaces_host_for_the_key_and_the_backend() {
    let o = Origin::start(|s| {
        let host = s
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        cached(&format!("page for {host}"))
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let attack = exchange(
        l.server.addr(),
        b"GET http://victim.example/x HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (got, _) = responses(attack.as_bytes());
    assert_eq!(got[0].status, 200, "{attack}");
    assert_eq!(got[0].body, b"page for victim.example", "{attack}");
    let seen = o.seen();
    assert_eq!(seen.len(), 1);
    let hosts: Vec<_> = seen[0].headers.get_all("host").iter().collect();
    assert_eq!(
        hosts,
        ["victim.example"],
        "the backend sees the key's host, once"
    );
    // The victim's own request is the object the attacker's request stored:
    // it was stored under the host the backend saw.
    let victim = l
        .request("GET", "/x", &[("host", "victim.example")], "")
        .await;
    assert_eq!(victim.header("x-cache"), "HIT");
    assert_eq!(victim.text(), "page for victim.example");
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn missing_duplicate_and_invalid_hosts_are_refused_before_any_plugin() {
    let o = Origin::start(|_| Reply::ok("origin")).await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    for (request, reason) in [
        (
            &b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            "host-missing",
        ),
        (
            &b"GET /a HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n"
                [..],
            "host-duplicate",
        ),
        (
            &b"GET /a HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n"[..],
            "host-invalid",
        ),
        (
            &b"GET /a HTTP/1.1\r\nHost: a.example:http\r\nConnection: close\r\n\r\n"[..],
            "host-invalid",
        ),
    ] {
        let r = exchange(l.server.addr(), request).await;
        assert_eq!(status_of(&r), 400, "{reason}: {r}");
        assert!(
            r.to_ascii_lowercase().contains("host"),
            "the answer names the field: {r}"
        );
        assert!(
            l.metric(&format!(
                "lacquer_requests_refused_total{{reason=\"{reason}\"}}"
            ))
            .await
                >= 1.0,
            "{reason} counted"
        );
    }
    assert_eq!(o.hits(), 0, "nothing reached the backend");
    // HTTP/1.0 may leave Host out.
    let r = exchange(l.server.addr(), b"GET /a HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&r), 200, "{r}");
}

// ---- Backend framing (defect 3) ----

/// 30 bytes of chunked body, with a lying Content-Length of 3.
const CL_AND_TE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=600\r\n\r\n1e\r\nabcdefghijklmnopqrstuvwxyz0123\r\n0\r\n\r\n";

#[tokio::test]
async fn chunked_wins_over_content_length_on_every_delivery() {
    let o = RawOrigin::start(CL_AND_TE).await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    // Two requests pipelined on one keep-alive connection: the stored
    // object's framing must describe exactly its body, or the second answer
    // would be read out of the first's body.
    let raw = exchange(
        l.server.addr(),
        b"GET /d HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (got, rest) = responses(raw.as_bytes());
    assert_eq!(got.len(), 3, "{raw}");
    assert!(rest.is_empty(), "{raw}");
    for r in &got {
        assert_eq!(r.body, b"abcdefghijklmnopqrstuvwxyz0123", "{raw}");
        assert!(r.all("content-length").iter().all(|v| *v == "30"), "{raw}");
    }
    let hit = l.request("GET", "/d", &[("host", "a")], "").await;
    assert_eq!(hit.header("x-cache"), "HIT");
    assert_eq!(hit.header("content-length"), "30");
    assert_eq!(hit.text(), "abcdefghijklmnopqrstuvwxyz0123");
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn a_101_to_a_plain_get_is_a_protocol_error() {
    const SWITCH: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nnot http any more";
    let o = RawOrigin::start(SWITCH).await;
    for plugins in ["", "plugins = []\n"] {
        let l = Lacquer::start(&format!(
            "{plugins}[server]\ndebug_headers = true\n[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{}\"\n",
            o.url()
        ))
        .await
        .unwrap();
        let r = l.get("/ws").await;
        assert_eq!(r.status, 502, "{plugins:?}: {:?} {}", r.headers, r.text());
        assert_eq!(r.header("x-lacquer-error"), "protocol-error backend=app");
        assert!(r.header("upgrade").is_empty());
        assert_eq!(l.fetch_failures("app", "protocol-error").await, 1.0);
    }
}

// ---- Slow and idle clients, connection limits (defect 5) ----

#[tokio::test]
async fn a_half_sent_request_head_is_closed_and_counted() {
    let o = Origin::start(|_| Reply::ok("origin")).await;
    let l = Lacquer::with_origin(&o.url(), "[server]\nheader_read_timeout = \"300ms\"\n").await;
    let mut half = TcpStream::connect(l.server.addr()).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(l.server.addr()).await.unwrap();
    assert!(
        closed_within(&mut half, LONG).await,
        "half-sent head closed"
    );
    assert!(
        closed_within(&mut silent, LONG).await,
        "silent connection closed"
    );
    assert_eq!(
        l.metric("lacquer_connection_timeouts_total{kind=\"header-read\"}")
            .await,
        2.0
    );
    assert_eq!(o.hits(), 0);
    assert_eq!(l.get("/").await.status, 200, "others are served");
}

#[tokio::test]
async fn a_half_sent_second_head_on_a_keep_alive_connection_is_closed_at_header_read_timeout() {
    let o = Origin::start(|_| Reply::ok("origin")).await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[server]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"60s\"\n",
    )
    .await;
    let mut c = TcpStream::connect(l.server.addr()).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The whole first response, then half of a second head.
    assert_eq!(read_response(&mut c).await.body, b"origin");
    c.write_all(b"GET /next HTTP/1.1\r\nHost: a\r\nX-Slow: 1")
        .await
        .unwrap();
    // Closed at header_read_timeout, long before idle_timeout, and counted
    // as a header-read timeout.
    assert!(closed_within(&mut c, LONG).await, "slow second head closed");
    assert_eq!(
        l.metric("lacquer_connection_timeouts_total{kind=\"header-read\"}")
            .await,
        1.0
    );
    assert_eq!(
        l.metric("lacquer_connection_timeouts_total{kind=\"idle\"}")
            .await,
        0.0
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let o = Origin::start(|_| Reply::ok("origin")).await;
    let l = Lacquer::with_origin(&o.url(), "[server]\nidle_timeout = \"300ms\"\n").await;
    let mut c = TcpStream::connect(l.server.addr()).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The response arrives, then the idle connection is closed.
    assert!(closed_within(&mut c, LONG).await);
    assert_eq!(
        l.metric("lacquer_connection_timeouts_total{kind=\"idle\"}")
            .await,
        1.0
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn a_request_in_progress_longer_than_idle_timeout_keeps_its_connection() {
    let gate = lacquer_tests::Gate::new();
    let o = Origin::start({
        let gate = gate.clone();
        move |s| {
            if s.uri.starts_with("/slow") {
                Reply::ok("slow").held(&gate)
            } else {
                Reply::ok("quick")
            }
        }
    })
    .await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[server]\nidle_timeout = \"200ms\"\nheader_read_timeout = \"300ms\"\n",
    )
    .await;
    let mut busy = TcpStream::connect(l.server.addr()).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    wait_until(LONG, "the origin holds /slow", || async {
        gate.waiting() == 1
    })
    .await;
    // Two connections in a row, each answered after /slow began and then
    // left idle, are closed: by then /slow has been in progress for longer
    // than idle_timeout and its connection is past header_read_timeout
    // (counted from its start). Neither may close a connection with a
    // request in progress.
    for _ in 0..2 {
        let mut idle = TcpStream::connect(l.server.addr()).await.unwrap();
        idle.write_all(b"GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(closed_within(&mut idle, LONG).await);
    }
    // (The admin connections the metric reads use count too.)
    assert!(
        l.metric("lacquer_connection_timeouts_total{kind=\"idle\"}")
            .await
            >= 2.0
    );
    gate.open();
    // Its answer comes on the connection the idle timer left open.
    let raw = tokio::time::timeout(LONG, read_to_close(&mut busy))
        .await
        .expect("answered");
    let (got, _) = responses(raw.as_bytes());
    assert_eq!(got.len(), 1, "{raw}");
    assert_eq!(got[0].status, 200, "{raw}");
    assert_eq!(got[0].body, b"slow", "{raw}");
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_closed_and_counted() {
    let body = "x".repeat(16 << 20);
    let o = Origin::start(move |_| cached(&body)).await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[server]\nidle_timeout = \"300ms\"\n[cache]\nmax_object_size = \"32MiB\"\n",
    )
    .await;
    // A small receive window, and nothing read: the 16 MiB answer cannot
    // all go out, the host's write stays pending.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(l.server.addr()).await.unwrap();
    c.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    wait_until(LONG, "the stalled write timed out", || async {
        l.metric("lacquer_connection_timeouts_total{kind=\"send\"}")
            .await
            == 1.0
    })
    .await;
    wait_until(LONG, "the connection is gone", || async {
        l.metric("lacquer_connections").await == 0.0
    })
    .await;
    drop(c);
}

#[tokio::test]
async fn connections_past_max_connections_are_refused_and_counted() {
    let o = Origin::start(|_| Reply::ok("origin")).await;
    let l = Lacquer::with_origin(&o.url(), "[server]\nmax_connections = 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(l.server.addr()).await.unwrap());
    }
    wait_until(LONG, "3 connections open", || async {
        l.metric("lacquer_connections").await == 3.0
    })
    .await;
    let mut extra = TcpStream::connect(l.server.addr()).await.unwrap();
    extra
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut extra, LONG).await, "the 4th is closed");
    assert_eq!(l.metric("lacquer_connections_refused_total").await, 1.0);
    assert_eq!(o.hits(), 0);
    drop(held);
    wait_until(LONG, "connections released", || async {
        l.metric("lacquer_connections").await == 0.0
    })
    .await;
    // Room again: a request goes through (the harness client connects anew).
    assert_eq!(l.get("/").await.status, 200);
}

// ---- The admin token follows the bound socket (defect 6) ----

#[tokio::test]
async fn a_reload_cannot_drop_the_token_of_a_public_admin_socket() {
    let o = Origin::start(|_| cached("x")).await;
    let backends = format!("[[backends]]\nname = \"app\"\nurl = \"{}\"\n", o.url());
    let l = Lacquer::start(&format!(
        "[admin]\nlisten = \"0.0.0.0:0\"\ntoken = \"s3cret\"\n{backends}"
    ))
    .await
    .unwrap();
    let auth = [("authorization", "Bearer s3cret")];
    l.write_config(&format!("[admin]\nlisten = \"127.0.0.1:0\"\n{backends}"));
    let r = l.admin_with("POST", "/reload", &auth, "").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("admin.token"), "{}", r.text());
    let purge = "/purge?url=/x&host=a";
    assert_eq!(l.admin_with("POST", purge, &[], "").await.status, 401);
    assert_eq!(
        l.admin_with("POST", purge, &[("authorization", "Bearer s3cre")], "")
            .await
            .status,
        401
    );
    assert_eq!(l.admin_with("POST", purge, &auth, "").await.status, 200);
}

#[tokio::test]
async fn blank_tokens_are_refused() {
    for token in ["", "   "] {
        let e = Lacquer::start(&format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n"
        ))
        .await
        .err()
        .expect("refused");
        assert!(e.to_string().contains("admin.token"), "{e}");
    }
}

// ---- Large bodies stream through, nothing kept (defect 9) ----

#[tokio::test]
async fn a_body_past_max_object_size_streams_through_and_is_not_kept() {
    const CHUNKS: usize = 3200; // 200 MiB in 64 KiB chunks
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
    let o = Origin::start(move |_| {
        let mut r = cached("");
        r.chunks = vec![chunk.clone(); CHUNKS];
        r.progress = Some(p.clone());
        r
    })
    .await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[cache]\nmemory = \"16MiB\"\nmax_object_size = \"1MiB\"\n",
    )
    .await;
    // A client reads 3 MiB, then goes away.
    let mut resp = l.stream("/big").await;
    let mut read = 0;
    while read < 3 << 20 {
        let f = resp.frame().await.expect("more body").expect("body ok");
        read += f.into_data().map_or(0, |d| d.len());
    }
    assert_eq!(l.metric("lacquer_cache_too_large_total").await, 1.0);
    drop(resp);
    // Nothing is kept, so with its only reader gone the host stops reading
    // the backend: the origin sees its client leave long before the end.
    wait_until(LONG, "the backend is no longer read", || async {
        progress.aborted.load(Ordering::SeqCst)
    })
    .await;
    let sent = progress.chunks.load(Ordering::SeqCst);
    assert!(
        sent < CHUNKS / 4,
        "the origin sent {sent} of {CHUNKS} chunks"
    );
    assert!(l.metric("lacquer_cache_bytes").await < (1 << 20) as f64);
    // It was not stored: the next request goes to the origin again.
    let again = l.stream("/big").await;
    drop(again);
    wait_until(LONG, "second fetch", || async { o.hits() == 2 }).await;
}
