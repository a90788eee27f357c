//! Freshness lifetime and age (RFC 9111 §4.2).

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::Options;
use crate::cache_control::{MAX_DELTA_SECONDS, parse_delta, trim_ows};
use crate::date::header_date;
use crate::storable::{is_heuristically_cacheable, response_directives};

const MAX_AGE: Duration = Duration::from_secs(MAX_DELTA_SECONDS as u64);

/// Which rule gave the freshness lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreshnessSource {
    /// `s-maxage=N` (shared caches prefer it to `max-age`).
    SMaxAge(u32),
    /// `max-age=N`.
    MaxAge(u32),
    /// `Expires` minus `Date` (an invalid `Expires` gives zero).
    Expires,
    /// A fraction of the time since `Last-Modified`.
    Heuristic,
    /// [`Options::default_ttl`], for a heuristically cacheable response
    /// without explicit freshness or `Last-Modified`.
    DefaultTtl,
    /// Nothing: the response is not heuristically cacheable and has no
    /// explicit freshness; its lifetime is zero.
    None,
}

impl fmt::Display for FreshnessSource {
    /// Formats for logs: `s-maxage=60`, `max-age=60`, `expires`, `heuristic`,
    /// `default-ttl`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreshnessSource::SMaxAge(n) => write!(f, "s-maxage={n}"),
            FreshnessSource::MaxAge(n) => write!(f, "max-age={n}"),
            FreshnessSource::Expires => f.write_str("expires"),
            FreshnessSource::Heuristic => f.write_str("heuristic"),
            FreshnessSource::DefaultTtl => f.write_str("default-ttl"),
            FreshnessSource::None => f.write_str("none"),
        }
    }
}

/// What a stored response allows, computed once when it is stored (and again
/// after each successful revalidation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The freshness lifetime: fresh while the current age is below it.
    pub lifetime: Duration,
    /// The rule that gave `lifetime`.
    pub source: FreshnessSource,
    /// True when a targeted field (e.g. `CDN-Cache-Control`) gave the
    /// directives instead of `Cache-Control` / `Expires`.
    pub targeted: bool,
    /// `stale-while-revalidate` window after the lifetime; zero when absent.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` window after the lifetime; when the directive is
    /// absent, [`Options::default_stale_if_error`].
    pub stale_if_error: Duration,
    /// Once stale, the response must not be served without revalidation:
    /// `must-revalidate`, `proxy-revalidate`, or `s-maxage` (which implies
    /// `proxy-revalidate` for a shared cache, RFC 9111 §5.2.2.10).
    pub must_revalidate: bool,
    /// Unqualified `no-cache`: revalidate before every reuse.
    pub no_cache: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
}

impl Freshness {
    /// True while `age` is below the lifetime.
    pub fn is_fresh(&self, age: Duration) -> bool {
        age < self.lifetime
    }

    /// How long past its lifetime the response is at `age` (zero if fresh).
    pub fn staleness(&self, age: Duration) -> Duration {
        age.saturating_sub(self.lifetime)
    }
}

/// Computes the freshness lifetime of a response for a shared cache
/// (RFC 9111 §4.2.1, §4.2.2).
///
/// The first that applies: `s-maxage`; `max-age`; `Expires` minus `Date` (an
/// invalid `Expires` such as `0` means already expired; an absent or invalid
/// `Date` is replaced by `response_time`; `max-age` and `s-maxage` override
/// `Expires`); for a heuristically cacheable status or a `public` response,
/// [`Options::heuristic_percent`] of `Date` minus `Last-Modified`, capped at
/// [`Options::heuristic_max`], or [`Options::default_ttl`] without a valid
/// `Last-Modified`; otherwise zero.
///
/// A targeted field (see [`crate::response_directives`]) replaces
/// `Cache-Control` and `Expires`.
pub fn freshness_lifetime(
    status: StatusCode,
    resp_headers: &HeaderMap,
    response_time: SystemTime,
    opts: &Options,
) -> Freshness {
    let d = response_directives(resp_headers, opts);
    let cc = &d.cc;
    let date = || date_value(resp_headers).unwrap_or(response_time);
    let (lifetime, source) = if let Some(s) = cc.s_maxage {
        (secs(s), FreshnessSource::SMaxAge(s))
    } else if let Some(m) = cc.max_age {
        (secs(m), FreshnessSource::MaxAge(m))
    } else if let Some(expires) = header_date(resp_headers, &EXPIRES).filter(|_| !d.is_targeted()) {
        let lifetime = expires.map_or(Duration::ZERO, |e| since(e, date()));
        (lifetime, FreshnessSource::Expires)
    } else if is_heuristically_cacheable(status) || cc.public {
        match header_date(resp_headers, &LAST_MODIFIED).flatten() {
            Some(lm) => {
                let interval = since(date(), lm).as_nanos();
                let part = interval * u128::from(opts.heuristic_percent) / 100;
                let part = Duration::from_nanos(u64::try_from(part).unwrap_or(u64::MAX));
                (part.min(opts.heuristic_max), FreshnessSource::Heuristic)
            }
            None => (opts.default_ttl, FreshnessSource::DefaultTtl),
        }
    } else {
        (Duration::ZERO, FreshnessSource::None)
    };
    Freshness {
        lifetime,
        source,
        targeted: d.is_targeted(),
        stale_while_revalidate: cc.stale_while_revalidate.map_or(Duration::ZERO, secs),
        stale_if_error: cc.stale_if_error.map_or(opts.default_stale_if_error, secs),
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        no_cache: cc.no_cache,
        immutable: cc.immutable,
    }
}

