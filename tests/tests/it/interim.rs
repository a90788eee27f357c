//! Interim (1xx) responses: a backend's `103 Early Hints` goes on to an
//! HTTP/1.1 client ahead of the final response (not to an HTTP/1.0 one),
//! and never reaches the cache nor the final response's headers; a client's
//! `Expect: 100-continue` gets its `100` once the body is on its way to the
//! backend, and the exchange completes.

use std::time::Duration;

use lacquer_tests::raw::{RawOrigin, read_to_close, responses};
use lacquer_tests::{Lacquer, Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HINTED: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Hint: only-in-103\r\n\r\nHTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello";

async fn get_raw(l: &Lacquer, path: &str, version: &str) -> Vec<lacquer_tests::raw::Parsed> {
    let req = format!("GET {path} {version}\r\nHost: hints.test\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(l.server.addr()).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut s).await;
    let (parsed, rest) = responses(raw.as_bytes());
    assert!(rest.is_empty(), "unframed bytes: {raw:?}");
    parsed
}

#[tokio::test]
async fn early_hints_are_neither_stored_nor_merged_into_the_final_response() {
    let origin = RawOrigin::start(HINTED).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;

    let first = get_raw(&l, "/hinted", "HTTP/1.1").await;
    assert_eq!(first.len(), 2, "the 103, then the 200: {first:?}");
    assert_eq!(first[0].status, 103);
    assert_eq!(first[0].all("link"), ["</style.css>; rel=preload"]);
    assert_eq!(first[0].all("x-hint"), ["only-in-103"]);
    let last = &first[1];
    assert_eq!(last.status, 200, "{first:?}");
    assert_eq!(last.body, b"hello");
    assert!(
        last.all("link").is_empty(),
        "the 103's Link leaked: {first:?}"
    );
    assert!(last.all("x-hint").is_empty(), "{first:?}");
    assert_eq!(last.all("x-cache"), ["MISS"]);

    let hit = get_raw(&l, "/hinted", "HTTP/1.1").await;
    assert_eq!(hit.len(), 1, "a hit has no interim response: {hit:?}");
    assert_eq!(hit[0].status, 200);
    assert_eq!(hit[0].all("x-cache"), ["HIT"]);
    assert_eq!(hit[0].body, b"hello");
    assert!(hit[0].all("link").is_empty(), "{hit:?}");
    assert_eq!(origin.hits(), 1, "the final response was stored");
}

#[tokio::test]
async fn an_http10_client_gets_no_interim_response() {
    let origin = RawOrigin::start(HINTED).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    let got = get_raw(&l, "/old", "HTTP/1.0").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, 200);
    assert_eq!(got[0].body, b"hello");
    assert!(got[0].all("link").is_empty(), "{got:?}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn early_hints_on_a_kept_alive_connection_stay_with_their_request() {
    let origin = RawOrigin::start(HINTED).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    // Two requests on one connection: a miss with its 103, then a hit without.
    let mut s = TcpStream::connect(l.server.addr()).await.unwrap();
    s.write_all(b"GET /ka HTTP/1.1\r\nHost: hints.test\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let first = async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
            let (parsed, _) = responses(&raw);
            if parsed.iter().any(|r| r.status == 200) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the first answer");
    s.write_all(b"GET /ka HTTP/1.1\r\nHost: hints.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    raw.extend_from_slice(read_to_close(&mut s).await.as_bytes());
    let (parsed, rest) = responses(&raw);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    let statuses: Vec<u16> = parsed.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [103, 200, 200]);
    assert_eq!(parsed[2].all("x-cache"), ["HIT"]);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_the_body_reaches_the_backend() {
    let origin = Origin::start(|s| {
        Reply::ok(&format!(
            "got {}",
            s.headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
        ))
    })
    .await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    let mut s = TcpStream::connect(l.server.addr()).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // The client holds its body back until told to go on.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            head.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no 100 Continue: the host waits for a body the client holds back");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 100 Continue\r\n"), "{head:?}");
    s.write_all(b"hello").await.unwrap();
    let rest = read_to_close(&mut s).await;
    let (parsed, _) = responses(rest.as_bytes());
    assert_eq!(parsed.len(), 1, "{rest:?}");
    assert_eq!(parsed[0].status, 200, "{rest:?}");
    assert_eq!(parsed[0].body, b"got 5");
    assert_eq!(origin.hits(), 1);
}
