//! Targeted cache-control fields such as `CDN-Cache-Control` (RFC 9213 §2.1):
//! Structured Field Dictionaries (RFC 8941 §3.2, §4.2.2).
//!
//! Members map to cache directives: a bare key is a flag, an Integer is
//! delta-seconds, a String (or Token) is a field-name list for `no-cache` /
//! `private`. Values of the wrong type (`max-age="60"`, `max-age=-1`,
//! `max-age=1.5`) are not consumed: the directive is ignored (RFC 9213 §2.1),
//! but the field still counts. Parameters are ignored. A field that does not
//! parse as a Dictionary is ignored as a whole.
//!
//! Deliberate leniency: keys are matched case-insensitively (RFC 8941 only
//! allows lower case), so `MaX-AgE=60` is read as `max-age=60`.

use http::{HeaderMap, HeaderName};

use crate::cache_control::{Arg, CacheControl, MAX_DELTA_SECONDS};

/// A parsed bare item; only the types a directive can use keep their value.
enum Item<'a> {
    Integer(i64),
    String(&'a [u8]),
    Token(&'a [u8]),
    True,
    Other,
}

impl CacheControl {
    /// Parses a targeted field (e.g. `CDN-Cache-Control`) as a Structured Field
    /// Dictionary. Returns `None` when the field is absent, empty, or invalid,
    /// in which case RFC 9213 says the cache behaves as if it were absent.
    pub fn parse_targeted(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
        let mut cc = CacheControl::default();
        for line in headers.get_all(name) {
            if line.as_bytes().trim_ascii().is_empty() {
                continue;
            }
            parse_dictionary(&mut cc, line.as_bytes())?;
        }
        (!cc.is_empty()).then_some(cc)
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    fn take(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        self.skip(f);
        &self.s[start..self.i]
    }
}

fn parse_dictionary(cc: &mut CacheControl, s: &[u8]) -> Option<()> {
    let mut c = Cursor { s, i: 0 };
    c.skip(|b| b == b' ');
    loop {
        let key = key(&mut c)?;
        let item = if c.eat(b'=') {
            if c.peek() == Some(b'(') {
                inner_list(&mut c)?;
                Item::Other
            } else {
                let item = bare_item(&mut c)?;
                parameters(&mut c)?;
                item
            }
        } else {
            parameters(&mut c)?;
            Item::True
        };
        apply(cc, key, item);
        c.skip(|b| b == b' ' || b == b'\t');
        if c.peek().is_none() {
            return Some(());
        }
        if !c.eat(b',') {
            return None;
        }
        c.skip(|b| b == b' ' || b == b'\t');
        c.peek()?; // a trailing comma is an error
    }
}

fn apply(cc: &mut CacheControl, key: &[u8], item: Item<'_>) {
    let numeric = key.eq_ignore_ascii_case(b"max-age")
        || key.eq_ignore_ascii_case(b"s-maxage")
        || key.eq_ignore_ascii_case(b"stale-while-revalidate")
        || key.eq_ignore_ascii_case(b"stale-if-error");
    let mut digits = [0u8; 20];
    let arg = match item {
        Item::Integer(n) if numeric && n >= 0 => {
            let n = n.min(i64::from(MAX_DELTA_SECONDS));
            Arg::Value(format_u64(n.unsigned_abs(), &mut digits))
        }
        Item::True if !numeric => Arg::None,
        Item::String(v) | Item::Token(v) if !numeric => Arg::Value(v),
        // Wrong type for this directive: not consumed, but the field counts.
        _ if is_known(key) => {
            cc.directive_count = cc.directive_count.saturating_add(1);
            return;
        }
        _ => Arg::Bad,
    };
    cc.apply(key, arg);
}

fn is_known(key: &[u8]) -> bool {
    const KNOWN: [&str; 15] = [
        "max-age",
        "s-maxage",
        "stale-while-revalidate",
        "stale-if-error",
        "no-store",
        "no-cache",
        "private",
        "public",
        "must-revalidate",
        "proxy-revalidate",
        "immutable",
        "no-transform",
        "must-understand",
        "only-if-cached",
        "max-stale",
    ];
    KNOWN.iter().any(|k| key.eq_ignore_ascii_case(k.as_bytes()))
}

fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn key<'a>(c: &mut Cursor<'a>) -> Option<&'a [u8]> {
    let first = c.peek()?;
    if !(first.is_ascii_alphabetic() || first == b'*') {
        return None;
    }
    Some(c.take(|b| b.is_ascii_alphanumeric() || b"_-.*".contains(&b)))
}

fn parameters(c: &mut Cursor<'_>) -> Option<()> {
    while c.eat(b';') {
        c.skip(|b| b == b' ');
        key(c)?;
        if c.eat(b'=') {
            bare_item(c)?;
        }
    }
    Some(())
}

