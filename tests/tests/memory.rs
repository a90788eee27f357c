//! The cache's memory budget holds when twenty times its size is fetched:
//! `lacquer_cache_bytes` never passes it, objects are evicted, and the
//! process does not keep what it evicted (RSS grows by far less than what
//! went through). Alone in its test binary so the process's RSS is this
//! test's. (CLOCK's second chance is tested in `caching.rs`.)

use lacquer_tests::{Lacquer, Origin, Reply};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .expect("VmRSS in /proc/self/status")
        * 1024
}

#[tokio::test]
async fn memory_budget_holds_with_twenty_times_its_size_fetched() {
    const BUDGET: u64 = 8 << 20;
    const OBJECT: u64 = 256 << 10;
    const FETCHED: u64 = 20 * BUDGET;
    // What RSS may grow by: the budget itself, allocator slack and buffers
    // in flight. If evicted objects were kept, it would grow by FETCHED.
    const BOUND: u64 = 3 * BUDGET + (32 << 20);
    const _: () = assert!(FETCHED >= 2 * BOUND, "the bound must be able to fail");
    let body = bytes::Bytes::from(vec![b'x'; OBJECT as usize]);
    let o = Origin::start(move |_| {
        let mut r = Reply::ok("").header("cache-control", "max-age=600");
        r.chunks = vec![body.clone()];
        r
    })
    .await;
    let l = Lacquer::with_origin(
        &o.url(),
        "[cache]\nmemory = \"8MiB\"\nmax_object_size = \"1MiB\"\n",
    )
    .await;
    // Warm up (plugin instances, pools, the first objects) before measuring.
    for i in 0..4 {
        l.get(&format!("/warm/{i}")).await;
    }
    let before = rss_bytes();
    let objects = FETCHED / OBJECT;
    let mut peak_bytes = 0.0f64;
    for i in 0..objects {
        let r = l.get(&format!("/obj/{i}")).await;
        assert_eq!(r.body.len() as u64, OBJECT);
        if i % 8 == 0 {
            let bytes = l.metric("lacquer_cache_bytes").await;
            assert!(
                bytes <= BUDGET as f64,
                "after {i} objects: cache bytes {bytes} over {BUDGET}"
            );
            peak_bytes = peak_bytes.max(bytes);
        }
    }
    let bytes = l.metric("lacquer_cache_bytes").await;
    assert!(
        bytes > 0.0 && bytes <= BUDGET as f64,
        "cache bytes {bytes} within {BUDGET}"
    );
    assert!(
        peak_bytes >= (BUDGET / 2) as f64,
        "the cache really filled up to its budget: peak {peak_bytes}"
    );
    let fit = BUDGET / OBJECT;
    let evictions = l.metric("lacquer_cache_evictions_total").await;
    assert!(
        evictions >= (objects - fit) as f64,
        "{evictions} evictions for {objects} objects of which {fit} fit"
    );
    let objects_kept = l.metric("lacquer_cache_objects").await;
    assert!(
        objects_kept <= fit as f64,
        "{objects_kept} objects kept, {fit} fit"
    );
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "MEASURE memory: RSS grew {grown} bytes while {FETCHED} bytes went through an {BUDGET}-byte cache"
    );
    assert!(
        grown < BOUND,
        "RSS grew {grown} bytes (bound {BOUND}) for a {BUDGET}-byte budget"
    );
    // The newest object is still there.
    assert_eq!(
        l.get(&format!("/obj/{}", objects - 1))
            .await
            .header("x-cache"),
        "HIT"
    );
}
