//! Whether a stored response may satisfy a request (RFC 9111 §4, §4.2.4,
//! §5.2.1; RFC 5861).

use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

use crate::{CacheControl, Freshness, MaxStale};

/// How a stored response may be used for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh and acceptable to the client: serve it.
    Fresh,
    /// Stale, but the request's `max-stale` accepts it: serve it.
    StaleAllowed,
    /// Stale within its `stale-while-revalidate` window: serve it and
    /// revalidate in the background.
    StaleWhileRevalidate,
    /// Revalidate with the origin (or fetch anew) before serving.
    MustRevalidate,
}

/// Decides how a stored response (its [`Freshness`] and current `age`) may be
/// used for a request with directives `req_cc` (RFC 9111 §4.2, §5.2).
///
/// In order:
/// - request `no-cache`, or `Pragma: no-cache` in a request without
///   `Cache-Control` (RFC 9111 §5.4, HTTP/1.0 clients): `MustRevalidate`;
/// - response `no-cache`: `MustRevalidate`;
/// - request `max-age=N`: `MustRevalidate` when the age exceeds N, and always
///   for `max-age=0` (a reload);
/// - fresh: `Fresh`, unless request `min-fresh=N` wants more than the
///   remaining lifetime (`MustRevalidate`);
/// - stale with `must-revalidate`, `proxy-revalidate` or `s-maxage`:
///   `MustRevalidate`, whatever the client accepts;
/// - stale within request `max-stale`: `StaleAllowed`;
/// - stale within `stale-while-revalidate`: `StaleWhileRevalidate`;
/// - otherwise `MustRevalidate`.
///
/// To ignore client directives (a policy RFC 9111 permits), pass
/// `CacheControl::default()` and an empty header map.
pub fn reuse(
    req_cc: &CacheControl,
    req_headers: &HeaderMap,
    obj: &Freshness,
    age: Duration,
) -> Reuse {
    if req_cc.no_cache || (!req_headers.contains_key(CACHE_CONTROL) && pragma_no_cache(req_headers))
    {
        return Reuse::MustRevalidate;
    }
    if obj.no_cache {
        return Reuse::MustRevalidate;
    }
    if let Some(max_age) = req_cc.max_age
        && (max_age == 0 || age > secs(max_age))
    {
        return Reuse::MustRevalidate;
    }
    if obj.is_fresh(age) {
        if let Some(min_fresh) = req_cc.min_fresh
            && obj.lifetime - age < secs(min_fresh)
        {
            return Reuse::MustRevalidate;
        }
        return Reuse::Fresh;
    }
    if obj.must_revalidate {
        return Reuse::MustRevalidate;
    }
    let staleness = obj.staleness(age);
    match req_cc.max_stale {
        Some(MaxStale::Any) => return Reuse::StaleAllowed,
        Some(MaxStale::Seconds(n)) if staleness <= secs(n) => return Reuse::StaleAllowed,
        _ => {}
    }
    if staleness < obj.stale_while_revalidate {
        Reuse::StaleWhileRevalidate
    } else {
        Reuse::MustRevalidate
    }
}

/// Whether a stale response may be served when revalidation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleOnError {
    /// Serve the stored response.
    Serve,
    /// Send the error (or a 504 when there is no response) to the client.
    Error,
}

/// Decides whether a stale stored response may replace an origin failure: a
/// 500, 502, 503 or 504 response, or no response at all (RFC 5861 §4,
/// RFC 9111 §4.2.4). The host decides what counts as a failure.
///
/// Never for `no-cache`, `must-revalidate`, `proxy-revalidate` or `s-maxage`
/// responses (the stale-close tests of the conformance suite). Otherwise
/// allowed while the staleness is below the response's `stale-if-error` window
/// (or [`crate::Options::default_stale_if_error`] when it has none), or within
/// the request's `stale-if-error=N`.
pub fn stale_on_error(req_cc: &CacheControl, obj: &Freshness, age: Duration) -> StaleOnError {
    if obj.is_fresh(age) {
        return StaleOnError::Serve;
    }
    if obj.no_cache || obj.must_revalidate {
        return StaleOnError::Error;
    }
    let staleness = obj.staleness(age);
    let by_request = req_cc.stale_if_error.is_some_and(|n| staleness <= secs(n));
    if by_request || staleness < obj.stale_if_error {
        StaleOnError::Serve
    } else {
        StaleOnError::Error
    }
}