/// The age of the response when it was received: `corrected_initial_age` of
/// RFC 9111 §4.2.3, the larger of the apparent age (`response_time - Date`,
/// never negative; zero without a valid `Date`) and the `Age` value plus the
/// response delay (`response_time - request_time`).
///
/// `Age` is read from the first field line, first list member
/// (`Age: 7200, 0` is 7200); an invalid value (`abc`, `-1`, `1.5`) is ignored;
/// parameters (`7200;foo=bar`) are ignored; values saturate at 2^31. The
/// result saturates at 2^31 seconds.
pub fn initial_age(
    resp_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = date_value(resp_headers).map_or(Duration::ZERO, |d| since(response_time, d));
    let response_delay = since(response_time, request_time);
    let corrected_age_value = age_value(resp_headers).saturating_add(response_delay);
    apparent_age.max(corrected_age_value).min(MAX_AGE)
}

/// The current age of a stored response at `now` (RFC 9111 §4.2.3):
/// [`initial_age`] plus the time it has been resident since `response_time`.
/// Saturates at 2^31 seconds.
pub fn current_age(
    resp_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    initial_age(resp_headers, request_time, response_time)
        .saturating_add(since(now, response_time))
        .min(MAX_AGE)
}

/// An `Age` field value for `age`: whole seconds, at most 2^31.
pub fn age_header_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs().min(u64::from(MAX_DELTA_SECONDS)))
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// `a - b`, or zero when `b` is later.
fn since(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).unwrap_or(Duration::ZERO)
}

/// The `Date` field, when present and valid.
pub(crate) fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    header_date(headers, &DATE).flatten()
}

