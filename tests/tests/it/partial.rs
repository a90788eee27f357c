//! Byte ranges answered from stored objects (RFC 9110 §14): suffix
//! (`bytes=-N`) and open-ended (`bytes=N-`) ranges, from a complete object
//! and from one still filling (the range request that missed gets its
//! 206 too, while the whole body is fetched once).

use std::time::Duration;

use bytes::Bytes;
use lacquer_tests::{Lacquer, Origin, Reply};

const BODY: &str = "0123456789abcdefghij";

#[tokio::test]
async fn suffix_and_open_ended_ranges_from_a_stored_object() {
    let o = Origin::start(|_| {
        Reply::ok(BODY)
            .header("cache-control", "max-age=60")
            .header("etag", "\"p\"")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    assert_eq!(l.get("/full").await.text(), BODY);
    for (range, want, content_range) in [
        ("bytes=-4", "ghij", "bytes 16-19/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=0-", BODY, "bytes 0-19/20"),
        ("bytes=-100", BODY, "bytes 0-19/20"),
        ("bytes=19-", "j", "bytes 19-19/20"),
    ] {
        let r = l.request("GET", "/full", &[("range", range)], "").await;
        assert_eq!((r.status, r.text().as_str()), (206, want), "{range}");
        assert_eq!(r.header("content-range"), content_range, "{range}");
        assert_eq!(r.header("content-length"), want.len().to_string());
        assert_eq!(r.header("x-cache"), "HIT");
    }
    let r = l
        .request("GET", "/full", &[("range", "bytes=20-")], "")
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */20");
    assert_eq!(o.hits(), 1);
}

/// The request that misses is answered 206 from the object while it
/// fills (the backend is asked for the whole body, its length known from
/// `Content-Length`): before, it got the whole body as a 200.
#[tokio::test]
async fn a_range_that_misses_is_answered_from_the_filling_object() {
    let o = Origin::start(|_| {
        let mut r = Reply::ok("")
            .header("content-length", "20")
            .header("cache-control", "max-age=60");
        r.chunks = vec![
            Bytes::from_static(b"0123456789"),
            Bytes::from_static(b"abcdefghij"),
        ];
        // Paces the body so the first answer starts while it fills.
        r.chunk_delay = Duration::from_millis(100);
        r
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let r = l
        .request("GET", "/fill", &[("range", "bytes=-4")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "ghij"));
    assert_eq!(r.header("content-range"), "bytes 16-19/20");
    assert_eq!(r.header("x-cache"), "MISS");
    assert!(
        o.seen()[0].headers.get("range").is_none(),
        "the whole object was fetched"
    );
    let r = l
        .request("GET", "/fill", &[("range", "bytes=8-")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "89abcdefghij"));
    assert_eq!(r.header("content-range"), "bytes 8-19/20");
    assert_eq!(r.header("x-cache"), "HIT");
    assert_eq!(l.get("/fill").await.text(), BODY);
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn a_filling_object_without_length_answers_a_range_with_the_whole_body() {
    let o = Origin::start(|_| {
        let mut r = Reply::ok("").header("cache-control", "max-age=60");
        r.chunks = vec![
            Bytes::from_static(b"0123456789"),
            Bytes::from_static(b"abcdefghij"),
        ];
        r.chunk_delay = Duration::from_millis(100);
        r
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let r = l
        .request("GET", "/nolen", &[("range", "bytes=-4")], "")
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, BODY),
        "no length to place a suffix in yet: the whole body (a server may ignore Range)"
    );
    let r = l
        .request("GET", "/nolen", &[("range", "bytes=-4")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "ghij"), "complete now");
    assert_eq!(o.hits(), 1);
}
