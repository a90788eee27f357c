//! Header maintenance: hop-by-hop fields (RFC 9110 §7.6.1), freshening stored
//! responses (RFC 9111 §3.2, §4.3.4, §4.3.5), `Date` (RFC 9110 §6.6.1).

use std::time::SystemTime;

use http::header::{AGE, CONNECTION, CONTENT_LENGTH, DATE, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, StatusCode};

use crate::cache_control::{skip_element, trim_ows};
use crate::date::{fmt_http_date, header_date};

/// Hop-by-hop fields besides `Connection` and the fields it names.
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The field names listed in `Connection` (all lines), lower-cased.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for line in headers.get_all(CONNECTION) {
        let s = line.as_bytes();
        let mut i = 0;
        while i < s.len() {
            let end = skip_element(s, i);
            if let Ok(name) = HeaderName::from_bytes(trim_ows(&s[i..end])) {
                out.push(name);
            }
            i = end + 1;
        }
    }
    out
}

fn is_hop_by_hop(name: &HeaderName, listed: &[HeaderName]) -> bool {
    *name == CONNECTION || HOP_BY_HOP.contains(&name.as_str()) || listed.contains(name)
}

/// Removes the hop-by-hop fields that a proxy must not forward or store
/// (RFC 9110 §7.6.1): `Connection` and every field it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`.
///
/// `Proxy-Authenticate` / `Proxy-Authorization` are left alone (a reverse
/// proxy may relay them); [`crate::remove_unstorable_fields`] drops them
/// before storage.
pub fn strip_connection_headers(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names, with no
    // hashing, instead of a lookup for each.
    if !headers
        .keys()
        .any(|n| *n == CONNECTION || HOP_BY_HOP.contains(&n.as_str()))
    {
        return;
    }
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Updates a stored response's headers from a `304 Not Modified` received
/// while revalidating it (RFC 9111 §3.2, §4.3.4): every field in the 304
/// replaces all lines of the stored field of that name, except hop-by-hop
/// fields (see [`strip_connection_headers`], including those the 304's own
/// `Connection` names), the proxy authentication fields, and
/// `Content-Length` (which describes the stored body, not the 304).
///
/// `Age` is always taken from the 304 (removed if the 304 has none): the
/// freshened response's age comes from the new exchange. Afterwards the host
/// recomputes [`crate::freshness_lifetime`] and [`crate::initial_age`] from
/// the merged headers with the revalidation's request and response times, and
/// applies [`crate::remove_unstorable_fields`] again.
pub fn merge_not_modified(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let listed = connection_listed(not_modified);
    stored.remove(AGE);
    for name in not_modified.keys() {
        if is_hop_by_hop(name, &listed)
            || *name == CONTENT_LENGTH
            || name.as_str().starts_with("proxy-auth")
        {
            continue;
        }
        stored.remove(name);
        for value in not_modified.get_all(name) {
            stored.append(name.clone(), value.clone());
        }
    }
}

/// What a `HEAD` response did to the stored `GET` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadUpdate {
    /// The headers were merged as for a 304.
    Updated,
    /// The validators or `Content-Length` differ: the stored response no longer
    /// describes the resource and should be treated as stale (or dropped).
    Stale,
    /// Not a 200 response: nothing to do.
    Ignored,
}

/// Applies a response to an inbound `HEAD` request to the stored `GET`
/// response for the same URI (RFC 9111 §4.3.5): for a 200 whose received
/// validators (`ETag`, `Last-Modified`) and `Content-Length` all equal the
/// stored ones (byte for byte), the stored headers are updated as by
/// [`merge_not_modified`]; if any differs, the stored response is stale.
pub fn freshen_from_head(
    status: StatusCode,
    stored: &mut HeaderMap,
    head: &HeaderMap,
) -> HeadUpdate {
    if status != StatusCode::OK {
        return HeadUpdate::Ignored;
    }
    let same = [ETAG, LAST_MODIFIED, CONTENT_LENGTH]
        .iter()
        .all(|name| head.get(name).is_none_or(|v| stored.get(name) == Some(v)));
    if !same {
        return HeadUpdate::Stale;
    }
    merge_not_modified(stored, head);
    HeadUpdate::Updated
}

