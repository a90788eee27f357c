//! `[cache] compress`: identity responses of a compressible type stored
//! gzip-compressed, sent as stored to gzip clients and decompressed for the
//! others; conditionals, revalidation and ranges on both representations;
//! memory counted at the compressed size. Real origins, real HTTP clients,
//! real gzip on both sides.

use std::io::{Read, Write};

use bytes::Bytes;
use lacquer_tests::{Got, Lacquer, Origin, Reply};

const GZIP: (&str, &str) = ("accept-encoding", "gzip, deflate");
/// `[cache] compress` is off by default: these tests turn it on.
const COMPRESS: &str = "[cache]\ncompress = { enabled = true }\n";

/// A body that compresses well and has no repeating period shorter than a
/// line, so a slice of it is recognisable.
fn text(lines: usize) -> String {
    (0..lines)
        .map(|i| format!("line {i:06}: the quick brown fox jumps over the lazy dog\n"))
        .collect()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn text_origin_reply(body: &str) -> Reply {
    text_reply(body, "max-age=60")
}

fn text_reply(body: &str, cache_control: &str) -> Reply {
    Reply::ok(body)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", &body.len().to_string())
        .header("cache-control", cache_control)
        .header("etag", "\"v1\"")
}

async fn status_bytes(l: &Lacquer) -> f64 {
    let s: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/status", "").await.body).expect("/status is JSON");
    s["cache"]["bytes"].as_f64().expect("cache.bytes")
}

fn vary_names(r: &Got) -> String {
    r.headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn identity_text_is_stored_gzipped_and_served_to_each_client_in_its_coding() {
    let body = text(400);
    let b = body.clone();
    let o = Origin::start(move |_| text_origin_reply(&b)).await;
    let l = Lacquer::with_origin(&o.url(), COMPRESS).await;

    // The miss: an identity client reads the object while it is compressed.
    let first = l.get("/t").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, body.as_bytes(), "exact original bytes");
    assert_eq!(first.header("content-encoding"), "");
    assert_eq!(first.header("content-length"), body.len().to_string());

    let gz = l.request("GET", "/t", &[GZIP], "").await;
    assert_eq!(gz.header("x-cache"), "HIT");
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&gz.body), body.as_bytes());
    assert!(
        gz.body.len() * 4 < body.len(),
        "stored compressed: {} of {} bytes",
        gz.body.len(),
        body.len()
    );
    assert_eq!(gz.header("content-length"), gz.body.len().to_string());
    assert_eq!(gz.header("etag"), "\"v1-gzip\"", "a distinct strong tag");
    assert!(vary_names(&gz).contains("accept-encoding"), "{gz:?}");

    let plain = l.get("/t").await;
    assert_eq!(plain.header("x-cache"), "HIT");
    assert_eq!(plain.body, body.as_bytes());
    assert_eq!(plain.header("content-length"), body.len().to_string());
    assert_eq!(plain.header("etag"), "\"v1\"", "the origin's tag");
    assert!(vary_names(&plain).contains("accept-encoding"));

    // q=0 refuses gzip.
    let refused = l
        .request("GET", "/t", &[("accept-encoding", "gzip;q=0, br")], "")
        .await;
    assert_eq!(refused.header("content-encoding"), "");
    assert_eq!(refused.body, body.as_bytes());

    assert_eq!(o.hits(), 1, "one fetch for every client");
    assert_eq!(l.metric("lacquer_compressed_objects_total").await, 1.0);
    assert_eq!(l.metric("lacquer_decompressions_total").await, 3.0);
    assert!(l.metric("lacquer_compression_saved_bytes_total").await > (body.len() / 2) as f64);
}

