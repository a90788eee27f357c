//! The input format shared by the fuzz targets: HTTP-like text, so that seed
//! corpora are readable and can be written by hand.
//!
//! ```text
//! :status 200                         <- pseudo field (":name value")
//! cache-control: max-age=60           <- header field of section 0
//! date: Sun, 06 Nov 1994 08:49:37 GMT
//!                                     <- empty line: next section
//! etag: "abc"                         <- header field of section 1
//! ```
//!
//! - Lines are split on `\n` (a trailing `\r` is dropped).
//! - An empty line starts the next header section (request, then response,
//!   ... as each target documents).
//! - A line starting with `:` is a pseudo field `:name value` (the value is
//!   everything after the first space), in any section: status codes, lengths,
//!   times and options that are not header fields.
//! - Any other line is `name: value` (one space after the colon is dropped).
//!   Lines whose name or value `http` refuses are skipped: real messages
//!   never carry them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use lacquer_cache_semantics::{CacheControl, MAX_DELTA_SECONDS, MaxStale};

/// A parsed fuzz input.
#[derive(Debug, Default)]
pub struct Input<'a> {
    /// Header sections, in order (at least one, possibly empty).
    pub sections: Vec<HeaderMap>,
    /// Raw `(name, value)` header lines of each section, kept even when `http`
    /// refuses them (for targets that parse raw bytes too).
    pub raw: Vec<Vec<(&'a [u8], &'a [u8])>>,
    /// Pseudo fields (`:name value`), in order.
    pub pseudo: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Input<'a> {
    /// Parses `data` with the rules of the module documentation.
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let mut input = Input {
            sections: vec![HeaderMap::new()],
            raw: vec![Vec::new()],
            pseudo: Vec::new(),
        };
        for line in lines(data) {
            if line.is_empty() {
                input.sections.push(HeaderMap::new());
                input.raw.push(Vec::new());
                continue;
            }
            if let Some(rest) = line.strip_prefix(b":") {
                let (name, value) = split_once(rest, b' ').unwrap_or((rest, b""));
                input.pseudo.push((name, value));
                continue;
            }
            let Some((name, value)) = split_once(line, b':') else {
                continue;
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            input.raw.last_mut().unwrap().push((name, value));
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                input.sections.last_mut().unwrap().append(n, v);
            }
        }
        input
    }

    /// Header section `i`, or an empty map.
    pub fn section(&self, i: usize) -> HeaderMap {
        self.sections.get(i).cloned().unwrap_or_default()
    }

    /// The value of the first pseudo field `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.pseudo
            .iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| *v)
    }

    /// The first pseudo field `name` as a decimal integer.
    pub fn int<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        std::str::from_utf8(self.get(name)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The first pseudo field `name` as seconds since the epoch (may be
    /// negative), within ±400 000 years so that time arithmetic cannot overflow.
    pub fn time(&self, name: &str) -> Option<SystemTime> {
        let secs: i64 = self.int(name)?;
        Some(at(secs.clamp(-MAX_SECS, MAX_SECS)))
    }
}

/// Bound of [`Input::time`]: about 400 000 years.
pub const MAX_SECS: i64 = 400_000 * 366 * 86_400;

/// The instant `secs` seconds after (or before) the epoch.
pub fn at(secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// The lines of `data`, split on `\n`, without a trailing `\r`.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Splits at the first `sep`.
pub fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// Every value of `name` in `h`, as bytes.
pub fn values<'h>(h: &'h HeaderMap, name: &HeaderName) -> Vec<&'h [u8]> {
    h.get_all(name).iter().map(HeaderValue::as_bytes).collect()
}

/// Invariants of any parsed `CacheControl`: delta-seconds saturate at 2^31,
/// and no directive is set when none was read.
pub fn check_cc(cc: &CacheControl) {
    for v in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
        cc.min_fresh,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            v <= MAX_DELTA_SECONDS,
            "delta-seconds {v} above 2^31: {cc:?}"
        );
    }
    if let Some(MaxStale::Seconds(v)) = cc.max_stale {
        assert!(v <= MAX_DELTA_SECONDS, "max-stale {v}: {cc:?}");
    }
    if cc.is_empty() {
        assert_eq!(
            *cc,
            CacheControl::default(),
            "no directive read, yet some set"
        );
    }
}
