//! `Cache-Control` parsing (RFC 9111 §5.2, RFC 5861, RFC 8246).

use http::{HeaderMap, HeaderName};

/// The largest delta-seconds value kept: 2^31 seconds (RFC 9111 §1.2.2).
/// Larger values, and computations that overflow, saturate to it.
pub const MAX_DELTA_SECONDS: u32 = 1 << 31;

/// The `max-stale` request directive (RFC 9111 §5.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness is acceptable.
    Any,
    /// `max-stale=N`: staleness up to N seconds is acceptable.
    Seconds(u32),
}

/// The directives of a `Cache-Control` field (or of a targeted field such as
/// `CDN-Cache-Control`), request and response directives together.
///
/// Parsing rules ([`CacheControl::parse`]):
/// - all field lines are read in order; directive names are case-insensitive;
///   arguments may be tokens or quoted strings (`max-age="60"` is 60);
/// - a directive given twice keeps its **first** value (RFC 9111 §4.2.1), except
///   flags (set if present anywhere) and field-name lists (merged);
/// - an invalid `max-age` or `s-maxage` (`max-age=abc`, `-1`, `1.5`, `'60'`,
///   `max-age` without a value, `max-age =60`) counts as **0**: the response is
///   stale, as RFC 9111 §4.2.1 encourages, rather than unbounded;
/// - an invalid `min-fresh`, `max-stale=N`, `stale-while-revalidate` or
///   `stale-if-error` is ignored (as if absent);
/// - delta-seconds above 2^31 saturate to [`MAX_DELTA_SECONDS`];
/// - a `,` or a directive name inside a quoted string is never a directive
///   (`ext="max-age=10"` is one unknown directive).
///
/// `Default` is the empty set of directives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store` (request and response).
    pub no_store: bool,
    /// Unqualified `no-cache`: the response must be revalidated before every
    /// reuse (response), or the client wants a validated response (request).
    pub no_cache: bool,
    /// Field names of a qualified `no-cache="a, b"` response directive: those
    /// fields must not be sent from cache without revalidation, so they are not
    /// stored. Empty when absent. Ignored when `no_cache` is set.
    pub no_cache_fields: Vec<HeaderName>,
    /// Unqualified `private`: a shared cache must not store the response.
    pub private: bool,
    /// Field names of a qualified `private="a"`: a shared cache must not store
    /// those fields. Empty when absent.
    pub private_fields: Vec<HeaderName>,
    /// `public`.
    pub public: bool,
    /// `max-age` in seconds (request and response); invalid values are 0.
    pub max_age: Option<u32>,
    /// `s-maxage` in seconds; invalid values are 0.
    pub s_maxage: Option<u32>,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` in seconds (RFC 5861 §3).
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error` in seconds (RFC 5861 §4; request and response).
    pub stale_if_error: Option<u32>,
    /// `no-transform`.
    pub no_transform: bool,
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
    /// `max-stale` (request).
    pub max_stale: Option<MaxStale>,
    /// `min-fresh` in seconds (request).
    pub min_fresh: Option<u32>,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
    /// How many directives were read, known or not. Zero means the field is
    /// absent or holds no directive.
    pub directive_count: u32,
}

/// An argument as it appeared.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// No `=`.
    None,
    /// A token, or the content of a quoted string (escapes left in place).
    Value(&'a [u8]),
    /// Malformed: an empty value, an unterminated quote, junk after the value.
    Bad,
}

impl CacheControl {
    /// Parses every field line of `name` in `headers` (usually
    /// [`http::header::CACHE_CONTROL`]) with the rules above. Allocates only for
    /// qualified `no-cache` / `private` field-name lists.
    pub fn parse(headers: &HeaderMap, name: &HeaderName) -> CacheControl {
        let mut cc = CacheControl::default();
        for line in headers.get_all(name) {
            parse_line(&mut cc, line.as_bytes());
        }
        cc
    }

