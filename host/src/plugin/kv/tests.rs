use super::*;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

impl Namespace {
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }
    fn index_len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expiry.len()).sum()
    }
}

/// Run `f` on a thread; fail (rather than hang) if it takes over 10 s.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(10))
        .expect("hung (deadlock?) or panicked")
}

fn fill(ns: &Namespace, prefix: &str, len: usize, ttl_ms: u64, now: Instant) -> usize {
    let mut n = 0;
    while ns
        .set_at(format!("{prefix}{n:08}"), vec![7; len], ttl_ms, now)
        .is_ok()
    {
        n += 1;
    }
    n
}

#[test]
fn counters_count_and_expire() {
    let ns = Namespace::new(1 << 20);
    assert_eq!(ns.counter_add("a", 1, 60_000), 1);
    assert_eq!(ns.counter_add("a", 2, 60_000), 3);
    assert_eq!(ns.counter_add("b", 1, 0), 1);
    assert_eq!(
        ns.counter_add("b", 1, 0),
        1,
        "an expired counter starts again"
    );
    let t0 = Instant::now();
    assert_eq!(ns.counter_add_at("c", 1, 1000, t0), 1);
    assert_eq!(
        ns.counter_add_at("c", 1, 1000, t0 + Duration::from_millis(900)),
        2
    );
    let later = t0 + Duration::from_millis(1901);
    assert_eq!(
        ns.counter_add_at("c", 1, 1000, later),
        1,
        "the ttl restarts on each add"
    );
    assert_eq!(
        ns.counter_add("forever", 1, u64::MAX),
        1,
        "a huge ttl does not overflow"
    );
}

#[test]
fn buckets_allow_burst_then_refuse() {
    let ns = Namespace::new(1 << 20);
    for _ in 0..3 {
        assert!(ns.take_token("ip", 1.0, 3).is_ok());
    }
    let wait = ns.take_token("ip", 1.0, 3).unwrap_err();
    assert!((1..=1000).contains(&wait), "{wait}");
    assert_eq!(ns.take_token("ip", f64::NAN, 3), Err(u64::MAX));
    let t0 = Instant::now();
    assert!(ns.take_token_at("t", 1.0, 1, t0).is_ok());
    assert!(ns.take_token_at("t", 1.0, 1, t0).is_err());
    assert!(
        ns.take_token_at("t", 1.0, 1, t0 + Duration::from_secs(1))
            .is_ok()
    );
}

#[test]
fn namespace_is_bounded() {
    let ns = Namespace::new(1000);
    assert!(ns.set("k".into(), vec![0; 500], 60_000).is_ok());
    let err = ns.set("j".into(), vec![0; 600], 60_000).unwrap_err();
    assert_eq!(err, "namespace full (1000 bytes)");
    assert_eq!(ns.get("k").map(|v| v.len()), Some(500));
    assert_eq!(ns.refusals(), 1);
}

#[test]
fn growing_a_key_in_a_full_namespace_is_refused_without_deadlock() {
    let (grown, kept) = within_10s(|| {
        let ns = Namespace::new(64 * 1024);
        ns.set("grow".into(), vec![1; 10], 60_000).unwrap();
        assert!(fill(&ns, "k", 10, 60_000, Instant::now()) > 0);
        (ns.set("grow".into(), vec![2; 4096], 60_000), ns.get("grow"))
    });
    assert!(grown.unwrap_err().starts_with("namespace full"));
    assert_eq!(
        kept,
        Some(vec![1; 10]),
        "a refused set leaves the old value"
    );
}

#[test]
fn refusals_in_a_full_namespace_do_not_scan() {
    let per = cost(9, &Value::Bytes(vec![0; 8]));
    let ns = Namespace::new(100_000 * per);
    let now = Instant::now();
    assert_eq!(fill(&ns, "k", 8, 60_000, now), 100_000);
    ns.examined.store(0, Relaxed);
    for i in 0..10_000 {
        assert!(
            ns.set_at(format!("r{i:08}"), vec![0; 8], 60_000, now)
                .is_err()
        );
        assert_eq!(ns.counter_add_at(&format!("c{i}"), 3, 60_000, now), 3);
    }
    // Nothing has expired, so no refusal may look at any other entry.
    assert_eq!(ns.examined.load(Relaxed), 0);
    assert_eq!(ns.refusals(), 20_001);
    assert_eq!(ns.len(), 100_000);
}

#[test]
fn expired_entries_make_room() {
    let ns = Namespace::new(64 * 1024);
    let t0 = Instant::now();
    let n = fill(&ns, "old", 32, 1000, t0);
    assert!(n > 100, "{n}");
    assert!(
        ns.set_at("new00000000".into(), vec![1; 32], 60_000, t0)
            .is_err()
    );
    let late = t0 + Duration::from_secs(2);
    assert_eq!(
        ns.get_at("old00000000", late),
        None,
        "expired entries are invisible"
    );
    // A new key in a shard holding an expired entry (at least "old00000000").
    let new = (0..)
        .map(|i| format!("new{i}"))
        .find(|k| std::ptr::eq(ns.shard(k), ns.shard("old00000000")))
        .unwrap();
    assert!(ns.set_at(new.clone(), vec![1; 32], 60_000, late).is_ok());
    assert!(
        ns.len() <= n,
        "the write reclaimed its shard's expired entries"
    );
    assert_eq!(ns.len(), ns.index_len());
    ns.sweep_at(late);
    assert_eq!((ns.len(), ns.index_len()), (1, 1));
    assert_eq!(ns.bytes(), cost(new.len(), &Value::Bytes(vec![1; 32])));
    assert_eq!(ns.get_at(&new, late), Some(vec![1; 32]));
}

