//! Content codings a cache applies itself (RFC 9110 §8.4, §12.5.3): whether
//! a client accepts gzip, the entity tag of the gzip representation, and
//! `Vary: Accept-Encoding` on what the client sees.

use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_RANGE, VARY};
use http::{HeaderMap, HeaderValue};

use crate::cache_control::trim_ows;
use crate::conditional::EntityTag;

/// Whether a request's `Accept-Encoding` (all lines) accepts `gzip`
/// (RFC 9110 §12.5.3): `gzip` or `x-gzip` with a qvalue above zero, or
/// else `*` with one. An explicit `gzip;q=0` refuses it even when `*`
/// accepts everything.
///
/// A request without the field gets `false`: the RFC lets a cache send any
/// coding then, but clients that send no `Accept-Encoding` (scripts, old
/// tools) are safest with the identity coding. An invalid qvalue makes its
/// member count as refused.
pub fn accepts_gzip(req: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for line in req.get_all(ACCEPT_ENCODING) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let mut parts = member.split(|&b| b == b';');
            let coding = trim_ows(parts.next().unwrap_or_default());
            let mut q = Some(1000);
            for p in parts {
                let p = trim_ows(p);
                if let [b'q' | b'Q', rest @ ..] = p
                    && let [b'=', value @ ..] = trim_ows(rest)
                {
                    q = qvalue(trim_ows(value));
                }
            }
            let accepted = q.is_some_and(|q| q > 0);
            if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                // The highest qvalue given to gzip wins if it is named twice.
                gzip = Some(gzip.unwrap_or(false) || accepted);
            } else if coding == b"*" {
                any = Some(any.unwrap_or(false) || accepted);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in
/// thousandths; `None` when invalid.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a cache may store a response gzip-compressed instead of as
/// sent: it has no `Content-Encoding` (any coding, even an unknown one, is
/// kept as is: never compressed twice), no `Content-Range`, and no
/// `Cache-Control: no-transform` (RFC 9110 §7.7). The media type and size
/// are the caller's policy.
pub fn may_compress(resp: &HeaderMap) -> bool {
    !resp.contains_key(CONTENT_ENCODING)
        && !resp.contains_key(CONTENT_RANGE)
        && !resp.get_all(CACHE_CONTROL).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|d| trim_ows(d).eq_ignore_ascii_case(b"no-transform"))
        })
}

/// The entity tag of a representation the cache coded itself with
/// `coding`, from the origin's tag of the identity representation: the
/// coding is appended to the opaque tag, weakness kept (`"abc"` becomes
/// `"abc-gzip"`, `W/"abc"` becomes `W/"abc-gzip"`). Distinct from the
/// original, so a strong validator still names one sequence of bytes
/// (RFC 9110 §8.8.3). `None` for a
/// tag that does not parse as quoted (the coded representation then has
/// no `ETag`).
pub fn coded_etag(etag: &HeaderValue, coding: &str) -> Option<HeaderValue> {
    let v = trim_ows(etag.as_bytes());
    let rest = v.strip_prefix(b"W/").unwrap_or(v);
    if !(rest.len() >= 2 && rest.starts_with(b"\"") && rest.ends_with(b"\"")) {
        return None;
    }
    let tag = EntityTag::parse(v);
    let weak = if tag.weak { "W/" } else { "" };
    let opaque = std::str::from_utf8(tag.opaque).ok()?;
    HeaderValue::from_str(&format!("{weak}\"{opaque}-{coding}\"")).ok()
}

/// Make sure `Vary` names `Accept-Encoding` (RFC 9110 §12.5.5): the
/// response depends on it once the cache chooses the coding. Left alone
/// when it already does or is `*`.
pub fn vary_accept_encoding(headers: &mut HeaderMap) {
    let named = headers.get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|n| {
            let n = trim_ows(n);
            n == b"*" || n.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !named {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Fields, map};

    #[test]
    fn accepts_gzip_table() {
        let cases: &[(Fields, bool)] = &[
            (&[], false),
            (&[("accept-encoding", "gzip")], true),
            (&[("accept-encoding", "GZIP")], true),
            (&[("accept-encoding", "x-gzip")], true),
            (&[("accept-encoding", "gzip, deflate, br")], true),
            (&[("accept-encoding", "br;q=1.0, gzip;q=0.5")], true),
            (&[("accept-encoding", "gzip;q=0.001")], true),
            (&[("accept-encoding", "gzip ; q = 0.8")], true),
            (&[("accept-encoding", "gzip;q=0")], false),
            (&[("accept-encoding", "gzip;q=0.000")], false),
            (&[("accept-encoding", "gzip;Q=0")], false),
            (&[("accept-encoding", "gzip;q=1.5")], false),
            (&[("accept-encoding", "gzip;q=0.0001")], false),
            (&[("accept-encoding", "gzip;q=abc")], false),
            (&[("accept-encoding", "identity")], false),
            (&[("accept-encoding", "br")], false),
            (&[("accept-encoding", "")], false),
            (&[("accept-encoding", "*")], true),
            (&[("accept-encoding", "*;q=0")], false),
            (&[("accept-encoding", "*, gzip;q=0")], false),
            (&[("accept-encoding", "gzip;q=0, *")], false),
            (&[("accept-encoding", "gzip;q=0, gzip")], true),
            (
                &[("accept-encoding", "br"), ("accept-encoding", "gzip")],
                true,
            ),
            (&[("accept-encoding", "gzipx, xgzip")], false),
        ];
        for (req, want) in cases {
            assert_eq!(accepts_gzip(&map(req)), *want, "{req:?}");
        }
    }

    #[test]
    fn may_compress_table() {
        let cases: &[(Fields, bool)] = &[
            (&[], true),
            (&[("cache-control", "max-age=60")], true),
            (&[("content-encoding", "gzip")], false),
            (&[("content-encoding", "identity")], false),
            (&[("content-encoding", "zstd")], false),
            (&[("cache-control", "max-age=60, No-Transform")], false),
            (&[("content-range", "bytes 0-1/10")], false),
        ];
        for (resp, want) in cases {
            assert_eq!(may_compress(&map(resp)), *want, "{resp:?}");
        }
    }

    #[test]
    fn coded_etags_keep_weakness_and_differ() {
        let cases = [
            ("\"abc\"", Some("\"abc-gzip\"")),
            ("W/\"abc\"", Some("W/\"abc-gzip\"")),
            ("\"\"", Some("\"-gzip\"")),
            ("abc", None),
            ("\"abc", None),
        ];
        for (tag, want) in cases {
            let got = coded_etag(&HeaderValue::from_static(tag), "gzip");
            assert_eq!(got.as_ref().map(|v| v.to_str().unwrap()), want, "{tag}");
        }
    }

    #[test]
    fn vary_names_accept_encoding_once() {
        let cases: &[(Fields, &[&str])] = &[
            (&[], &["Accept-Encoding"]),
            (&[("vary", "Origin")], &["Origin", "Accept-Encoding"]),
            (
                &[("vary", "origin, accept-encoding")],
                &["origin, accept-encoding"],
            ),
            (&[("vary", "*")], &["*"]),
        ];
        for (resp, want) in cases {
            let mut h = map(resp);
            vary_accept_encoding(&mut h);
            let got: Vec<_> = h
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, *want, "{resp:?}");
        }
    }
}
