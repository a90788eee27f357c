//! What the cache keeps: CLOCK eviction gives recently used objects a second
//! chance, and responses over `max_object_size` (by Content-Length, or by a
//! chunked body that grows past it) are delivered whole and not kept.

use bytes::Bytes;
use lacquer_tests::{Lacquer, Origin, Reply};

const KIB: usize = 1024;

fn sized(size: usize, content_length: bool, cc: &str) -> Reply {
    let mut r = Reply::ok("").header("cache-control", cc);
    // In 16 KiB chunks: a streamed (chunked) body unless a length is given.
    r.chunks = (0..size.div_ceil(16 * KIB))
        .map(|i| {
            Bytes::from(vec![
                b'a' + (i % 26) as u8;
                (size - i * 16 * KIB).min(16 * KIB)
            ])
        })
        .collect();
    if content_length {
        r = r.header("content-length", &size.to_string());
    }
    r
}

fn expected(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'a' + ((i / (16 * KIB)) % 26) as u8)
        .collect()
}

#[tokio::test]
async fn clock_gives_a_recently_used_object_a_second_chance() {
    const OBJECT: usize = 100 * KIB;
    let o = Origin::start(|_| sized(OBJECT, true, "max-age=600")).await;
    // About ten objects fit.
    let l = Lacquer::with_origin(
        &o.url(),
        "[cache]\nmemory = \"1MiB\"\nmax_object_size = \"512KiB\"\n",
    )
    .await;
    let hits_of = |path: &str| o.seen().iter().filter(|s| s.uri == path).count();
    // A is stored first and used again; B is stored after it and never used.
    assert_eq!(l.get("/a").await.header("x-cache"), "MISS");
    assert_eq!(l.get("/a").await.header("x-cache"), "HIT");
    assert_eq!(l.get("/b").await.header("x-cache"), "MISS");
    // Overfill until the first eviction.
    let mut n = 0;
    while l.metric("lacquer_cache_evictions_total").await == 0.0 {
        assert!(
            n < 40,
            "40 objects of 100 KiB did not overfill a 1 MiB cache"
        );
        let r = l.get(&format!("/c{n}")).await;
        assert_eq!(r.body.len(), OBJECT);
        n += 1;
    }
    assert_eq!(l.metric("lacquer_cache_evictions_total").await, 1.0);
    // FIFO would have evicted A, the oldest. CLOCK passed over it (used since
    // stored) and took B, the oldest unused object.
    let a = l.get("/a").await;
    assert_eq!(a.header("x-cache"), "HIT", "A survives: it was used");
    assert_eq!(hits_of("/a"), 1);
    let b = l.get("/b").await;
    assert_eq!(b.header("x-cache"), "MISS", "B went: never used");
    assert_eq!(hits_of("/b"), 2);
    println!("MEASURE clock: first eviction after {n} more objects");
}

async fn too_large_passes_through(content_length: bool) {
    const LIMIT: usize = 64 * KIB;
    const SIZE: usize = 200 * KIB;
    let o = Origin::start(move |_| sized(SIZE, content_length, "max-age=600")).await;
    let l = Lacquer::with_origin(&o.url(), "[cache]\nmax_object_size = \"64KiB\"\n").await;
    for round in 1..=2 {
        let r = l.get("/big").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), SIZE, "round {round}: delivered whole");
        assert!(r.body[..] == expected(SIZE)[..], "round {round}: intact");
        assert_ne!(r.header("x-cache"), "HIT", "round {round}");
        assert_eq!(
            o.hits(),
            round,
            "round {round}: not kept, so the origin is asked"
        );
        assert_eq!(
            l.metric("lacquer_cache_too_large_total").await,
            round as f64,
            "round {round}: counted as too large"
        );
    }
    // Nothing is kept: what the cache counts is far below one such object.
    assert!(l.metric("lacquer_cache_bytes").await < LIMIT as f64);
    assert_eq!(l.metric("lacquer_cache_objects").await, 0.0);
    // A small object on the same host is still cached.
    let small = Origin::start(move |_| sized(LIMIT / 2, content_length, "max-age=600")).await;
    let l2 = Lacquer::with_origin(&small.url(), "[cache]\nmax_object_size = \"64KiB\"\n").await;
    l2.get("/small").await;
    assert_eq!(l2.get("/small").await.header("x-cache"), "HIT");
    assert_eq!(l2.metric("lacquer_cache_too_large_total").await, 0.0);
}

#[tokio::test]
async fn a_content_length_over_max_object_size_passes_and_is_not_stored() {
    too_large_passes_through(true).await;
}

#[tokio::test]
async fn a_chunked_body_growing_past_max_object_size_is_delivered_whole_and_not_stored() {
    too_large_passes_through(false).await;
}
