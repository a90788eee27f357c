//! The request flow: on-recv, then synth / purge / pass / lookup; a lookup
//! finds a fresh hit, a stale object in grace, or fetches (coalesced); every
//! response goes through on-deliver. See `fetch.rs` for the backend side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use lacquer_cache_semantics as cs;

use crate::backend::FetchFailure;
use crate::body::{ProxyBody, empty, full};
use crate::cache::body::BodyBuf;
use crate::cache::{self, Lookup, Object, Outcome};
use crate::fetch::Mode;
use crate::http_util::{VIA, request_host};
use crate::metrics::State;
use crate::plugin::chain::{CacheState, DeliverInfo, RecvDecision};
use crate::plugin::{Hook, PluginFailure, ReqState, RespState, Synth};
use crate::server::{Generation, Shared};

/// How many times a request waits for another's fetch before fetching itself.
const MAX_WAITS: usize = 4;

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

/// One request's context.
pub struct Cx {
    /// Server state.
    pub shared: Arc<Shared>,
    /// The generation the request started on.
    pub generation: Arc<Generation>,
    /// The request as plugins see it.
    pub rs: ReqState,
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
}

/// Serve one client request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let generation = shared.generation.load_full();
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    lacquer_cache_semantics::strip_connection_headers(&mut headers);
    // One host for the cache key and the backend (RFC 9112 §3.2): the
    // target's authority, else the single Host field.
    let host = match request_host(parts.version, &headers, &parts.uri) {
        Ok(h) => h,
        Err((reason, message)) => {
            shared.metrics.request_refused(reason);
            shared
                .metrics
                .request(State::Synth, start.elapsed().as_secs_f64());
            tracing::info!(client = %peer, reason, "refused request: {message}");
            return bad_request(&message);
        }
    };
    headers.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(&host)
        && !host.is_empty()
    {
        headers.insert(header::HOST, v);
    }
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| Uri::from(pq.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    let rs = ReqState {
        method: parts.method,
        uri,
        headers,
        host,
        client: peer,
        id: shared.request_id(),
        backend: None,
        key_inputs: Vec::new(),
    };
    let metrics = shared.metrics.clone();
    let cc = cs::CacheControl::parse(&rs.headers, &header::CACHE_CONTROL);
    let mut cx = Cx {
        cc,
        shared,
        generation,
        rs,
        body: Some(body),
        body_sent: false,
        failure: None,
        background: false,
    };
    let (resp, state) = cx.run().await;
    metrics.request(state, start.elapsed().as_secs_f64());
    resp
}

impl Cx {
    async fn run(&mut self) -> (Response<ProxyBody>, State) {
        let decision = match self.generation.chain.on_recv(&mut self.rs).await {
            Ok(d) => d,
            Err(f) => return self.plugin_failed(f),
        };
        let cacheable_method = matches!(self.rs.method, Method::GET | Method::HEAD);
        match decision {
            RecvDecision::Synth(s) => self.deliver_synth(s).await,
            RecvDecision::Purge => {
                let n = self.shared.cache.purge(self.key());
                tracing::info!(req = &*self.rs.id, url = %self.rs.uri, "purged {n} objects");
                let s = Synth {
                    status: StatusCode::OK,
                    headers: text_headers(),
                    body: Bytes::from(format!("purged {n} objects\n")),
                };
                self.deliver_synth(s).await
            }
            RecvDecision::Lookup | RecvDecision::Default if cacheable_method => self.lookup().await,
            _ => {
                let r = self.fetch(Mode::Pass, None).await;
                self.invalidate_after_unsafe(&r.0);
                r
            }
        }
    }

    /// The cache key of this request.
    pub fn key(&self) -> cache::Key {
        let url = self.rs.uri.path_and_query().map_or("/", |p| p.as_str());
        cache::key(&self.rs.host, url, &self.rs.key_inputs)
    }

