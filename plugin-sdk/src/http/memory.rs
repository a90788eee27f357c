//! In-memory requests and responses, for native unit tests.

use std::cell::RefCell;
use std::marker::PhantomData;

use super::{Request, Response};

/// A header list with the host's validation rules.
#[derive(Debug, Clone, Default)]
struct Headers(Vec<(String, String)>);

impl Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in &self.0 {
            let lower = name.to_ascii_lowercase();
            if !names.contains(&lower) {
                names.push(lower);
            }
        }
        names
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        validate(name, value)?;
        self.remove(name);
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    }

    fn append(&mut self, name: &str, value: &str) -> Result<(), String> {
        validate(name, value)?;
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!("invalid value for header {name:?}: CR, LF or NUL"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct RequestState {
    method: String,
    url: String,
    headers: Headers,
    client_addr: String,
    id: String,
    backend: Option<String>,
    cache_key: Vec<String>,
}

/// The in-memory request behind a [`Request`] off wasm.
pub(crate) struct RequestImpl<'a> {
    state: RefCell<RequestState>,
    _handle: PhantomData<&'a ()>,
}

impl RequestImpl<'_> {
    pub(crate) fn method(&self) -> String {
        self.state.borrow().method.clone()
    }

    pub(crate) fn set_method(&self, method: &str) -> Result<(), String> {
        if !is_token(method) {
            return Err(format!("invalid method {method:?}"));
        }
        self.state.borrow_mut().method = method.to_owned();
        Ok(())
    }

    pub(crate) fn url(&self) -> String {
        self.state.borrow().url.clone()
    }

    pub(crate) fn set_url(&self, url: &str) -> Result<(), String> {
        if !url.starts_with('/') || url.contains(|c: char| c.is_ascii_control() || c == ' ') {
            return Err(format!(
                "invalid url {url:?}: must be a path starting with \"/\""
            ));
        }
        self.state.borrow_mut().url = url.to_owned();
        Ok(())
    }

    pub(crate) fn host(&self) -> String {
        let host = self.header("host").unwrap_or_default().to_ascii_lowercase();
        match host.rfind(':') {
            Some(colon) if !host[colon..].contains(']') => host[..colon].to_owned(),
            _ => host,
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.state.borrow().headers.get(name)
    }

    pub(crate) fn header_all(&self, name: &str) -> Vec<String> {
        self.state.borrow().headers.all(name)
    }

    pub(crate) fn header_names(&self) -> Vec<String> {
        self.state.borrow().headers.names()
    }

    pub(crate) fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.state.borrow_mut().headers.set(name, value)
    }

    pub(crate) fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.state.borrow_mut().headers.append(name, value)
    }

    pub(crate) fn remove_header(&self, name: &str) {
        self.state.borrow_mut().headers.remove(name)
    }

    pub(crate) fn client_addr(&self) -> String {
        self.state.borrow().client_addr.clone()
    }

    pub(crate) fn id(&self) -> String {
        self.state.borrow().id.clone()
    }

    pub(crate) fn set_backend(&self, name: &str) -> Result<(), String> {
        if crate::host::backend_healthy(name).is_none() {
            return Err(format!("unknown backend or director {name:?}"));
        }
        self.state.borrow_mut().backend = Some(name.to_owned());
        Ok(())
    }

    pub(crate) fn backend(&self) -> Option<String> {
        self.state.borrow().backend.clone()
    }

    pub(crate) fn add_cache_key(&self, data: &str) {
        self.state.borrow_mut().cache_key.push(data.to_owned())
    }
}

/// Builds an in-memory [`Request`] for unit tests (off wasm only).
///
/// Defaults: method "GET", URL "/", no headers, client address
/// "127.0.0.1:50000", id "test-request", no backend.
///
/// ```
/// use lacquer_plugin_sdk::Request;
///
/// let req = Request::builder()
///     .method("POST")
///     .url("/login?next=/")
///     .header("host", "example.com:8080")
///     .header("cookie", "a=1")
///     .client_addr("192.0.2.7:40000")
///     .build();
/// assert_eq!(req.host(), "example.com");
/// assert_eq!(req.path(), "/login");
/// assert_eq!(req.client_ip(), Some("192.0.2.7".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    state: RequestState,
}