fn inner_list(c: &mut Cursor<'_>) -> Option<()> {
    c.eat(b'(');
    loop {
        c.skip(|b| b == b' ');
        if c.eat(b')') {
            return parameters(c);
        }
        bare_item(c)?;
        parameters(c)?;
        if !matches!(c.peek(), Some(b' ' | b')')) {
            return None;
        }
    }
}

fn bare_item<'a>(c: &mut Cursor<'a>) -> Option<Item<'a>> {
    match c.peek()? {
        b'-' | b'0'..=b'9' => number(c),
        b'"' => string(c),
        b'*' | b'A'..=b'Z' | b'a'..=b'z' => {
            Some(Item::Token(c.take(|b| {
                crate::cache_control::is_tchar(b) || b == b':' || b == b'/'
            })))
        }
        b':' => {
            c.eat(b':');
            c.take(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
            c.eat(b':').then_some(Item::Other)
        }
        b'?' => {
            c.eat(b'?');
            if c.eat(b'1') {
                Some(Item::True)
            } else {
                c.eat(b'0').then_some(Item::Other)
            }
        }
        _ => None,
    }
}

fn number<'a>(c: &mut Cursor<'a>) -> Option<Item<'a>> {
    let negative = c.eat(b'-');
    let int = c.take(|b| b.is_ascii_digit());
    if int.is_empty() {
        return None;
    }
    if c.eat(b'.') {
        let frac = c.take(|b| b.is_ascii_digit());
        return (int.len() <= 12 && (1..=3).contains(&frac.len())).then_some(Item::Other);
    }
    if int.len() > 15 {
        return None;
    }
    let n = int.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(Item::Integer(if negative { -n } else { n }))
}

fn string<'a>(c: &mut Cursor<'a>) -> Option<Item<'a>> {
    c.eat(b'"');
    let start = c.i;
    loop {
        match c.peek()? {
            b'"' => {
                let v = &c.s[start..c.i];
                c.i += 1;
                return Some(Item::String(v));
            }
            b'\\' => {
                c.i += 1;
                if !matches!(c.peek()?, b'"' | b'\\') {
                    return None;
                }
                c.i += 1;
            }
            0x20..=0x7e => c.i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const CDN: HeaderName = HeaderName::from_static("cdn-cache-control");

    fn parse(lines: &[&str]) -> Option<CacheControl> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CDN, HeaderValue::from_str(l).unwrap());
        }
        CacheControl::parse_targeted(&h, &CDN)
    }

    #[test]
    fn validity_and_max_age() {
        // (lines, None = field ignored, Some(max_age))
        let cases: &[(&[&str], Option<Option<u32>>)] = &[
            (&[], None),
            (&[""], None),
            (&["  "], None),
            (&["max-age=3600"], Some(Some(3600))),
            (&[" max-age=3600 "], Some(Some(3600))),
            (&["max-age=0"], Some(Some(0))),
            (&["max-age=2147483648"], Some(Some(MAX_DELTA_SECONDS))),
            (&["max-age=99999999999"], Some(Some(MAX_DELTA_SECONDS))),
            (&["foobar, max-age=3600"], Some(Some(3600))),
            (&["MaX-aGe=3600"], Some(Some(3600))),
            (&["max-age=60;foo=bar, public"], Some(Some(60))),
            (&["max-age=1", "max-age=2"], Some(Some(1))),
            // Wrong types: the directive is ignored, the field still counts.
            (&["max-age=\"10000\""], Some(None)),
            (&["max-age=-1"], Some(None)),
            (&["max-age=1.5"], Some(None)),
            (&["max-age"], Some(None)),
            (&["max-age=abc"], Some(None)),
            (&["x=(a b), y=:AQID:, z=?1"], Some(None)),
            // Not a Dictionary: the whole field is ignored.
            (&["max-age=10000, &&&&&"], None),
            (&["max-age =100"], None),
            (&["max-age= 100"], None),
            (&["max-age=100,"], None),
            (&[",max-age=100"], None),
            (&["max-age=1234567890123456"], None),
            (&["max-age=\"unterminated"], None),
            (&["max-age=3600", "&"], None),
            (&["a=(1 2"], None),
            (&["a=?2"], None),
        ];
        for (lines, want) in cases {
            assert_eq!(parse(lines).map(|cc| cc.max_age), *want, "{lines:?}");
        }
    }

    #[test]
    fn directives() {
        let cc =
            parse(&["no-store, private, no-cache=\"a, b\", s-maxage=5, stale-if-error=9"]).unwrap();
        assert!(cc.no_store && cc.private && !cc.no_cache);
        assert_eq!(
            cc.no_cache_fields,
            vec![HeaderName::from_static("a"), HeaderName::from_static("b")]
        );
        assert_eq!((cc.s_maxage, cc.stale_if_error), (Some(5), Some(9)));
        let cc = parse(&["no-cache=?1, must-revalidate=?0"]).unwrap();
        assert!(cc.no_cache, "?1 is the flag");
        assert!(!cc.must_revalidate, "a false boolean is not the flag");
        assert_eq!(parse(&["foo"]).unwrap().directive_count, 1);
    }
}
