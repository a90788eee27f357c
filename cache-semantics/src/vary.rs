//! Secondary cache keys from `Vary` (RFC 9111 §4.1, RFC 9110 §12.5.5).

use http::header::{ACCEPT_CHARSET, ACCEPT_ENCODING, ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName};

use crate::cache_control::{skip_element, trim_ows};

/// The request fields a response varies on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarySpec {
    /// No `Vary` (or only empty members): one variant for every request.
    None,
    /// `Vary: *` anywhere (or a member that is not a field name): the response
    /// never matches a later request.
    Any,
    /// The selecting field names: lower-case, sorted, without duplicates.
    Names(Vec<HeaderName>),
}

/// Reads every `Vary` line of a response. Members are trimmed, empty members
/// skipped (`Vary: , Foo` is `foo`), names lower-cased, sorted and
/// de-duplicated, so equivalent `Vary` fields give equal specs.
pub fn vary_names(resp_headers: &HeaderMap) -> VarySpec {
    let mut names: Vec<HeaderName> = Vec::new();
    for line in resp_headers.get_all(VARY) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            match HeaderName::from_bytes(member) {
                Ok(name) if member != b"*" => names.push(name),
                _ => return VarySpec::Any,
            }
        }
    }
    if names.is_empty() {
        return VarySpec::None;
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    VarySpec::Names(names)
}

/// Builds the secondary key of a request for the selecting fields `names`
/// (from [`vary_names`]); two requests select the same variant iff their keys
/// are equal. Hash it as the host likes.
///
/// Normalisation, all of it allowed by RFC 9111 §4.1:
/// - all lines of a field are combined, as if joined with commas;
/// - each comma-separated member (commas inside quoted strings do not split)
///   is trimmed of surrounding whitespace, empty members are dropped, and the
///   members are joined with `,`; so `1,2`, ` 1, 2 ` and two lines `1` / `2`
///   are equal;
/// - `Accept-Encoding`, `Accept-Language` and `Accept-Charset` values are
///   lower-cased (they are case-insensitive);
/// - an absent field differs from an empty one;
/// - members are never reordered (their order can carry preference).
pub fn vary_key(names: &[HeaderName], req_headers: &HeaderMap) -> Vec<u8> {
    let mut key = Vec::with_capacity(names.len() * 32);
    for name in names {
        key.extend_from_slice(name.as_str().as_bytes());
        key.push(0);
        let mut values = req_headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            key.push(b'-');
        } else {
            key.push(b'=');
            let lower =
                *name == ACCEPT_ENCODING || *name == ACCEPT_LANGUAGE || *name == ACCEPT_CHARSET;
            let mut first = true;
            for line in values {
                let s = line.as_bytes();
                let mut i = 0;
                while i < s.len() {
                    let end = skip_element(s, i);
                    let member = trim_ows(&s[i..end]);
                    i = end + 1;
                    if member.is_empty() {
                        continue;
                    }
                    if !first {
                        key.push(b',');
                    }
                    first = false;
                    if lower {
                        key.extend(member.iter().map(u8::to_ascii_lowercase));
                    } else {
                        key.extend_from_slice(member);
                    }
                }
            }
        }
        key.push(b'\n');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(name: &str, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(l).unwrap(),
            );
        }
        h
    }

    fn names(list: &[&'static str]) -> VarySpec {
        VarySpec::Names(list.iter().map(|n| HeaderName::from_static(n)).collect())
    }

    #[test]
    fn vary_names_table() {
        // cache-tests vary-parse.mjs.
        let cases: &[(&[&str], VarySpec)] = &[
            (&[], VarySpec::None),
            (&[""], VarySpec::None),
            (&[" , "], VarySpec::None),
            (&["*"], VarySpec::Any),
            (&["*, *"], VarySpec::Any),
            (&["*", "*"], VarySpec::Any),
            (&[", *"], VarySpec::Any),
            (&["", "*"], VarySpec::Any),
            (&["*, Foo"], VarySpec::Any),
            (&["Foo, *"], VarySpec::Any),
            (&["Foo", "*"], VarySpec::Any),
            (&["Fo o"], VarySpec::Any),
            (&["Foo"], names(&["foo"])),
            (&["Foo, Bar, Baz"], names(&["bar", "baz", "foo"])),
            (&["Foo,Bar", "baz, FOO"], names(&["bar", "baz", "foo"])),
            (&["Accept-Encoding"], names(&["accept-encoding"])),
        ];
        for (lines, want) in cases {
            assert_eq!(vary_names(&map("vary", lines)), *want, "{lines:?}");
        }
    }

    fn key(name: &'static str, lines: &[&str]) -> Vec<u8> {
        vary_key(&[HeaderName::from_static(name)], &map(name, lines))
    }

    #[test]
    fn key_equivalence() {
        // (field, first request lines, second request lines, same variant?)
        let cases: &[(&'static str, &[&str], &[&str], bool)] = &[
            ("foo", &["1"], &["1"], true),
            ("foo", &["1"], &["2"], false),
            ("foo", &["1"], &[], false),
            ("foo", &[], &[], true),
            ("foo", &[""], &[], false),
            ("foo", &["1,2"], &[" 1, 2 "], true),
            ("foo", &["1, 2"], &["1", "2"], true),
            ("foo", &["1, 2"], &["2, 1"], false),
            ("foo", &["1,,2"], &["1, 2"], true),
            ("foo", &["\"a, b\""], &["\"a,b\""], false),
            ("foo", &["a b"], &["a  b"], false),
            ("foo", &["Abc"], &["abc"], false),
            ("accept-language", &["en, de"], &["eN, De"], true),
            ("accept-language", &["en, de"], &[" en ,   de"], true),
            ("accept-language", &["en, de"], &["de, en"], false),
            ("accept-encoding", &["GZIP, br"], &["gzip,br"], true),
        ];
        for (name, a, b, same) in cases {
            assert_eq!(
                key(name, a) == key(name, b),
                *same,
                "{name}: {a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn multi_field_keys() {
        let n = [
            HeaderName::from_static("bar"),
            HeaderName::from_static("foo"),
        ];
        let mut a = map("foo", &["1"]);
        a.insert("bar", HeaderValue::from_static("abc"));
        let mut b = map("foo", &["1"]);
        b.insert("bar", HeaderValue::from_static("abc"));
        b.insert("other", HeaderValue::from_static("3"));
        assert_eq!(vary_key(&n, &a), vary_key(&n, &b));
        b.insert("bar", HeaderValue::from_static("abcde"));
        assert_ne!(vary_key(&n, &a), vary_key(&n, &b));
        // A value cannot be confused with the next field.
        let mut c = HeaderMap::new();
        c.insert("bar", HeaderValue::from_static("x"));
        let mut d = HeaderMap::new();
        d.insert("foo", HeaderValue::from_static("x"));
        assert_ne!(vary_key(&n, &c), vary_key(&n, &d));
        assert!(vary_key(&[], &a).is_empty());
    }
}
