//! The cache's memory budget holds when five times its size is requested.
//! Alone in its test binary so the process's RSS is this test's.

use lacquer_tests::{Lacquer, Origin, Reply};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn memory_budget_holds_with_five_times_its_size_requested() {
    const BUDGET: u64 = 8 << 20;
    let body = "x".repeat(64 * 1024);
    let o = Origin::start(move |_| Reply::ok(&body).header("cache-control", "max-age=600")).await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[cache]\nmemory = \"8MiB\"\nmax_object_size = \"1MiB\"\n",
    )
    .await;
    let before = rss_kib();
    let objects = 5 * BUDGET / (64 * 1024);
    for i in 0..objects {
        let r = l.get(&format!("/obj/{i}")).await;
        assert_eq!(r.body.len(), 64 * 1024);
    }
    let m = l.admin("GET", "/metrics", "").await.text();
    let bytes = metric(&m, "lacquer_cache_bytes");
    assert!(
        bytes > 0.0 && bytes <= BUDGET as f64,
        "cache bytes {bytes} within {BUDGET}"
    );
    assert!(
        metric(&m, "lacquer_cache_evictions_total") >= (objects / 2) as f64,
        "{m}"
    );
    let grown = rss_kib().saturating_sub(before) * 1024;
    assert!(
        grown < 3 * BUDGET + (32 << 20),
        "RSS grew {grown} bytes for a {BUDGET}-byte budget"
    );
    // Recently used objects survive eviction better than old ones (CLOCK).
    assert_eq!(
        l.get(&format!("/obj/{}", objects - 1))
            .await
            .header("x-cache"),
        "HIT"
    );
}