/// Adds `Date: <response_time>` to a response that lacks one, and replaces an
/// invalid one (RFC 9110 §6.6.1), so that a stored response always carries the
/// date its age is computed from.
pub fn ensure_date(headers: &mut HeaderMap, response_time: SystemTime) {
    if !matches!(header_date(headers, &DATE), Some(Some(_))) {
        headers.insert(DATE, fmt_http_date(response_time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map};
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
        let mut v: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    }

    fn sorted(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn strips_hop_by_hop() {
        let mut h = map(&[
            ("connection", "a, B"),
            ("connection", "close"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
        ]);
        strip_connection_headers(&mut h);
        assert_eq!(
            pairs(&h),
            sorted(&[("c", "3"), ("proxy-authenticate", "Basic")])
        );
    }

    #[test]
    fn each_hop_by_hop_field_alone_is_stripped() {
        for name in std::iter::once("connection").chain(HOP_BY_HOP) {
            let mut h = map(&[("a", "1"), (name, "x"), ("b", "2")]);
            strip_connection_headers(&mut h);
            assert_eq!(pairs(&h), sorted(&[("a", "1"), ("b", "2")]), "{name}");
        }
        let mut h = map(&[("a", "1"), ("host", "x")]);
        strip_connection_headers(&mut h);
        assert_eq!(pairs(&h), sorted(&[("a", "1"), ("host", "x")]));
    }

    #[test]
    fn merge_table() {
        // (stored, 304, merged); cache-tests update304.mjs and header-list.mjs.
        type Row = (
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Row] = &[
            (
                &[("test-header", "A"), ("cache-control", "max-age=1")],
                &[],
                &[("test-header", "A"), ("cache-control", "max-age=1")],
            ),
            (
                &[("test-header", "A")],
                &[("test-header", "B")],
                &[("test-header", "B")],
            ),
            (&[("x", "1"), ("x", "2")], &[("x", "3")], &[("x", "3")]),
            (
                &[("x", "1")],
                &[("x", "2"), ("x", "3")],
                &[("x", "2"), ("x", "3")],
            ),
            (
                &[("cache-control", "max-age=1")],
                &[("cache-control", "max-age=3600")],
                &[("cache-control", "max-age=3600")],
            ),
            (
                &[("content-type", "text/plain")],
                &[("content-type", "text/plain;charset=utf-8")],
                &[("content-type", "text/plain;charset=utf-8")],
            ),
            (
                &[("etag", "\"a\"")],
                &[("etag", "\"b\"")],
                &[("etag", "\"b\"")],
            ),
            (
                &[("set-cookie", "a=b")],
                &[("set-cookie", "a=c")],
                &[("set-cookie", "a=c")],
            ),
            (
                &[("content-length", "5")],
                &[("content-length", "10")],
                &[("content-length", "5")],
            ),
            (
                &[("age", "30"), ("date", "Wed, 01 Jan 2020 00:00:00 GMT")],
                &[("date", "Thu, 02 Jan 2020 00:00:00 GMT")],
                &[("date", "Thu, 02 Jan 2020 00:00:00 GMT")],
            ),
            (&[("age", "30")], &[("age", "5")], &[("age", "5")]),
            (
                &[("a", "1")],
                &[
                    ("connection", "a"),
                    ("a", "2"),
                    ("keep-alive", "x"),
                    ("transfer-encoding", "chunked"),
                    ("proxy-authenticate", "x"),
                ],
                &[("a", "1")],
            ),
        ];
        for (stored, nm, want) in cases {
            let mut s = map(stored);
            merge_not_modified(&mut s, &map(nm));
            assert_eq!(pairs(&s), sorted(want), "{stored:?} + {nm:?}");
        }
    }

    #[test]
    fn head_updates() {
        let stored = &[
            ("etag", "\"a\""),
            ("content-length", "5"),
            ("template-a", "1"),
            ("cache-control", "max-age=2"),
        ][..];
        // (status, HEAD response headers, outcome, template-a afterwards)
        let cases: &[(u16, Fields, HeadUpdate, &str)] = &[
            (
                200,
                &[("template-a", "2"), ("cache-control", "max-age=1000")],
                HeadUpdate::Updated,
                "2",
            ),
            (
                200,
                &[
                    ("etag", "\"a\""),
                    ("content-length", "5"),
                    ("template-a", "2"),
                ],
                HeadUpdate::Updated,
                "2",
            ),
            (200, &[], HeadUpdate::Updated, "1"),
            (
                200,
                &[("etag", "\"b\""), ("template-a", "2")],
                HeadUpdate::Stale,
                "1",
            ),
            (
                200,
                &[("content-length", "6"), ("template-a", "2")],
                HeadUpdate::Stale,
                "1",
            ),
            (
                200,
                &[("last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")],
                HeadUpdate::Stale,
                "1",
            ),
            (410, &[("template-a", "2")], HeadUpdate::Ignored, "1"),
        ];
        for (status, head, want, template) in cases {
            let mut s = map(stored);
            let got = freshen_from_head(StatusCode::from_u16(*status).unwrap(), &mut s, &map(head));
            assert_eq!(
                (got, s.get("template-a").unwrap().to_str().unwrap()),
                (*want, *template),
                "{head:?}"
            );
            assert_eq!(s.get("content-length").unwrap(), "5");
        }
    }

    #[test]
    fn date_is_ensured() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = "Sun, 06 Nov 1994 08:49:37 GMT";
        for (given, want) in [
            (None, now),
            (Some("foo"), now),
            (
                Some("Wed, 01 Jan 2020 00:00:00 GMT"),
                "Wed, 01 Jan 2020 00:00:00 GMT",
            ),
        ] {
            let mut h = HeaderMap::new();
            if let Some(g) = given {
                h.insert(DATE, HeaderValue::from_static(g));
            }
            ensure_date(&mut h, t);
            assert_eq!(h.get(DATE).unwrap(), want, "{given:?}");
        }
    }
}
