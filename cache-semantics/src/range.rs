//! Byte ranges served from a complete stored response (RFC 9110 §14, §13.1.5).

use http::header::{ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue};

use crate::cache_control::trim_ows;
use crate::conditional::EntityTag;
use crate::date::{header_date, parse_http_date};

/// How to answer a GET from a complete stored response of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// Send the whole response (200): no `Range`, one that is ignored, or an
    /// `If-Range` that does not match.
    Full,
    /// Send `206 Partial Content` with bytes `start..=end` (inclusive) and
    /// [`RangeDecision::content_range`].
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// Send `416 Range Not Satisfiable` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeDecision {
    /// The `Content-Range` field for a 206 (`bytes 0-9/100`) or a 416
    /// (`bytes */100`); `None` for [`RangeDecision::Full`].
    pub fn content_range(&self, full_len: u64) -> Option<HeaderValue> {
        match self {
            RangeDecision::Full => None,
            RangeDecision::Partial { start, end } => {
                Some(HeaderValue::from_str(&format!("bytes {start}-{end}/{full_len}")).ok()?)
            }
            RangeDecision::Unsatisfiable => {
                Some(HeaderValue::from_str(&format!("bytes */{full_len}")).ok()?)
            }
        }
    }
}

/// Decides how to answer the `Range` of a GET request (the host applies it to
/// GET only, RFC 9110 §14.2) from a stored 200 response of `full_len` bytes
/// with headers `resp_headers`.
///
/// - Only a single range in the `bytes` unit (case-insensitive) is served:
///   `bytes=a-b`, `bytes=a-`, `bytes=-n`. A last position past the end is
///   clamped; a suffix longer than the representation means all of it.
/// - Several ranges are answered with the full response (a server may ignore
///   `Range`), as are other units, invalid syntax (`bytes=5-1`, `bytes=x`),
///   several `Range` lines, and a suffix range of an empty representation.
/// - A first position at or past the end, or `bytes=-0`, is unsatisfiable.
/// - `If-Range` (RFC 9110 §13.1.5) must match, or the full response is sent: an
///   entity tag matches the stored `ETag` by strong comparison, a date matches
///   only when it equals the stored `Last-Modified`.
pub fn range(req_headers: &HeaderMap, full_len: u64, resp_headers: &HeaderMap) -> RangeDecision {
    let mut lines = req_headers.get_all(RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return RangeDecision::Full;
    };
    if let Some(if_range) = req_headers.get(IF_RANGE)
        && !if_range_matches(if_range.as_bytes(), resp_headers)
    {
        return RangeDecision::Full;
    }
    let s = trim_ows(line.as_bytes());
    let Some(eq) = s.iter().position(|&b| b == b'=') else {
        return RangeDecision::Full;
    };
    if !trim_ows(&s[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeDecision::Full;
    }
    let mut members = s[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|m| !m.is_empty());
    let (Some(spec), None) = (members.next(), members.next()) else {
        return RangeDecision::Full;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeDecision::Full;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (number(first), number(last)) {
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 {
                RangeDecision::Unsatisfiable
            } else if full_len == 0 {
                RangeDecision::Full
            } else {
                RangeDecision::Partial {
                    start: full_len - suffix.min(full_len),
                    end: full_len - 1,
                }
            }
        }
        (Some(start), last_pos) if last.is_empty() || last_pos.is_some() => {
            if last_pos.is_some_and(|l| l < start) {
                RangeDecision::Full
            } else if start >= full_len {
                RangeDecision::Unsatisfiable
            } else {
                let end = last_pos.map_or(full_len - 1, |l| l.min(full_len - 1));
                RangeDecision::Partial { start, end }
            }
        }
        _ => RangeDecision::Full,
    }
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn if_range_matches(value: &[u8], resp_headers: &HeaderMap) -> bool {
    let value = trim_ows(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        let Some(etag) = resp_headers.get(ETAG) else {
            return false;
        };
        EntityTag::parse(value).strong_eq(&EntityTag::parse(etag.as_bytes()))
    } else {
        match (
            parse_http_date(value),
            header_date(resp_headers, &LAST_MODIFIED),
        ) {
            (Some(date), Some(Some(lm))) => date == lm,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map};
    use RangeDecision::*;

    const P: fn(u64, u64) -> RangeDecision = |start, end| Partial { start, end };

    #[test]
    fn range_table() {
        // (request headers, full length, decision); cache-tests partial.mjs.
        let cases: &[(Fields, u64, RangeDecision)] = &[
            (&[], 11, Full),
            (&[("range", "bytes=0-1")], 11, P(0, 1)),
            (&[("range", "bytes=1-")], 11, P(1, 10)),
            (&[("range", "bytes=-1")], 11, P(10, 10)),
            (&[("range", "bytes=-5")], 10, P(5, 9)),
            (&[("range", "bytes=-50")], 10, P(0, 9)),
            (&[("range", "bytes=6-8")], 10, P(6, 8)),
            (&[("range", "bytes=5-100")], 10, P(5, 9)),
            (&[("range", "bytes=0-99999999999999999999999")], 10, P(0, 9)),
            (&[("range", "bytes=9-9")], 10, P(9, 9)),
            (&[("range", "Bytes = 2-3")], 10, P(2, 3)),
            (&[("range", " bytes=2-3 ,")], 10, P(2, 3)),
            (&[("range", "bytes=10-")], 10, Unsatisfiable),
            (&[("range", "bytes=10-20")], 10, Unsatisfiable),
            (
                &[("range", "bytes=99999999999999999999999-")],
                10,
                Unsatisfiable,
            ),
            (&[("range", "bytes=-0")], 10, Unsatisfiable),
            (&[("range", "bytes=0-")], 0, Unsatisfiable),
            (&[("range", "bytes=-5")], 0, Full),
            (&[("range", "bytes=5-1")], 10, Full),
            (&[("range", "bytes=0-1, 4-5")], 10, Full),
            (&[("range", "bytes=0-1"), ("range", "bytes=4-5")], 10, Full),
            (&[("range", "bytes=")], 10, Full),
            (&[("range", "bytes=-")], 10, Full),
            (&[("range", "bytes=a-b")], 10, Full),
            (&[("range", "bytes=1-2-3")], 10, Full),
            (&[("range", "bytes=+1-2")], 10, Full),
            (&[("range", "items=0-1")], 10, Full),
            (&[("range", "0-1")], 10, Full),
        ];
        for (req, len, want) in cases {
            assert_eq!(
                range(&map(req), *len, &HeaderMap::new()),
                *want,
                "{req:?} len {len}"
            );
        }
    }

    #[test]
    fn if_range_table() {
        let lm = "Wed, 01 Jan 2020 00:00:00 GMT";
        let stored = map(&[("etag", "\"abc\""), ("last-modified", lm)]);
        let weak = map(&[("etag", "W/\"abc\"")]);
        let cases: &[(&str, &HeaderMap, RangeDecision)] = &[
            ("\"abc\"", &stored, P(0, 1)),
            ("\"abd\"", &stored, Full),
            ("W/\"abc\"", &stored, Full),
            ("\"abc\"", &weak, Full),
            (lm, &stored, P(0, 1)),
            ("Wednesday, 01-Jan-20 00:00:00 GMT", &stored, P(0, 1)),
            ("Wed, 01 Jan 2020 00:00:01 GMT", &stored, Full),
            (lm, &weak, Full),
            ("garbage", &stored, Full),
        ];
        for (if_range, resp, want) in cases {
            let req = map(&[("range", "bytes=0-1"), ("if-range", if_range)]);
            assert_eq!(range(&req, 10, resp), *want, "{if_range}");
        }
        let req = map(&[("range", "bytes=50-"), ("if-range", "\"nope\"")]);
        assert_eq!(range(&req, 10, &stored), Full);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(P(0, 9).content_range(100).unwrap(), "bytes 0-9/100");
        assert_eq!(Unsatisfiable.content_range(100).unwrap(), "bytes */100");
        assert_eq!(Full.content_range(100), None);
    }
}