/// The answer to a request with `only-if-cached` (RFC 9111 §5.2.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlyIfCached {
    /// The request has no `only-if-cached`: proceed as usual.
    NotRequested,
    /// Serve the stored response without contacting the origin.
    Serve,
    /// Nothing usable is stored: answer `504 Gateway Timeout`.
    GatewayTimeout,
}

/// Applies `only-if-cached`: `reuse` is the [`reuse`] decision for the
/// selected stored response, `None` when nothing is stored. A response that
/// would need revalidation cannot be used.
pub fn only_if_cached(req_cc: &CacheControl, reuse: Option<Reuse>) -> OnlyIfCached {
    if !req_cc.only_if_cached {
        return OnlyIfCached::NotRequested;
    }
    match reuse {
        Some(Reuse::Fresh | Reuse::StaleAllowed | Reuse::StaleWhileRevalidate) => {
            OnlyIfCached::Serve
        }
        Some(Reuse::MustRevalidate) | None => OnlyIfCached::GatewayTimeout,
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(PRAGMA).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|d| crate::cache_control::trim_ows(d).eq_ignore_ascii_case(b"no-cache"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FreshnessSource;
    use crate::test_util::{Fields, map};

    fn obj(lifetime: u64, cc: &str) -> Freshness {
        let resp = CacheControl::parse_value(cc.as_bytes());
        Freshness {
            lifetime: Duration::from_secs(lifetime),
            source: FreshnessSource::MaxAge(lifetime as u32),
            targeted: false,
            stale_while_revalidate: Duration::from_secs(u64::from(
                resp.stale_while_revalidate.unwrap_or(0),
            )),
            stale_if_error: Duration::from_secs(u64::from(resp.stale_if_error.unwrap_or(0))),
            must_revalidate: resp.must_revalidate
                || resp.proxy_revalidate
                || resp.s_maxage.is_some(),
            no_cache: resp.no_cache,
            immutable: resp.immutable,
        }
    }

    fn req(pairs: &[(&str, &str)]) -> (CacheControl, HeaderMap) {
        let h = map(pairs);
        (CacheControl::parse(&h, &CACHE_CONTROL), h)
    }

    #[test]
    fn reuse_table() {
        use Reuse::*;
        // (request headers, lifetime, response directives, age, decision)
        let cases: &[(Fields, u64, &str, u64, Reuse)] = &[
            (&[], 3600, "", 0, Fresh),
            (&[], 3600, "", 3599, Fresh),
            (&[], 3600, "", 3600, MustRevalidate),
            (&[], 0, "", 0, MustRevalidate),
            (&[], 10000, "no-cache", 1, MustRevalidate),
            (&[], 10000, "must-revalidate", 1, Fresh),
            (&[], 2, "must-revalidate", 5, MustRevalidate),
            // Request directives (cache-tests cc-request.mjs).
            (
                &[("cache-control", "max-age=0")],
                100000,
                "",
                0,
                MustRevalidate,
            ),
            (
                &[("cache-control", "max-age=1")],
                100000,
                "",
                3,
                MustRevalidate,
            ),
            (
                &[("cache-control", "max-age=600")],
                3600,
                "",
                1800,
                MustRevalidate,
            ),
            (&[("cache-control", "max-age=600")], 3600, "", 600, Fresh),
            (
                &[("cache-control", "max-age=abc")],
                3600,
                "",
                1,
                MustRevalidate,
            ),
            (
                &[("cache-control", "max-stale=1000")],
                1,
                "",
                4,
                StaleAllowed,
            ),
            (
                &[("cache-control", "max-stale=1000")],
                1500,
                "",
                2000,
                StaleAllowed,
            ),
            (
                &[("cache-control", "max-stale=1000")],
                1500,
                "",
                2501,
                MustRevalidate,
            ),
            (
                &[("cache-control", "max-stale")],
                1,
                "",
                1_000_000,
                StaleAllowed,
            ),
            (
                &[("cache-control", "max-stale")],
                1,
                "must-revalidate",
                5,
                MustRevalidate,
            ),
            (
                &[("cache-control", "max-stale")],
                1,
                "s-maxage=1",
                5,
                MustRevalidate,
            ),
            (
                &[("cache-control", "min-fresh=2000")],
                1500,
                "",
                0,
                MustRevalidate,
            ),
            (
                &[("cache-control", "min-fresh=1000")],
                1500,
                "",
                1000,
                MustRevalidate,
            ),
            (&[("cache-control", "min-fresh=1000")], 1500, "", 500, Fresh),
            (
                &[("cache-control", "no-cache")],
                3600,
                "",
                0,
                MustRevalidate,
            ),
            (&[("cache-control", "no-store")], 3600, "", 0, Fresh),
            // Pragma only without Cache-Control (RFC 9111 §5.4).
            (&[("pragma", "no-cache")], 3600, "", 0, MustRevalidate),
            (&[("pragma", "foo, No-Cache")], 3600, "", 0, MustRevalidate),
            (
                &[("pragma", "no-cache"), ("cache-control", "max-stale")],
                3600,
                "",
                0,
                Fresh,
            ),
            (&[("pragma", "unrecognised-extension")], 3600, "", 0, Fresh),
            // stale-while-revalidate (RFC 5861 §3).
            (
                &[],
                0,
                "stale-while-revalidate=3600",
                10,
                StaleWhileRevalidate,
            ),
            (&[], 10, "stale-while-revalidate=5", 15, MustRevalidate),
            (
                &[],
                10,
                "stale-while-revalidate=5, must-revalidate",
                12,
                MustRevalidate,
            ),
            (
                &[],
                10,
                "stale-while-revalidate=5, no-cache",
                1,
                MustRevalidate,
            ),
        ];
        for (req_headers, lifetime, resp_cc, age, want) in cases {
            let (cc, h) = req(req_headers);
            let got = reuse(&cc, &h, &obj(*lifetime, resp_cc), Duration::from_secs(*age));
            assert_eq!(
                got, *want,
                "{req_headers:?} {lifetime} {resp_cc:?} age {age}"
            );
        }
    }

    #[test]
    fn stale_on_error_table() {
        use StaleOnError::*;
        // (request Cache-Control, lifetime, response directives, age, decision)
        let cases: &[(&str, u64, &str, u64, StaleOnError)] = &[
            ("", 0, "stale-if-error=3600", 10, Serve),
            ("", 0, "stale-if-error=1", 3, Error),
            ("", 2, "", 5, Error),
            ("", 2, "", 1, Serve),
            ("stale-if-error=3600", 0, "", 10, Serve),
            ("stale-if-error=1", 0, "", 3, Error),
            ("", 2, "stale-if-error=60, must-revalidate", 5, Error),
            ("", 2, "stale-if-error=60, proxy-revalidate", 5, Error),
            ("", 2, "stale-if-error=60, no-cache", 5, Error),
            ("", 2, "stale-if-error=60, s-maxage=2", 5, Error),
        ];
        for (req_cc, lifetime, resp_cc, age, want) in cases {
            let cc = CacheControl::parse_value(req_cc.as_bytes());
            let got = stale_on_error(&cc, &obj(*lifetime, resp_cc), Duration::from_secs(*age));
            assert_eq!(got, *want, "{req_cc:?} {lifetime} {resp_cc:?} age {age}");
        }
    }

    #[test]
    fn only_if_cached_table() {
        let oic = CacheControl::parse_value(b"only-if-cached");
        let cases = [
            (CacheControl::default(), None, OnlyIfCached::NotRequested),
            (oic.clone(), None, OnlyIfCached::GatewayTimeout),
            (
                oic.clone(),
                Some(Reuse::MustRevalidate),
                OnlyIfCached::GatewayTimeout,
            ),
            (oic.clone(), Some(Reuse::Fresh), OnlyIfCached::Serve),
            (oic, Some(Reuse::StaleAllowed), OnlyIfCached::Serve),
        ];
        for (cc, decision, want) in cases {
            assert_eq!(only_if_cached(&cc, decision), want, "{decision:?}");
        }
    }
}
