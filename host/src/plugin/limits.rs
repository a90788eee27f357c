//! What the host accepts from a plugin: header fields, statuses and the size
//! of a header section. Plugins' outputs are untrusted input; the host owns
//! HTTP framing, so a plugin can never set `Content-Length`,
//! `Transfer-Encoding`, `Connection`, `Upgrade` or the other hop-by-hop
//! fields, nor answer with an interim (1xx) status.
//!
//! This file depends only on `http` (the fuzz targets include it as is).

use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Most header fields a message may have once plugins have edited it.
pub const MAX_HEADER_FIELDS: usize = 256;
/// Most bytes (names, values and 32 bytes per field, as HTTP/2 counts them)
/// a message's header section may have once plugins have edited it: 256 KiB.
pub const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Longest URL (path and query) a plugin may set: 8 KiB.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Longest method a plugin may set.
pub const MAX_METHOD_BYTES: usize = 32;

/// Fields that frame a message or manage its connection: the host alone
/// writes them (RFC 9110 §7.6.1, RFC 9112 §6-§9).
const FRAMING: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

/// Whether `name` (lower case, as `HeaderName` keeps it) frames the message.
pub fn is_framing(name: &HeaderName) -> bool {
    FRAMING.contains(&name.as_str())
}

/// Check a header field a plugin wants to set: a valid name and value, and
/// not a framing field.
pub fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {:?}", clip(name)))?;
    if is_framing(&n) {
        return Err(format!(
            "header {n} frames the message: the host sets it, plugins cannot"
        ));
    }
    let v = HeaderValue::from_str(value).map_err(|_| {
        format!("invalid value for header {n} (control characters such as CR/LF are not allowed)")
    })?;
    Ok((n, v))
}

/// The bytes a field counts against [`MAX_HEADER_BYTES`].
pub fn field_cost(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 32
}

/// The bytes a header section counts against [`MAX_HEADER_BYTES`].
pub fn section_cost(headers: &HeaderMap) -> usize {
    headers.iter().map(|(n, v)| field_cost(n, v)).sum()
}

/// Check that `headers` has room for one more field (when `adding`) whose
/// cost is `cost`, replacing fields that cost `replaced`.
pub fn check_room(
    headers: &HeaderMap,
    adding: bool,
    cost: usize,
    replaced: usize,
) -> Result<(), String> {
    if adding && headers.len() >= MAX_HEADER_FIELDS {
        return Err(format!(
            "too many header fields: at most {MAX_HEADER_FIELDS} per message"
        ));
    }
    let after = (section_cost(headers) + cost).saturating_sub(replaced);
    if after > MAX_HEADER_BYTES {
        return Err(format!(
            "header section too large: at most {MAX_HEADER_BYTES} bytes per message"
        ));
    }
    Ok(())
}

/// Set (`append` false: replace every line of that name) or append a field,
/// within the limits.
pub fn set_field(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
    append: bool,
) -> Result<(), String> {
    let (n, v) = header_pair(name, value)?;
    let replaced = if append {
        0
    } else {
        headers.get_all(&n).iter().map(|v| field_cost(&n, v)).sum()
    };
    let adding = append || !headers.contains_key(&n);
    check_room(headers, adding, field_cost(&n, &v), replaced)?;
    if append {
        headers.append(n, v);
    } else {
        headers.insert(n, v);
    }
    Ok(())
}

/// Build a synthetic response's header section, within the limits.
pub fn synth_headers(fields: &[(String, String)]) -> Result<HeaderMap, String> {
    if fields.len() > MAX_HEADER_FIELDS {
        return Err(format!(
            "{} header fields: at most {MAX_HEADER_FIELDS} per message",
            fields.len()
        ));
    }
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (n, v) in fields {
        set_field(&mut headers, n, v, true)?;
    }
    Ok(headers)
}

/// A final status a plugin may answer or set: 200 to 599. Interim statuses
/// (1xx, including 101 Switching Protocols) belong to the host.
pub fn final_status(status: u16) -> Result<StatusCode, String> {
    if !(200..=599).contains(&status) {
        return Err(format!(
            "status {status} is not a final status (200-599): plugins cannot send interim or made-up statuses"
        ));
    }
    StatusCode::from_u16(status).map_err(|_| format!("invalid status {status}"))
}

/// At most 64 characters of `s`, for messages about untrusted input.
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_fields_are_refused_in_any_case() {
        for n in [
            "Content-Length",
            "transfer-encoding",
            "CONNECTION",
            "Upgrade",
            "TE",
        ] {
            let e = header_pair(n, "1").unwrap_err();
            assert!(e.contains("frames the message"), "{n}: {e}");
        }
        assert!(header_pair("x-ok", "1").is_ok());
        assert!(header_pair("x-bad", "a\r\nb: c").is_err());
    }

    #[test]
    fn only_final_statuses() {
        for s in [100, 101, 103, 199, 600, 999, 0] {
            assert!(final_status(s).is_err(), "{s}");
        }
        for s in [200, 204, 304, 404, 503, 599] {
            assert_eq!(final_status(s).unwrap().as_u16(), s);
        }
    }

    #[test]
    fn sections_are_bounded_by_count_and_bytes() {
        let mut h = HeaderMap::new();
        for _ in 0..MAX_HEADER_FIELDS {
            set_field(&mut h, "x-a", "1", true).unwrap();
        }
        let e = set_field(&mut h, "x-a", "1", true).unwrap_err();
        assert!(e.contains("too many"), "{e}");
        // Replacing every line of a name frees their room.
        set_field(&mut h, "x-a", "1", false).unwrap();
        assert_eq!(h.len(), 1);
        let big = "v".repeat(64 * 1024);
        let mut h = HeaderMap::new();
        for _ in 0..3 {
            set_field(&mut h, "x-big", &big, true).unwrap();
        }
        let e = set_field(&mut h, "x-big", &big, true).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(section_cost(&h) <= MAX_HEADER_BYTES);
    }

    #[test]
    fn synthetic_sections_are_checked() {
        let ok = synth_headers(&[("content-type".into(), "text/plain".into())]).unwrap();
        assert_eq!(ok.len(), 1);
        assert!(synth_headers(&[("content-length".into(), "3".into())]).is_err());
        let many: Vec<_> = (0..=MAX_HEADER_FIELDS)
            .map(|_| ("x".to_string(), "y".to_string()))
            .collect();
        assert!(synth_headers(&many).is_err());
    }
}