#[test]
fn accounting_matches_the_entries() {
    let ns = Namespace::new(1 << 20);
    let n = fill(&ns, "key", 16, 60_000, Instant::now());
    let per = cost(11, &Value::Bytes(vec![7; 16]));
    assert!(ns.bytes() <= ns.max_bytes());
    assert_eq!(ns.len(), n);
    assert_eq!(ns.bytes(), n * per);
    assert!(ns.max_bytes() - ns.bytes() < per, "filled to the bound");
    // Realistic: at least the slot, the index item and the raw bytes.
    let floor = size_of::<(Arc<str>, Entry)>() + size_of::<(u64, Arc<str>)>() + 16 + 11;
    assert!(per > floor, "{per} <= {floor}");
    assert!((100..=300).contains(&(per - 16 - 11)), "{per}");
    ns.sweep_at(Instant::now() + Duration::from_secs(61));
    assert_eq!((ns.bytes(), ns.len(), ns.index_len()), (0, 0, 0));
}

#[test]
fn long_keys_and_huge_values_are_refused() {
    let ns = Namespace::new(4096);
    let long = "x".repeat(MAX_KEY_BYTES + 1);
    let err = ns.set(long.clone(), vec![1], 60_000).unwrap_err();
    assert!(err.contains("1024"), "{err}");
    assert!(ns.set("x".repeat(MAX_KEY_BYTES), vec![1], 60_000).is_ok());
    assert_eq!(ns.counter_add(&long, 5, 60_000), 5);
    assert_eq!(ns.counter_add(&long, 5, 60_000), 5, "unstored");
    assert!(ns.take_token(&long, 1.0, 1).is_ok());
    assert!(ns.take_token(&long, 1.0, 1).is_ok(), "unstored, so allowed");
    assert_eq!(ns.get(&long), None);
    let err = ns.set("big".into(), vec![0; 5000], 60_000).unwrap_err();
    assert!(
        err.contains("exceeds the namespace bound (4096 bytes)"),
        "{err}"
    );
    assert_eq!(ns.refusals(), 6);
    assert_eq!(ns.len(), 1);
}

#[test]
fn updates_of_one_key_do_not_grow_the_index() {
    let ns = Namespace::new(1 << 20);
    let t0 = Instant::now();
    for i in 0..10_000 {
        let now = t0 + Duration::from_millis(i);
        ns.counter_add_at("hits", 1, 60_000, now);
        ns.set_at("v".into(), vec![0; (i % 100) as usize], 60_000, now)
            .unwrap();
    }
    assert_eq!(ns.counter_add_at("hits", 0, 60_000, t0), 10_000);
    assert_eq!((ns.len(), ns.index_len()), (2, 2));
}

#[test]
fn concurrent_mixed_writes_stay_bounded() {
    let ns = Arc::new(Namespace::new(4096));
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let ns = ns.clone();
            thread::spawn(move || {
                let mut most = 0;
                for i in 0..5_000u32 {
                    let key = format!("k{}", (i * 7 + t) % 40);
                    match i % 4 {
                        0 => {
                            let value = vec![0; (i % 300) as usize];
                            let _ = ns.set(key, value, u64::from(i % 50));
                        }
                        1 => {
                            ns.counter_add(&key, 1, 5);
                        }
                        2 => {
                            let _ = ns.take_token(&key, 1000.0, 5);
                        }
                        _ if i % 256 == 3 => ns.sweep(),
                        _ => {
                            ns.get(&key);
                        }
                    }
                    most = most.max(ns.bytes());
                }
                most
            })
        })
        .collect();
    let most = within_10s(move || threads.into_iter().map(|t| t.join().unwrap()).max());
    assert!(most.is_some_and(|m| m <= 4096), "{most:?}");
    ns.sweep_at(Instant::now() + Duration::from_secs(601));
    assert_eq!((ns.bytes(), ns.len(), ns.index_len()), (0, 0, 0));
}

#[test]
fn store_keeps_one_namespace_per_plugin() {
    let store = KvStore::default();
    let a = store.namespace("a");
    assert!(Arc::ptr_eq(&a, &store.namespace("a")));
    store.namespace("b").counter_add("n", 1, 0);
    let names: Vec<_> = store.namespaces().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b"]);
    store.sweep();
    assert_eq!(store.namespace("b").bytes(), 0);
    assert_eq!(a.max_bytes(), DEFAULT_NAMESPACE_BYTES);
}
