//! `Cache-Control` parsing (`CacheControl::parse`, `parse_value`) and what is
//! computed from it: `freshness_lifetime`, `initial_age`, `current_age`,
//! `age_header_value`, `reuse`, `stale_on_error`, `only_if_cached`.
//!
//! Input (see `src/lib.rs`): section 0 is the request, section 1 the stored
//! response (`cache-control`, `cdn-cache-control`, `pragma`, `date`,
//! `expires`, `age`, `last-modified`, ...). Pseudo fields: `:status N`,
//! `:request-time S`, `:response-time S`, `:now S` (seconds since the epoch),
//! `:heuristic-percent N`, `:heuristic-max S`, `:default-ttl S`,
//! `:default-sie S`, `:targeted a,b` (`:targeted` with no name disables
//! targeted fields).
#![no_main]

use std::time::Duration;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lacquer_cache_semantics::{
    CDN_CACHE_CONTROL, CacheControl, FreshnessSource, MAX_DELTA_SECONDS, OnlyIfCached, Options,
    Reuse, StaleOnError, age_header_value, current_age, freshness_lifetime, initial_age,
    is_heuristically_cacheable, only_if_cached, response_directives, reuse, stale_on_error,
};
use lacquer_fuzz::{Input, at, check_cc};
use libfuzzer_sys::fuzz_target;

const MAX_AGE: Duration = Duration::from_secs(MAX_DELTA_SECONDS as u64);

/// Every field line of `name` on its own, and all of them joined by `, `,
/// parse like the map holding them (RFC 9110 §5.3), unless a quoted string
/// could swallow the separator.
fn check_lines(h: &HeaderMap, name: &HeaderName) -> CacheControl {
    let cc = CacheControl::parse(h, name);
    check_cc(&cc);
    let lines: Vec<&[u8]> = h.get_all(name).iter().map(HeaderValue::as_bytes).collect();
    for line in &lines {
        let one = CacheControl::parse_value(line);
        check_cc(&one);
        let mut single = HeaderMap::new();
        single.insert(name.clone(), HeaderValue::from_bytes(line).unwrap());
        assert_eq!(CacheControl::parse(&single, name), one);
    }
    if !lines.iter().any(|l| l.contains(&b'"')) {
        let joined = lines.join(&b", "[..]);
        assert_eq!(
            CacheControl::parse_value(&joined),
            cc,
            "lines {lines:?} parse differently once joined"
        );
    }
    cc
}

fn options(input: &Input<'_>) -> Options {
    let mut opts = Options::default();
    if let Some(p) = input.int("heuristic-percent") {
        opts.heuristic_percent = p;
    }
    if let Some(s) = input.int("heuristic-max") {
        opts.heuristic_max = Duration::from_secs(s);
    }
    if let Some(s) = input.int("default-ttl") {
        opts.default_ttl = Duration::from_secs(s);
    }
    if let Some(s) = input.int("default-sie") {
        opts.default_stale_if_error = Duration::from_secs(s);
    }
    if let Some(list) = input.get("targeted") {
        opts.targeted_fields = list
            .split(|&b| b == b',')
            .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
            .collect();
    }
    opts
}

fuzz_target!(|data: &[u8]| {
    // The line parser on arbitrary bytes, even those no field value can hold.
    check_cc(&CacheControl::parse_value(data));

    let input = Input::parse(data);
    for section in &input.raw {
        for (_, value) in section {
            check_cc(&CacheControl::parse_value(value));
        }
    }
    let req = input.section(0);
    let resp = input.section(1);
    let req_cc = check_lines(&req, &CACHE_CONTROL);
    for name in [CACHE_CONTROL, CDN_CACHE_CONTROL, PRAGMA] {
        check_lines(&resp, &name);
        check_lines(&req, &name);
    }

    let status = input
        .int::<u16>("status")
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let response_time = input.time("response-time").unwrap_or(at(1_700_000_000));
    let request_time = input.time("request-time").unwrap_or(response_time);
    let now = input.time("now").unwrap_or(response_time);
    let opts = options(&input);

    let d = response_directives(&resp, &opts);
    let f = freshness_lifetime(status, &resp, response_time, &opts);
    assert_eq!(f.targeted, d.is_targeted());
    assert_eq!(f.no_cache, d.cc.no_cache);
    assert_eq!(f.immutable, d.cc.immutable);
    if d.cc.s_maxage.is_some() {
        assert!(f.must_revalidate, "s-maxage implies proxy-revalidate");
    }
    match f.source {
        FreshnessSource::SMaxAge(s) => {
            assert_eq!(d.cc.s_maxage, Some(s));
            assert_eq!(f.lifetime, Duration::from_secs(s.into()));
        }
        FreshnessSource::MaxAge(m) => {
            assert_eq!((d.cc.s_maxage, d.cc.max_age), (None, Some(m)));
            assert_eq!(f.lifetime, Duration::from_secs(m.into()));
        }
        FreshnessSource::Expires => {
            assert!(!d.is_targeted(), "Expires used under a targeted field");
            assert_eq!((d.cc.s_maxage, d.cc.max_age), (None, None));
        }
        FreshnessSource::Heuristic => assert!(f.lifetime <= opts.heuristic_max),
        FreshnessSource::DefaultTtl => assert_eq!(f.lifetime, opts.default_ttl),
        FreshnessSource::None => {
            assert_eq!(f.lifetime, Duration::ZERO);
            assert!(!is_heuristically_cacheable(status) && !d.cc.public);
        }
    }
    assert_eq!(
        f.stale_while_revalidate,
        Duration::from_secs(d.cc.stale_while_revalidate.unwrap_or(0).into())
    );
    let _ = f.source.to_string();

    let initial = initial_age(&resp, request_time, response_time);
    let age = current_age(&resp, request_time, response_time, now);
    assert!(initial <= MAX_AGE && age <= MAX_AGE, "{initial:?} {age:?}");
    assert!(
        age >= initial,
        "current age {age:?} below initial age {initial:?}"
    );
    let header = age_header_value(age);
    let secs: u64 = header.to_str().unwrap().parse().unwrap();
    assert_eq!(secs, age.as_secs());

    assert_eq!(f.is_fresh(age), age < f.lifetime);
    assert_eq!(f.staleness(age), age.saturating_sub(f.lifetime));
    let r = reuse(&req_cc, &req, &f, age);
    let pragma = !req.contains_key(CACHE_CONTROL)
        && req.get_all(PRAGMA).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
        });
    match r {
        Reuse::Fresh => {
            assert!(f.is_fresh(age) && !req_cc.no_cache && !f.no_cache && !pragma);
            assert_ne!(req_cc.max_age, Some(0));
        }
        Reuse::StaleAllowed | Reuse::StaleWhileRevalidate => {
            assert!(!f.is_fresh(age) && !f.must_revalidate && !f.no_cache);
            assert!(!req_cc.no_cache && !pragma);
        }
        Reuse::MustRevalidate => {}
    }
    if req_cc.no_cache || f.no_cache {
        assert_eq!(r, Reuse::MustRevalidate);
    }
    let oic = only_if_cached(&req_cc, Some(r));
    assert_eq!(oic == OnlyIfCached::NotRequested, !req_cc.only_if_cached);
    if req_cc.only_if_cached {
        assert_eq!(only_if_cached(&req_cc, None), OnlyIfCached::GatewayTimeout);
    }
    let soe = stale_on_error(&req_cc, &f, age);
    if f.is_fresh(age) {
        assert_eq!(soe, StaleOnError::Serve);
    } else if f.no_cache || f.must_revalidate {
        assert_eq!(soe, StaleOnError::Error);
    }
});
