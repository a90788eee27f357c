//! HTTP-date parsing (RFC 9110 §5.6.7) without allocation.
//!
//! All three formats are accepted, as a recipient must: IMF-fixdate
//! (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
//! (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
//! Day names, month names and `GMT` are matched case-insensitively (robustness
//! the RFC encourages); everything else is strict: a missing comma, doubled
//! spaces, one-digit hours, other time zones or two-digit years in IMF-fixdate
//! are invalid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];
const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7.
///
/// Returns `None` for anything else (for example `0`, `-1`, a date in `UTC`).
/// Surrounding whitespace is ignored. A two-digit RFC 850 year `yy` means
/// `20yy` when `yy < 70` and `19yy` otherwise.
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let v = value.trim_ascii();
    let parts = if v.len() == 29 && v.get(3) == Some(&b',') {
        imf_fixdate(v)?
    } else if v.len() == 24 && v.get(3) == Some(&b' ') {
        asctime(v)?
    } else {
        rfc850(v)?
    };
    to_system_time(parts)
}

/// Formats `t` as an IMF-fixdate header value (`Sun, 06 Nov 1994 08:49:37
/// GMT`), e.g. for a `Date` field. Sub-second precision is dropped; times
/// before 1970 or after 9999 are clamped to those years.
pub fn fmt_http_date(t: SystemTime) -> HeaderValue {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let name = |n: &[u8]| [n[0].to_ascii_uppercase(), n[1], n[2]];
    let weekday = name(DAYS[((days + 3) % 7) as usize]);
    let month = name(MONTHS[month as usize - 1]);
    let mut out = [0u8; 29];
    out[0..3].copy_from_slice(&weekday);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(&month);
    out[11] = b' ';
    two(&mut out[12..14], (year / 100) as u32);
    two(&mut out[14..16], (year % 100) as u32);
    out[16] = b' ';
    two(&mut out[17..19], (rem / 3600) as u32);
    out[19] = b':';
    two(&mut out[20..22], (rem / 60 % 60) as u32);
    out[22] = b':';
    two(&mut out[23..25], (rem % 60) as u32);
    out[25..29].copy_from_slice(b" GMT");
    HeaderValue::from_bytes(&out).expect("an HTTP-date is a valid field value")
}

fn two(out: &mut [u8], n: u32) {
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The first field line of `name` parsed as an HTTP-date.
///
/// Outer `None`: the field is absent. `Some(None)`: present but invalid.
pub(crate) fn header_date(headers: &HeaderMap, name: &HeaderName) -> Option<Option<SystemTime>> {
    headers.get(name).map(|v| parse_http_date(v.as_bytes()))
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

fn imf_fixdate(v: &[u8]) -> Option<Parts> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    name_index(&DAYS, &v[0..3])?;
    expect(&v[3..5], b", ")?;
    let day = digits(&v[5..7])?;
    expect(&v[7..8], b" ")?;
    let month = name_index(&MONTHS, &v[8..11])? + 1;
    expect(&v[11..12], b" ")?;
    let year = digits(&v[12..16])?;
    expect(&v[16..17], b" ")?;
    let (hour, min, sec) = time(&v[17..25])?;
    expect(&v[25..26], b" ")?;
    gmt(&v[26..29])?;
    Some(Parts {
        year: i64::from(year),
        month: month as u32,
        day,
        hour,
        min,
        sec,
    })
}

fn rfc850(v: &[u8]) -> Option<Parts> {
    // "Sunday, 06-Nov-94 08:49:37 GMT"
    let comma = v.iter().position(|&b| b == b',')?;
    name_index(&LONG_DAYS, &v[..comma])?;
    let r = &v[comma..];
    if r.len() != 24 {
        return None;
    }
    expect(&r[0..2], b", ")?;
    let day = digits(&r[2..4])?;
    expect(&r[4..5], b"-")?;
    let month = name_index(&MONTHS, &r[5..8])? + 1;
    expect(&r[8..9], b"-")?;
    let yy = digits(&r[9..11])?;
    expect(&r[11..12], b" ")?;
    let (hour, min, sec) = time(&r[12..20])?;
    expect(&r[20..21], b" ")?;
    gmt(&r[21..24])?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    Some(Parts {
        year: i64::from(year),
        month: month as u32,
        day,
        hour,
        min,
        sec,
    })
}

fn asctime(v: &[u8]) -> Option<Parts> {
    // "Sun Nov  6 08:49:37 1994"
    name_index(&DAYS, &v[0..3])?;
    expect(&v[3..4], b" ")?;
    let month = name_index(&MONTHS, &v[4..7])? + 1;
    expect(&v[7..8], b" ")?;
    let day = if v[8] == b' ' {
        digits(&v[9..10])?
    } else {
        digits(&v[8..10])?
    };
    expect(&v[10..11], b" ")?;
    let (hour, min, sec) = time(&v[11..19])?;
    expect(&v[19..20], b" ")?;
    let year = digits(&v[20..24])?;
    Some(Parts {
        year: i64::from(year),
        month: month as u32,
        day,
        hour,
        min,
        sec,
    })
}

fn expect(got: &[u8], want: &[u8]) -> Option<()> {
    (got == want).then_some(())
}

fn gmt(v: &[u8]) -> Option<()> {
    v.eq_ignore_ascii_case(b"GMT").then_some(())
}

fn name_index(names: &[&[u8]], v: &[u8]) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(v))
}

