//! End to end through the real host with the default bundle: caching basics,
//! pass rules, purge, the branded 503 and grace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, log_lines, wait_until};

#[tokio::test]
async fn miss_then_hit_with_age_and_via() {
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "max-age=60")).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    let a = l.get("/page").await;
    assert_eq!((a.status, a.text().as_str()), (200, "hello"));
    assert_eq!(a.header("x-cache"), "MISS");
    assert_eq!(a.header("via"), "1.1 lacquer");
    let b = l.get("/page").await;
    assert_eq!((b.status, b.text().as_str()), (200, "hello"));
    assert_eq!(b.header("x-cache"), "HIT");
    assert!(
        b.header("age").parse::<u64>().is_ok(),
        "Age on a hit: {:?}",
        b.headers
    );
    assert_eq!(origin.hits(), 1, "the hit was served from cache");
}

#[tokio::test]
async fn upstream_age_counts() {
    let origin = Origin::start(|_| {
        Reply::ok("x")
            .header("cache-control", "max-age=100")
            .header("age", "40")
    })
    .await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    l.get("/aged").await;
    let b = l.get("/aged").await;
    assert_eq!(b.header("x-cache"), "HIT");
    let age: u64 = b.header("age").parse().unwrap();
    // The origin's 40 s plus the time stored (whatever the machine's pace).
    assert!(age >= 40, "the upstream Age counts: {age}");
}

#[tokio::test]
async fn post_and_cookie_requests_pass() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=60")).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    let p = l.request("POST", "/form", &[], "a=1").await;
    assert_eq!(p.header("x-cache"), "PASS");
    l.request("GET", "/c", &[("cookie", "session=1")], "").await;
    let c = l.request("GET", "/c", &[("cookie", "session=1")], "").await;
    assert_eq!(c.header("x-cache"), "PASS");
    assert_eq!(origin.hits(), 3, "nothing was served from cache");
    let seen = origin.seen();
    assert_eq!(seen[0].method, "POST");
    // RFC 9111 §3.5: a response to a request with Authorization is stored
    // only with public, s-maxage or must-revalidate; max-age=60 alone is not
    // enough, so the second request reaches the origin too.
    let auth = [("authorization", "Bearer x")];
    assert_eq!(l.request("GET", "/auth", &auth, "").await.status, 200);
    let again = l.request("GET", "/auth", &auth, "").await;
    assert_ne!(again.header("x-cache"), "HIT", "{:?}", again.headers);
    assert_eq!(
        origin.hits(),
        5,
        "both authorized requests reached the origin"
    );
    let auth_seen: Vec<_> = origin
        .seen()
        .into_iter()
        .filter(|s| s.uri == "/auth")
        .collect();
    assert_eq!(auth_seen.len(), 2);
    assert!(
        auth_seen
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer x"),
        "the credentials reach the origin"
    );
}

#[tokio::test]
async fn private_and_set_cookie_are_not_cached() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/private") {
            Reply::ok("p").header("cache-control", "private, max-age=60")
        } else {
            Reply::ok("s")
                .header("cache-control", "max-age=60")
                .header("set-cookie", "a=1")
        }
    })
    .await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    for _ in 0..2 {
        assert_eq!(l.get("/private").await.text(), "p");
        assert_eq!(l.get("/cookie").await.text(), "s");
    }
    assert_eq!(origin.hits(), 4);
    let second = l.get("/cookie").await;
    assert_eq!(second.header("x-cache"), "PASS", "hit-for-miss remembered");
    assert_eq!(second.header("set-cookie"), "a=1");
}

#[tokio::test]
async fn purge_evicts() {
    let origin = Origin::start(|_| Reply::ok("v").header("cache-control", "max-age=60")).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    l.get("/p").await;
    assert_eq!(l.get("/p").await.header("x-cache"), "HIT");
    let purge = l.request("PURGE", "/p", &[], "").await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert_eq!(l.get("/p").await.header("x-cache"), "MISS");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn dead_backend_gives_branded_503_with_cause_logged() {
    let dead = ParkedPort::new();
    let l = Lacquer::with_origin(&dead.url(), "[server]\ndebug_headers = true\n").await;
    let r = l.request("GET", "/x", &[("accept", "text/html")], "").await;
    assert_eq!(r.status, 503);
    assert!(
        r.header("content-type").starts_with("text/html"),
        "{:?}",
        r.headers
    );
    assert!(r.header("retry-after").parse::<u64>().is_ok());
    assert!(r.text().contains("Lacquer"), "branded page: {}", r.text());
    assert!(!r.text().contains("Guru Meditation"));
    assert_eq!(r.header("x-lacquer-error"), "connect-refused backend=app");
    assert!(
        log_lines("connect-refused")
            .iter()
            .any(|l| l.contains("fetch failed")),
        "cause in the log"
    );
    let json = l
        .request("GET", "/x", &[("accept", "application/json")], "")
        .await;
    assert_eq!(json.status, 503);
    let v: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON error page");
    assert_eq!(v["error"], "connect-refused");
}

#[tokio::test]
async fn stale_copy_served_within_grace_while_the_backend_fails() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let origin = Origin::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("cached").header("cache-control", "max-age=1")
        } else {
            // Down: every connection is closed without an answer.
            Reply::reset()
        }
    })
    .await;
    let l = Lacquer::with_origin(&origin.url(), "[cache]\ndefault_grace = \"1h\"\n").await;
    assert_eq!(l.get("/g").await.text(), "cached");
    up.store(false, Ordering::SeqCst);
    // Fresh, the copy is a hit; once stale (by the cache's own clock) it is
    // served in grace while a refresh is tried, and the refresh fails.
    wait_until(Duration::from_secs(10), "the copy goes stale", || async {
        let r = l.get("/g").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "cached"),
            "{:?}",
            r.headers
        );
        r.header("x-cache") == "STALE"
    })
    .await;
    wait_until(Duration::from_secs(10), "the refresh fails", || async {
        l.fetch_failures("app", "connection-reset").await >= 1.0
    })
    .await;
    let r = l.get("/g").await;
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-cache")),
        (200, "cached", "STALE"),
        "still served after the failure: {:?}",
        r.headers
    );
    assert!(origin.hits() >= 2, "the origin was asked again");
    assert!(
        log_lines("connection-reset")
            .iter()
            .any(|x| x.contains("backend=app") && x.contains("failed")),
        "the failure is logged"
    );
}

#[tokio::test]
async fn admin_metrics_name_the_cause() {
    let dead = ParkedPort::new();
    let l = Lacquer::with_origin(&dead.url(), "").await;
    assert_eq!(l.get("/m").await.status, 503);
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        m.contains("lacquer_fetch_failures_total{backend=\"app\",kind=\"connect-refused\"} "),
        "{m}"
    );
    assert!(
        m.contains("lacquer_requests_total{state=\"synth\"} 1"),
        "{m}"
    );
    let errs: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/fetch-errors", "").await.body).unwrap();
    assert_eq!(errs[0]["kind"], "connect-refused");
}
