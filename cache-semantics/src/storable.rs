//! Whether a response may be stored by a shared cache (RFC 9111 §3, §3.5) and
//! which directives govern it (RFC 9213).

use std::fmt;

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, DATE, ETAG, EXPIRES,
    LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use crate::vary::{VarySpec, vary_names};
use crate::{CacheControl, Options, update::strip_connection_headers};

/// Which field the response directives came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectiveSource {
    /// `Cache-Control` (and `Expires`), the usual case.
    CacheControl,
    /// A targeted field from [`Options::targeted_fields`], e.g.
    /// `CDN-Cache-Control`: `Cache-Control` and `Expires` are ignored for this
    /// cache's decisions (RFC 9213 §2.2). The host still forwards every field,
    /// the targeted one included, unchanged.
    Targeted(HeaderName),
}

/// The response directives that govern this cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// The directives.
    pub cc: CacheControl,
    /// Where they came from.
    pub source: DirectiveSource,
}

impl ResponseDirectives {
    /// True when a targeted field replaced `Cache-Control` and `Expires`.
    pub fn is_targeted(&self) -> bool {
        matches!(self.source, DirectiveSource::Targeted(_))
    }
}

/// Picks the directives of a response: the first field of
/// [`Options::targeted_fields`] that is present, a valid Structured Field
/// Dictionary, and non-empty; otherwise `Cache-Control`.
pub fn response_directives(resp_headers: &HeaderMap, opts: &Options) -> ResponseDirectives {
    for name in &opts.targeted_fields {
        if let Some(cc) = CacheControl::parse_targeted(resp_headers, name) {
            return ResponseDirectives {
                cc,
                source: DirectiveSource::Targeted(name.clone()),
            };
        }
    }
    ResponseDirectives {
        cc: CacheControl::parse(resp_headers, &CACHE_CONTROL),
        source: DirectiveSource::CacheControl,
    }
}

/// Why a response must not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStorable {
    /// The request method is not GET. (HEAD responses are not stored as
    /// objects; see [`crate::freshen_from_head`]. Other methods are not cached.)
    Method,
    /// Not a final status, or `304 Not Modified` (merged with
    /// [`crate::merge_not_modified`], never stored).
    Status,
    /// `206 Partial Content`: not stored as a response of its own. A cache
    /// that stores pieces (RFC 9111 §3.3) checks a 206 as the 200 it is
    /// part of, then uses [`crate::stored_content_range`] and
    /// [`crate::combinable`].
    PartialContent,
    /// `must-understand` with a status code this cache does not implement.
    MustUnderstand,
    /// The response has `no-store` (and no honoured `must-understand`).
    NoStore,
    /// The request has `no-store`.
    RequestNoStore,
    /// Unqualified `private`.
    Private,
    /// The request had `Authorization` and the response has none of `public`,
    /// `s-maxage`, `must-revalidate` (RFC 9111 §3.5).
    Authorization,
    /// `Vary: *`: the stored response could never be selected.
    VaryAny,
    /// No explicit freshness (`max-age`, `s-maxage`, `Expires`), no `public`,
    /// and a status code that is not heuristically cacheable.
    NotCacheable,
}

impl NotStorable {
    /// A short stable reason for logs and metrics, e.g. `"no-store"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::PartialContent => "partial-content",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::NoStore => "no-store",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryAny => "vary-star",
            NotStorable::NotCacheable => "not-cacheable",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for NotStorable {}

/// Status codes that are heuristically cacheable (RFC 9110 §15.1): 200, 203,
/// 204, 206, 300, 301, 308, 404, 405, 410, 414, 501.
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching requirements this cache implements, for
/// `must-understand`: the final codes defined by RFC 9110 except 206 and 304.
fn is_understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// Decides whether a response may be stored by a shared cache (RFC 9111 §3).
///
/// Checks, in order: the method is GET; the status is final and neither 206
/// nor 304; the request has no `no-store`; `must-understand` (the status must
/// be understood, and then `no-store` is ignored) or else `no-store`; no
/// unqualified `private`; `Authorization` needs `public`, `s-maxage` or
/// `must-revalidate`; no `Vary: *`; and finally the response has `public`,
/// `max-age`, `s-maxage`, `Expires` (even an invalid one, which means already
/// expired), or a heuristically cacheable status.
///
/// Directives come from [`response_directives`]: a targeted field such as
/// `CDN-Cache-Control` replaces `Cache-Control` and `Expires`.
pub fn storable(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    opts: &Options,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        return Err(NotStorable::PartialContent);
    }
    if status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    if CacheControl::parse(req_headers, &CACHE_CONTROL).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    let d = response_directives(resp_headers, opts);
    let cc = &d.cc;
    if cc.must_understand {
        if !is_understood(status) {
            return Err(NotStorable::MustUnderstand);
        }
    } else if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if req_headers.contains_key(AUTHORIZATION)
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStorable::Authorization);
    }
    if vary_names(resp_headers) == VarySpec::Any {
        return Err(NotStorable::VaryAny);
    }
    let explicit = cc.public
        || cc.max_age.is_some()
        || cc.s_maxage.is_some()
        || (!d.is_targeted() && resp_headers.contains_key(EXPIRES));
    if explicit || is_heuristically_cacheable(status) {
        Ok(())
    } else {
        Err(NotStorable::NotCacheable)
    }
}

