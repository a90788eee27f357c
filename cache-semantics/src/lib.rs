//! HTTP caching rules for a **shared** cache, as pure functions over [`http`]
//! types and [`SystemTime`]: RFC 9111 (caching), RFC 9110 §13 and §14
//! (conditional and range requests), RFC 9213 (`CDN-Cache-Control`) and
//! RFC 5861 (`stale-while-revalidate`, `stale-if-error`). No I/O, no clock:
//! every time is passed in.
//!
//! # How the host uses it
//!
//! 1. **Lookup.** Parse the request directives once with
//!    [`CacheControl::parse`]`(req, &CACHE_CONTROL)`. Select a stored variant
//!    whose [`vary_key`] (computed with the names from [`vary_names`] of the
//!    stored response) equals the key of the stored request.
//! 2. **Reuse.** With the object's [`Freshness`] and its [`current_age`] (or
//!    [`initial_age`] stored once plus the resident time), [`reuse`] says
//!    whether it may be served as is, served stale, or must be revalidated.
//!    [`only_if_cached`] turns that into a 504 when the client forbids
//!    contacting the origin.
//! 3. **Answer the client.** [`evaluate_conditionals`] gives 304 / 412 from the
//!    stored headers; otherwise [`range`] picks the bytes for a `Range` GET.
//!    Send `Age` with [`age_header_value`].
//! 4. **Revalidate.** Add [`conditional_request_headers`] to the request sent
//!    to the origin. On a 304, [`merge_not_modified`] updates the stored
//!    headers; recompute [`freshness_lifetime`] and [`initial_age`] from them.
//!    When the origin fails, [`stale_on_error`] says whether the stale object
//!    may be served instead.
//! 5. **Store.** [`storable`] decides whether a fetched response may be stored;
//!    [`strip_connection_headers`] and [`remove_unstorable_fields`] clean the
//!    headers first (add a `Date` with [`ensure_date`]); [`freshness_lifetime`]
//!    gives its lifetime. [`response_directives`] tells which field (e.g.
//!    `CDN-Cache-Control`) governs it; that field is still forwarded unchanged.
//!    A cache that stores responses compressed checks [`may_compress`]
//!    first; when delivering its own gzip representation it asks
//!    [`accepts_gzip`], renames the tag with [`coded_etag`] and adds
//!    [`vary_accept_encoding`].
//!    Partial responses: [`stored_content_range`] reads a 206's single
//!    range, [`combinable`] says whether two pieces share a strong validator
//!    (RFC 9111 §3.4).
//! 6. **Invalidate.** After an unsafe request, [`invalidation_targets`] lists
//!    the URIs to invalidate.
//!
//! Every function is cheap enough to run on each request: header values are
//! read as bytes without copying, and `Cache-Control` parsing allocates only
//! for qualified `no-cache="..."` / `private="..."` lists.

#![deny(missing_docs)]

mod cache_control;
mod coding;
mod conditional;
mod date;
mod freshness;
mod invalidate;
mod partial;
mod range;
mod reuse;
mod storable;
mod structured;
#[cfg(test)]
mod test_util;
mod update;
mod vary;

use std::time::Duration;
#[cfg(doc)]
use std::time::SystemTime;

use http::HeaderName;

pub use cache_control::{CacheControl, MAX_DELTA_SECONDS, MaxStale};
pub use coding::{accepts_gzip, coded_etag, may_compress, vary_accept_encoding};
pub use conditional::{Conditional, conditional_request_headers, evaluate_conditionals};
pub use date::{fmt_http_date, parse_http_date};
pub use freshness::{
    Freshness, FreshnessSource, age_header_value, current_age, freshness_lifetime, initial_age,
};
pub use invalidate::invalidation_targets;
pub use partial::{ContentRange, combinable, has_strong_etag, stored_content_range};
pub use range::{RangeDecision, range};
pub use reuse::{OnlyIfCached, Reuse, StaleOnError, only_if_cached, reuse, stale_on_error};
pub use storable::{
    DirectiveSource, NotStorable, ResponseDirectives, is_heuristically_cacheable,
    remove_unstorable_fields, response_directives, storable,
};
pub use update::{
    HeadUpdate, ensure_date, freshen_from_head, merge_not_modified, strip_connection_headers,
};
pub use vary::{VarySpec, vary_key, vary_names};

/// Default for [`Options::heuristic_percent`]: 10 %.
pub const DEFAULT_HEURISTIC_PERCENT: u32 = 10;
/// Default for [`Options::heuristic_max`]: 24 hours.
pub const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// The default targeted field (RFC 9213 §3).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Cache policy knobs. Every default follows RFC 9111's recommendations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Heuristic freshness, in percent of the time since `Last-Modified`
    /// (RFC 9111 §4.2.2). Default is 10.
    pub heuristic_percent: u32,
    /// Upper bound of a heuristic lifetime. Default is 24 hours.
    pub heuristic_max: Duration,
    /// Lifetime given to a heuristically cacheable response that has neither
    /// explicit freshness nor `Last-Modified`. Default is zero (stored, but
    /// stale at once, so reused only after revalidation).
    pub default_ttl: Duration,
    /// How long a stale response may be served when the origin fails, for
    /// responses without a `stale-if-error` directive. Default is zero.
    pub default_stale_if_error: Duration,
    /// The targeted cache-control fields this cache obeys, most specific first
    /// (RFC 9213 §2.2). The first present, valid, non-empty one replaces
    /// `Cache-Control` and `Expires`. Default is `["cdn-cache-control"]`; empty
    /// disables targeted fields.
    pub targeted_fields: Vec<HeaderName>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heuristic_percent: DEFAULT_HEURISTIC_PERCENT,
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            default_ttl: Duration::ZERO,
            default_stale_if_error: Duration::ZERO,
            targeted_fields: vec![CDN_CACHE_CONTROL],
        }
    }
}
