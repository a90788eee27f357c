//! HTTP-date parsing and formatting (`parse_http_date`, `fmt_http_date`).
//!
//! Input: the whole input is parsed as an HTTP-date. Invariants:
//! - a parsed date within what `fmt_http_date` can write (1970 to 9999)
//!   formats to an IMF-fixdate that parses back to the same time;
//! - a parsed IMF-fixdate formats back to itself, apart from the day name
//!   (not checked against the date) and letter case, unless it uses a leap
//!   second (`:60`, the next second once parsed);
//! - the first 8 bytes, read as a time, format to a date that parses back to
//!   that time clamped to 1970..=9999, without sub-seconds.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lacquer_cache_semantics::{fmt_http_date, parse_http_date};
use libfuzzer_sys::fuzz_target;

/// 9999-12-31T23:59:59Z, the last time `fmt_http_date` writes.
const MAX_SECS: u64 = 253_402_300_799;

fn round_trip(t: SystemTime) {
    let text = fmt_http_date(t);
    assert_eq!(text.len(), 29, "{text:?}");
    assert_eq!(
        parse_http_date(text.as_bytes()),
        Some(t),
        "{t:?} -> {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Some(t) = parse_http_date(data) {
        let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs());
        assert!(
            t.duration_since(UNIX_EPOCH)
                .map_or(true, |d| d.subsec_nanos() == 0),
            "sub-second date {t:?}"
        );
        if let Ok(secs) = secs
            && secs <= MAX_SECS
        {
            round_trip(t);
            let v = data.trim_ascii();
            if v.len() == 29 && v[3] == b',' && &v[23..25] != b"60" {
                let text = fmt_http_date(t);
                assert!(
                    text.as_bytes()[5..].eq_ignore_ascii_case(&v[5..]),
                    "{:?} parsed to {t:?}, which formats as {text:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }

    if let Some(head) = data.get(..8) {
        let raw = i64::from_le_bytes(head.try_into().unwrap());
        // Mostly 1970..=9999, sometimes outside (clamped).
        let span = (MAX_SECS + 2 * 86_400) as i64;
        let secs = raw.rem_euclid(span) - 86_400;
        let nanos = u32::from(head[0]) * 3_900_000;
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        let want = UNIX_EPOCH + Duration::from_secs(secs.clamp(0, MAX_SECS as i64) as u64);
        assert_eq!(
            parse_http_date(fmt_http_date(t).as_bytes()),
            Some(want),
            "{t:?} formats as {:?}",
            fmt_http_date(t)
        );
        if secs >= 0 && secs as u64 <= MAX_SECS {
            round_trip(UNIX_EPOCH + Duration::from_secs(secs as u64));
        }
    }
});
