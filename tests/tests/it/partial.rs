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

const PARTIAL_ON: &str = "[cache]\npartial = { enabled = true }\n";

/// An origin that answers `Range: bytes=a-b` with a 206 of [`BODY`]
/// tagged by `etag(n)` for its n-th request, and anything else with the
/// whole body.
async fn range_origin(etag: fn(usize) -> &'static str) -> Origin {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Origin::start(move |s| {
        let tag = etag(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let range = s
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        let base = |r: Reply| {
            r.header("cache-control", "max-age=60")
                .header("etag", tag)
                .header("content-type", "application/octet-stream")
        };
        match range {
            Some((a, b)) => base(Reply::status(206, &BODY[a..=b]))
                .header("content-range", &format!("bytes {a}-{b}/{}", BODY.len())),
            None => base(Reply::ok(BODY)).header("content-length", "20"),
        }
    })
    .await
}

#[tokio::test]
async fn a_stored_206_answers_the_ranges_it_covers() {
    let o = range_origin(|_| "\"p\"").await;
    let l = Lacquer::with_origin(&o.url(), PARTIAL_ON).await;
    let r = l.request("GET", "/v", &[("range", "bytes=0-9")], "").await;
    assert_eq!((r.status, r.text().as_str()), (206, "0123456789"));
    assert_eq!(r.header("content-range"), "bytes 0-9/20");
    assert_eq!(
        o.seen()[0].headers["range"],
        "bytes=0-9",
        "the range was asked for"
    );
    let r = l.request("GET", "/v", &[("range", "bytes=2-5")], "").await;
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), "bytes 2-5/20");
    assert_eq!(r.header("x-cache"), "HIT");
    assert_eq!(
        o.hits(),
        1,
        "a covered range is answered from the stored piece"
    );
    let r = l.request("GET", "/v", &[("range", "bytes=8-12")], "").await;
    assert_eq!((r.status, r.text().as_str()), (206, "89abc"));
    assert_eq!(o.hits(), 2, "bytes not held are fetched");
    assert_eq!(
        o.seen()[1].headers["if-range"],
        "\"p\"",
        "for the stored representation"
    );
    let whole = l.get("/v").await;
    assert_eq!((whole.status, whole.text().as_str()), (200, BODY));
    assert_eq!(o.hits(), 3, "a full GET is fetched while bytes are missing");
}

#[tokio::test]
async fn adjacent_pieces_with_one_etag_combine_into_a_complete_object() {
    let o = range_origin(|_| "\"same\"").await;
    let l = Lacquer::with_origin(&o.url(), PARTIAL_ON).await;
    for (range, want) in [("bytes=0-9", "0123456789"), ("bytes=10-19", "abcdefghij")] {
        let r = l.request("GET", "/c", &[("range", range)], "").await;
        assert_eq!((r.status, r.text().as_str()), (206, want), "{range}");
    }
    assert_eq!(o.hits(), 2);
    let r = l.request("GET", "/c", &[("range", "bytes=5-14")], "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (206, "56789abcde"),
        "across both pieces"
    );
    let whole = l.get("/c").await;
    assert_eq!((whole.status, whole.text().as_str()), (200, BODY));
    assert_eq!(whole.header("content-length"), "20");
    assert_eq!(whole.header("content-range"), "");
    assert_eq!(whole.header("x-cache"), "HIT");
    assert_eq!(o.hits(), 2, "the combined pieces are a complete object");
}

#[tokio::test]
async fn pieces_with_another_etag_are_not_combined() {
    let o = range_origin(|n| if n == 0 { "\"a\"" } else { "\"b\"" }).await;
    let l = Lacquer::with_origin(&o.url(), PARTIAL_ON).await;
    l.request("GET", "/e", &[("range", "bytes=0-9")], "").await;
    let r = l
        .request("GET", "/e", &[("range", "bytes=10-19")], "")
        .await;
    assert_eq!((r.status, r.header("etag")), (206, "\"b\""));
    assert_eq!(o.hits(), 2);
    let whole = l.get("/e").await;
    assert_eq!(whole.status, 200);
    assert_eq!(
        o.hits(),
        3,
        "two representations: nothing complete to serve"
    );
}

#[tokio::test]
async fn without_partial_a_range_miss_fetches_the_whole_object() {
    let o = range_origin(|_| "\"w\"").await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let r = l.request("GET", "/w", &[("range", "bytes=0-3")], "").await;
    assert_eq!((r.status, r.text().as_str()), (206, "0123"));
    assert!(o.seen()[0].headers.get("range").is_none());
    assert_eq!(l.get("/w").await.text(), BODY);
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn a_206_shorter_than_its_content_range_is_refused_and_counted() {
    let o = Origin::start(|_| {
        Reply::status(206, "01234")
            .header("content-range", "bytes 0-9/20")
            .header("cache-control", "max-age=60")
            .header("etag", "\"short\"")
    })
    .await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[server]\ndebug_headers = true\n[cache]\npartial = { enabled = true }\n",
    )
    .await;
    let r = l
        .request("GET", "/short", &[("range", "bytes=0-9")], "")
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-lacquer-error"), "protocol-error backend=app");
    assert_eq!(l.fetch_failures("app", "protocol-error").await, 1.0);
    let again = l
        .request("GET", "/short", &[("range", "bytes=0-3")], "")
        .await;
    assert_eq!(again.status, 502, "nothing was stored");
    assert_eq!(o.hits(), 2);
}

/// RFC 9110 §13.1.5: a client's `If-Range` decides between its range and
/// the whole object. With nothing stored the backend decides (it is sent
/// on); against stored pieces of another version the whole object is
/// fetched and sent, never a range of a version the client doesn't have.
#[tokio::test]
async fn a_clients_if_range_is_never_answered_with_another_versions_range() {
    let o = range_origin(|_| "\"p\"").await;
    let l = Lacquer::with_origin(&o.url(), PARTIAL_ON).await;
    let r = l
        .request(
            "GET",
            "/i",
            &[("range", "bytes=0-9"), ("if-range", "\"p\"")],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "0123456789"));
    assert_eq!(
        o.seen()[0].headers["if-range"],
        "\"p\"",
        "with nothing stored, the client's If-Range is the backend's to judge"
    );
    let r = l
        .request(
            "GET",
            "/i",
            &[("range", "bytes=12-15"), ("if-range", "\"old\"")],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, BODY),
        "the client's version is not the stored one: the whole object"
    );
    assert!(
        !o.seen()[1].headers.contains_key("range"),
        "the whole object was fetched"
    );
}
