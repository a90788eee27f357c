//! Shared, bounded, expiring state for plugins: counters, a key-value store
//! and token buckets, one namespace per plugin name. It lives in the server,
//! not in a config generation, so it survives reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Default bound on a namespace's size: 16 MiB of keys and values.
pub const DEFAULT_NAMESPACE_BYTES: usize = 16 * 1024 * 1024;
/// Fixed cost counted for every entry, besides its key and value.
const ENTRY_OVERHEAD: usize = 64;
/// A bucket untouched for this long is forgotten (it would be full again).
const BUCKET_IDLE: Duration = Duration::from_secs(600);

/// All namespaces.
#[derive(Default)]
pub struct KvStore {
    namespaces: DashMap<String, Arc<Namespace>>,
}

impl KvStore {
    /// The namespace of a plugin, made on first use.
    pub fn namespace(&self, plugin: &str) -> Arc<Namespace> {
        self.namespaces
            .entry(plugin.to_owned())
            .or_insert_with(|| Arc::new(Namespace::new(DEFAULT_NAMESPACE_BYTES)))
            .clone()
    }
}

enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
    Bucket { tokens: f64, at: Instant },
}

struct Entry {
    value: Value,
    expires: Instant,
}

/// One plugin's state.
pub struct Namespace {
    map: DashMap<String, Entry>,
    bytes: AtomicUsize,
    max_bytes: usize,
}

impl Namespace {
    /// An empty namespace bounded to `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            map: DashMap::new(),
            bytes: AtomicUsize::new(0),
            max_bytes,
        }
    }

    fn cost(key: &str, value: &Value) -> usize {
        key.len()
            + ENTRY_OVERHEAD
            + match value {
                Value::Bytes(b) => b.len(),
                _ => 0,
            }
    }

    /// Make room for `need` bytes: drop expired entries; false if still full.
    fn reserve(&self, need: usize) -> bool {
        if self.bytes.load(Ordering::Relaxed) + need <= self.max_bytes {
            return true;
        }
        let now = Instant::now();
        self.map.retain(|k, e| {
            let keep = e.expires > now;
            if !keep {
                self.bytes
                    .fetch_sub(Self::cost(k, &e.value), Ordering::Relaxed);
            }
            keep
        });
        self.bytes.load(Ordering::Relaxed) + need <= self.max_bytes
    }

    /// Insert or update `key` with `f`, which sees the live (unexpired) value.
    fn update<R>(
        &self,
        key: &str,
        ttl: Duration,
        f: impl FnOnce(Option<&mut Value>) -> (Option<Value>, R),
    ) -> Result<R, String> {
        let now = Instant::now();
        if let Some(mut e) = self.map.get_mut(key) {
            let live = e.expires > now;
            let before = Self::cost(key, &e.value);
            let (new, r) = f(live.then_some(&mut e.value));
            if let Some(v) = new {
                let after = Self::cost(key, &v);
                if after > before && !self.reserve(after - before) {
                    return Err("namespace full".into());
                }
                self.bytes.fetch_add(after, Ordering::Relaxed);
                self.bytes.fetch_sub(before, Ordering::Relaxed);
                e.value = v;
            }
            e.expires = now + ttl;
            return Ok(r);
        }
        let (new, r) = f(None);
        if let Some(v) = new {
            let cost = Self::cost(key, &v);
            if !self.reserve(cost) {
                return Err("namespace full".into());
            }
            self.bytes.fetch_add(cost, Ordering::Relaxed);
            if let Some(old) = self.map.insert(
                key.to_owned(),
                Entry {
                    value: v,
                    expires: now + ttl,
                },
            ) {
                self.bytes
                    .fetch_sub(Self::cost(key, &old.value), Ordering::Relaxed);
            }
        }
        Ok(r)
    }

    /// Add to a counter and return the new value (a full namespace counts from 0, unstored).
    pub fn counter_add(&self, key: &str, delta: i64, ttl_ms: u64) -> i64 {
        let r = self.update(key, Duration::from_millis(ttl_ms), |v| match v {
            Some(Value::Counter(c)) => {
                *c = c.saturating_add(delta);
                (None, *c)
            }
            _ => (Some(Value::Counter(delta)), delta),
        });
        r.unwrap_or(delta)
    }

    /// A live value.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let e = self.map.get(key)?;
        match &e.value {
            Value::Bytes(b) if e.expires > Instant::now() => Some(b.clone()),
            _ => None,
        }
    }

    /// Store a value.
    pub fn set(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> Result<(), String> {
        self.update(&key, Duration::from_millis(ttl_ms), |_| {
            (Some(Value::Bytes(value)), ())
        })
    }

    /// Take a token; `Err(ms)` until one is available.
    pub fn take_token(&self, key: &str, rate: f64, burst: u32) -> Result<(), u64> {
        if rate <= 0.0 || !rate.is_finite() {
            return Err(u64::MAX);
        }
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        let r = self.update(key, BUCKET_IDLE, |v| {
            let (tokens, at) = match v {
                Some(Value::Bucket { tokens, at }) => (*tokens, *at),
                _ => (burst, now),
            };
            let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(burst);
            if tokens >= 1.0 {
                (
                    Some(Value::Bucket {
                        tokens: tokens - 1.0,
                        at: now,
                    }),
                    Ok(()),
                )
            } else {
                let wait = ((1.0 - tokens) / rate * 1000.0).ceil() as u64;
                (Some(Value::Bucket { tokens, at: now }), Err(wait.max(1)))
            }
        });
        r.unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn buckets_allow_burst_then_refuse() {
        let ns = Namespace::new(1 << 20);
        for _ in 0..3 {
            assert!(ns.take_token("ip", 1.0, 3).is_ok());
        }
        let wait = ns.take_token("ip", 1.0, 3).unwrap_err();
        assert!((1..=1000).contains(&wait), "{wait}");
    }

    #[test]
    fn namespace_is_bounded() {
        let ns = Namespace::new(1000);
        assert!(ns.set("k".into(), vec![0; 500], 60_000).is_ok());
        assert!(ns.set("j".into(), vec![0; 600], 60_000).is_err());
        assert_eq!(ns.get("k").map(|v| v.len()), Some(500));
    }
}