#[tokio::test]
async fn a_body_without_length_is_compressed_as_it_streams() {
    let body = text(300);
    let chunks: Vec<Bytes> = body
        .as_bytes()
        .chunks(1000)
        .map(Bytes::copy_from_slice)
        .collect();
    let o = Origin::start(move |_| {
        let mut r = Reply::ok("")
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60");
        r.chunks = chunks.clone();
        r
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), COMPRESS).await;
    let first = l.request("GET", "/s", &[GZIP], "").await;
    assert_eq!(first.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&first.body), body.as_bytes());
    let plain = l.get("/s").await;
    assert_eq!(plain.body, body.as_bytes());
    assert_eq!(
        plain.header("content-length"),
        body.len().to_string(),
        "the identity length, counted when the fill completed"
    );
    assert_eq!(o.hits(), 1);
    assert_eq!(l.metric("lacquer_compressed_objects_total").await, 1.0);
}

#[tokio::test]
async fn encoded_small_unlisted_and_no_transform_responses_are_stored_as_sent() {
    let big = text(100);
    let pre = gzip(big.as_bytes());
    let pre_body = pre.clone();
    let b = big.clone();
    let o = Origin::start(move |s| {
        let base = |ct: &str, body: &str| {
            Reply::ok(body)
                .header("content-type", ct)
                .header("cache-control", "max-age=60")
        };
        match s.uri.as_str() {
            "/encoded" => {
                let mut r = base("text/html", "").header("content-encoding", "gzip");
                r.chunks = vec![Bytes::from(pre_body.clone())];
                r
            }
            "/small" => base("text/plain", "short").header("content-length", "5"),
            "/png" => base("image/png", &b),
            "/no-transform" => base("text/plain", &b).header("cache-control", "no-transform"),
            _ => Reply::status(404, ""),
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), COMPRESS).await;
    for path in ["/encoded", "/small", "/png", "/no-transform"] {
        for headers in [&[GZIP][..], &[]] {
            let r = l.request("GET", path, headers, "").await;
            assert_eq!(r.status, 200, "{path}");
            match path {
                "/encoded" => {
                    assert_eq!(r.header("content-encoding"), "gzip");
                    assert_eq!(&r.body[..], &pre[..], "not compressed twice");
                }
                "/small" => assert_eq!(r.text(), "short"),
                _ => assert_eq!(r.body, big.as_bytes(), "{path}"),
            }
            if path != "/encoded" {
                assert_eq!(r.header("content-encoding"), "", "{path}");
            }
        }
    }
    assert_eq!(o.hits(), 4, "each stored once");
    assert_eq!(l.metric("lacquer_compressed_objects_total").await, 0.0);
    assert_eq!(l.metric("lacquer_decompressions_total").await, 0.0);
}

#[tokio::test]
async fn if_none_match_is_answered_for_both_representations() {
    let body = text(100);
    let b = body.clone();
    let o = Origin::start(move |_| text_origin_reply(&b)).await;
    let l = Lacquer::with_origin(&o.url(), COMPRESS).await;
    l.get("/c").await;
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers<'_>, u16, &str)] = &[
        (
            &[GZIP, ("if-none-match", "\"v1-gzip\"")],
            304,
            "\"v1-gzip\"",
        ),
        (&[GZIP, ("if-none-match", "\"v1\"")], 200, "\"v1-gzip\""),
        (&[("if-none-match", "\"v1\"")], 304, "\"v1\""),
        (&[("if-none-match", "W/\"v1\"")], 304, "\"v1\""),
        (&[("if-none-match", "\"v1-gzip\"")], 200, "\"v1\""),
    ];
    for (headers, status, etag) in cases {
        let r = l.request("GET", "/c", headers, "").await;
        assert_eq!(r.status, *status, "{headers:?}");
        assert_eq!(r.header("etag"), *etag, "{headers:?}");
        assert!(vary_names(&r).contains("accept-encoding"), "{headers:?}");
        if *status == 304 {
            assert!(r.body.is_empty());
        }
    }
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn revalidation_sends_the_origins_tag_and_keeps_the_compressed_body() {
    let body = text(100);
    let b = body.clone();
    let o = Origin::start(move |s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(304, "")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=0")
        } else {
            text_reply(&b, "max-age=0")
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), &format!("{COMPRESS}default_grace = \"0s\"\n")).await;
    l.get("/r").await;
    let gz = l.request("GET", "/r", &[GZIP], "").await;
    assert_eq!(o.hits(), 2, "stale at once: revalidated");
    assert_eq!(
        o.seen()[1].headers["if-none-match"],
        "\"v1\"",
        "the origin is asked with its own tag"
    );
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&gz.body), body.as_bytes());
    let plain = l
        .request("GET", "/r", &[("if-none-match", "\"other\"")], "")
        .await;
    assert_eq!(o.hits(), 3);
    assert_eq!(o.seen()[2].headers["if-none-match"], "\"v1\"");
    assert_eq!(plain.body, body.as_bytes());
    assert_eq!(plain.header("content-length"), body.len().to_string());
    assert_eq!(l.metric("lacquer_compressed_objects_total").await, 1.0);
}