/// Removes what a shared cache must not store (RFC 9111 §3.1): the hop-by-hop
/// fields ([`strip_connection_headers`]), `Proxy-Authenticate`,
/// `Proxy-Authentication-Info`, `Proxy-Authorization`, and the fields named by
/// a qualified `no-cache="..."` or `private="..."` (removing them is the
/// simplest way never to send them without revalidation).
///
/// Fields the cache itself relies on are kept even when listed: the governing
/// directive field, `Expires`, `Date`, `Age`, `Vary`, `ETag`,
/// `Last-Modified`, `Content-Length`, `Content-Encoding`.
pub fn remove_unstorable_fields(headers: &mut HeaderMap, opts: &Options) {
    strip_connection_headers(headers);
    for name in [
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
    ] {
        headers.remove(name);
    }
    let d = response_directives(headers, opts);
    let governing = match &d.source {
        DirectiveSource::CacheControl => CACHE_CONTROL,
        DirectiveSource::Targeted(name) => name.clone(),
    };
    let kept = [
        CACHE_CONTROL,
        EXPIRES,
        DATE,
        AGE,
        VARY,
        ETAG,
        LAST_MODIFIED,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
    ];
    for name in d.cc.no_cache_fields.iter().chain(&d.cc.private_fields) {
        if *name != governing && !kept.contains(name) {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::map;

    const FUTURE: &str = "Thu, 18 Aug 2050 02:01:18 GMT";

    #[test]
    fn storable_table() {
        use NotStorable::*;
        type Row = (
            &'static str,
            &'static [(&'static str, &'static str)],
            u16,
            &'static [(&'static str, &'static str)],
            Result<(), NotStorable>,
        );
        let get = "GET";
        let cases: &[Row] = &[
            (get, &[], 200, &[("cache-control", "max-age=3600")], Ok(())),
            (get, &[], 200, &[], Ok(())),
            (
                "HEAD",
                &[],
                200,
                &[("cache-control", "max-age=3600")],
                Err(Method),
            ),
            (
                "POST",
                &[],
                200,
                &[("cache-control", "max-age=3600")],
                Err(Method),
            ),
            (
                get,
                &[],
                206,
                &[("cache-control", "max-age=3600")],
                Err(PartialContent),
            ),
            (
                get,
                &[],
                304,
                &[("cache-control", "max-age=3600")],
                Err(Status),
            ),
            (
                get,
                &[],
                103,
                &[("cache-control", "max-age=3600")],
                Err(Status),
            ),
            (
                get,
                &[],
                200,
                &[
                    ("cache-control", "max-age=10000, no-store"),
                    ("expires", FUTURE),
                ],
                Err(NoStore),
            ),
            (
                get,
                &[],
                200,
                &[("cache-control", "No-StOrE")],
                Err(NoStore),
            ),
            (
                get,
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")],
                Err(RequestNoStore),
            ),
            (
                get,
                &[],
                200,
                &[("cache-control", "private, max-age=3600")],
                Err(Private),
            ),
            (
                get,
                &[],
                200,
                &[("cache-control", "private=\"set-cookie\", max-age=3600")],
                Ok(()),
            ),
            (
                get,
                &[],
                200,
                &[("cache-control", "max-age=10000, no-cache")],
                Ok(()),
            ),
            // must-understand: understood status overrides no-store.
            (
                get,
                &[],
                200,
                &[("cache-control", "must-understand, no-store, max-age=60")],
                Ok(()),
            ),
            (
                get,
                &[],
                299,
                &[("cache-control", "must-understand, no-store, max-age=60")],
                Err(MustUnderstand),
            ),
            // Authorization (cache-tests authorization.mjs).
            (
                get,
                &[("authorization", "FOO")],
                200,
                &[("expires", FUTURE)],
                Err(Authorization),
            ),
            (
                get,
                &[("authorization", "FOO")],
                200,
                &[("cache-control", "max-age=3600, public")],
                Ok(()),
            ),
            (
                get,
                &[("authorization", "FOO")],
                200,
                &[("cache-control", "max-age=3600, must-revalidate")],
                Ok(()),
            ),
            (
                get,
                &[("authorization", "FOO")],
                200,
                &[("cache-control", "s-maxage=3600")],
                Ok(()),
            ),
            (
                get,
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "foo, *")],
                Err(VaryAny),
            ),
            // Status codes (cache-tests status.mjs, heuristic-freshness.mjs).
            (
                get,
                &[],
                599,
                &[("last-modified", FUTURE)],
                Err(NotCacheable),
            ),
            (get, &[], 599, &[("cache-control", "public")], Ok(())),
            (get, &[], 500, &[("cache-control", "max-age=60")], Ok(())),
            (get, &[], 302, &[("expires", "0")], Ok(())),
            (get, &[], 201, &[], Err(NotCacheable)),
            (get, &[], 403, &[], Err(NotCacheable)),
            (get, &[], 503, &[], Err(NotCacheable)),
            (get, &[], 404, &[], Ok(())),
            (get, &[], 410, &[], Ok(())),
            // CDN-Cache-Control replaces Cache-Control (cache-tests cdn-cache-control.mjs).
            (
                get,
                &[],
                200,
                &[
                    ("cache-control", "max-age=10000"),
                    ("cdn-cache-control", "no-store"),
                ],
                Err(NoStore),
            ),
            (
                get,
                &[],
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=10000"),
                ],
                Ok(()),
            ),
            (
                get,
                &[],
                200,
                &[
                    ("cache-control", "max-age=10000"),
                    ("cdn-cache-control", "private"),
                ],
                Err(Private),
            ),
            (
                get,
                &[],
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=10000, &&&&&"),
                ],
                Err(NoStore),
            ),
            (
                get,
                &[],
                500,
                &[("expires", FUTURE), ("cdn-cache-control", "public=?0")],
                Err(NotCacheable),
            ),
        ];
        let opts = Options::default();
        for (method, req, status, resp, want) in cases {
            let got = storable(
                &http::Method::from_bytes(method.as_bytes()).unwrap(),
                &map(req),
                StatusCode::from_u16(*status).unwrap(),
                &map(resp),
                &opts,
            );
            assert_eq!(got, *want, "{method} {req:?} {status} {resp:?}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(NotStorable::NoStore.as_str(), "no-store");
        assert_eq!(NotStorable::Private.to_string(), "private");
    }

    #[test]
    fn targeted_fields_option() {
        let resp = map(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        let d = response_directives(&resp, &Options::default());
        assert_eq!(
            d.source,
            DirectiveSource::Targeted(crate::CDN_CACHE_CONTROL)
        );
        assert_eq!(d.cc.max_age, Some(60));
        let none = Options {
            targeted_fields: vec![],
            ..Options::default()
        };
        let d = response_directives(&resp, &none);
        assert_eq!(
            (d.source, d.cc.max_age),
            (DirectiveSource::CacheControl, Some(1))
        );
        let mine = HeaderName::from_static("lacquer-cache-control");
        let opts = Options {
            targeted_fields: vec![mine.clone(), crate::CDN_CACHE_CONTROL],
            ..Options::default()
        };
        let resp = map(&[
            ("cdn-cache-control", "max-age=60"),
            ("lacquer-cache-control", "max-age=5"),
        ]);
        let d = response_directives(&resp, &opts);
        assert_eq!(
            (d.source, d.cc.max_age),
            (DirectiveSource::Targeted(mine), Some(5))
        );
    }

    #[test]
    fn removes_unstorable_fields() {
        let mut h = map(&[
            (
                "cache-control",
                "no-cache=\"a, b, etag\", private=\"set-cookie\", max-age=3600",
            ),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("etag", "\"v\""),
            ("set-cookie", "a=b"),
        ]);
        remove_unstorable_fields(&mut h, &Options::default());
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["c", "cache-control", "etag"]);
    }
}
