//! The request flow, one module per phase (docs/design.md has the chart):
//!
//! - [`recv`]: `on-recv`, then the host's choice of synth / purge / pass / lookup;
//! - [`lookup`]: the cache lookup, waiting on another request's fetch (coalescing),
//!   background refresh of a stale object;
//! - [`fetch`]: attempts against backends, retries, `on-backend-response` and
//!   `on-fetch-error`;
//! - [`store`]: storing while streaming (the fill task), hit-for-miss, pass-through;
//! - [`piece`]: a backend's 206 stored and combined with the pieces held;
//! - [`deliver`]: conditionals and ranges from stored objects, `on-deliver`;
//! - [`errors`]: the one place a failure becomes a 400/500/502/503/504.
//!
//! [`Cx`] is the per-request context; its methods are spread over those
//! modules, each a phase. [`handle`] drives a request through them.

mod deliver;
mod errors;
mod fetch;
pub mod forwarded;
mod logged;
mod lookup;
mod piece;
mod recv;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use lacquer_cache_semantics as cs;

use crate::access::Record;
use crate::body::ProxyBody;
use crate::cache::{self, FetchGuard, Key, Outcome};
use crate::http_util::request_host;
use crate::kinds::{FetchFailure, State};
use crate::plugin::ReqState;
use crate::state::{Generation, Shared};

pub use self::errors::text_headers;
use self::forwarded::Forwarding;

/// `x-request-id`: returned to the client and sent to the backend.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A response for the client and how it was answered (the `state` label).
pub struct Answer {
    /// The response.
    pub response: Response<ProxyBody>,
    /// How it was answered.
    pub state: State,
}

impl Answer {
    fn new(response: Response<ProxyBody>, state: State) -> Self {
        Self { response, state }
    }
}

/// What to do after a fetch failure and `on-fetch-error`.
pub enum AfterError {
    /// Fetch again (a plugin asked, and the request can be resent).
    Retry,
    /// Answer with this.
    Answer(Answer),
}

/// A response on its way to the client, before on-deliver.
pub struct Delivery {
    /// Status.
    pub status: StatusCode,
    /// Header fields.
    pub headers: HeaderMap,
    /// Body.
    pub body: ProxyBody,
    /// Where it came from.
    pub state: State,
    /// Hits of the object.
    pub hits: u64,
    /// Age in seconds.
    pub age: u64,
}

/// How a fetch relates to the cache.
pub enum Mode {
    /// Not cached: the response streams through.
    Pass,
    /// A coalesced miss: waiters wait on the guard.
    Miss(FetchGuard),
    /// Known uncacheable lately: fetch without coalescing, but store if now cacheable.
    HitForMiss(Key),
}

impl Mode {
    fn key(&self) -> Option<Key> {
        match self {
            Mode::Pass => None,
            Mode::Miss(g) => Some(g.key()),
            Mode::HitForMiss(k) => Some(*k),
        }
    }
    fn resolve(&mut self, o: Outcome) {
        if let Mode::Miss(_) = self
            && let Mode::Miss(g) = std::mem::replace(self, Mode::Pass)
        {
            g.resolve(o);
        }
    }
}

/// One request's context.
pub struct Cx {
    /// Server state.
    pub shared: Arc<Shared>,
    /// The generation the request started on.
    pub generation: Arc<Generation>,
    /// The request as plugins see it.
    pub rs: Box<ReqState>,
    /// The client's body, until it is sent to a backend.
    pub body: Option<Incoming>,
    /// Whether a non-empty body has been sent (the request can't be retried).
    pub body_sent: bool,
    /// The fetch failure this request ended with, if any.
    pub failure: Option<FetchFailure>,
    /// A background refresh: nothing is delivered.
    pub background: bool,
    /// The request's `Cache-Control` directives.
    pub cc: cs::CacheControl,
    /// The peer and what trusted proxies said about the client.
    pub forwarded: Arc<Forwarding>,
    /// The backend that answered last, and its status (for the access log).
    pub backend_used: Option<(String, u16)>,
    /// A fail-closed plugin fault, as `plugin/hook/kind` (for the access log).
    pub fault: Option<String>,
    /// Where a backend's `103 Early Hints` goes (HTTP/1.1 clients only).
    pub interim: Option<crate::interim::InterimSink>,
}

/// The phases a request goes through, as [`Cx::run`] drives them.
enum Step {
    /// Run `on-recv` and decide.
    Recv,
    /// Look the key up (and wait, or fetch).
    Lookup,
    /// Fetch without the cache, then invalidate what an unsafe method changed.
    Pass,
    /// Done.
    Answered(Answer),
}

/// Serve one client request from `peer` (the address a PROXY header named,
/// if the listener takes one), `tls` when it came over the TLS listener;
/// `interim` is where a backend's `103 Early Hints` go (HTTP/1.1 clients).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    interim: Option<crate::interim::InterimSink>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    // The synchronous part is its own function: what it holds is not kept
    // in (and moved with) the request's future.
    let Accepted { mut cx, id, record } = match accept(&shared, req, peer, tls, interim, start) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let answer = cx.run().await;
    shared.metrics.request(answer.state, start.elapsed());
    finish(&shared, answer, &id, record, start, Some(&mut cx))
}

