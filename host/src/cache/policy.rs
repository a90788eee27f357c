//! The host's caching decisions for one response: the proposal handed to
//! `on-backend-response`, and the facts stored with the object. The RFC 9111
//! rules themselves live in the `lacquer-cache-semantics` crate.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderName};
use http::{HeaderMap, Method, StatusCode};
use lacquer_cache_semantics as cs;

use crate::config::CacheSection;
use crate::kinds::{Proposal, Storage};

/// The request header values a variant was selected by (`Vary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryKey {
    names: Vec<HeaderName>,
    key: Vec<u8>,
}

impl VaryKey {
    /// Build from the response's `Vary` names and the request.
    pub fn new(names: Vec<HeaderName>, req: &HeaderMap) -> Self {
        let key = cs::vary_key(&names, req);
        Self { names, key }
    }

    /// Whether a request selects this variant.
    pub fn matches(&self, req: &HeaderMap) -> bool {
        cs::vary_key(&self.names, req) == self.key
    }
}

/// Facts stored with an object, besides the proposal.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Age when received.
    pub initial_age: Duration,
    /// must-revalidate, proxy-revalidate or s-maxage.
    pub must_revalidate: bool,
    /// no-cache: store, but revalidate before each use.
    pub no_cache: bool,
    /// stale-if-error window.
    pub stale_if_error: Duration,
    /// `Vary` names (none without `Vary`); `Vary: *` makes the proposal uncacheable.
    pub vary: Option<Vec<HeaderName>>,
}

/// The semantics options for a `[cache]` section.
pub fn options(cfg: &CacheSection) -> cs::Options {
    cs::Options {
        default_ttl: cfg.default_ttl,
        heuristic_max: cfg.heuristic_max,
        default_stale_if_error: cfg.stale_if_error,
        ..cs::Options::default()
    }
}

/// The proposal for a backend response, from its headers and the `[cache]` defaults.
pub fn propose(
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &CacheSection,
) -> (Proposal, Facts) {
    let opts = options(cfg);
    // A 206 stored as a piece (`[cache] partial`, RFC 9111 §3.3) follows
    // the rules of the 200 it is part of.
    let status = if status == StatusCode::PARTIAL_CONTENT && cfg.partial.enabled {
        StatusCode::OK
    } else {
        status
    };
    let initial_age = cs::initial_age(resp, request_time, response_time);
    let fr = cs::freshness_lifetime(status, resp, response_time, &opts);
    let vary = match cs::vary_names(resp) {
        cs::VarySpec::None => Ok(None),
        cs::VarySpec::Any => Err(()),
        cs::VarySpec::Names(n) => Ok(Some(n)),
    };
    let facts = Facts {
        initial_age,
        must_revalidate: fr.must_revalidate,
        no_cache: fr.no_cache,
        stale_if_error: fr.stale_if_error,
        vary: vary.clone().unwrap_or(None),
    };
    // Grace: stale-while-revalidate when the origin gives one, else the default;
    // never for responses that must be revalidated once stale.
    let grace = if fr.must_revalidate || fr.no_cache {
        Duration::ZERO
    } else if fr.stale_while_revalidate > Duration::ZERO {
        fr.stale_while_revalidate
    } else {
        cfg.default_grace
    };
    let has_validators =
        resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    let keep = if has_validators {
        cfg.default_keep.max(grace)
    } else {
        Duration::ZERO
    };
    let ttl = fr.lifetime.saturating_sub(initial_age);
    let (storage, reason) = match cs::storable(&Method::GET, req, status, resp, &opts) {
        Err(why) => (Storage::Uncacheable, why.as_str().to_string()),
        Ok(()) if vary.is_err() => (Storage::Uncacheable, "vary: *".into()),
        Ok(())
            if ttl.is_zero()
                && !has_validators
                && grace.is_zero()
                && fr.stale_if_error.is_zero() =>
        {
            (
                Storage::Uncacheable,
                format!("{} (stale on arrival, no validators)", fr.source),
            )
        }
        Ok(()) => (Storage::Cache, fr.source.to_string()),
    };
    (
        Proposal {
            storage,
            ttl,
            grace,
            keep,
            reason,
        },
        facts,
    )
}
