//! Invalidation after unsafe requests (RFC 9111 §4.4), with reference
//! resolution (RFC 3986 §5.2).

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, StatusCode, Uri};

/// The URIs whose stored responses must be invalidated after a response to
/// `method` on `request_uri` (RFC 9111 §4.4).
///
/// Only for an unsafe method (anything but GET, HEAD, OPTIONS and TRACE,
/// including unknown methods) and a non-error status (2xx or 3xx); otherwise
/// empty. The targets are the request URI itself, then the `Location` and
/// `Content-Location` references resolved against it, kept only when they
/// have the same origin (scheme, host and port, default ports and host case
/// normalised). A reference that is absolute while `request_uri` has no scheme
/// and authority cannot be checked and is skipped.
///
/// Each target is returned as a path and query (`/a/b?c`), without fragment,
/// dot segments resolved: all targets share the request's origin. Duplicates
/// are removed.
pub fn invalidation_targets(
    method: &Method,
    status: StatusCode,
    request_uri: &Uri,
    resp_headers: &HeaderMap,
) -> Vec<String> {
    if method.is_safe() || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let base_path = match request_uri.path() {
        "" => "/",
        p => p,
    };
    let base = Parts {
        scheme: request_uri.scheme_str(),
        authority: request_uri.authority().map(|a| a.as_str()),
        path: base_path,
        query: request_uri.query(),
    };
    let mut out = vec![join(&remove_dot_segments(base.path), base.query)];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(reference) = resp_headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(target) = resolve(&base, reference.trim())
            && !out.contains(&target)
        {
            out.push(target);
        }
    }
    out
}

/// Components of a URI reference (RFC 3986 §3), fragment dropped.
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

