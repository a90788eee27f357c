//! `range` (Range / If-Range against a stored response) and
//! `RangeDecision::content_range`.
//!
//! Input (see `src/lib.rs`): section 0 is the request (`range`, `if-range`),
//! section 1 the stored response (`etag`, `last-modified`); `:len N` is the
//! stored length (also tried: 0, 1 and `u64::MAX`).
//! Invariant: a `Partial { start, end }` has `start <= end < len`.
#![no_main]

use http::HeaderMap;
use http::header::{ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use lacquer_cache_semantics::{RangeDecision, parse_http_date, range};
use lacquer_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fn check(req: &HeaderMap, len: u64, resp: &HeaderMap) -> RangeDecision {
    let d = range(req, len, resp);
    match d {
        RangeDecision::Partial { start, end } => {
            assert!(start <= end && end < len, "{d:?} for length {len}");
            let cr = d.content_range(len).expect("a 206 has a Content-Range");
            assert_eq!(cr, format!("bytes {start}-{end}/{len}").as_str());
        }
        RangeDecision::Unsatisfiable => {
            assert_eq!(
                d.content_range(len).unwrap(),
                format!("bytes */{len}").as_str()
            );
        }
        RangeDecision::Full => assert_eq!(d.content_range(len), None),
    }
    if req.get_all(RANGE).iter().count() != 1 {
        assert_eq!(d, RangeDecision::Full, "no single Range line");
    }
    if let Some(if_range) = req.get(IF_RANGE) {
        let v = if_range.as_bytes().trim_ascii();
        let can_match = if v.starts_with(b"\"") || v.starts_with(b"W/") {
            resp.contains_key(ETAG)
        } else {
            parse_http_date(v).is_some()
                && resp
                    .get(LAST_MODIFIED)
                    .is_some_and(|lm| parse_http_date(lm.as_bytes()).is_some())
        };
        if !can_match || v.starts_with(b"W/") {
            assert_eq!(d, RangeDecision::Full, "If-Range {v:?} cannot match");
        }
    }
    d
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let req = input.section(0);
    let resp = input.section(1);
    let len = input.int::<u64>("len").unwrap_or(10_000);
    let d = check(&req, len, &resp);
    for other in [0, 1, u64::MAX] {
        let e = check(&req, other, &resp);
        // Whether the request is honoured at all does not depend on the
        // length, except for a suffix range of an empty representation.
        if other != 0 && len != 0 {
            assert_eq!(
                d == RangeDecision::Full,
                e == RangeDecision::Full,
                "{d:?} for {len} but {e:?} for {other}"
            );
        }
    }
});
