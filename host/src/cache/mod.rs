//! The cache store: a dashmap from a 128-bit key (host, URL, plugin key
//! inputs) to a slot holding the variants of that URL and, while one is
//! fetched, the channel its waiters listen on. The jobs are split by file:
//!
//! - this file: the store, the lookup (a hit takes only the shard's read
//!   lock), insertion and memory accounting;
//! - [`object`]: a stored response and its freshness;
//! - [`coalesce`]: one fetch per key, waiters told the outcome;
//! - `evict.rs`: CLOCK eviction under the byte budget, and the periodic sweep;
//! - `invalidate.rs`: purge, soft purge and bans, the single place every
//!   invalidation goes through;
//! - [`ban`]: the ban list; [`body`]: bodies filled while read;
//!   [`gzip`]: bodies stored compressed; [`slice`]: ranges of streams;
//!   [`partial`]: the pieces of stored 206 responses;
//!   [`policy`]: RFC 9111 proposals; [`clock`]: the time seam.

pub mod ban;
pub mod body;
pub mod clock;
mod coalesce;
mod evict;
pub mod gzip;
mod invalidate;
pub mod object;
pub mod partial;
pub mod policy;
pub mod slice;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::watch;

use lacquer_cache_semantics as cs;

pub use self::ban::Ban;
use self::ban::Bans;
pub use self::clock::{Clock, SystemClock};
pub use self::coalesce::{FetchGuard, Outcome};
pub use self::invalidate::{Invalidation, InvalidationSink};
pub use self::object::{NewObject, Object};
use crate::metrics::Metrics;

/// Bytes counted for an object besides its body and headers.
const OBJECT_OVERHEAD: i64 = 512;

/// A cache key.
pub type Key = u128;

/// Compute the key of a request.
pub fn key(host: &str, url: &str, inputs: &[String]) -> Key {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(host.as_bytes());
    h.update(&[0]);
    h.update(url.as_bytes());
    for i in inputs {
        h.update(&[0]);
        h.update(i.as_bytes());
    }
    h.digest128()
}

struct Slot {
    variants: Vec<Arc<Object>>,
    busy: Option<watch::Receiver<Option<Outcome>>>,
}

/// The result of a lookup.
pub enum Lookup {
    /// A fresh object.
    Hit(Arc<Object>),
    /// A stale object in grace; `refresh` is set when this request should refresh it in the background.
    Stale {
        /// The object to serve.
        obj: Arc<Object>,
        /// Present when nobody refreshes it yet.
        refresh: Option<FetchGuard>,
    },
    /// Fetch it; waiters wait on the guard. `stale` is an older copy (for revalidation or stale-if-error).
    Miss {
        /// Released (waking waiters) when dropped or resolved.
        guard: FetchGuard,
        /// An older copy.
        stale: Option<Arc<Object>>,
    },
    /// Another request is fetching it: wait.
    Wait {
        /// Tells what became of the fetch.
        rx: watch::Receiver<Option<Outcome>>,
        /// An older copy, to serve if that fetch fails and it is usable on error.
        stale: Option<Arc<Object>>,
    },
    /// Known uncacheable: fetch without waiting. `stale` as for Miss.
    HitForMiss,
}

/// The cache.
pub struct Cache {
    map: DashMap<Key, Slot>,
    bytes: AtomicI64,
    budget: i64,
    max_variants: usize,
    /// The CLOCK ring: objects in insertion order, for eviction.
    ring: Mutex<VecDeque<Weak<Object>>>,
    bans: Bans,
    clock: Arc<dyn Clock>,
    /// Longest life (ttl + grace + keep) of any object stored: bans older than this are dropped.
    max_life: Mutex<Duration>,
    metrics: Arc<Metrics>,
    /// Where this node's invalidations are handed on (the cluster).
    sink: std::sync::OnceLock<Arc<dyn InvalidationSink>>,
}

impl Cache {
    /// An empty cache with a byte budget, at most `max_variants` per key
    /// and `max_bans` active bans.
    pub fn new(
        budget: u64,
        max_variants: usize,
        max_bans: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_clock(
            budget,
            max_variants,
            max_bans,
            metrics,
            Arc::new(SystemClock),
        )
    }