fn split(reference: &str) -> Parts<'_> {
    let r = reference.split('#').next().unwrap_or("");
    let (r, query) = match r.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (r, None),
    };
    let colon = r.find(':');
    let scheme = colon
        .filter(|&i| {
            let s = &r[..i];
            !s.is_empty()
                && !s.contains('/')
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .map(|i| &r[..i]);
    let r = scheme.map_or(r, |s| &r[s.len() + 1..]);
    let (authority, path) = match r.strip_prefix("//") {
        Some(rest) => {
            let end = rest.find('/').unwrap_or(rest.len());
            (Some(&rest[..end]), &rest[end..])
        }
        None => (None, r),
    };
    Parts {
        scheme,
        authority,
        path,
        query,
    }
}

/// Resolves `reference` against `base` (RFC 3986 §5.2.2) and returns its path
/// and query when it has the same origin as `base`.
fn resolve(base: &Parts<'_>, reference: &str) -> Option<String> {
    let r = split(reference);
    if let Some(scheme) = r.scheme
        && !base.scheme?.eq_ignore_ascii_case(scheme)
    {
        return None;
    }
    if let Some(authority) = r.authority {
        let scheme = r.scheme.or(base.scheme)?;
        if origin_authority(scheme, authority) != origin_authority(scheme, base.authority?) {
            return None;
        }
        let path = if r.path.is_empty() { "/" } else { r.path };
        return Some(join(&remove_dot_segments(path), r.query));
    }
    // A reference with the base's scheme and no authority (`http:/d`,
    // `http:foo`) resolves like the same reference without the scheme
    // (RFC 3986 §5.2.2, non-strict).
    if r.path.is_empty() {
        return Some(join(
            &remove_dot_segments(base.path),
            r.query.or(base.query),
        ));
    }
    let path = if r.path.starts_with('/') {
        r.path.to_string()
    } else {
        merge(base.path, r.path)
    };
    Some(join(&remove_dot_segments(&path), r.query))
}

/// Host in lower case, userinfo dropped, default port removed.
fn origin_authority(scheme: &str, authority: &str) -> String {
    let hostport = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_ascii_lowercase();
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    match hostport.strip_suffix(default) {
        Some(host) => host.to_string(),
        None => hostport.strip_suffix(':').unwrap_or(&hostport).to_string(),
    }
}

fn merge(base_path: &str, reference: &str) -> String {
    let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
    format!("{dir}{reference}")
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    fn pop_segment(out: &mut String) {
        let cut = out.rfind('/').unwrap_or(0);
        out.truncate(cut);
    }
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop_segment(&mut out);
        } else if input == "/.." {
            input = "/";
            pop_segment(&mut out);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |i| i + from);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

fn join(path: &str, query: Option<&str>) -> String {
    let path = if path.is_empty() { "/" } else { path };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::map;

    #[test]
    fn invalidation_table() {
        let base = "http://example.com/a/b/c?q=1";
        // (method, status, request URI, response headers, targets)
        type Row = (
            &'static str,
            u16,
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: &[Row] = &[
            ("POST", 200, base, &[], &["/a/b/c?q=1"]),
            ("PUT", 201, base, &[], &["/a/b/c?q=1"]),
            ("DELETE", 204, base, &[], &["/a/b/c?q=1"]),
            ("M-SEARCH", 200, base, &[], &["/a/b/c?q=1"]),
            ("PATCH", 303, base, &[], &["/a/b/c?q=1"]),
            ("GET", 200, base, &[("location", "/x")], &[]),
            ("HEAD", 200, base, &[], &[]),
            ("OPTIONS", 200, base, &[], &[]),
            ("TRACE", 200, base, &[], &[]),
            ("POST", 500, base, &[], &[]),
            ("POST", 404, base, &[], &[]),
            ("POST", 100, base, &[], &[]),
            // The base's scheme without an authority resolves as if absent
            // (found by fuzzing: `http:/d` used to join onto the directory).
            (
                "POST",
                200,
                base,
                &[("location", "http:/d")],
                &["/a/b/c?q=1", "/d"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http:/cc/../d")],
                &["/a/b/c?q=1", "/d"],
            ),
            (
                "POST",
                200,
                base,
                &[("content-location", "http:")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http:x")],
                &["/a/b/c?q=1", "/a/b/x"],
            ),
            // Location / Content-Location (cache-tests invalidation.mjs).
            (
                "POST",
                200,
                base,
                &[
                    ("location", "location_target"),
                    ("content-location", "content_location_target"),
                ],
                &[
                    "/a/b/c?q=1",
                    "/a/b/location_target",
                    "/a/b/content_location_target",
                ],
            ),
            (
                "POST",
                200,
                base,
                &[("content-location", "")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("content-location", "?x")],
                &["/a/b/c?q=1", "/a/b/c?x"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "/p?x#frag")],
                &["/a/b/c?q=1", "/p?x"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "../d")],
                &["/a/b/c?q=1", "/a/d"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "../../../../d")],
                &["/a/b/c?q=1", "/d"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "./")],
                &["/a/b/c?q=1", "/a/b/"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "/x/./y/../z")],
                &["/a/b/c?q=1", "/x/z"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http://EXAMPLE.com:80/abs")],
                &["/a/b/c?q=1", "/abs"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "//example.com/net")],
                &["/a/b/c?q=1", "/net"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http://example.com")],
                &["/a/b/c?q=1", "/"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "https://example.com/abs")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http://other.example/abs")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "http://example.com:8080/abs")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "//other.example/net")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                base,
                &[("location", "/a/b/c?q=1")],
                &["/a/b/c?q=1"],
            ),
            (
                "POST",
                200,
                "https://example.com:443/",
                &[("location", "https://example.com/z")],
                &["/", "/z"],
            ),
            (
                "POST",
                200,
                "/rel/path",
                &[
                    ("location", "x"),
                    ("content-location", "http://example.com/y"),
                ],
                &["/rel/path", "/rel/x"],
            ),
        ];
        for (method, status, uri, resp, want) in cases {
            let got = invalidation_targets(
                &Method::from_bytes(method.as_bytes()).unwrap(),
                StatusCode::from_u16(*status).unwrap(),
                &uri.parse().unwrap(),
                &map(resp),
            );
            assert_eq!(got, *want, "{method} {status} {uri} {resp:?}");
        }
    }

    #[test]
    fn dot_segments() {
        // RFC 3986 §5.4 examples (paths only).
        let cases = [
            ("/a/b/c/./../../g", "/a/g"),
            ("mid/content=5/../6", "mid/6"),
            ("/a/b/c/../..", "/a/"),
            ("/a/b/c/.", "/a/b/c/"),
            ("/a/b/", "/a/b/"),
            ("/", "/"),
            ("/..", "/"),
            ("/a//b", "/a//b"),
        ];
        for (input, want) in cases {
            assert_eq!(remove_dot_segments(input), want, "{input}");
        }
    }
}