fn digits(v: &[u8]) -> Option<u32> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

fn time(v: &[u8]) -> Option<(u32, u32, u32)> {
    // "08:49:37"
    expect(&v[2..3], b":")?;
    expect(&v[5..6], b":")?;
    let (h, m, s) = (digits(&v[0..2])?, digits(&v[3..5])?, digits(&v[6..8])?);
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn to_system_time(p: Parts) -> Option<SystemTime> {
    if p.day == 0 || p.day > days_in_month(p.year, p.month) {
        return None;
    }
    let secs = days_from_civil(p.year, p.month, p.day) * 86_400
        + i64::from(p.hour) * 3600
        + i64::from(p.min) * 60
        + i64::from(p.sec);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn formats_and_invalid_forms() {
        // 1994-11-06T08:49:37Z = 784111777
        let cases: &[(&str, Option<SystemTime>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_777)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", at(784_111_777)),
            ("Sun Nov  6 08:49:37 1994", at(784_111_777)),
            ("  Sun, 06 Nov 1994 08:49:37 GMT ", at(784_111_777)),
            // Case-insensitive names (cache-tests expires-parse wrong-case).
            ("THU, 18 Aug 2050 02:01:18 GMT", at(2_544_400_878)),
            ("Thu, 18 AUG 2050 02:01:18 GMT", at(2_544_400_878)),
            ("Thu, 18 Aug 2050 02:01:18 gMT", at(2_544_400_878)),
            ("Thursday, 18-Aug-50 02:01:18 GMT", at(2_544_400_878)),
            ("Thu Aug 18 02:01:18 2050", at(2_544_400_878)),
            ("Thu Aug  8 02:01:18 2050", at(2_543_536_878)),
            ("Tue, 19 Jan 2038 14:14:08 GMT", at(2_147_523_248)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", at(0)),
            ("Sun, 21 Nov 2286 04:46:39 GMT", at(10_000_039_599)),
            ("Thu, 29 Feb 2024 00:00:00 GMT", at(1_709_164_800)),
            // Invalid (cache-tests expires-parse required cases).
            ("0", None),
            ("-1", None),
            ("", None),
            ("Thu, 18 Aug 2050 02:01:18 UTC", None),
            ("Thu, 18 Aug 2050 02:01:18 AEST", None),
            ("Thu, 18 Aug 50 02:01:18 GMT", None),
            ("Thu 18 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18  Aug  2050 02:01:18 GMT", None),
            ("Thu, 18-Aug-2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 2050 02.01.18 GMT", None),
            ("Thu, 18 Aug 2050 2:01:18 GMT", None),
            ("Thu, 30 Feb 2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 2050 24:01:18 GMT", None),
            ("Xyz, 18 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18 Foo 2050 02:01:18 GMT", None),
            ("Thuday, 18-Aug-50 02:01:18 GMT", None),
            ("Thursday, 18-Aug-2050 02:01:18 GMT", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_http_date(input.as_bytes()), *want, "{input:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (2_147_523_248, "Tue, 19 Jan 2038 14:14:08 GMT"),
            (2_544_400_878, "Thu, 18 Aug 2050 02:01:18 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, text) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(*secs);
            assert_eq!(fmt_http_date(t), *text);
            assert_eq!(parse_http_date(text.as_bytes()), Some(t));
        }
        // Every day of four years round-trips.
        for day in 0..(4 * 366) {
            let t = UNIX_EPOCH + Duration::from_secs(1_600_000_000 + day * 86_400 + 3_723);
            assert_eq!(parse_http_date(fmt_http_date(t).as_bytes()), Some(t));
        }
        // Out of range: clamped.
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(fmt_http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        let early = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(fmt_http_date(early), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            fmt_http_date(t_with_nanos()),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    fn t_with_nanos() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(784_111_777_999)
    }
}
