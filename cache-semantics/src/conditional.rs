//! Client conditionals answered from cache (RFC 9110 §13, RFC 9111 §4.3.2)
//! and conditional requests to the origin (RFC 9111 §4.3.1).

use http::header::{
    DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::cache_control::{skip_element, trim_ows};
use crate::date::header_date;

/// The outcome of a request's preconditions against a stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// No precondition applies: send the stored response.
    None,
    /// Send `304 Not Modified` (with the stored `ETag`, `Date`,
    /// `Cache-Control`, `Content-Location`, `Expires`, `Vary`, RFC 9110
    /// §15.4.5).
    NotModified,
    /// Send `412 Precondition Failed`.
    PreconditionFailed,
}

/// An entity tag, parsed leniently: an unquoted value (`abcdef`) is taken as
/// its own opaque tag, so it matches `"abcdef"`; a lower-case `w/` is weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    pub(crate) fn parse(v: &'a [u8]) -> EntityTag<'a> {
        let v = trim_ows(v);
        let (weak, rest) = match v {
            [b'W' | b'w', b'/', rest @ ..] => (true, rest),
            _ => (false, v),
        };
        let opaque = match rest {
            [b'"', inner @ .., b'"'] => inner,
            _ => rest,
        };
        EntityTag { weak, opaque }
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): both strong, same opaque tag.
    pub(crate) fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: same opaque tag, weakness ignored.
    pub(crate) fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Whether a list field (`If-Match`, `If-None-Match`, all lines) matches the
/// stored ETag: `*` matches any stored response; otherwise any member compared
/// with `eq`.
fn tag_list_matches(
    headers: &HeaderMap,
    name: &HeaderName,
    etag: Option<EntityTag<'_>>,
    eq: fn(&EntityTag<'_>, &EntityTag<'_>) -> bool,
) -> bool {
    headers.get_all(name).iter().any(|line| {
        let s = line.as_bytes();
        let mut i = 0;
        while i < s.len() {
            let end = skip_element(s, i);
            let member = trim_ows(&s[i..end]);
            i = end + 1;
            if member == b"*" {
                return true;
            }
            if !member.is_empty()
                && let Some(etag) = &etag
                && eq(&EntityTag::parse(member), etag)
            {
                return true;
            }
        }
        false
    })
}

/// Evaluates the request's preconditions against a stored response, in the
/// order of RFC 9110 §13.2.2:
///
/// 1. `If-Match` (strong comparison; `*` matches): no match → 412.
/// 2. Otherwise `If-Unmodified-Since` (a valid date, and the stored response
///    has a valid `Last-Modified`): modified since → 412.
/// 3. `If-None-Match` (weak comparison; `*` matches): match → 304 for GET and
///    HEAD, 412 for other methods. When present, `If-Modified-Since` is not
///    looked at, matched or not.
/// 4. Otherwise, for GET and HEAD, `If-Modified-Since` (a valid HTTP-date):
///    304 when the stored `Last-Modified` (or, without one, its `Date`,
///    RFC 9111 §4.3.2) is not later. Without either, it is ignored.
///
/// A date precondition that is invalid or given on several lines is ignored.
/// If-Match and If-Unmodified-Since are evaluated too (RFC 9111 §4.3.2 leaves
/// them to the origin; answering them from the stored response is what the
/// origin would answer while that response is current).
///
/// Only a 2xx stored response is subject to preconditions; for any other
/// status the result is [`Conditional::None`]. `If-Range` is handled by
/// [`crate::range`].
pub fn evaluate_conditionals(
    method: &Method,
    req_headers: &HeaderMap,
    resp_status: StatusCode,
    resp_headers: &HeaderMap,
) -> Conditional {
    // Most requests carry no precondition: then nothing stored is parsed.
    if !resp_status.is_success()
        || ![
            IF_MATCH,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_UNMODIFIED_SINCE,
        ]
        .iter()
        .any(|h| req_headers.contains_key(h))
    {
        return Conditional::None;
    }
    let etag = resp_headers
        .get(ETAG)
        .map(|v| EntityTag::parse(v.as_bytes()));
    let last_modified = header_date(resp_headers, &LAST_MODIFIED).flatten();
    let get_or_head = *method == Method::GET || *method == Method::HEAD;

    if req_headers.contains_key(IF_MATCH) {
        if !tag_list_matches(req_headers, &IF_MATCH, etag, |a, b| a.strong_eq(b)) {
            return Conditional::PreconditionFailed;
        }
    } else if let (Some(since), Some(lm)) = (
        single_date(req_headers, &IF_UNMODIFIED_SINCE),
        last_modified,
    ) && lm > since
    {
        return Conditional::PreconditionFailed;
    }

    if req_headers.contains_key(IF_NONE_MATCH) {
        if tag_list_matches(req_headers, &IF_NONE_MATCH, etag, |a, b| a.weak_eq(b)) {
            return if get_or_head {
                Conditional::NotModified
            } else {
                Conditional::PreconditionFailed
            };
        }
        return Conditional::None;
    }

    if get_or_head
        && let Some(since) = single_date(req_headers, &IF_MODIFIED_SINCE)
        && let Some(modified) = last_modified.or_else(|| header_date(resp_headers, &DATE).flatten())
        && modified <= since
    {
        return Conditional::NotModified;
    }
    Conditional::None
}

