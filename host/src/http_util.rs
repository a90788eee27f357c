//! Small HTTP helpers shared by the proxy and the fetch path.

use http::header::{self, HeaderMap, HeaderValue};

/// `Via` value added to requests and responses.
pub const VIA: HeaderValue = HeaderValue::from_static("1.1 lacquer");

/// The request's host, lower case, without port.
pub fn host_of(headers: &HeaderMap, uri: &http::Uri) -> String {
    let raw = uri
        .host()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let no_port = if raw.starts_with('[') {
        raw.split(']')
            .next()
            .map(|s| format!("{s}]"))
            .unwrap_or_default()
    } else {
        raw.split(':').next().unwrap_or_default().to_owned()
    };
    no_port.to_ascii_lowercase()
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

    #[test]
    fn host_without_port() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("Example.COM:8080"));
        assert_eq!(host_of(&h, &"/".parse().unwrap()), "example.com");
        h.insert(header::HOST, HeaderValue::from_static("[::1]:80"));
        assert_eq!(host_of(&h, &"/".parse().unwrap()), "[::1]");
    }
}
