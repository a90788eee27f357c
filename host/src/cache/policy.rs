//! The host's caching decisions for one response: the proposal handed to
//! `on-backend-response`, and the facts stored with the object. The RFC 9111
//! rules themselves live in the `lacquer-cache-semantics` crate.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderName};
use http::{HeaderMap, Method, StatusCode};

use crate::config::CacheSection;
use crate::plugin::chain::{Proposal, Storage};

/// The request header values a variant was selected by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryKey {
    names: Vec<HeaderName>,
    values: Vec<Option<Vec<u8>>>,
}

impl VaryKey {
    /// Build from the response's `Vary` names and the request.
    pub fn new(names: Vec<HeaderName>, req: &HeaderMap) -> Self {
        let values = names.iter().map(|n| normalized(req, n)).collect();
        Self { names, values }
    }

    /// Whether a request selects this variant.
    pub fn matches(&self, req: &HeaderMap) -> bool {
        self.names
            .iter()
            .zip(&self.values)
            .all(|(n, v)| normalized(req, n).as_deref() == v.as_deref())
    }
}

/// All field lines of `name` combined with ", ", white space around commas removed.
fn normalized(h: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut any = false;
    for v in h.get_all(name) {
        for part in v.as_bytes().split(|b| *b == b',') {
            if any {
                out.push(b',');
            }
            out.extend_from_slice(part.trim_ascii());
            any = true;
        }
    }
    any.then_some(out)
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
    /// Vary: None (no Vary), Some(names); `Vary: *` makes the proposal uncacheable.
    pub vary: Option<Vec<HeaderName>>,
}

/// The proposal for a backend response, from its headers and the `[cache]` defaults.
pub fn propose(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &CacheSection,
) -> (Proposal, Facts) {
    use self::lacquer_cache_semantics as cs;
    let opts = cs::Options {
        default_ttl: cfg.default_ttl,
        heuristic_max: cfg.heuristic_max,
        ..cs::Options::default()
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
        stale_if_error: fr.stale_if_error.unwrap_or_default(),
        vary: vary.clone().unwrap_or(None),
    };
    let grace = fr.stale_while_revalidate.map_or(cfg.default_grace, |d| d.max(cfg.default_grace));
    let has_validators = resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    let keep = if has_validators { cfg.default_keep } else { Duration::ZERO };
    let ttl = fr.lifetime.saturating_sub(initial_age);
    let (storage, reason) = match cs::storable(method, req, status, resp, &opts) {
        Err(why) => (Storage::Uncacheable, why.as_str().to_string()),
        Ok(()) if vary.is_err() => (Storage::Uncacheable, "vary: *".into()),
        Ok(()) if ttl.is_zero() && !fr.no_cache && !has_validators && grace.is_zero() => {
            (Storage::Uncacheable, format!("{} (stale on arrival)", fr.rule))
        }
        Ok(()) => (Storage::Cache, fr.rule.to_string()),
    };
    let grace = if fr.must_revalidate { Duration::ZERO } else { grace };
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

// TEMP stand-in until the cache-semantics crate builds.
mod lacquer_cache_semantics {
    #![allow(missing_docs, dead_code)]
    use super::*;
    #[derive(Default)]
    pub struct Options { pub default_ttl: Duration, pub heuristic_max: Duration }
    pub struct Freshness { pub lifetime: Duration, pub rule: &'static str, pub must_revalidate: bool, pub no_cache: bool, pub stale_if_error: Option<Duration>, pub stale_while_revalidate: Option<Duration> }
    pub enum VarySpec { None, Any, Names(Vec<HeaderName>) }
    pub struct Why;
    impl Why { pub fn as_str(&self) -> &'static str { "x" } }
    pub fn initial_age(_: &HeaderMap, _: SystemTime, _: SystemTime) -> Duration { Duration::ZERO }
    pub fn freshness_lifetime(_: StatusCode, h: &HeaderMap, _: SystemTime, _: &Options) -> Freshness {
        let ma = h.get("cache-control").and_then(|v| v.to_str().ok()).and_then(|v| v.split("max-age=").nth(1)).and_then(|v| v.split(',').next()?.trim().parse().ok()).unwrap_or(0);
        Freshness { lifetime: Duration::from_secs(ma), rule: "max-age", must_revalidate: false, no_cache: false, stale_if_error: None, stale_while_revalidate: None }
    }
    pub fn vary_names(_: &HeaderMap) -> VarySpec { VarySpec::None }
    pub fn storable(_: &Method, _: &HeaderMap, _: StatusCode, h: &HeaderMap, _: &Options) -> Result<(), Why> {
        if h.get("cache-control").is_some_and(|v| v.to_str().unwrap_or("").contains("no-store")) { Err(Why) } else { Ok(()) }
    }
}