/// A request taken in: its context, its id and its access log record.
struct Accepted {
    cx: Cx,
    id: Arc<str>,
    record: Option<Record>,
}

/// Take a request in; or, for a request refused at once (no usable host),
/// the answer.
fn accept(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    interim: Option<crate::interim::InterimSink>,
    start: Instant,
) -> Result<Accepted, Box<Response<ProxyBody>>> {
    let generation = shared.generation.load_full();
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    lacquer_cache_semantics::strip_connection_headers(&mut headers);
    let mut forwarded = Forwarding::take(peer, &mut headers, &generation.config.trusted_proxies);
    if tls {
        forwarded.scheme = "https";
    }
    let id = shared.request_id_for(headers.get(&REQUEST_ID));
    headers.remove(&REQUEST_ID);
    let logging = shared.access.get().is_some_and(|a| a.wanted());
    let text = |h: &HeaderMap, n: header::HeaderName| {
        h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let record = logging.then(|| Record {
        time: std::time::SystemTime::now(),
        id: id.clone(),
        client: forwarded.client.ip(),
        scheme: forwarded.scheme,
        method: parts.method.clone(),
        host: String::new(),
        url: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        version: parts.version,
        status: 0,
        bytes: 0,
        duration: std::time::Duration::ZERO,
        state: State::Synth,
        backend: None,
        backend_status: None,
        fetch_error: None,
        fault: None,
        referer: text(&headers, header::REFERER),
        user_agent: text(&headers, header::USER_AGENT),
    });
    // One host for the cache key and the backend (RFC 9112 §3.2): the
    // target's authority, else the single Host field.
    let host = match request_host(parts.version, &headers, &parts.uri) {
        Ok(h) => h,
        Err((reason, message)) => {
            shared.metrics.request_refused(reason);
            shared.metrics.request(State::Synth, start.elapsed());
            tracing::info!(client = %peer, reason, "refused request: {message}");
            let answer = Answer::new(errors::bad_request(&message), State::Synth);
            return Err(Box::new(finish(shared, answer, &id, record, start, None)));
        }
    };
    // The backend gets the host the key used (there is at most one field
    // now); a field that says it already is kept as it is.
    if headers
        .get(header::HOST)
        .is_none_or(|v| v.as_bytes() != host.as_bytes())
    {
        match HeaderValue::from_str(&host) {
            Ok(v) if !host.is_empty() => headers.insert(header::HOST, v),
            _ => headers.remove(header::HOST),
        };
    }
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| Uri::from(pq.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    let rs = Box::new(ReqState {
        method: parts.method,
        uri,
        headers,
        host,
        client: forwarded.client,
        id: id.clone(),
        backend: None,
        key_inputs: Vec::new(),
    });
    let cc = cs::CacheControl::parse(&rs.headers, &header::CACHE_CONTROL);
    let cx = Cx {
        cc,
        shared: shared.clone(),
        generation,
        rs,
        body: Some(body),
        body_sent: false,
        failure: None,
        background: false,
        forwarded: Arc::new(forwarded),
        backend_used: None,
        fault: None,
        interim,
    };
    Ok(Accepted { cx, id, record })
}

/// Count the response, give it the request id, and hand its access log
/// record to the body (written when the body ends).
fn finish(
    shared: &Arc<Shared>,
    answer: Answer,
    id: &str,
    record: Option<Record>,
    start: Instant,
    cx: Option<&mut Cx>,
) -> Response<ProxyBody> {
    let mut response = answer.response;
    shared.metrics.response(response.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let Some(mut r) = record else {
        return response;
    };
    r.status = response.status().as_u16();
    r.state = answer.state;
    if let Some(cx) = cx {
        r.host = cx.rs.host.clone();
        let used = cx.backend_used.take();
        r.backend_status = used.as_ref().map(|u| u.1);
        r.backend = cx
            .failure
            .as_ref()
            .map(|f| f.backend.clone())
            .or(used.map(|u| u.0));
        r.fetch_error = cx.failure.as_ref().map(|f| f.kind.as_str());
        r.fault = cx.fault.take();
    }
    response.map(|b| {
        http_body_util::BodyExt::boxed_unsync(logged::Logged::new(b, r, start, shared.clone()))
    })
}

impl Cx {
    /// Drive the request through its phases.
    async fn run(&mut self) -> Answer {
        let mut step = Step::Recv;
        loop {
            step = match step {
                Step::Recv => self.recv().await,
                Step::Lookup => Step::Answered(self.lookup().await),
                Step::Pass => {
                    let a = self.fetch(Mode::Pass, None).await;
                    self.invalidate_after_unsafe(&a.response);
                    Step::Answered(a)
                }
                Step::Answered(a) => return a,
            }
        }
    }

    /// The cache key of this request.
    pub fn key(&self) -> cache::Key {
        let url = self.rs.uri.path_and_query().map_or("/", |p| p.as_str());
        cache::key(&self.rs.host, url, &self.rs.key_inputs)
    }
}
