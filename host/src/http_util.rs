//! Small HTTP helpers shared by the proxy and the fetch path.

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Authority;

/// `Via` value added to requests and responses.
pub const VIA: HeaderValue = HeaderValue::from_static("1.1 lacquer");

/// Check a `Host` value (RFC 9110 §7.2: `uri-host [ ":" port ]`, no
/// userinfo) and return the host the cache keys on and the backend is sent:
/// lower case, without the port.
pub fn parse_host(value: &str) -> Result<String, String> {
    match plain_host(value) {
        Some(host) => Ok(host.to_owned()),
        None => parse_authority_host(value),
    }
}

/// [`parse_host`] for any value: parsed as an authority.
fn parse_authority_host(value: &str) -> Result<String, String> {
    let shown = || value.chars().take(64).collect::<String>();
    if value.is_empty() || value.contains('@') {
        return Err(format!("invalid Host {:?}", shown()));
    }
    let a: Authority = value
        .parse()
        .map_err(|_| format!("invalid Host {:?}", shown()))?;
    // The port, if any, is digits (Authority alone lets `host:` through).
    let port = &a.as_str()[a.host().len()..];
    if let Some(p) = port.strip_prefix(':')
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return Err(format!("invalid port in Host {:?}", shown()));
    }
    if !port.is_empty() && !port.starts_with(':') {
        return Err(format!("invalid Host {:?}", shown()));
    }
    let host = a.host();
    if host.is_empty() {
        return Err(format!("invalid Host {:?}", shown()));
    }
    Ok(host.to_ascii_lowercase())
}

/// The common form of a `Host` value, a lower-case name or IPv4 address
/// with perhaps a port, checked without parsing it as an authority (which
/// copies it): its host part, or `None` for anything else, which
/// [`parse_authority_host`] reads (the answer is the same).
fn plain_host(value: &str) -> Option<&str> {
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let name = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    let host_ok = !host.is_empty() && host.bytes().all(name);
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    (host_ok && port_ok).then_some(host)
}

/// The host part of a host name as an operator types it (`Example.com:443`
/// → `example.com`), for admin purges and plugin invalidations: the key's form.
pub fn normalize_host(value: &str) -> String {
    parse_host(value).unwrap_or_else(|_| value.to_ascii_lowercase())
}

/// The request's host as the cache keys on it: from an absolute-form target
/// when there is one (RFC 9112 §3.2.2), else from the single `Host` field.
/// `Err` is the reason for a 400: a missing (HTTP/1.1) or repeated `Host`,
/// or one that is not a valid host.
pub fn request_host(
    version: http::Version,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<String, (&'static str, String)> {
    let mut fields = headers.get_all(header::HOST).iter();
    let first = fields.next();
    if fields.next().is_some() {
        return Err(("host-duplicate", "more than one Host field".into()));
    }
    if let Some(a) = uri.authority() {
        return parse_host(a.as_str()).map_err(|e| ("host-invalid", e));
    }
    match first {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ("host-invalid", "Host is not visible ASCII".to_string()))?;
            parse_host(v).map_err(|e| ("host-invalid", e))
        }
        None if version == http::Version::HTTP_11 => {
            Err(("host-missing", "HTTP/1.1 request without Host".into()))
        }
        // HTTP/1.0 may leave it out; HTTP/2 without :authority too.
        None => Ok(String::new()),
    }
}

/// Whether a method is idempotent (RFC 9110 §9.2.2).
pub fn idempotent(m: &http::Method) -> bool {
    use http::Method as M;
    matches!(
        *m,
        M::GET | M::HEAD | M::OPTIONS | M::TRACE | M::PUT | M::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::Version;

    #[test]
    fn host_without_port() {
        assert_eq!(parse_host("Example.COM:8080").unwrap(), "example.com");
        assert_eq!(parse_host("[::1]:80").unwrap(), "[::1]");
        assert_eq!(parse_host("10.0.0.1").unwrap(), "10.0.0.1");
        for bad in ["", "a b", "user@host", "host:port", "host:", "[::1", "a/b"] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_plain_form_is_read_as_the_full_parse_reads_it() {
        for v in [
            "example.com",
            "example.com:80",
            "10.0.0.1:65535",
            "a-b.c",
            "x:65536",
            "x:",
            ":80",
            "x:+1",
            "x:1:2",
            "Example.com",
            "[::1]:80",
            "a_b",
        ] {
            if let Some(plain) = plain_host(v) {
                assert_eq!(Ok(plain.to_owned()), parse_authority_host(v), "{v:?}");
            }
        }
        assert_eq!(plain_host("example.com:8080"), Some("example.com"));
        assert_eq!(plain_host("x:65536"), None);
        assert_eq!(plain_host("Example.com"), None);
    }

    #[test]
    fn the_target_authority_wins_and_host_must_be_one() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("attacker.example"));
        let abs: http::Uri = "http://Victim.example/x".parse().unwrap();
        let origin: http::Uri = "/x".parse().unwrap();
        assert_eq!(
            request_host(Version::HTTP_11, &h, &abs).unwrap(),
            "victim.example"
        );
        assert_eq!(
            request_host(Version::HTTP_11, &h, &origin).unwrap(),
            "attacker.example"
        );
        h.append(header::HOST, HeaderValue::from_static("other.example"));
        assert_eq!(
            request_host(Version::HTTP_11, &h, &origin).unwrap_err().0,
            "host-duplicate"
        );
        let none = HeaderMap::new();
        assert_eq!(
            request_host(Version::HTTP_11, &none, &origin)
                .unwrap_err()
                .0,
            "host-missing"
        );
        assert_eq!(request_host(Version::HTTP_10, &none, &origin).unwrap(), "");
    }
}
