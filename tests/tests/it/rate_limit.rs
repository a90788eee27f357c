//! The `rate-limit` builtin through the real host: its buckets live in the
//! host's key-value store (`take-token`), one per client address or header
//! value. The refill rate is one token per 100 s, so no token comes back
//! during a test however slow the machine: the outcome depends on counts only.

use std::net::IpAddr;

use lacquer_tests::raw::{exchange_from, responses};
use lacquer_tests::{Lacquer, Origin, Reply};

fn config(limit: &str) -> String {
    format!(
        "[[plugins]]\nname = \"rate-limit\"\nbuiltin = \"rate-limit\"\nconfig = {{ {limit} }}\n\
[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
[[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n"
    )
}

/// GET `path` on a connection from `from`: status and Retry-After.
async fn get_from(l: &Lacquer, from: &str, path: &str, headers: &str) -> (u16, String) {
    let from: IpAddr = from.parse().unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: site.example\r\n{headers}Connection: close\r\n\r\n");
    let raw = exchange_from(from, l.server.addr(), req.as_bytes()).await;
    let (got, _) = responses(raw.as_bytes());
    let r = got.first().unwrap_or_else(|| panic!("no response: {raw}"));
    let retry = r
        .all("retry-after")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if r.status == 429 {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains("Too many requests"),
            "the plugin's page: {body}"
        );
    }
    (r.status, retry)
}

#[tokio::test]
async fn each_client_address_has_its_own_bucket() {
    let origin = Origin::start(|_| Reply::ok("ok").header("cache-control", "no-store")).await;
    let l = Lacquer::with_origin(
        &origin.url(),
        &config("requests_per_second = 0.01, burst = 2"),
    )
    .await;
    for i in 0..2 {
        assert_eq!(
            get_from(&l, "127.0.0.1", &format!("/a{i}"), "").await.0,
            200,
            "burst {i}"
        );
    }
    let (status, retry) = get_from(&l, "127.0.0.1", "/a2", "").await;
    assert_eq!(status, 429, "the burst is spent");
    let retry: u64 = retry.parse().expect("Retry-After is whole seconds");
    assert!(
        (90..=100).contains(&retry),
        "Retry-After is the time to the next token at 0.01/s, not {retry}"
    );
    assert_eq!(
        origin.hits(),
        2,
        "the limited request did not reach the origin"
    );
    // Another address has a full bucket of its own; the first stays limited.
    assert_eq!(get_from(&l, "127.0.0.2", "/b0", "").await.0, 200);
    assert_eq!(get_from(&l, "127.0.0.2", "/b1", "").await.0, 200);
    assert_eq!(get_from(&l, "127.0.0.2", "/b2", "").await.0, 429);
    assert_eq!(get_from(&l, "127.0.0.1", "/a3", "").await.0, 429);
    // The port is not part of the bucket: each exchange above used a new connection.
    assert_eq!(origin.hits(), 4);
    assert_eq!(
        l.metric("lacquer_requests_total{state=\"synth\"}").await,
        3.0
    );
}

#[tokio::test]
async fn a_header_key_buckets_by_its_value() {
    let origin = Origin::start(|_| Reply::ok("ok").header("cache-control", "no-store")).await;
    let l = Lacquer::with_origin(
        &origin.url(),
        &config("requests_per_second = 0.01, burst = 1, key = \"header:x-api-key\""),
    )
    .await;
    let key = |k: &str| format!("x-api-key: {k}\r\n");
    assert_eq!(get_from(&l, "127.0.0.1", "/1", &key("alpha")).await.0, 200);
    assert_eq!(get_from(&l, "127.0.0.1", "/2", &key("alpha")).await.0, 429);
    // Same address, another key: its own bucket.
    assert_eq!(get_from(&l, "127.0.0.1", "/3", &key("beta")).await.0, 200);
    // Another address, the spent key: still spent.
    assert_eq!(get_from(&l, "127.0.0.3", "/4", &key("alpha")).await.0, 429);
    assert_eq!(origin.hits(), 2);
}