fn age_value(headers: &HeaderMap) -> Duration {
    let Some(line) = headers.get(AGE) else {
        return Duration::ZERO;
    };
    let first = line.as_bytes().split(|&b| b == b',').next().unwrap_or(b"");
    let first = first.split(|&b| b == b';').next().unwrap_or(b"");
    parse_delta(trim_ows(first)).map_or(Duration::ZERO, secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map, t0};

    #[test]
    fn lifetime_table() {
        use FreshnessSource as S;
        let day = 86_400;
        // (status, headers, lifetime seconds, source); response_time = t0.
        let cases: &[(u16, Fields, u64, FreshnessSource)] = &[
            (
                200,
                &[("cache-control", "max-age=3600")],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("expires", "@-7200"),
                    ("date", "@0"),
                ],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("expires", "0"),
                    ("date", "@0"),
                ],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=0"),
                    ("expires", "@3600"),
                    ("date", "@0"),
                ],
                0,
                S::MaxAge(0),
            ),
            (200, &[("cache-control", "max-age=abc")], 0, S::MaxAge(0)),
            (
                200,
                &[("cache-control", "max-age=3600, s-maxage=1")],
                1,
                S::SMaxAge(1),
            ),
            (
                200,
                &[("cache-control", "s-maxage=1, max-age=3600")],
                1,
                S::SMaxAge(1),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("cache-control", "s-maxage=1"),
                ],
                1,
                S::SMaxAge(1),
            ),
            (
                200,
                &[("cache-control", "max-age=1, s-maxage=3600")],
                3600,
                S::SMaxAge(3600),
            ),
            (
                200,
                &[
                    ("expires", "@-10"),
                    ("cache-control", "max-age=0, s-maxage=3600"),
                ],
                3600,
                S::SMaxAge(3600),
            ),
            (
                200,
                &[("cache-control", "max-age=99999999999")],
                1 << 31,
                S::MaxAge(1 << 31),
            ),
            // Expires (cache-tests expires-freshness.mjs).
            (
                200,
                &[("expires", "@2592000"), ("date", "@0")],
                30 * day,
                S::Expires,
            ),
            (
                200,
                &[("expires", "@-2592000"), ("date", "@0")],
                0,
                S::Expires,
            ),
            (200, &[("expires", "@0"), ("date", "@0")], 0, S::Expires),
            (200, &[("expires", "@300"), ("date", "@400")], 0, S::Expires),
            (200, &[("expires", "0"), ("date", "@0")], 0, S::Expires),
            (
                200,
                &[("expires", "Thu, 18 Aug 2050 02:01:18 UTC"), ("date", "@0")],
                0,
                S::Expires,
            ),
            (200, &[("date", "foo"), ("expires", "@10")], 10, S::Expires),
            (200, &[("expires", "@10")], 10, S::Expires),
            (200, &[("date", "@-10"), ("expires", "@10")], 20, S::Expires),
            (
                200,
                &[("expires", "@100"), ("expires", "@10"), ("date", "@0")],
                100,
                S::Expires,
            ),
            // Heuristics (cache-tests heuristic-freshness.mjs).
            (
                200,
                &[("last-modified", "@-86400"), ("date", "@0")],
                8640,
                S::Heuristic,
            ),
            (
                404,
                &[("last-modified", "@-86400"), ("date", "@0")],
                8640,
                S::Heuristic,
            ),
            (501, &[("last-modified", "@-86400")], 8640, S::Heuristic),
            (
                200,
                &[("last-modified", "@-2592000"), ("date", "@0")],
                day,
                S::Heuristic,
            ),
            (
                200,
                &[("last-modified", "@100"), ("date", "@0")],
                0,
                S::Heuristic,
            ),
            (
                599,
                &[("last-modified", "@-86400"), ("date", "@0")],
                0,
                S::None,
            ),
            (
                599,
                &[
                    ("last-modified", "@-86400"),
                    ("date", "@0"),
                    ("cache-control", "public"),
                ],
                8640,
                S::Heuristic,
            ),
            (
                503,
                &[("last-modified", "@-86400"), ("date", "@0")],
                0,
                S::None,
            ),
            (
                200,
                &[("last-modified", "@-86400"), ("cache-control", "no-cache")],
                8640,
                S::Heuristic,
            ),
            (200, &[], 0, S::DefaultTtl),
            (200, &[("last-modified", "garbage")], 0, S::DefaultTtl),
            (201, &[], 0, S::None),
            // CDN-Cache-Control (cache-tests cdn-cache-control.mjs).
            (
                200,
                &[
                    ("cdn-cache-control", "max-age=3600"),
                    ("expires", "@-10000"),
                    ("date", "@0"),
                ],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cdn-cache-control", "max-age=3600"),
                    ("expires", "0"),
                    ("date", "@0"),
                ],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cdn-cache-control", "max-age=0"),
                    ("expires", "@10000"),
                    ("date", "@0"),
                ],
                0,
                S::MaxAge(0),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=1"),
                    ("cdn-cache-control", "max-age=3600"),
                ],
                3600,
                S::MaxAge(3600),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("cdn-cache-control", "max-age=1"),
                ],
                1,
                S::MaxAge(1),
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=1"),
                    ("cdn-cache-control", "max-age =100"),
                ],
                1,
                S::MaxAge(1),
            ),
            (
                200,
                &[
                    ("cdn-cache-control", "foo"),
                    ("expires", "@10000"),
                    ("date", "@0"),
                ],
                0,
                S::DefaultTtl,
            ),
        ];
        let opts = Options::default();
        for (status, headers, lifetime, source) in cases {
            let f = freshness_lifetime(
                StatusCode::from_u16(*status).unwrap(),
                &map(headers),
                t0(),
                &opts,
            );
            assert_eq!(
                (f.lifetime.as_secs(), f.source),
                (*lifetime, *source),
                "{status} {headers:?}"
            );
        }
    }

    #[test]
    fn flags_and_windows() {
        let opts = Options {
            default_stale_if_error: Duration::from_secs(7),
            default_ttl: Duration::from_secs(5),
            ..Options::default()
        };
        let f = |h: &[(&str, &str)]| freshness_lifetime(StatusCode::OK, &map(h), t0(), &opts);
        let a = f(&[(
            "cache-control",
            "max-age=2, stale-while-revalidate=30, stale-if-error=60, immutable",
        )]);
        assert_eq!(
            (
                a.stale_while_revalidate.as_secs(),
                a.stale_if_error.as_secs()
            ),
            (30, 60)
        );
        assert!(a.immutable && !a.must_revalidate && !a.no_cache && !a.targeted);
        let b = f(&[]);
        assert_eq!(
            (
                b.lifetime.as_secs(),
                b.stale_if_error.as_secs(),
                b.stale_while_revalidate
            ),
            (5, 7, Duration::ZERO)
        );
        for cc in [
            "max-age=2, must-revalidate",
            "max-age=2, proxy-revalidate",
            "s-maxage=2",
        ] {
            assert!(f(&[("cache-control", cc)]).must_revalidate, "{cc}");
        }
        assert!(f(&[("cache-control", "max-age=10000, No-CaChE")]).no_cache);
        assert!(!f(&[("cache-control", "no-cache=\"a\", max-age=5")]).no_cache);
        assert!(
            f(&[
                ("cdn-cache-control", "no-cache"),
                ("cache-control", "max-age=10000")
            ])
            .no_cache
        );
        assert!(f(&[("cdn-cache-control", "max-age=5")]).targeted);
        assert_eq!(FreshnessSource::SMaxAge(60).to_string(), "s-maxage=60");
        assert_eq!(FreshnessSource::Heuristic.to_string(), "heuristic");
    }

    #[test]
    fn ages() {
        // (headers, request_time offset, response_time offset, now offset, current age)
        let cases: &[(Fields, u64, u64, u64, u64)] = &[
            (&[], 0, 0, 0, 0),
            (&[], 0, 2, 10, 10),
            (&[("date", "@0")], 0, 0, 5, 5),
            (&[("date", "@-7200")], 0, 0, 0, 7200),
            (&[("date", "@3600")], 0, 0, 0, 0),
            (&[("date", "foo")], 0, 0, 3, 3),
            (&[("age", "15"), ("date", "@0")], 0, 0, 0, 15),
            (&[("age", "15")], 0, 2, 2, 17),
            (&[("age", "25"), ("date", "@-10")], 0, 0, 0, 25),
            (&[("age", "5"), ("date", "@-10")], 0, 0, 0, 10),
            // Age parsing (cache-tests age-parse.mjs).
            (&[("age", "abc")], 0, 0, 0, 0),
            (&[("age", "-7200")], 0, 0, 0, 0),
            (&[("age", "7200.0")], 0, 0, 0, 0),
            (&[("age", "7200, 0")], 0, 0, 0, 7200),
            (&[("age", "0, 7200")], 0, 0, 0, 0),
            (&[("age", "7200"), ("age", "0")], 0, 0, 0, 7200),
            (&[("age", "0"), ("age", "7200")], 0, 0, 0, 0),
            (&[("age", "7200;foo=bar")], 0, 0, 0, 7200),
            (&[("age", "2147483647")], 0, 0, 0, 2_147_483_647),
            (&[("age", "2147483649")], 0, 0, 0, 1 << 31),
            (&[("age", "2147483648")], 0, 0, 100, 1 << 31),
        ];
        for (headers, req, resp, now, want) in cases {
            let at = |s: u64| t0() + Duration::from_secs(s);
            let h = map(headers);
            let got = current_age(&h, at(*req), at(*resp), at(*now));
            assert_eq!(got.as_secs(), *want, "{headers:?}");
            let initial = initial_age(&h, at(*req), at(*resp));
            assert_eq!(
                initial
                    .saturating_add(Duration::from_secs(now - resp))
                    .min(MAX_AGE),
                got
            );
        }
        assert_eq!(age_header_value(Duration::from_millis(2500)), "2");
        assert_eq!(
            age_header_value(Duration::from_secs(u64::MAX)),
            "2147483648"
        );
    }
}