    /// Like [`Cache::new`], with the clock ages and lifetimes are measured by.
    pub fn with_clock(
        budget: u64,
        max_variants: usize,
        max_bans: usize,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            map: DashMap::new(),
            bytes: AtomicI64::new(0),
            budget: budget as i64,
            max_variants,
            ring: Mutex::new(VecDeque::new()),
            bans: Bans::new(
                max_bans,
                metrics.cache_bans.clone(),
                metrics.cache_bans_refused.clone(),
                clock.clone(),
            ),
            clock,
            max_life: Mutex::new(Duration::ZERO),
            metrics,
            sink: std::sync::OnceLock::new(),
        })
    }

    /// Bytes counted against the budget.
    pub fn bytes(&self) -> i64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Objects stored.
    pub fn objects(&self) -> usize {
        self.map.iter().map(|s| s.variants.len()).sum()
    }

    /// Find `key` for a request with `req_headers` and request directives `req_cc`.
    /// With `revalidated`, the request just waited for a fetch: request
    /// directives (no-cache, max-age=0, Pragma) are satisfied by it.
    pub fn lookup(
        self: &Arc<Self>,
        key: Key,
        req_headers: &HeaderMap,
        req_cc: &cs::CacheControl,
        revalidated: bool,
    ) -> Lookup {
        if let Some(o) = self.fresh_hit(key, req_headers, req_cc, revalidated) {
            return Lookup::Hit(o);
        }
        let mut slot = self.map.entry(key).or_insert_with(|| Slot {
            variants: Vec::new(),
            busy: None,
        });
        let mut dead = Vec::new();
        slot.variants.retain(|o| {
            let keep = !o.dead() && !self.banned(o);
            if !keep {
                dead.push(o.clone());
            }
            keep
        });
        let found = slot
            .variants
            .iter()
            .find(|o| o.vary.as_ref().is_none_or(|v| v.matches(req_headers)))
            .cloned();
        let reuse = match &found {
            Some(o) if o.hfm => None,
            Some(o) if o.body.state() == body::Fill::Failed => Some(cs::Reuse::MustRevalidate),
            Some(o) if revalidated => Some(cs::reuse(
                req_cc,
                &HeaderMap::new(),
                &o.freshness(),
                o.age(),
            )),
            Some(o) => Some(cs::reuse(req_cc, req_headers, &o.freshness(), o.age())),
            None => None,
        };
        let outcome = match (found, reuse) {
            (Some(o), None) if o.fresh() => Lookup::HitForMiss,
            (Some(o), Some(cs::Reuse::Fresh | cs::Reuse::StaleAllowed)) => {
                o.touch();
                o.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(o)
            }
            (found, reuse) => {
                let stale = found.filter(|o| !o.hfm);
                let graceful = reuse == Some(cs::Reuse::StaleWhileRevalidate);
                match (slot.busy.clone(), stale) {
                    (Some(_), Some(o)) if graceful => {
                        o.hits.fetch_add(1, Ordering::Relaxed);
                        Lookup::Stale {
                            obj: o,
                            refresh: None,
                        }
                    }
                    (Some(rx), stale) => Lookup::Wait { rx, stale },
                    (None, stale) => {
                        let (tx, rx) = watch::channel(None);
                        slot.busy = Some(rx);
                        let guard = FetchGuard {
                            cache: self.clone(),
                            key,
                            tx: Some(tx),
                        };
                        match stale {
                            Some(o) if graceful && !o.refreshing.swap(true, Ordering::AcqRel) => {
                                o.hits.fetch_add(1, Ordering::Relaxed);
                                Lookup::Stale {
                                    obj: o,
                                    refresh: Some(guard),
                                }
                            }
                            stale => Lookup::Miss { guard, stale },
                        }
                    }
                }
            }
        };
        drop(slot);
        for o in dead {
            self.forget(&o);
        }
        outcome
    }

    /// The hit path: under the shard's read lock only, a usable variant.
    /// Anything else (a miss, stale, dead or banned objects to drop, a fetch
    /// to coalesce on) is left to the write path of [`Cache::lookup`].
    fn fresh_hit(
        &self,
        key: Key,
        req_headers: &HeaderMap,
        req_cc: &cs::CacheControl,
        revalidated: bool,
    ) -> Option<Arc<Object>> {
        let slot = self.map.get(&key)?;
        let o = slot
            .variants
            .iter()
            .find(|o| o.vary.as_ref().is_none_or(|v| v.matches(req_headers)))?;
        if o.hfm || o.dead() || o.body.state() == body::Fill::Failed || self.banned(o) {
            return None;
        }
        let conditions = if revalidated {
            &HeaderMap::new()
        } else {
            req_headers
        };
        let reuse = cs::reuse(req_cc, conditions, &o.freshness(), o.age());
        if !matches!(reuse, cs::Reuse::Fresh | cs::Reuse::StaleAllowed) {
            return None;
        }
        o.touch();
        o.hits.fetch_add(1, Ordering::Relaxed);
        Some(o.clone())
    }

    /// The stored partial object (`[cache] partial`) a request selects, if
    /// any: what a new piece for it is combined with.
    pub fn partial_variant(&self, key: Key, req_headers: &HeaderMap) -> Option<Arc<Object>> {
        let slot = self.map.get(&key)?;
        slot.variants
            .iter()
            .find(|o| o.vary.as_ref().is_none_or(|v| v.matches(req_headers)))
            .filter(|o| o.partial.is_some() && !o.hfm && !o.dead() && !self.banned(o))
            .cloned()
    }

    /// Store an object under `key`, replacing the variant it matches.
    pub fn insert(&self, key: Key, n: NewObject) -> Arc<Object> {
        let size = OBJECT_OVERHEAD
            + n.headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 32)
                .sum::<usize>() as i64
            + n.body.complete_len().map_or(0, |l| l as i64)
            + n.partial.as_ref().map_or(0, |p| {
                p.bytes() as i64 + (p.count() * body::CHUNK_OVERHEAD) as i64
            });
        // Read before `created`: a ban added in between is still checked.
        let ban_checked = self.bans.newest();
        let obj = Arc::new(Object::new(n, key, size, ban_checked, self.clock.clone()));
        let mut removed = Vec::new();
        {
            let mut slot = self.map.entry(key).or_insert_with(|| Slot {
                variants: Vec::new(),
                busy: None,
            });
            slot.variants.retain(|o| {
                // A real object replaces the hit-for-miss marker and the variant it matches.
                let same = o.hfm || obj.hfm || o.vary == obj.vary;
                if same {
                    removed.push(o.clone());
                }
                !same
            });
            slot.variants.insert(0, obj.clone());
            while slot.variants.len() > self.max_variants {
                if let Some(o) = slot.variants.pop() {
                    removed.push(o);
                }
            }
        }
        for o in removed {
            self.forget(&o);
        }
        {
            let life = obj.ttl + obj.grace.max(obj.stale_if_error) + obj.keep;
            let mut m = self.max_life.lock();
            *m = (*m).max(life);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.metrics.cache_objects.inc();
        self.ring.lock().push_back(Arc::downgrade(&obj));
        self.publish();
        self.evict();
        obj
    }

    /// Count body bytes that arrived for a stored object.
    pub fn grow(&self, obj: &Object, delta: usize) {
        obj.size.fetch_add(delta as i64, Ordering::Relaxed);
        if obj.in_cache.load(Ordering::Relaxed) {
            self.bytes.fetch_add(delta as i64, Ordering::Relaxed);
            self.publish();
            self.evict();
        }
    }

    /// Remove an object (e.g. its fill failed, or it grew too big).
    pub fn remove(&self, obj: &Arc<Object>) {
        if let Some(mut s) = self.map.get_mut(&obj.key) {
            s.variants.retain(|o| !Arc::ptr_eq(o, obj));
        }
        self.forget(obj);
    }

    /// Account for an object leaving the cache (once).
    fn forget(&self, o: &Object) {
        if o.in_cache.swap(false, Ordering::AcqRel) {
            self.bytes
                .fetch_sub(o.size.load(Ordering::Relaxed), Ordering::Relaxed);
            self.metrics.cache_objects.dec();
            self.publish();
        }
    }

    fn publish(&self) {
        self.metrics
            .cache_bytes
            .set(self.bytes.load(Ordering::Relaxed));
    }
}