    /// Parses one field value (as if it were the only line).
    pub fn parse_value(value: &[u8]) -> CacheControl {
        let mut cc = CacheControl::default();
        parse_line(&mut cc, value);
        cc
    }

    /// True when no directive was read.
    pub fn is_empty(&self) -> bool {
        self.directive_count == 0
    }

    /// Records one directive. Shared with the structured-field parser.
    pub(crate) fn apply(&mut self, name: &[u8], arg: Arg<'_>) {
        self.directive_count = self.directive_count.saturating_add(1);
        let is = |d: &str| name.eq_ignore_ascii_case(d.as_bytes());
        if is("max-age") {
            self.max_age.get_or_insert(delta(arg).unwrap_or(0));
        } else if is("s-maxage") {
            self.s_maxage.get_or_insert(delta(arg).unwrap_or(0));
        } else if is("no-store") {
            self.no_store = true;
        } else if is("no-cache") {
            match arg {
                Arg::Value(v) => field_names(v, &mut self.no_cache_fields),
                Arg::None | Arg::Bad => self.no_cache = true,
            }
        } else if is("private") {
            match arg {
                Arg::Value(v) => field_names(v, &mut self.private_fields),
                Arg::None | Arg::Bad => self.private = true,
            }
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("immutable") {
            self.immutable = true;
        } else if is("no-transform") {
            self.no_transform = true;
        } else if is("must-understand") {
            self.must_understand = true;
        } else if is("only-if-cached") {
            self.only_if_cached = true;
        } else if is("stale-while-revalidate") {
            if self.stale_while_revalidate.is_none() {
                self.stale_while_revalidate = delta(arg);
            }
        } else if is("stale-if-error") {
            if self.stale_if_error.is_none() {
                self.stale_if_error = delta(arg);
            }
        } else if is("min-fresh") {
            if self.min_fresh.is_none() {
                self.min_fresh = delta(arg);
            }
        } else if is("max-stale") && self.max_stale.is_none() {
            self.max_stale = match arg {
                Arg::None => Some(MaxStale::Any),
                _ => delta(arg).map(MaxStale::Seconds),
            };
        }
    }
}

/// Parses delta-seconds (`1*DIGIT`), saturating at 2^31.
pub(crate) fn parse_delta(v: &[u8]) -> Option<u32> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in v {
        n = (n * 10 + u64::from(d - b'0')).min(u64::from(MAX_DELTA_SECONDS));
    }
    Some(n as u32)
}

fn delta(arg: Arg<'_>) -> Option<u32> {
    match arg {
        Arg::Value(v) => parse_delta(v),
        Arg::None | Arg::Bad => None,
    }
}

