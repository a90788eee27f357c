//! Handles to the request and response the host holds.
//!
//! On wasm every method is a call into the host: nothing is copied into the
//! plugin until asked for. Off wasm the same API works on an in-memory copy
//! (see [`Request::builder`] and [`Response::builder`]) so plugins can be
//! unit-tested natively.

use std::net::{IpAddr, SocketAddr};

#[cfg(not(target_arch = "wasm32"))]
mod memory;
#[cfg(not(target_arch = "wasm32"))]
pub use memory::{RequestBuilder, ResponseBuilder};
#[cfg(not(target_arch = "wasm32"))]
use memory::{RequestImpl, ResponseImpl};

#[cfg(target_arch = "wasm32")]
type RequestImpl<'a> = &'a crate::wit::lacquer::plugin::types::Request;
#[cfg(target_arch = "wasm32")]
type ResponseImpl<'a> = &'a crate::wit::lacquer::plugin::types::Response;

/// The client's request. A handle: reads and edits go straight to the host's
/// copy, and it is only valid during the hook call it was passed to.
pub struct Request<'a> {
    inner: RequestImpl<'a>,
}

/// A response: from the backend (in `on_backend_response`) or about to be
/// delivered (in `on_deliver`). A handle, like [`Request`].
pub struct Response<'a> {
    inner: ResponseImpl<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn from_impl(inner: RequestImpl<'a>) -> Self {
        Request { inner }
    }

    /// The method, e.g. "GET".
    pub fn method(&self) -> String {
        self.inner.method()
    }

    /// Replaces the method. Fails for an invalid method token.
    pub fn set_method(&self, method: &str) -> Result<(), String> {
        self.inner.set_method(method)
    }

    /// The path and query, e.g. "/a/b?x=1".
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// The path without the query, e.g. "/a/b" for "/a/b?x=1".
    pub fn path(&self) -> String {
        let mut url = self.url();
        if let Some(query) = url.find('?') {
            url.truncate(query);
        }
        url
    }

    /// Replaces the path and query. Fails unless it starts with "/".
    pub fn set_url(&self, url: &str) -> Result<(), String> {
        self.inner.set_url(url)
    }

    /// The Host header (or the authority of an absolute-form target), without
    /// the port; "" if there is none.
    pub fn host(&self) -> String {
        self.inner.host()
    }

    /// The first value of a header (case-insensitive name), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.inner.header_all(name)
    }

    /// Every header name (lower case), once each.
    pub fn header_names(&self) -> Vec<String> {
        self.inner.header_names()
    }

    /// Sets a header, replacing every existing value. Fails for an invalid
    /// name or a value with CR, LF or NUL.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.inner.set_header(name, value)
    }

    /// Appends a value to a header. Fails like [`Request::set_header`].
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.inner.append_header(name, value)
    }

    /// Removes every value of a header.
    pub fn remove_header(&self, name: &str) {
        self.inner.remove_header(name)
    }

    /// The client's address, e.g. "127.0.0.1:50000".
    pub fn client_addr(&self) -> String {
        self.inner.client_addr()
    }

    /// The client's IP address (without the port), if the address parses.
    /// IPv4-mapped IPv6 addresses come back as IPv4.
    pub fn client_ip(&self) -> Option<IpAddr> {
        let addr = self.client_addr();
        let ip = match addr.parse::<SocketAddr>() {
            Ok(socket) => socket.ip(),
            Err(_) => addr.trim_matches(['[', ']']).parse::<IpAddr>().ok()?,
        };
        Some(ip.to_canonical())
    }

    /// The request id the host assigned (also in logs and error pages).
    pub fn id(&self) -> String {
        self.inner.id()
    }

    /// Sends this request to a backend or director by name. Only meaningful
    /// in `on_recv`; fails for an unknown name.
    pub fn set_backend(&self, name: &str) -> Result<(), String> {
        self.inner.set_backend(name)
    }

    /// The backend or director chosen so far, if any.
    pub fn backend(&self) -> Option<String> {
        self.inner.backend()
    }

    /// Adds an input to the cache key (beyond host and URL), e.g. a device class.
    pub fn add_cache_key(&self, data: &str) {
        self.inner.add_cache_key(data)
    }
}

impl<'a> Response<'a> {
    pub(crate) fn from_impl(inner: ResponseImpl<'a>) -> Self {
        Response { inner }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.inner.status()
    }

    /// Replaces the status code. Fails outside 100..=999.
    pub fn set_status(&self, status: u16) -> Result<(), String> {
        self.inner.set_status(status)
    }

    /// The first value of a header (case-insensitive name), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.inner.header_all(name)
    }

    /// Every header name (lower case), once each.
    pub fn header_names(&self) -> Vec<String> {
        self.inner.header_names()
    }

    /// Sets a header, replacing every existing value. Fails for an invalid
    /// name or a value with CR, LF or NUL.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.inner.set_header(name, value)
    }

    /// Appends a value to a header. Fails like [`Response::set_header`].
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.inner.append_header(name, value)
    }

    /// Removes every value of a header.
    pub fn remove_header(&self, name: &str) {
        self.inner.remove_header(name)
    }
}
