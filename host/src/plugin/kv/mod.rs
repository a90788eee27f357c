//! Shared, bounded, expiring state for plugins: counters, a key-value store
//! and token buckets, one namespace per plugin name. It lives in the server,
//! not in a config generation, so it survives reloads.
//!
//! A namespace is 16 shards chosen by key hash, each a mutex over a
//! hash map and an exact expiry index (a B-tree of `(deadline, key)`, one item
//! per entry). One atomic counter holds the bytes accounted across shards; a
//! write reserves its cost against the bound before storing, so the bound
//! holds under concurrency. A write first drops the expired entries of its own
//! shard (O(log n) each, each entry dropped once); if there is still no room
//! it is refused at once, without looking at the other shards, whose expired
//! entries wait for [`Namespace::sweep`]. No code holds two shard locks.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use dashmap::DashMap;
use parking_lot::Mutex;

/// Default bound on a namespace's size: 16 MiB, counted as the memory its
/// entries take (see [`Namespace::bytes`]), not just key and value lengths.
pub const DEFAULT_NAMESPACE_BYTES: usize = 16 * 1024 * 1024;
/// Longest key a namespace stores. `set` refuses a longer key with an error;
/// `counter_add` and `take_token` treat it as a full namespace.
pub const MAX_KEY_BYTES: usize = 1024;
const SHARDS: usize = 16;
/// A bucket untouched for this long is forgotten (it would be full again).
const BUCKET_IDLE_MS: u64 = 600_000;
/// Memory of one entry besides its key and value allocations: its hash-map
/// slot and control byte, doubled because a table runs between 7/16 and 7/8
/// full; and its expiry-index item, doubled because B-tree nodes are between
/// half and wholly full and carry a header.
const ENTRY_OVERHEAD: usize =
    2 * (size_of::<(Arc<str>, Entry)>() + 1) + 2 * size_of::<(u64, Arc<str>)>();

/// Every plugin's namespace, by plugin name.
#[derive(Default)]
pub struct KvStore {
    namespaces: DashMap<String, Arc<Namespace>>,
}

impl KvStore {
    /// The namespace of a plugin, made on first use with
    /// [`DEFAULT_NAMESPACE_BYTES`].
    pub fn namespace(&self, plugin: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.get(plugin) {
            return ns.clone();
        }
        self.namespaces
            .entry(plugin.to_owned())
            .or_insert_with(|| Arc::new(Namespace::new(DEFAULT_NAMESPACE_BYTES)))
            .clone()
    }

    /// Every namespace made so far (they are never dropped), sorted by plugin
    /// name.
    pub fn namespaces(&self) -> Vec<(String, Arc<Namespace>)> {
        let mut all: Vec<_> = self
            .namespaces
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Drop the expired entries of every namespace, one shard at a time.
    pub fn sweep(&self) {
        for (_, ns) in self.namespaces() {
            ns.sweep();
        }
    }
}

enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
    /// `at` is a [`Namespace::tick`].
    Bucket {
        tokens: f64,
        at: u64,
    },
}

struct Entry {
    value: Value,
    /// Deadline as a [`Namespace::tick`]: live while `expires > now`.
    expires: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Arc<str>, Entry>,
    /// Exactly one `(expires, key)` per entry of `map`, earliest first.
    expiry: BTreeSet<(u64, Arc<str>)>,
}

/// Why a write was refused.
enum Refused {
    KeyTooLong,
    TooLarge(usize),
    Full,
}

/// One plugin's state, bounded to `max_bytes` of accounted memory.
pub struct Namespace {
    shards: [Mutex<Shard>; SHARDS],
    /// Picks the shard; separate from the maps' own hashers so that keys in
    /// one shard still spread over its table.
    picker: RandomState,
    epoch: Instant,
    bytes: AtomicUsize,
    max_bytes: usize,
    refusals: AtomicU64,
    /// Expiry-index items looked at, to prove refusals do not scan.
    #[cfg(test)]
    examined: AtomicUsize,
}

/// What the allocator takes for `n` bytes: glibc malloc adds an 8-byte
/// header, rounds up to 16 and hands out at least 32.
const fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let chunk = (n + 8).next_multiple_of(16);
    if chunk < 32 { 32 } else { chunk }
}

