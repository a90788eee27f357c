//! The cache store: a dashmap from a 128-bit key (host, URL, plugin key inputs)
//! to a slot holding the variants of that URL and, while one is fetched, the
//! channel its waiters listen on (request coalescing). Memory is bounded by a
//! byte budget enforced with CLOCK eviction (an approximation of LRU that
//! needs no lock on hits).

pub mod ban;
pub mod body;
pub mod policy;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use tokio::sync::watch;

use lacquer_cache_semantics as cs;

pub use self::ban::Ban;
use self::ban::Bans;
use self::body::BodyBuf;
use crate::backend::FetchFailure;
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

/// A stored response: what was stored ([`NewObject`], reachable through
/// `Deref`) plus the cache's bookkeeping.
pub struct Object {
    stored: NewObject,
    /// When it was stored.
    pub created: Instant,
    /// Times served from cache.
    pub hits: AtomicU64,
    /// Soft-purged: stale now, still usable in grace and for revalidation.
    expired: AtomicBool,
    referenced: AtomicBool,
    refreshing: AtomicBool,
    in_cache: AtomicBool,
    size: AtomicI64,
    key: Key,
    /// The newest ban this object is known to survive.
    ban_checked: AtomicU64,
}

impl std::ops::Deref for Object {
    type Target = NewObject;
    fn deref(&self) -> &NewObject {
        &self.stored
    }
}

impl Object {
    /// Current age.
    pub fn age(&self) -> Duration {
        self.initial_age + self.created.elapsed()
    }
    /// Time since stored.
    fn resident(&self) -> Duration {
        self.created.elapsed()
    }
    /// Its freshness as the RFC rules see it (lifetime and grace as the plugins left them).
    pub fn freshness(&self) -> cs::Freshness {
        let ttl = if self.expired.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            self.ttl
        };
        cs::Freshness {
            lifetime: self.initial_age + ttl,
            source: cs::FreshnessSource::None,
            targeted: false,
            stale_while_revalidate: self.grace,
            stale_if_error: self.stale_if_error,
            must_revalidate: self.must_revalidate,
            no_cache: self.no_cache,
            immutable: false,
        }
    }
    /// Within its freshness lifetime.
    pub fn fresh(&self) -> bool {
        !self.expired.load(Ordering::Relaxed) && self.resident() < self.ttl
    }
    /// May be served instead of an error (stale-if-error, RFC 5861).
    pub fn usable_on_error(&self, req_cc: &cs::CacheControl) -> bool {
        !self.hfm
            && cs::stale_on_error(req_cc, &self.freshness(), self.age()) == cs::StaleOnError::Serve
    }
    /// Past ttl + grace + keep: to be dropped.
    pub fn dead(&self) -> bool {
        self.resident() >= self.ttl + self.grace.max(self.stale_if_error) + self.keep
    }
    fn touch(&self) {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }
}

/// What is stored: the response and the caching facts decided for it.
pub struct NewObject {
    /// Status.
    pub status: StatusCode,
    /// Headers to store.
    pub headers: HeaderMap,
    /// Body.
    pub body: Arc<BodyBuf>,
    /// Corrected initial age.
    pub initial_age: Duration,
    /// Remaining freshness.
    pub ttl: Duration,
    /// Grace.
    pub grace: Duration,
    /// Keep.
    pub keep: Duration,
    /// Marker only.
    pub hfm: bool,
    /// Vary selection.
    pub vary: Option<policy::VaryKey>,
    /// must-revalidate / proxy-revalidate / s-maxage.
    pub must_revalidate: bool,
    /// no-cache.
    pub no_cache: bool,
    /// stale-if-error window.
    pub stale_if_error: Duration,
    /// Host the object is stored for.
    pub host: Arc<str>,
    /// Path and query the object is stored for.
    pub url: Arc<str>,
}

/// What became of a coalesced fetch.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An object was stored: look up again.
    Stored,
    /// The response was not cacheable: fetch on your own (no waiting).
    Uncacheable,
    /// The fetch failed with this.
    Failed(FetchFailure),
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
    Wait(watch::Receiver<Option<Outcome>>),
    /// Known uncacheable: fetch without waiting. `stale` as for Miss.
    HitForMiss,
}

/// The right (and duty) to fetch a key: dropping it without `resolve` tells waiters it failed.
pub struct FetchGuard {
    cache: Arc<Cache>,
    key: Key,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl FetchGuard {
    /// Tell waiters what happened and release the key.
    pub fn resolve(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            if let Some(mut s) = self.cache.map.get_mut(&self.key)
                && s.busy
                    .as_ref()
                    .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
            {
                s.busy = None;
            }
            tx.send_replace(Some(outcome));
        }
    }

    /// The key this guard holds.
    pub fn key(&self) -> Key {
        self.key
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.release(Outcome::Failed(FetchFailure::abandoned()));
    }
}

