//! Small HTTP helpers shared by the proxy and the fetch path.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Via` value added to requests and responses.
pub const VIA: HeaderValue = HeaderValue::from_static("1.1 lacquer");

/// Header fields that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Remove hop-by-hop fields, including those `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// The request's host, lower case, without port.
pub fn host_of(headers: &HeaderMap, uri: &http::Uri) -> String {
    let raw = uri
        .host()
        .map(str::to_owned)
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let no_port = if raw.starts_with('[') {
        raw.split(']').next().map(|s| format!("{s}]")).unwrap_or_default()
    } else {
        raw.split(':').next().unwrap_or_default().to_owned()
    };
    no_port.to_ascii_lowercase()
}

/// Whether a method is idempotent (RFC 9110 §9.2.2).
pub fn idempotent(m: &http::Method) -> bool {
    use http::Method as M;
    matches!(*m, M::GET | M::HEAD | M::OPTIONS | M::TRACE | M::PUT | M::DELETE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_connection_named_fields() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn host_without_port() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("Example.COM:8080"));
        assert_eq!(host_of(&h, &"/".parse().unwrap()), "example.com");
        h.insert(header::HOST, HeaderValue::from_static("[::1]:80"));
        assert_eq!(host_of(&h, &"/".parse().unwrap()), "[::1]");
    }
}