/// Accounted memory of an entry: overhead, the key's `Arc<str>` (two counts
/// and the text) and the value's heap buffer.
fn cost(key_len: usize, value: &Value) -> usize {
    let key = alloc_size((2 * size_of::<usize>() + key_len).next_multiple_of(8));
    let value = match value {
        Value::Bytes(b) => alloc_size(b.capacity()),
        Value::Counter(_) | Value::Bucket { .. } => 0,
    };
    ENTRY_OVERHEAD + key + value
}

impl Namespace {
    /// An empty namespace bounded to `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            picker: RandomState::new(),
            epoch: Instant::now(),
            bytes: AtomicUsize::new(0),
            max_bytes,
            refusals: AtomicU64::new(0),
            #[cfg(test)]
            examined: AtomicUsize::new(0),
        }
    }

    /// Memory accounted to the entries held (live, or expired and not yet
    /// dropped): keys, value buffers, and per entry its map slot, index item
    /// and allocator overhead. Never more than [`Self::max_bytes`].
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// The bound given to [`Self::new`], which [`Self::bytes`] never exceeds.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Writes refused so far because the namespace was full, the entry alone
    /// exceeded the bound, or the key was longer than [`MAX_KEY_BYTES`]
    /// (including those `counter_add` and `take_token` absorb silently).
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Relaxed)
    }

    /// Drop every expired entry; the server calls this every few seconds, as
    /// a write only reclaims expired entries of its own shard.
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    /// Add to a counter and return the new value. Each call restarts the
    /// counter's time to live. A full namespace (or a key longer than
    /// [`MAX_KEY_BYTES`]) counts from `delta`, unstored.
    pub fn counter_add(&self, key: &str, delta: i64, ttl_ms: u64) -> i64 {
        self.counter_add_at(key, delta, ttl_ms, Instant::now())
    }

    /// A live value stored by [`Self::set`] (counters and buckets read as
    /// none).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_at(key, Instant::now())
    }

    /// Store a value for `ttl_ms`. On refusal an existing value stays as it
    /// was; the error says why, e.g. "namespace full (16777216 bytes)".
    pub fn set(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> Result<(), String> {
        self.set_at(key, value, ttl_ms, Instant::now())
    }

    /// Take a token from the bucket `key` filling at `rate` per second up to
    /// `burst`; `Err(ms)` until one is available (`u64::MAX` for a rate that
    /// is not positive and finite). A full namespace (or a key longer than
    /// [`MAX_KEY_BYTES`]) allows: a limiter with nowhere to keep state lets
    /// traffic through rather than refuse it all; [`Self::refusals`] shows it.
    pub fn take_token(&self, key: &str, rate: f64, burst: u32) -> Result<(), u64> {
        self.take_token_at(key, rate, burst, Instant::now())
    }

    /// Nanoseconds from the namespace's creation to `now`.
    fn tick(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.picker.hash_one(key) % SHARDS as u64) as usize]
    }

    fn refuse(&self, why: Refused) -> Refused {
        self.refusals.fetch_add(1, Relaxed);
        why
    }

    /// Account `need` more bytes if they fit under the bound.
    fn reserve(&self, need: usize) -> bool {
        self.bytes
            .fetch_update(Relaxed, Relaxed, |b| {
                b.checked_add(need).filter(|&n| n <= self.max_bytes)
            })
            .is_ok()
    }

    /// Drop the shard's entries whose deadline is at or before `now`.
    fn expire(&self, shard: &mut Shard, now: u64) {
        let mut freed = 0;
        while shard.expiry.first().is_some_and(|(t, _)| *t <= now) {
            let Some((_, key)) = shard.expiry.pop_first() else {
                break;
            };
            #[cfg(test)]
            self.examined.fetch_add(1, Relaxed);
            if let Some(e) = shard.map.remove(&key) {
                freed += cost(key.len(), &e.value);
            }
        }
        self.bytes.fetch_sub(freed, Relaxed);
    }

    fn sweep_at(&self, now: Instant) {
        let now = self.tick(now);
        for shard in &self.shards {
            let mut shard = shard.lock();
            self.expire(&mut shard, now);
            let len = shard.map.len();
            if shard.map.capacity() > 4 * len + 64 {
                shard.map.shrink_to(2 * len);
            }
        }
    }

    /// Store the value `f` makes from the live value of `key` (and the
    /// current tick), live for `ttl_ms`; `f`'s result unless refused.
    fn write<R>(
        &self,
        key: &str,
        ttl_ms: u64,
        now: Instant,
        f: impl FnOnce(Option<&Value>, u64) -> (Value, R),
    ) -> Result<R, Refused> {
        if key.len() > MAX_KEY_BYTES {
            return Err(self.refuse(Refused::KeyTooLong));
        }
        let now = self.tick(now);
        let expires = now.saturating_add(ttl_ms.saturating_mul(1_000_000));
        let mut guard = self.shard(key).lock();
        let shard = &mut *guard;
        // After this every entry left in the shard is live.
        self.expire(shard, now);
        let (value, r, old) = match shard.map.get_key_value(key) {
            Some((k, e)) => {
                let (value, r) = f(Some(&e.value), now);
                (
                    value,
                    r,
                    Some((k.clone(), e.expires, cost(key.len(), &e.value))),
                )
            }
            None => {
                let (value, r) = f(None, now);
                (value, r, None)
            }
        };
        let new_cost = cost(key.len(), &value);
        if new_cost > self.max_bytes {
            return Err(self.refuse(Refused::TooLarge(new_cost)));
        }
        let old_cost = old.as_ref().map_or(0, |o| o.2);
        if new_cost > old_cost && !self.reserve(new_cost - old_cost) {
            return Err(self.refuse(Refused::Full));
        }
        self.bytes
            .fetch_sub(old_cost.saturating_sub(new_cost), Relaxed);
        let key = match old {
            Some((k, old_expires, _)) => {
                if old_expires != expires {
                    shard.expiry.remove(&(old_expires, k.clone()));
                    shard.expiry.insert((expires, k.clone()));
                }
                k
            }
            None => {
                let k: Arc<str> = Arc::from(key);
                shard.expiry.insert((expires, k.clone()));
                k
            }
        };
        shard.map.insert(key, Entry { value, expires });
        Ok(r)
    }

    fn counter_add_at(&self, key: &str, delta: i64, ttl_ms: u64, now: Instant) -> i64 {
        let add = |old: Option<&Value>, _| {
            let c = match old {
                Some(Value::Counter(c)) => c.saturating_add(delta),
                _ => delta,
            };
            (Value::Counter(c), c)
        };
        self.write(key, ttl_ms, now, add).unwrap_or(delta)
    }

    fn get_at(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        let now = self.tick(now);
        let shard = self.shard(key).lock();
        match shard.map.get(key)? {
            Entry {
                value: Value::Bytes(b),
                expires,
            } if *expires > now => Some(b.clone()),
            _ => None,
        }
    }

    fn set_at(
        &self,
        key: String,
        mut value: Vec<u8>,
        ttl_ms: u64,
        now: Instant,
    ) -> Result<(), String> {
        value.shrink_to_fit();
        let max = self.max_bytes;
        self.write(&key, ttl_ms, now, |_, _| (Value::Bytes(value), ()))
            .map_err(|why| match why {
                Refused::KeyTooLong => format!("key longer than {MAX_KEY_BYTES} bytes"),
                Refused::TooLarge(n) => {
                    format!("entry of {n} bytes exceeds the namespace bound ({max} bytes)")
                }
                Refused::Full => format!("namespace full ({max} bytes)"),
            })
    }

    fn take_token_at(&self, key: &str, rate: f64, burst: u32, now: Instant) -> Result<(), u64> {
        if rate <= 0.0 || !rate.is_finite() {
            return Err(u64::MAX);
        }
        let burst = f64::from(burst.max(1));
        let take = |old: Option<&Value>, now: u64| {
            let tokens = match old {
                Some(&Value::Bucket { tokens, at }) => {
                    let secs = now.saturating_sub(at) as f64 / 1e9;
                    (tokens + secs * rate).min(burst)
                }
                _ => burst,
            };
            if tokens >= 1.0 {
                let bucket = Value::Bucket {
                    tokens: tokens - 1.0,
                    at: now,
                };
                (bucket, Ok(()))
            } else {
                let wait = ((1.0 - tokens) / rate * 1000.0).ceil() as u64;
                (Value::Bucket { tokens, at: now }, Err(wait.max(1)))
            }
        };
        self.write(key, BUCKET_IDLE_MS, now, take).unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests;