/// The cache.
pub struct Cache {
    map: DashMap<Key, Slot>,
    bytes: AtomicI64,
    budget: i64,
    max_variants: usize,
    clock: Mutex<VecDeque<Weak<Object>>>,
    bans: Bans,
    /// Longest life (ttl + grace + keep) of any object stored: bans older than this are dropped.
    max_life: Mutex<Duration>,
    metrics: Arc<Metrics>,
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
        Arc::new(Self {
            map: DashMap::new(),
            bytes: AtomicI64::new(0),
            budget: budget as i64,
            max_variants,
            clock: Mutex::new(VecDeque::new()),
            bans: Bans::new(
                max_bans,
                metrics.cache_bans.clone(),
                metrics.cache_bans_refused.clone(),
            ),
            max_life: Mutex::new(Duration::ZERO),
            metrics,
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
                    (Some(rx), _) => Lookup::Wait(rx),
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

    /// Store an object under `key`, replacing the variant it matches.
    pub fn insert(&self, key: Key, n: NewObject) -> Arc<Object> {
        let size = OBJECT_OVERHEAD
            + n.headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 32)
                .sum::<usize>() as i64
            + n.body.complete_len().map_or(0, |l| l as i64);
        // Read before `created`: a ban added in between is still checked.
        let ban_checked = AtomicU64::new(self.bans.newest());
        let obj = Arc::new(Object {
            stored: n,
            created: Instant::now(),
            ban_checked,
            hits: AtomicU64::new(0),
            expired: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            in_cache: AtomicBool::new(true),
            size: AtomicI64::new(size),
            key,
        });
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
        self.clock.lock().push_back(Arc::downgrade(&obj));
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

    /// Remove every variant of a key. Returns how many.
    pub fn purge(&self, key: Key) -> usize {
        let Some(mut s) = self.map.get_mut(&key) else {
            return 0;
        };
        let gone: Vec<_> = s.variants.drain(..).collect();
        drop(s);
        self.map
            .remove_if(&key, |_, s| s.variants.is_empty() && s.busy.is_none());
        let n = gone.iter().filter(|o| !o.hfm).count();
        for o in gone {
            self.forget(&o);
        }
        n
    }

    /// Mark every variant of a key stale: served in grace while refreshed, or
    /// revalidated. Returns how many.
    pub fn soft_purge(&self, key: Key) -> usize {
        let Some(s) = self.map.get(&key) else {
            return 0;
        };
        let live: Vec<_> = s.variants.iter().filter(|o| !o.hfm).collect();
        for o in &live {
            o.expired.store(true, Ordering::Relaxed);
        }
        live.len()
    }

    /// Add a ban (evaluated lazily at lookup, and by the periodic sweep);
    /// the number active, or why it was refused (`[cache] max_bans`).
    pub fn ban(&self, ban: Ban) -> Result<usize, String> {
        self.bans.add(ban)
    }

    /// Active bans: (host, pattern, seconds old).
    pub fn bans(&self) -> Vec<(Option<String>, String, u64)> {
        self.bans.list()
    }

    fn banned(&self, o: &Object) -> bool {
        !o.hfm && self.bans.banned(&o.ban_checked, &o.host, &o.url, o.created)
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

    /// Evict until within budget: CLOCK (second chance for recently used objects).
    fn evict(&self) {
        if self.bytes.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let mut clock = self.clock.lock();
        let mut budget_steps = clock.len() * 2 + 1;
        while self.bytes.load(Ordering::Relaxed) > self.budget && budget_steps > 0 {
            budget_steps -= 1;
            let Some(w) = clock.pop_front() else { break };
            let Some(o) = w.upgrade() else { continue };
            if !o.in_cache.load(Ordering::Relaxed) {
                continue;
            }
            if o.referenced.swap(false, Ordering::Relaxed) {
                clock.push_back(w);
                continue;
            }
            if let Some(mut s) = self.map.get_mut(&o.key) {
                s.variants.retain(|x| !Arc::ptr_eq(x, &o));
            }
            self.forget(&o);
            self.metrics.cache_evictions.inc();
        }
    }

    /// Drop dead and banned objects and empty slots, then retire the bans
    /// every object has been checked against (called periodically).
    pub fn sweep(&self) {
        let max_life = *self.max_life.lock();
        let mut oldest = self.bans.newest();
        let mut dead = Vec::new();
        self.map.retain(|_, s| {
            s.variants.retain(|o| {
                let d = o.dead() || self.banned(o);
                if d {
                    dead.push(o.clone());
                } else if !o.hfm {
                    oldest = oldest.min(o.ban_checked.load(Ordering::Acquire));
                }
                !d
            });
            !(s.variants.is_empty() && s.busy.is_none())
        });
        // A ban older than any object's whole life can match nothing any more.
        self.bans.retire(oldest, max_life);
        for o in dead {
            self.forget(&o);
        }
        self.clock.lock().retain(|w| w.strong_count() > 0);
    }
}
