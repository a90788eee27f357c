//! The status page for people (`GET /` on the admin listener): one
//! self-contained HTML document, compiled into the binary, whose script
//! polls `/status`, `/backends`, `/metrics` and `/fetch-errors` every two
//! seconds and redraws in place. It loads nothing from elsewhere, and its
//! Content-Security-Policy lets it load nothing from elsewhere.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;

/// The document, markup, style and script together.
const PAGE: &str = include_str!("page.html");

/// What the page may do: run its own inline script and style, fetch from
/// the admin listener that served it, show its inline icon; nothing else.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page, with headers that keep it from being framed, sniffed or
/// cached.
pub(super) fn reply() -> Response<ProxyBody> {
    let mut r = super::reply(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
