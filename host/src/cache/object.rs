//! A stored response and its bookkeeping: freshness, age, grace, keep, all
//! measured with the cache's [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use lacquer_cache_semantics as cs;

use super::body::BodyBuf;
use super::clock::Clock;
use super::{Key, policy};

/// A stored response: what was stored ([`NewObject`], reachable through
/// `Deref`) plus the cache's bookkeeping.
pub struct Object {
    stored: NewObject,
    /// When it was stored (by the cache's clock).
    pub created: Instant,
    clock: Arc<dyn Clock>,
    /// Times served from cache.
    pub hits: AtomicU64,
    /// Soft-purged: stale now, still usable in grace and for revalidation.
    pub(super) expired: AtomicBool,
    pub(super) referenced: AtomicBool,
    pub(super) refreshing: AtomicBool,
    pub(super) in_cache: AtomicBool,
    pub(super) size: AtomicI64,
    pub(super) key: Key,
    /// The newest ban this object is known to survive.
    pub(super) ban_checked: AtomicU64,
}

impl std::ops::Deref for Object {
    type Target = NewObject;
    fn deref(&self) -> &NewObject {
        &self.stored
    }
}

impl Object {
    /// Wrap what is stored with the cache's bookkeeping. `ban_checked` is
    /// the newest ban when it was stored (read before `created`).
    pub(super) fn new(
        stored: NewObject,
        key: Key,
        size: i64,
        ban_checked: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            stored,
            created: clock.now(),
            clock,
            hits: AtomicU64::new(0),
            expired: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            in_cache: AtomicBool::new(true),
            size: AtomicI64::new(size),
            key,
            ban_checked: AtomicU64::new(ban_checked),
        }
    }

    /// Current age.
    pub fn age(&self) -> Duration {
        self.initial_age + self.resident()
    }
    /// Time since stored.
    fn resident(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.created)
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
    pub(super) fn touch(&self) {
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
    /// Set when the cache stored the body gzip-compressed (`[cache]
    /// compress`); `headers` then still describe the identity
    /// representation (the backend's `ETag`, no `Content-Encoding`), less
    /// its `Content-Length`.
    pub gzip: Option<Arc<super::gzip::Gzipped>>,
    /// Set for a stored `206` (`[cache] partial`): the pieces held, the
    /// status 206 and `headers` without `Content-Range` and
    /// `Content-Length`; `body` is empty.
    pub partial: Option<Arc<super::partial::Pieces>>,
}