/// A date precondition: ignored unless it is one valid HTTP-date on a single
/// line (RFC 9110 §13.1.3, §13.1.4).
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<std::time::SystemTime> {
    let mut lines = headers.get_all(name).iter();
    match (lines.next(), lines.next()) {
        (Some(v), None) => crate::date::parse_http_date(v.as_bytes()),
        _ => None,
    }
}

/// The preconditions to add to a revalidation request for a stored response
/// (RFC 9111 §4.3.1): `If-None-Match` from its `ETag` (an unquoted ETag is
/// sent quoted) and `If-Modified-Since` from a valid `Last-Modified` (the
/// stored value as is). Empty when the response has no validator, in which
/// case revalidation is a plain fetch.
pub fn conditional_request_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(etag) = stored.get(ETAG) {
        let raw = etag.as_bytes().trim_ascii();
        let tag = EntityTag::parse(raw);
        let quoted = raw.ends_with(b"\"");
        let value = if quoted || tag.opaque.is_empty() || tag.opaque.contains(&b'"') {
            etag.clone()
        } else {
            let mut v = Vec::with_capacity(raw.len() + 4);
            if tag.weak {
                v.extend_from_slice(b"W/");
            }
            v.push(b'"');
            v.extend_from_slice(tag.opaque);
            v.push(b'"');
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| etag.clone())
        };
        out.insert(IF_NONE_MATCH, value);
    }
    if let Some(lm) = stored.get(LAST_MODIFIED)
        && crate::date::parse_http_date(lm.as_bytes()).is_some()
    {
        out.insert(IF_MODIFIED_SINCE, lm.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map};

    #[test]
    fn conditionals_table() {
        use Conditional::*;
        let strong = &[
            ("etag", "\"abcdef\""),
            ("last-modified", "@-3000"),
            ("date", "@0"),
        ][..];
        let weak = &[("etag", "W/\"abcdef\"")][..];
        // (method, request headers, stored status, stored headers, outcome)
        type Row = (
            &'static str,
            &'static [(&'static str, &'static str)],
            u16,
            &'static [(&'static str, &'static str)],
            Conditional,
        );
        let cases: &[Row] = &[
            ("GET", &[], 200, strong, None),
            (
                "GET",
                &[("if-none-match", "\"abcdef\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "HEAD",
                &[("if-none-match", "\"abcdef\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "DELETE",
                &[("if-none-match", "\"abcdef\"")],
                200,
                strong,
                PreconditionFailed,
            ),
            ("GET", &[("if-none-match", "\"xyz\"")], 200, strong, None),
            ("GET", &[("if-none-match", "*")], 200, strong, NotModified),
            ("GET", &[("if-none-match", "*")], 200, &[], NotModified),
            (
                "GET",
                &[("if-none-match", "\"abcdef\", \"1234\", \"5678\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"1234\", \"abcdef\", \"5678\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"1234\", \"5678\", \"abcdef\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[
                    ("if-none-match", "\"1234\""),
                    ("if-none-match", "\"abcdef\""),
                ],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"a,b\", \"abcdef\"")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "W/\"abcdef\"")],
                200,
                weak,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"abcdef\"")],
                200,
                weak,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "w/\"abcdef\"")],
                200,
                &[("etag", "w/\"abcdef\"")],
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "abcdef")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "abcdef")],
                200,
                &[("etag", "abcdef")],
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"abcdef\"")],
                200,
                &[("etag", "abcdef")],
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "W\\\"abcdef\"")],
                200,
                &[("etag", "W\\\"abcdef\"")],
                NotModified,
            ),
            ("GET", &[("if-none-match", "\"abcdef\"")], 200, &[], None),
            ("GET", &[("if-none-match", "\"abcdef\"")], 404, strong, None),
            // If-None-Match takes precedence over If-Modified-Since.
            (
                "GET",
                &[
                    ("if-none-match", "\"abcdef\""),
                    ("if-modified-since", "@-5000"),
                ],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-none-match", "\"other\""), ("if-modified-since", "@0")],
                200,
                strong,
                None,
            ),
            // If-Modified-Since (cache-tests conditional-lm.mjs).
            (
                "GET",
                &[("if-modified-since", "@-3000")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-modified-since", "@-2000")],
                200,
                strong,
                NotModified,
            ),
            ("GET", &[("if-modified-since", "@-3001")], 200, strong, None),
            (
                "GET",
                &[("if-modified-since", "Tuesday, 14-Nov-23 21:23:20 GMT")],
                200,
                strong,
                NotModified,
            ),
            (
                "GET",
                &[("if-modified-since", "@-3000")],
                200,
                &[("date", "@0")],
                None,
            ),
            (
                "GET",
                &[("if-modified-since", "@-3000")],
                200,
                &[("date", "@-3000")],
                NotModified,
            ),
            ("GET", &[("if-modified-since", "@0")], 200, &[], None),
            (
                "GET",
                &[("if-modified-since", "@0"), ("if-modified-since", "@0")],
                200,
                strong,
                None,
            ),
            (
                "GET",
                &[
                    ("if-unmodified-since", "@-4000"),
                    ("if-unmodified-since", "@-4000"),
                ],
                200,
                strong,
                None,
            ),
            (
                "GET",
                &[("if-modified-since", "garbage")],
                200,
                strong,
                None,
            ),
            ("POST", &[("if-modified-since", "@0")], 200, strong, None),
            // If-Match and If-Unmodified-Since.
            ("GET", &[("if-match", "\"abcdef\"")], 200, strong, None),
            (
                "GET",
                &[("if-match", "\"nope\"")],
                200,
                strong,
                PreconditionFailed,
            ),
            (
                "GET",
                &[("if-match", "W/\"abcdef\"")],
                200,
                weak,
                PreconditionFailed,
            ),
            ("GET", &[("if-match", "*")], 200, &[], None),
            (
                "PUT",
                &[("if-match", "\"nope\""), ("if-unmodified-since", "@0")],
                200,
                strong,
                PreconditionFailed,
            ),
            (
                "GET",
                &[("if-unmodified-since", "@-4000")],
                200,
                strong,
                PreconditionFailed,
            ),
            (
                "GET",
                &[("if-unmodified-since", "@-3000")],
                200,
                strong,
                None,
            ),
            (
                "GET",
                &[("if-unmodified-since", "@-4000")],
                200,
                &[("etag", "\"x\"")],
                None,
            ),
            (
                "GET",
                &[
                    ("if-match", "\"abcdef\""),
                    ("if-unmodified-since", "@-4000"),
                ],
                200,
                strong,
                None,
            ),
            (
                "GET",
                &[("if-match", "\"nope\""), ("if-none-match", "\"abcdef\"")],
                200,
                strong,
                PreconditionFailed,
            ),
        ];
        for (method, req, status, resp, want) in cases {
            let got = evaluate_conditionals(
                &Method::from_bytes(method.as_bytes()).unwrap(),
                &map(req),
                StatusCode::from_u16(*status).unwrap(),
                &map(resp),
            );
            assert_eq!(got, *want, "{method} {req:?} {status} {resp:?}");
        }
    }

    #[test]
    fn revalidation_headers() {
        // (stored headers, If-None-Match, If-Modified-Since)
        const LM: &str = "Wed, 01 Jan 2020 00:00:00 GMT";
        let lm = LM;
        let cases: &[(Fields, Option<&str>, Option<&str>)] = &[
            (&[], None, None),
            (&[("etag", "\"abcdef\"")], Some("\"abcdef\""), None),
            (&[("etag", "W/\"abcdef\"")], Some("W/\"abcdef\""), None),
            (&[("etag", "abcdef")], Some("\"abcdef\""), None),
            (&[("etag", "W/abcdef")], Some("W/\"abcdef\""), None),
            (&[("last-modified", LM)], None, Some(lm)),
            (&[("last-modified", "yesterday")], None, None),
            (
                &[("etag", "\"x\""), ("last-modified", LM)],
                Some("\"x\""),
                Some(lm),
            ),
        ];
        for (stored, inm, ims) in cases {
            let h = conditional_request_headers(&map(stored));
            let get = |n| h.get(n).map(|v: &HeaderValue| v.to_str().unwrap());
            assert_eq!(
                (get(IF_NONE_MATCH), get(IF_MODIFIED_SINCE)),
                (*inm, *ims),
                "{stored:?}"
            );
        }
    }
}