    async fn lookup(&mut self) -> (Response<ProxyBody>, State) {
        let key = self.key();
        let mut waited = false;
        for _ in 0..MAX_WAITS {
            // After waiting for a fetch, what it stored is as fresh as a revalidation.
            let (cc, headers) = if waited {
                (cs::CacheControl::default(), &self.rs.headers)
            } else {
                (self.cc.clone(), &self.rs.headers)
            };
            let found = self.shared.cache.lookup(key, headers, &cc, waited);
            if self.cc.only_if_cached && !matches!(found, Lookup::Hit(_) | Lookup::Stale { .. }) {
                if let Lookup::Miss { guard, .. } = found {
                    guard.resolve(Outcome::Uncacheable);
                }
                return self.gateway_timeout().await;
            }
            match found {
                Lookup::Hit(o) => return self.deliver_object(&o, State::Hit, None).await,
                Lookup::Stale { obj, refresh } => {
                    if let Some(guard) = refresh {
                        let mut bg = Cx {
                            shared: self.shared.clone(),
                            generation: self.generation.clone(),
                            rs: self.rs.clone(),
                            body: None,
                            body_sent: false,
                            failure: None,
                            background: true,
                            cc: cs::CacheControl::default(),
                        };
                        tokio::spawn(async move {
                            bg.fetch(Mode::Miss(guard), None).await;
                        });
                    }
                    return self.deliver_object(&obj, State::Stale, None).await;
                }
                Lookup::Wait(mut rx) => {
                    let outcome = loop {
                        if let Some(o) = rx.borrow_and_update().clone() {
                            break o;
                        }
                        if rx.changed().await.is_err() {
                            break Outcome::Failed(FetchFailure::abandoned());
                        }
                    };
                    match outcome {
                        Outcome::Stored => {
                            waited = true;
                            continue;
                        }
                        Outcome::Uncacheable => {
                            return self.fetch(Mode::HitForMiss(key), None).await;
                        }
                        Outcome::Failed(f) => {
                            return match self.fetch_failed(f, None, None).await {
                                Some(r) => r,
                                None => self.default_error().await,
                            };
                        }
                    }
                }
                Lookup::HitForMiss => return self.fetch(Mode::HitForMiss(key), None).await,
                Lookup::Miss { guard, stale } => return self.fetch(Mode::Miss(guard), stale).await,
            }
        }
        self.fetch(Mode::HitForMiss(key), None).await
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates the URL and
    /// same-origin `Location` / `Content-Location` targets.
    fn invalidate_after_unsafe(&self, resp: &Response<ProxyBody>) {
        for target in
            cs::invalidation_targets(&self.rs.method, resp.status(), &self.rs.uri, resp.headers())
        {
            self.shared
                .cache
                .purge(cache::key(&self.rs.host, &target, &self.rs.key_inputs));
        }
    }

    /// `only-if-cached` with nothing usable: 504 (RFC 9111 §5.2.1.7).
    async fn gateway_timeout(&mut self) -> (Response<ProxyBody>, State) {
        self.deliver_synth(Synth {
            status: StatusCode::GATEWAY_TIMEOUT,
            headers: text_headers(),
            body: Bytes::from_static(b"504 Gateway Timeout\nonly-if-cached: not in cache\n"),
        })
        .await
    }

    /// Deliver a cached object, answering the client's conditionals (304/412)
    /// and byte ranges (206/416) from it. `reader`, when given, is a reader
    /// of its body made earlier (the first client of a filling object).
    pub async fn deliver_object(
        &mut self,
        o: &Arc<Object>,
        state: State,
        reader: Option<ProxyBody>,
    ) -> (Response<ProxyBody>, State) {
        let mut headers = o.headers.clone();
        let age = o.age();
        headers.insert(header::AGE, cs::age_header_value(age));
        let head = self.rs.method == Method::HEAD;
        let mut status = o.status;
        // The host frames what it sends: a complete body's length is known.
        if let Some(len) = o.body.complete_len()
            && o.status != StatusCode::NO_CONTENT
        {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let mut body = match reader {
            _ if head => empty(),
            Some(r) => r,
            None => o.body.reader(),
        };
        match cs::evaluate_conditionals(&self.rs.method, &self.rs.headers, o.status, &o.headers) {
            cs::Conditional::NotModified => {
                status = StatusCode::NOT_MODIFIED;
                body = empty();
                for h in [
                    header::CONTENT_LENGTH,
                    header::CONTENT_RANGE,
                    header::TRANSFER_ENCODING,
                ] {
                    headers.remove(h);
                }
            }
            cs::Conditional::PreconditionFailed => {
                status = StatusCode::PRECONDITION_FAILED;
                body = empty();
                headers = text_headers();
            }
            cs::Conditional::None => {
                if o.status == StatusCode::OK && self.rs.method == Method::GET {
                    if let Some(len) = o.body.complete_len() {
                        let d = cs::range(&self.rs.headers, len, &o.headers);
                        if let Some(cr) = d.content_range(len) {
                            headers.insert(header::CONTENT_RANGE, cr);
                        }
                        match d {
                            cs::RangeDecision::Full => {}
                            cs::RangeDecision::Partial { start, end } => {
                                if let Some(part) = o.body.slice(start, end) {
                                    status = StatusCode::PARTIAL_CONTENT;
                                    headers.insert(
                                        header::CONTENT_LENGTH,
                                        HeaderValue::from(end - start + 1),
                                    );
                                    body = BodyBuf::of_chunks(part);
                                }
                            }
                            cs::RangeDecision::Unsatisfiable => {
                                status = StatusCode::RANGE_NOT_SATISFIABLE;
                                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                                body = empty();
                            }
                        }
                    }
                    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                }
            }
        }
        self.deliver(Delivery {
            status,
            headers,
            body,
            state,
            hits: o.hits.load(std::sync::atomic::Ordering::Relaxed),
            age: age.as_secs(),
        })
        .await
    }

    /// Deliver a plugin's (or the host's) synthetic response.
    pub async fn deliver_synth(&mut self, s: Synth) -> (Response<ProxyBody>, State) {
        let body = if self.rs.method == Method::HEAD {
            empty()
        } else {
            full(s.body)
        };
        self.deliver(Delivery {
            status: s.status,
            headers: s.headers,
            body,
            state: State::Synth,
            hits: 0,
            age: 0,
        })
        .await
    }

    /// Run on-deliver and build the client response.
    pub async fn deliver(&mut self, d: Delivery) -> (Response<ProxyBody>, State) {
        let Delivery {
            status,
            headers,
            mut body,
            state,
            hits,
            age,
        } = d;
        let mut resp = RespState { status, headers };
        let chain = &self.generation.chain;
        if !self.background && chain.implements(Hook::Deliver) {
            let info = DeliverInfo {
                state: match state {
                    State::Hit => CacheState::Hit,
                    State::Miss => CacheState::Miss,
                    State::Pass => CacheState::Pass,
                    State::Stale => CacheState::Stale,
                    State::Synth => CacheState::Synth,
                },
                hits,
                age_s: age,
                debug: self.generation.config.debug_headers,
            };
            match chain.on_deliver(&mut self.rs, &mut resp, info).await {
                Ok(None) => {}
                Ok(Some(s)) => {
                    resp = RespState {
                        status: s.status,
                        headers: s.headers,
                    };
                    body = if self.rs.method == Method::HEAD {
                        empty()
                    } else {
                        full(s.body)
                    };
                }
                Err(f) => return self.plugin_failed(f),
            }
        }
        resp.headers.append(header::VIA, VIA);
        if self.generation.config.debug_headers
            && let Some(f) = &self.failure
            && let Ok(v) =
                HeaderValue::from_str(&format!("{} backend={}", f.kind.as_str(), f.backend))
        {
            resp.headers.insert("x-lacquer-error", v);
        }
        let mut r = Response::new(body);
        *r.status_mut() = resp.status;
        *r.headers_mut() = resp.headers;
        (r, state)
    }

    /// A fail-closed plugin fault: 500 naming the plugin. on-deliver does not run.
    pub fn plugin_failed(&mut self, f: PluginFailure) -> (Response<ProxyBody>, State) {
        tracing::error!(
            req = &*self.rs.id,
            plugin = &*f.plugin,
            hook = f.hook.as_str(),
            kind = f.fault.kind.as_str(),
            "plugin failed, answering 500: {}",
            f.fault.message
        );
        let mut headers = text_headers();
        if self.generation.config.debug_headers
            && let Ok(v) = HeaderValue::from_str(&format!(
                "plugin-{} plugin={}",
                f.fault.kind.as_str(),
                f.plugin
            ))
        {
            headers.insert("x-lacquer-error", v);
        }
        headers.insert(header::VIA, VIA);
        let body = format!(
            "500 Internal Server Error\nplugin {} failed in {} ({})\nrequest id: {}\n",
            f.plugin,
            f.hook.as_str(),
            f.fault.kind.as_str(),
            self.rs.id
        );
        let mut r = Response::new(if self.rs.method == Method::HEAD {
            empty()
        } else {
            full(body)
        });
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        *r.headers_mut() = headers;
        (r, State::Synth)
    }
}

/// A 400 for a request the host refuses before any plugin sees it.
fn bad_request(message: &str) -> Response<ProxyBody> {
    let mut r = Response::new(full(format!("400 Bad Request\n{message}\n")));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    *r.headers_mut() = text_headers();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `Content-Type: text/plain` and `Cache-Control: no-store`.
pub fn text_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}
