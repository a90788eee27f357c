//! Helpers shared by the unit tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// A list of header fields written as `(name, value)` pairs.
pub(crate) type Fields = &'static [(&'static str, &'static str)];

/// The instant the tests call "now": 2023-11-14T22:13:20Z.
pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `t0()` plus `off` seconds (`off` may be negative).
pub(crate) fn at(off: i64) -> SystemTime {
    let d = Duration::from_secs(off.unsigned_abs());
    if off >= 0 { t0() + d } else { t0() - d }
}

/// Builds a header map; a value `@N` becomes the HTTP-date of `at(N)`.
pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        let value = match v.strip_prefix('@') {
            Some(off) => crate::date::fmt_http_date(at(off.parse().unwrap())),
            None => HeaderValue::from_str(v).unwrap(),
        };
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), value);
    }
    h
}

/// Every parser must accept arbitrary field values without panicking.
#[test]
fn parsers_never_panic() {
    use http::header::{
        AGE, CACHE_CONTROL, CONTENT_LOCATION, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
        IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION, PRAGMA, RANGE, VARY,
    };
    use http::{Method, StatusCode};

    const ALPHABET: &[u8] = b"0123456789abcWGMT ,;=\"\\-/:*()?.\t#";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let opts = crate::Options::default();
    let names = [
        CACHE_CONTROL,
        crate::CDN_CACHE_CONTROL,
        AGE,
        EXPIRES,
        LAST_MODIFIED,
        ETAG,
        VARY,
        RANGE,
        IF_RANGE,
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        LOCATION,
        CONTENT_LOCATION,
        PRAGMA,
    ];
    for _ in 0..10_000 {
        let mut h = HeaderMap::new();
        for name in &names {
            let len = (next() % 24) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            h.append(name.clone(), HeaderValue::from_bytes(&v).unwrap());
        }
        let status = StatusCode::from_u16(200 + (next() % 400) as u16).unwrap();
        let _ = crate::CacheControl::parse(&h, &CACHE_CONTROL);
        let _ = crate::storable(&Method::GET, &h, status, &h, &opts);
        let f = crate::freshness_lifetime(status, &h, t0(), &opts);
        let age = crate::current_age(&h, t0(), t0(), at(5));
        let cc = crate::CacheControl::parse(&h, &CACHE_CONTROL);
        let _ = crate::reuse(&cc, &h, &f, age);
        let _ = crate::stale_on_error(&cc, &f, age);
        let _ = crate::evaluate_conditionals(&Method::GET, &h, status, &h);
        let _ = crate::conditional_request_headers(&h);
        let _ = crate::range(&h, next() % 100, &h);
        if let crate::VarySpec::Names(n) = crate::vary_names(&h) {
            let _ = crate::vary_key(&n, &h);
        }
        let uri: http::Uri = "http://example.com/a/b?c".parse().unwrap();
        let _ = crate::invalidation_targets(&Method::POST, status, &uri, &h);
        let mut stored = h.clone();
        crate::merge_not_modified(&mut stored, &h);
        crate::remove_unstorable_fields(&mut stored, &opts);
    }
}
