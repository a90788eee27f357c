//! HTTP caching through the real host with the default bundle, proven by the
//! origin's request count: revalidation, client conditionals, ranges, Vary,
//! invalidation, CDN-Cache-Control, only-if-cached, stale-if-error and
//! coalescing. (The memory budget has its own test binary: it measures RSS.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use lacquer_tests::{Lacquer, Origin, Reply, wait_until};

const NO_GRACE: &str = "[cache]\ndefault_grace = \"0s\"\n";

#[tokio::test]
async fn stale_object_is_revalidated_with_a_304() {
    let o = Origin::start(|s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(304, "")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
                .header("x-version", "2")
        } else {
            Reply::ok("body-v1")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=0")
                .header("x-version", "1")
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), NO_GRACE).await;
    assert_eq!(l.get("/r").await.text(), "body-v1");
    let second = l.get("/r").await;
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "body-v1"),
        "the stored body, revalidated"
    );
    assert_eq!(
        second.header("x-version"),
        "2",
        "headers updated from the 304"
    );
    assert_eq!(o.hits(), 2);
    assert_eq!(o.seen()[1].headers["if-none-match"], "\"v1\"");
    assert_eq!(
        l.get("/r").await.header("x-cache"),
        "HIT",
        "fresh again after the 304"
    );
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn client_conditionals_are_answered_from_cache() {
    let o = Origin::start(|_| {
        Reply::ok("hello")
            .header("etag", "\"abc\"")
            .header("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT")
            .header("cache-control", "max-age=60")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/c").await;
    for inm in ["\"abc\"", "\"x\", \"abc\"", "W/\"abc\"", "*"] {
        let r = l.request("GET", "/c", &[("if-none-match", inm)], "").await;
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), "\"abc\"");
    }
    let r = l
        .request(
            "GET",
            "/c",
            &[
                ("if-none-match", "\"zzz\""),
                ("if-modified-since", "Tue, 03 Nov 2026 10:00:00 GMT"),
            ],
            "",
        )
        .await;
    assert_eq!(
        r.status, 200,
        "If-None-Match takes precedence over If-Modified-Since"
    );
    let r = l
        .request(
            "GET",
            "/c",
            &[("if-modified-since", "Tue, 03 Nov 2026 10:00:00 GMT")],
            "",
        )
        .await;
    assert_eq!(r.status, 304);
    let r = l
        .request("GET", "/c", &[("if-match", "\"nope\"")], "")
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(o.hits(), 1, "all answered from cache");
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_object() {
    let o = Origin::start(|_| {
        Reply::ok("0123456789")
            .header("cache-control", "max-age=60")
            .header("etag", "\"r\"")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/range").await;
    let r = l
        .request("GET", "/range", &[("range", "bytes=2-5")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), "bytes 2-5/10");
    let r = l
        .request("GET", "/range", &[("range", "bytes=-3")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = l
        .request("GET", "/range", &[("range", "bytes=50-60")], "")
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */10");
    let r = l
        .request(
            "GET",
            "/range",
            &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "0123456789"),
        "If-Range mismatch: whole object"
    );
    assert_eq!(o.hits(), 1);
    assert!(
        o.seen()[0].headers.get("range").is_none(),
        "the cache fetched the whole object"
    );
}

#[tokio::test]
async fn partial_responses_from_the_origin_are_never_stored() {
    let o = Origin::start(|_| {
        Reply::status(206, "part")
            .header("content-range", "bytes 0-3/10")
            .header("cache-control", "max-age=60")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    assert_eq!(l.get("/p206").await.status, 206);
    assert_eq!(l.get("/p206").await.status, 206);
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let o = Origin::start(|s| {
        let lang = s
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(&lang)
            .header("vary", "Accept-Language")
            .header("cache-control", "max-age=60")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    for _ in 0..2 {
        assert_eq!(
            l.request("GET", "/v", &[("accept-language", "fr")], "")
                .await
                .text(),
            "fr"
        );
        assert_eq!(
            l.request("GET", "/v", &[("accept-language", "de")], "")
                .await
                .text(),
            "de"
        );
    }
    assert_eq!(o.hits(), 2, "two variants, each fetched once");
    let star = Origin::start(|_| {
        Reply::ok("s")
            .header("vary", "*")
            .header("cache-control", "max-age=60")
    })
    .await;
    let l2 = Lacquer::with_origin(&star.url(), "").await;
    l2.get("/s").await;
    l2.get("/s").await;
    assert_eq!(star.hits(), 2, "Vary: * is never reused");
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url_and_location() {
    let o = Origin::start(|s| {
        if s.method == "POST" {
            Reply::status(201, "made").header("location", "/items/1")
        } else {
            Reply::ok(&s.uri).header("cache-control", "max-age=60")
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/items").await;
    l.get("/items/1").await;
    assert_eq!(l.get("/items").await.header("x-cache"), "HIT");
    assert_eq!(l.request("POST", "/items", &[], "x").await.status, 201);
    assert_eq!(
        l.get("/items").await.header("x-cache"),
        "MISS",
        "the URL was invalidated"
    );
    assert_eq!(
        l.get("/items/1").await.header("x-cache"),
        "MISS",
        "Location was invalidated"
    );
}

#[tokio::test]
async fn cdn_cache_control_takes_precedence() {
    let o = Origin::start(|_| {
        Reply::ok("c")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "max-age=60")
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/cdn").await;
    let r = l.get("/cdn").await;
    assert_eq!(r.header("x-cache"), "HIT");
    assert_eq!(
        r.header("cdn-cache-control"),
        "max-age=60",
        "forwarded unchanged"
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn no_store_and_request_no_cache() {
    let o = Origin::start(|s| {
        if s.uri == "/ns" {
            Reply::ok("n").header("cache-control", "no-store")
        } else {
            Reply::ok("y").header("cache-control", "max-age=60")
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    l.get("/ns").await;
    l.get("/ns").await;
    assert_eq!(o.hits(), 2, "no-store is not cached");
    l.get("/nc").await;
    l.request("GET", "/nc", &[("cache-control", "no-cache")], "")
        .await;
    l.request("GET", "/nc", &[("pragma", "no-cache")], "").await;
    assert_eq!(
        o.hits(),
        5,
        "request no-cache and Pragma: no-cache go to the origin"
    );
    assert_eq!(l.get("/nc").await.header("x-cache"), "HIT");
}

#[tokio::test]
async fn only_if_cached_gives_504_on_a_miss() {
    let o = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=60")).await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let r = l
        .request("GET", "/oic", &[("cache-control", "only-if-cached")], "")
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(o.hits(), 0);
    l.get("/oic").await;
    let r = l
        .request("GET", "/oic", &[("cache-control", "only-if-cached")], "")
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn stale_if_error_serves_the_old_copy_when_the_backend_fails() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let o = Origin::start(move |_| {
        let mut r = Reply::ok("old")
            .header("cache-control", "max-age=0, stale-if-error=600")
            .header("etag", "\"e\"");
        r.reset = !flag.load(Ordering::SeqCst);
        r
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), NO_GRACE).await;
    assert_eq!(l.get("/sie").await.text(), "old");
    up.store(false, Ordering::SeqCst);
    let r = l.get("/sie").await;
    assert_eq!((r.status, r.text().as_str()), (200, "old"));
    assert_eq!(r.header("x-cache"), "STALE");
}

#[tokio::test]
async fn concurrent_misses_for_one_url_reach_the_origin_once() {
    let o = Origin::start(|_| {
        let mut r = Reply::ok("coalesced").header("cache-control", "max-age=60");
        r.delay = Duration::from_millis(300);
        r
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    // One HTTP/2 connection carries all 1000 requests (no file-descriptor storm).
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let url = format!("http://{}/hot", l.server.addr());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.get(url.parse().unwrap()).await.expect("answered");
            let status = r.status().as_u16();
            let body = r.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"coalesced"[..]));
    }
    assert_eq!(o.hits(), 1, "one fetch served every waiter");
}

#[tokio::test]
async fn bans_invalidate_matching_objects_lazily() {
    let o = Origin::start(|s| Reply::ok(&s.uri).header("cache-control", "max-age=600")).await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    for p in ["/img/a.png", "/img/b.png", "/css/site.css"] {
        l.get(p).await;
    }
    let r = l.admin("POST", "/ban?url=%5E/img/", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        l.get("/img/a.png").await.header("x-cache"),
        "MISS",
        "banned"
    );
    assert_eq!(
        l.get("/img/a.png").await.header("x-cache"),
        "HIT",
        "objects stored after the ban are fine"
    );
    assert_eq!(
        l.get("/css/site.css").await.header("x-cache"),
        "HIT",
        "not matched"
    );
    let bad = l.admin("POST", "/ban?url=(", "").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("url"), "{}", bad.text());
}

#[tokio::test]
async fn soft_purge_serves_stale_while_refetching() {
    let o = Origin::start(|_| Reply::ok("v").header("cache-control", "max-age=600")).await;
    let l = Lacquer::with_origin(&o.url(), "[cache]\ndefault_grace = \"1m\"\n").await;
    l.get("/soft").await;
    let r = l
        .admin("POST", "/purge?url=/soft&host=127.0.0.1&soft=1", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A hard purge would make this a miss that waits for the origin; a soft
    // one serves the old copy at once (in grace) and refreshes behind it.
    let stale = l.get("/soft").await;
    assert_eq!(
        (stale.status, stale.text().as_str(), stale.header("x-cache")),
        (200, "v", "STALE")
    );
    wait_until(
        Duration::from_secs(10),
        "the background refresh",
        || async { o.hits() == 2 },
    )
    .await;
    wait_until(Duration::from_secs(10), "fresh again", || async {
        l.get("/soft").await.header("x-cache") == "HIT"
    })
    .await;
    assert_eq!(o.hits(), 2, "one refresh");
}

#[tokio::test]
async fn plugins_can_ban_and_soft_purge() {
    let o = Origin::start(|s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"n1\"")
        {
            Reply::status(304, "")
                .header("etag", "\"n1\"")
                .header("cache-control", "max-age=600")
        } else {
            Reply::ok(&s.uri)
                .header("etag", "\"n1\"")
                .header("cache-control", "max-age=600")
        }
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), NO_GRACE).await;
    l.get("/news/1").await;
    l.get("/news/2").await;
    let r = l.request("BAN", "/", &[("x-ban-url", "^/news/")], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(l.get("/news/1").await.header("x-cache"), "MISS");
    assert_eq!(l.get("/news/2").await.header("x-cache"), "MISS");
    assert_eq!(o.hits(), 4, "banned objects were fetched whole again");
    assert!(
        o.seen()[2..]
            .iter()
            .all(|s| s.headers.get("if-none-match").is_none()),
        "a ban leaves nothing to revalidate"
    );
    // A soft purge keeps the copy, stale: the next request revalidates it
    // with its validator and the 304 brings the stored body back.
    let r = l
        .request("PURGE", "/news/1", &[("x-purge", "soft")], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = l.get("/news/1").await;
    assert_eq!((after.status, after.text().as_str()), (200, "/news/1"));
    assert_eq!(o.hits(), 5);
    let last = o.seen().pop().unwrap();
    assert_eq!(
        last.headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap()),
        Some("\"n1\""),
        "soft purge: a conditional request"
    );
    assert_eq!(
        l.get("/news/1").await.header("x-cache"),
        "HIT",
        "fresh again after the 304"
    );
    // A hard purge drops it: the next request is unconditional.
    let r = l.request("PURGE", "/news/1", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(l.get("/news/1").await.header("x-cache"), "MISS");
    assert!(
        o.seen()
            .pop()
            .unwrap()
            .headers
            .get("if-none-match")
            .is_none()
    );
    assert_eq!(o.hits(), 6);
}

#[tokio::test]
async fn authorization_responses_are_shared_only_when_public() {
    let o = Origin::start(|s| {
        let cc = if s.uri == "/pub" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        Reply::ok("a").header("cache-control", cc)
    })
    .await;
    let l = Lacquer::with_origin(&o.url(), "").await;
    let auth = [("authorization", "Bearer t")];
    l.request("GET", "/pub", &auth, "").await;
    assert_eq!(
        l.request("GET", "/pub", &auth, "").await.header("x-cache"),
        "HIT",
        "public: stored"
    );
    l.request("GET", "/priv", &auth, "").await;
    l.request("GET", "/priv", &auth, "").await;
    assert_eq!(
        o.hits(),
        3,
        "without public, a response to an authorized request is not stored"
    );
}