impl RequestBuilder {
    /// Sets the method. Default is "GET".
    pub fn method(mut self, method: &str) -> Self {
        self.state.method = method.to_owned();
        self
    }

    /// Sets the path and query. Default is "/".
    pub fn url(mut self, url: &str) -> Self {
        self.state.url = url.to_owned();
        self
    }

    /// Adds a header (after any with the same name), unvalidated.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.state
            .headers
            .0
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets the client's address. Default is "127.0.0.1:50000".
    pub fn client_addr(mut self, addr: &str) -> Self {
        self.state.client_addr = addr.to_owned();
        self
    }

    /// Sets the request id. Default is "test-request".
    pub fn id(mut self, id: &str) -> Self {
        self.state.id = id.to_owned();
        self
    }

    /// Makes the request.
    pub fn build(self) -> Request<'static> {
        Request::from_impl(RequestImpl {
            state: RefCell::new(self.state),
            _handle: PhantomData,
        })
    }
}

impl Request<'static> {
    /// Starts an in-memory request (off wasm only, for tests).
    pub fn builder() -> RequestBuilder {
        RequestBuilder {
            state: RequestState {
                method: "GET".to_owned(),
                url: "/".to_owned(),
                headers: Headers::default(),
                client_addr: "127.0.0.1:50000".to_owned(),
                id: "test-request".to_owned(),
                backend: None,
                cache_key: Vec::new(),
            },
        }
    }
}

impl Request<'_> {
    /// The cache-key inputs added so far (off wasm only, for tests).
    pub fn cache_key_inputs(&self) -> Vec<String> {
        self.inner.state.borrow().cache_key.clone()
    }
}

#[derive(Debug, Clone)]
struct ResponseState {
    status: u16,
    headers: Headers,
}

/// The in-memory response behind a [`Response`] off wasm.
pub(crate) struct ResponseImpl<'a> {
    state: RefCell<ResponseState>,
    _handle: PhantomData<&'a ()>,
}

impl ResponseImpl<'_> {
    pub(crate) fn status(&self) -> u16 {
        self.state.borrow().status
    }

    pub(crate) fn set_status(&self, status: u16) -> Result<(), String> {
        if !(100..=999).contains(&status) {
            return Err(format!("invalid status {status}"));
        }
        self.state.borrow_mut().status = status;
        Ok(())
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.state.borrow().headers.get(name)
    }

    pub(crate) fn header_all(&self, name: &str) -> Vec<String> {
        self.state.borrow().headers.all(name)
    }

    pub(crate) fn header_names(&self) -> Vec<String> {
        self.state.borrow().headers.names()
    }

    pub(crate) fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.state.borrow_mut().headers.set(name, value)
    }

    pub(crate) fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.state.borrow_mut().headers.append(name, value)
    }

    pub(crate) fn remove_header(&self, name: &str) {
        self.state.borrow_mut().headers.remove(name)
    }
}

/// Builds an in-memory [`Response`] for unit tests (off wasm only).
///
/// Defaults: status 200, no headers.
///
/// ```
/// use lacquer_plugin_sdk::Response;
///
/// let resp = Response::builder()
///     .status(404)
///     .header("cache-control", "max-age=60")
///     .build();
/// resp.set_header("x-seen", "yes").unwrap();
/// assert_eq!(resp.status(), 404);
/// assert_eq!(resp.header_names(), ["cache-control", "x-seen"]);
/// ```
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    state: ResponseState,
}

impl ResponseBuilder {
    /// Sets the status code. Default is 200.
    pub fn status(mut self, status: u16) -> Self {
        self.state.status = status;
        self
    }

    /// Adds a header (after any with the same name), unvalidated.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.state
            .headers
            .0
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Makes the response.
    pub fn build(self) -> Response<'static> {
        Response::from_impl(ResponseImpl {
            state: RefCell::new(self.state),
            _handle: PhantomData,
        })
    }
}

impl Response<'static> {
    /// Starts an in-memory response (off wasm only, for tests).
    pub fn builder() -> ResponseBuilder {
        ResponseBuilder {
            state: ResponseState {
                status: 200,
                headers: Headers::default(),
            },
        }
    }
}