/// Appends the valid field names of a comma-separated list (lower-cased).
fn field_names(v: &[u8], out: &mut Vec<HeaderName>) {
    for item in v.split(|&b| b == b',') {
        let item = trim_ows(item);
        if let Ok(name) = HeaderName::from_bytes(item)
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v
        && is_ows(*first)
    {
        v = rest;
    }
    while let [rest @ .., last] = v
        && is_ows(*last)
    {
        v = rest;
    }
    v
}

/// Index just past a quoted string starting at `s[i] == '"'`, and whether it
/// was terminated.
pub(crate) fn skip_quoted(s: &[u8], mut i: usize) -> (usize, bool) {
    i += 1;
    while i < s.len() {
        match s[i] {
            b'"' => return (i + 1, true),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    (s.len(), false)
}

/// Index of the next `,` at or after `i` outside quoted strings (or the end).
pub(crate) fn skip_element(s: &[u8], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            b',' => return i,
            b'"' => i = skip_quoted(s, i).0,
            _ => i += 1,
        }
    }
    i
}

fn parse_line(cc: &mut CacheControl, s: &[u8]) {
    let n = s.len();
    let mut i = 0;
    loop {
        while i < n && (is_ows(s[i]) || s[i] == b',') {
            i += 1;
        }
        if i >= n {
            return;
        }
        let start = i;
        while i < n && is_tchar(s[i]) {
            i += 1;
        }
        if start == i {
            // Not a directive at all (e.g. a stray quote): skip the element.
            i = skip_element(s, i);
            continue;
        }
        let name = &s[start..i];
        let mut arg = Arg::None;
        if i < n && s[i] == b'=' {
            i += 1;
            if i < n && s[i] == b'"' {
                let (end, closed) = skip_quoted(s, i);
                arg = if closed {
                    Arg::Value(&s[i + 1..end - 1])
                } else {
                    Arg::Bad
                };
                i = end;
            } else {
                let v = i;
                while i < n && is_tchar(s[i]) {
                    i += 1;
                }
                arg = if v == i {
                    Arg::Bad
                } else {
                    Arg::Value(&s[v..i])
                };
            }
        }
        while i < n && is_ows(s[i]) {
            i += 1;
        }
        if i < n && s[i] != b',' {
            // `max-age =60`, `max-age= 60`, `max-age=1 2`: malformed argument.
            arg = Arg::Bad;
            i = skip_element(s, i);
        }
        cc.apply(name, arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CACHE_CONTROL;

    fn parse(lines: &[&str]) -> CacheControl {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_str(l).unwrap());
        }
        CacheControl::parse(&h, &CACHE_CONTROL)
    }

    fn names(list: &[&'static str]) -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    }

    #[test]
    fn max_age_values() {
        // (field lines, expected max-age); cache-tests cc-parse / cc-freshness.
        let cases: &[(&[&str], Option<u32>)] = &[
            (&["max-age=3600"], Some(3600)),
            (&["MaX-aGe=3600"], Some(3600)),
            (&["max-age=003600"], Some(3600)),
            (&["max-age=\"3600\""], Some(3600)),
            (&["foobar, max-age=3600"], Some(3600)),
            (&["max-age=0"], Some(0)),
            (&["max-age=2147483647"], Some(2_147_483_647)),
            (&["max-age=2147483648"], Some(MAX_DELTA_SECONDS)),
            (&["max-age=99999999999"], Some(MAX_DELTA_SECONDS)),
            (
                &["max-age=99999999999999999999999999"],
                Some(MAX_DELTA_SECONDS),
            ),
            // Duplicates: the first occurrence wins, on one line or several.
            (&["max-age=1800, max-age=1"], Some(1800)),
            (&["max-age=1, max-age=1800"], Some(1)),
            (&["max-age=1800", "max-age=1"], Some(1800)),
            (&["max-age=1", "max-age=1800"], Some(1)),
            // Invalid values mean stale (0), not absent.
            (&["max-age=-3600"], Some(0)),
            (&["max-age=a3600"], Some(0)),
            (&["max-age=3600a"], Some(0)),
            (&["max-age=3600.0"], Some(0)),
            (&["max-age=3600.5"], Some(0)),
            (&["max-age='3600'"], Some(0)),
            (&["max-age =3600"], Some(0)),
            (&["max-age= 3600"], Some(0)),
            (&["max-age=1 2"], Some(0)),
            (&["max-age"], Some(0)),
            (&["max-age=\"36"], Some(0)),
            (&["max-age=\"\""], Some(0)),
            // Quoted strings hide directive-looking text.
            (&["extension=\"max-age=3600\", max-age=1"], Some(1)),
            (&["max-age=1, extension=\"max-age=3600\""], Some(1)),
            (&["extension=\"max-age=100\", max-age=\"1\""], Some(1)),
            (&["extension=\"a, \\\"max-age=100\", max-age=2"], Some(2)),
            (&["extension=\"max-age=100"], None),
            (&["no-cache"], None),
            (&[""], None),
            (&[", ,"], None),
        ];
        for (lines, want) in cases {
            assert_eq!(parse(lines).max_age, *want, "{lines:?}");
        }
    }

    #[test]
    fn response_directives() {
        let cc = parse(&[
            "No-StOrE, no-cache, private, public, s-maxage=60",
            "must-revalidate, proxy-revalidate, immutable, no-transform, must-understand",
            "stale-while-revalidate=30, stale-if-error=\"600\"",
        ]);
        let want = CacheControl {
            no_store: true,
            no_cache: true,
            private: true,
            public: true,
            s_maxage: Some(60),
            must_revalidate: true,
            proxy_revalidate: true,
            immutable: true,
            no_transform: true,
            must_understand: true,
            stale_while_revalidate: Some(30),
            stale_if_error: Some(600),
            directive_count: 12,
            ..Default::default()
        };
        assert_eq!(cc, want);
    }

    #[test]
    fn qualified_field_lists() {
        // (lines, no_cache, no_cache_fields, private, private_fields)
        type Names = &'static [&'static str];
        let cases: &[(Names, bool, Names, bool, Names)] = &[
            (&["no-cache=\"a\""], false, &["a"], false, &[]),
            (
                &["no-cache=\"A, b\", max-age=3600"],
                false,
                &["a", "b"],
                false,
                &[],
            ),
            (&["no-cache=a"], false, &["a"], false, &[]),
            (
                &["no-cache=\"a\"", "no-cache=\"b, a\""],
                false,
                &["a", "b"],
                false,
                &[],
            ),
            (&["no-cache=\"a\", no-cache"], true, &["a"], false, &[]),
            (&["no-cache=\"\""], false, &[], false, &[]),
            (&["no-cache =x"], true, &[], false, &[]),
            (
                &["private=\"set-cookie\""],
                false,
                &[],
                false,
                &["set-cookie"],
            ),
            (&["private"], false, &[], true, &[]),
            (&["private=\"x y, z\""], false, &[], false, &["z"]),
        ];
        for (lines, nc, ncf, p, pf) in cases {
            let cc = parse(lines);
            assert_eq!(cc.no_cache, *nc, "{lines:?}");
            assert_eq!(cc.no_cache_fields, names(ncf), "{lines:?}");
            assert_eq!(cc.private, *p, "{lines:?}");
            assert_eq!(cc.private_fields, names(pf), "{lines:?}");
        }
    }

    #[test]
    fn request_directives() {
        // (line, max_stale, min_fresh, stale_if_error, only_if_cached, no_cache, max_age)
        type Row = (
            &'static str,
            Option<MaxStale>,
            Option<u32>,
            Option<u32>,
            bool,
            bool,
            Option<u32>,
        );
        let cases: &[Row] = &[
            (
                "max-stale",
                Some(MaxStale::Any),
                None,
                None,
                false,
                false,
                None,
            ),
            (
                "max-stale=1000",
                Some(MaxStale::Seconds(1000)),
                None,
                None,
                false,
                false,
                None,
            ),
            ("max-stale=abc", None, None, None, false, false, None),
            ("min-fresh=2000", None, Some(2000), None, false, false, None),
            (
                "min-fresh=x, min-fresh=5",
                None,
                Some(5),
                None,
                false,
                false,
                None,
            ),
            ("stale-if-error=1", None, None, Some(1), false, false, None),
            ("stale-if-error=-1", None, None, None, false, false, None),
            ("only-if-cached", None, None, None, true, false, None),
            ("no-cache", None, None, None, false, true, None),
            ("max-age=0", None, None, None, false, false, Some(0)),
        ];
        for (line, ms, mf, sie, oic, nc, ma) in cases {
            let cc = parse(&[line]);
            assert_eq!(
                (
                    cc.max_stale,
                    cc.min_fresh,
                    cc.stale_if_error,
                    cc.only_if_cached,
                    cc.no_cache,
                    cc.max_age
                ),
                (*ms, *mf, *sie, *oic, *nc, *ma),
                "{line:?}"
            );
        }
    }

    #[test]
    fn counts_directives() {
        assert!(parse(&[]).is_empty());
        assert!(parse(&["", " , "]).is_empty());
        assert_eq!(parse(&["foo, bar=\"x,y\", baz"]).directive_count, 3);
        assert_eq!(parse(&["\"junk\", max-age=5"]).max_age, Some(5));
    }
}
