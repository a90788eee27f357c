//! The store without sockets: hits under a read lock, coalescing, CLOCK
//! eviction, bans and lifetimes, on a clock the tests move.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use lacquer_cache_semantics as cs;

use super::clock::ManualClock;
use super::*;
use crate::kinds::FetchKind;

fn cache(budget: u64, clock: Arc<ManualClock>) -> Arc<Cache> {
    Cache::with_clock(budget, 4, 100, Arc::new(Metrics::new()), clock)
}

fn object(url: &str, body: usize, ttl: Duration) -> NewObject {
    NewObject {
        gzip: None,
        partial: None,
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: body::BodyBuf::complete(Bytes::from(vec![b'x'; body])),
        initial_age: Duration::ZERO,
        ttl,
        grace: Duration::ZERO,
        keep: Duration::ZERO,
        hfm: false,
        vary: None,
        must_revalidate: false,
        no_cache: false,
        stale_if_error: Duration::ZERO,
        host: "h".into(),
        url: url.into(),
    }
}

fn lookup(c: &Arc<Cache>, k: Key) -> Lookup {
    c.lookup(k, &HeaderMap::new(), &cs::CacheControl::default(), false)
}

fn is_hit(l: &Lookup) -> bool {
    matches!(l, Lookup::Hit(_))
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_hit_takes_only_the_read_lock() {
    let c = cache(1 << 20, Arc::new(ManualClock::new()));
    let k = key("h", "/a", &[]);
    c.insert(k, object("/a", 10, MINUTE));
    // Another reader holds the shard: a hit must not need the write lock.
    let held = c.map.get(&k).expect("stored");
    let (tx, rx) = mpsc::channel();
    let c2 = c.clone();
    std::thread::spawn(move || {
        let _ = tx.send(is_hit(&lookup(&c2, k)));
    });
    let hit = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    assert_eq!(
        hit,
        Ok(true),
        "the hit completed while the shard was read-locked"
    );
}

#[test]
fn lifetimes_follow_the_clock() {
    let clock = Arc::new(ManualClock::new());
    let c = cache(1 << 20, clock.clone());
    let k = key("h", "/a", &[]);
    c.insert(k, object("/a", 10, MINUTE));
    assert!(is_hit(&lookup(&c, k)));
    clock.advance(MINUTE + Duration::from_secs(1));
    match lookup(&c, k) {
        Lookup::Miss { stale, .. } => assert!(stale.is_none(), "dead past ttl + keep"),
        _ => panic!("expected a miss once the lifetime is over"),
    }
}

#[test]
fn one_fetch_per_key_and_waiters_learn_the_outcome() {
    let c = cache(1 << 20, Arc::new(ManualClock::new()));
    let k = key("h", "/a", &[]);
    let Lookup::Miss { guard, .. } = lookup(&c, k) else {
        panic!("first lookup fetches");
    };
    let Lookup::Wait { mut rx, .. } = lookup(&c, k) else {
        panic!("second lookup waits");
    };
    assert!(rx.borrow_and_update().is_none());
    guard.resolve(Outcome::Stored);
    assert!(matches!(*rx.borrow_and_update(), Some(Outcome::Stored)));
    // A dropped guard tells waiters the fetch failed, and frees the key.
    let Lookup::Miss { guard, .. } = lookup(&c, k) else {
        panic!("the key is free again");
    };
    let Lookup::Wait { rx, .. } = lookup(&c, k) else {
        panic!("waits")
    };
    drop(guard);
    match &*rx.borrow() {
        Some(Outcome::Failed(f)) => assert_eq!(f.kind, FetchKind::ConnectionReset),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(matches!(lookup(&c, k), Lookup::Miss { .. }));
}

#[test]
fn clock_eviction_gives_a_hit_object_a_second_chance() {
    // Room for three objects of 10 KiB (with overheads).
    let c = cache(3 * 11 * 1024, Arc::new(ManualClock::new()));
    let keys: Vec<Key> = (0..4).map(|i| key("h", &format!("/{i}"), &[])).collect();
    c.insert(keys[0], object("/0", 10 * 1024, MINUTE)); // A
    c.insert(keys[1], object("/1", 10 * 1024, MINUTE)); // B
    c.insert(keys[2], object("/2", 10 * 1024, MINUTE));
    assert!(is_hit(&lookup(&c, keys[0])), "A is used");
    c.insert(keys[3], object("/3", 10 * 1024, MINUTE)); // overfill
    assert!(
        is_hit(&lookup(&c, keys[0])),
        "A survives: it was referenced"
    );
    assert!(
        !is_hit(&lookup(&c, keys[1])),
        "B, newer but unreferenced, went"
    );
    assert!(c.bytes() <= c.budget);
}

#[test]
fn bans_hit_older_objects_once_and_retire() {
    let clock = Arc::new(ManualClock::new());
    let c = cache(1 << 20, clock.clone());
    let (old, other) = (key("h", "/old/1", &[]), key("h", "/keep", &[]));
    c.insert(old, object("/old/1", 10, MINUTE));
    c.insert(other, object("/keep", 10, MINUTE));
    clock.advance(Duration::from_millis(1));
    c.ban(Ban::new(Some("h"), "^/old/").unwrap()).unwrap();
    assert!(!is_hit(&lookup(&c, old)), "banned");
    assert!(is_hit(&lookup(&c, other)), "not matched");
    // Stored after the ban: unaffected.
    c.insert(old, object("/old/1", 10, MINUTE));
    assert!(is_hit(&lookup(&c, old)));
    // Every object has now been checked against the ban: the sweep retires it.
    c.sweep();
    assert!(c.bans().is_empty());
}