#[tokio::test]
async fn ranges_apply_to_the_representation_the_client_gets() {
    let body = text(200);
    let b = body.clone();
    let o = Origin::start(move |_| text_origin_reply(&b)).await;
    let l = Lacquer::with_origin(&o.url(), COMPRESS).await;
    let whole_gz = l.request("GET", "/g", &[GZIP], "").await.body;

    let r = l
        .request("GET", "/g", &[("range", "bytes=100-199")], "")
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.body,
        body.as_bytes()[100..200],
        "identity bytes, decompressed"
    );
    assert_eq!(
        r.header("content-range"),
        format!("bytes 100-199/{}", body.len())
    );
    assert_eq!(r.header("content-length"), "100");

    let r = l
        .request("GET", "/g", &[("range", &format!("bytes=-{}", 50))], "")
        .await;
    assert_eq!(r.body, body.as_bytes()[body.len() - 50..]);

    let r = l
        .request("GET", "/g", &[GZIP, ("range", "bytes=10-")], "")
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), "gzip");
    assert_eq!(r.body, whole_gz[10..], "bytes of the stored gzip");
    assert_eq!(
        r.header("content-range"),
        format!("bytes 10-{}/{}", whole_gz.len() - 1, whole_gz.len())
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn memory_is_counted_at_the_compressed_size() {
    let body = text(4000);
    assert!(body.len() > 200_000);
    let b = body.clone();
    let o = Origin::start(move |_| text_origin_reply(&b)).await;
    let on = Lacquer::with_origin(&o.url(), COMPRESS).await;
    let off = Lacquer::with_origin(&o.url(), "").await;
    for l in [&on, &off] {
        assert_eq!(l.get("/m").await.body, body.as_bytes());
    }
    let (compressed, identity) = (status_bytes(&on).await, status_bytes(&off).await);
    assert!(
        identity > body.len() as f64,
        "off: the whole body counts ({identity})"
    );
    assert!(
        compressed * 5.0 < identity,
        "on: {compressed} bytes counted against {identity}"
    );
    assert_eq!(on.metric("lacquer_cache_bytes").await, compressed);
    assert_eq!(off.metric("lacquer_compressed_objects_total").await, 0.0);
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn bad_compress_settings_are_refused_naming_the_key() {
    for (toml, key) in [
        ("compress = { level = 10 }", "cache.compress.level"),
        ("compress = { types = [\"text\"] }", "cache.compress.types"),
        (
            "compress = { types = [\"text/html; charset=utf-8\"] }",
            "cache.compress.types",
        ),
        ("compress = { ratio = 2 }", "ratio"),
    ] {
        let cfg = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:1\"\n[cache]\n{toml}\n"
        );
        let err = Lacquer::start(&cfg).await.err().expect("refused");
        assert!(format!("{err:#}").contains(key), "{toml}: {err:#}");
    }
}
