//! What hooks decide, and the synthetic responses they can answer with.

use crate::types::Proposal;

/// A complete response made by a plugin ("synthetic"), built with chained calls:
///
/// ```
/// use lacquer_plugin_sdk::SynthResponse;
///
/// let resp = SynthResponse::new(403)
///     .header("content-type", "text/plain")
///     .body("forbidden");
/// assert_eq!(resp.status, 403);
/// assert_eq!(resp.header_value("Content-Type"), Some("text/plain"));
/// assert_eq!(resp.body_str(), Some("forbidden"));
/// ```
///
/// The host validates it: a status outside 100..=999 becomes a 500, and a
/// header name or value that is invalid (e.g. contains CR or LF) makes the
/// hook call a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body, sent as is.
    pub body: Vec<u8>,
}

impl SynthResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        SynthResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An HTML page: `Content-Type: text/html; charset=utf-8`.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(body.into())
    }

    /// A JSON document: `Content-Type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Plain text: `Content-Type: text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// Adds a header field (after any with the same name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive name).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, if it is valid UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// What [`Plugin::on_recv`](crate::Plugin::on_recv) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvAction {
    /// No decision: the next plugin runs; after the last, the host looks
    /// GET and HEAD requests up in the cache and passes the others.
    Continue,
    /// Look the request up in the cache.
    Lookup,
    /// Fetch from the backend; neither read nor write the cache.
    Pass,
    /// Answer with this response; no backend is asked.
    Synth(SynthResponse),
    /// Remove every variant of this URL from the cache and answer 200.
    Purge,
}

/// What [`Plugin::on_backend_response`](crate::Plugin::on_backend_response) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendResponseAction {
    /// Go on with this (possibly edited) proposal.
    Continue(Proposal),
    /// Discard this response and fetch again (bounded by the host).
    Retry,
    /// Discard this response and answer with this one.
    Synth(SynthResponse),
}

/// What [`Plugin::on_fetch_error`](crate::Plugin::on_fetch_error) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchErrorAction {
    /// No decision: the next plugin runs; after the last, the host answers
    /// its plain 503.
    Continue,
    /// Try again (another backend of the director if there is one).
    Retry,
    /// Serve the stale copy (only valid when a stale copy is available).
    ServeStale,
    /// Answer with this response.
    Synth(SynthResponse),
}

/// What [`Plugin::on_deliver`](crate::Plugin::on_deliver) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverAction {
    /// Deliver the response, with any edits made through its handle.
    Continue,
    /// Replace the response with this one.
    Synth(SynthResponse),
}
