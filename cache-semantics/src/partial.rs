//! Storing and combining partial responses (RFC 9111 §3.3–3.4): what a
//! `206` covers, and whether two pieces belong to one representation.

use http::HeaderMap;
use http::header::{CONTENT_RANGE, ETAG};

use crate::cache_control::trim_ows;
use crate::conditional::EntityTag;

/// What a single-part `206` carries (RFC 9110 §14.4): bytes
/// `start..=end` of a representation of `complete_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
    /// The whole representation's length.
    pub complete_len: u64,
}

impl ContentRange {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: a satisfied range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The single `Content-Range: bytes a-b/len` of a response, when it is
/// valid for storing: exactly one field line, unit `bytes`
/// (case-insensitive), `a <= b < len`. `None` for anything else, including
/// an unknown complete length (`bytes a-b/*`), which cannot be combined
/// into a complete response, and `bytes */len` (a 416's).
pub fn stored_content_range(resp: &HeaderMap) -> Option<ContentRange> {
    let mut lines = resp.get_all(CONTENT_RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let v = trim_ows(line.as_bytes());
    let sp = v.iter().position(|&b| b == b' ')?;
    if !v[..sp].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let rest = trim_ows(&v[sp + 1..]);
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (range, len) = (&rest[..slash], &rest[slash + 1..]);
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = number(&range[..dash])?;
    let end = number(&range[dash + 1..])?;
    let complete_len = number(len)?;
    (start <= end && end < complete_len).then_some(ContentRange {
        start,
        end,
        complete_len,
    })
}

/// `1*DIGIT` that fits a `u64`.
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The strong `ETag` of a response, when it has exactly one.
fn strong_etag(h: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut lines = h.get_all(ETAG).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let tag = EntityTag::parse(line.as_bytes());
    (!tag.weak).then_some(tag)
}

/// Whether a response has the strong validator pieces are combined by.
pub fn has_strong_etag(resp: &HeaderMap) -> bool {
    strong_etag(resp).is_some()
}

/// Whether a stored piece and a new one may be combined (RFC 9111 §3.4):
/// both have a strong `ETag` and they match by strong comparison. (A
/// `Last-Modified` date is not taken as strong enough.)
pub fn combinable(stored: &HeaderMap, new: &HeaderMap) -> bool {
    match (strong_etag(stored), strong_etag(new)) {
        (Some(a), Some(b)) => a.strong_eq(&b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map};

    #[test]
    fn content_range_table() {
        let cr = |start, end, complete_len| {
            Some(ContentRange {
                start,
                end,
                complete_len,
            })
        };
        let cases: &[(Fields, Option<ContentRange>)] = &[
            (&[("content-range", "bytes 0-9/100")], cr(0, 9, 100)),
            (&[("content-range", "Bytes  5-5/6")], cr(5, 5, 6)),
            (&[("content-range", "bytes 0-99/100")], cr(0, 99, 100)),
            (&[("content-range", "bytes 0-100/100")], None),
            (&[("content-range", "bytes 9-0/100")], None),
            (&[("content-range", "bytes 0-9/*")], None),
            (&[("content-range", "bytes */100")], None),
            (&[("content-range", "items 0-9/100")], None),
            (&[("content-range", "bytes 0-9")], None),
            (&[("content-range", "bytes -9/100")], None),
            (
                &[("content-range", "bytes 0-99999999999999999999/100")],
                None,
            ),
            (
                &[
                    ("content-range", "bytes 0-9/100"),
                    ("content-range", "bytes 0-9/100"),
                ],
                None,
            ),
            (&[], None),
        ];
        for (h, want) in cases {
            assert_eq!(stored_content_range(&map(h)), *want, "{h:?}");
        }
    }

    #[test]
    fn combinable_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("\"a\"", "\"a\"", true),
            ("\"a\"", "\"b\"", false),
            ("W/\"a\"", "W/\"a\"", false),
            ("\"a\"", "W/\"a\"", false),
            ("", "\"a\"", false),
        ];
        for (a, b, want) in cases {
            let h = |v: &str| {
                if v.is_empty() {
                    map(&[])
                } else {
                    map(&[("etag", v)])
                }
            };
            assert_eq!(combinable(&h(a), &h(b)), *want, "{a} {b}");
        }
    }
}
