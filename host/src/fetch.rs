//! The backend side of a request: choose a backend, send, classify failures,
//! retry within bounds, run on-backend-response and on-fetch-error, then
//! either stream the response straight through or store it while streaming
//! (a fill task reads the backend body into the object; clients read the object).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use lacquer_cache_semantics as cs;

use crate::backend::{Backend, FetchFailure, FetchKind, PickKey};
use crate::body::{BetweenBytesTimeout, ProxyBody, TimeoutBody, empty};
use crate::cache::body::BodyBuf;
use crate::cache::policy::{self, Facts, VaryKey};
use crate::cache::{FetchGuard, Key, NewObject, Object, Outcome};
use crate::http_util::{VIA, idempotent};
use crate::metrics::State;
use crate::plugin::chain::{
    BerespDecision, FetchErrorDecision, FetchErrorKind, Proposal, Storage, WitFetchError,
};
use crate::plugin::{Hook, RespState, Synth};
use crate::proxy::{Cx, Delivery, text_headers};
use crate::server::Shared;

/// Attempts per request at most, whatever plugins ask.
const MAX_ATTEMPTS: u32 = 5;

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

fn wit_kind(k: FetchKind) -> FetchErrorKind {
    match k {
        FetchKind::ConnectRefused => FetchErrorKind::ConnectRefused,
        FetchKind::ConnectTimeout => FetchErrorKind::ConnectTimeout,
        FetchKind::FirstByteTimeout => FetchErrorKind::FirstByteTimeout,
        FetchKind::BetweenBytesTimeout => FetchErrorKind::BetweenBytesTimeout,
        FetchKind::BackendUnhealthy => FetchErrorKind::BackendUnhealthy,
        FetchKind::BackendBusy => FetchErrorKind::BackendBusy,
        FetchKind::NoBackend => FetchErrorKind::NoBackend,
        FetchKind::CircuitOpen => FetchErrorKind::CircuitOpen,
        FetchKind::ResponseTooLarge => FetchErrorKind::ResponseTooLarge,
        FetchKind::ProtocolError => FetchErrorKind::ProtocolError,
        FetchKind::ConnectionReset => FetchErrorKind::ConnectionReset,
    }
}

impl Cx {
    /// Fetch from a backend and answer the client.
    pub async fn fetch(
        &mut self,
        mut mode: Mode,
        stale: Option<Arc<Object>>,
    ) -> (Response<ProxyBody>, State) {
        let lookup = !matches!(mode, Mode::Pass);
        let retries = self.generation.config.max_retries;
        let mut tried: Vec<Arc<str>> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request_time = SystemTime::now();
            let t0 = Instant::now();
            let sent = self.send(lookup, stale.as_deref(), &tried).await;
            let (be, fetched) = match sent {
                Ok(x) => x,
                Err(mut f) => {
                    f.attempt = attempt;
                    f.elapsed = t0.elapsed();
                    self.note_failure(&f);
                    if !f.backend.is_empty() {
                        tried.push(f.backend.as_str().into());
                    }
                    let can_resend = !self.body_sent && attempt < MAX_ATTEMPTS;
                    // Retries go to another backend: only a director has one.
                    let alternative = self
                        .generation
                        .backends
                        .is_director(self.rs.backend.as_deref());
                    if f.kind.retryable()
                        && alternative
                        && idempotent(&self.rs.method)
                        && can_resend
                        && attempt <= retries
                    {
                        continue;
                    }
                    let stale_ok = stale
                        .as_ref()
                        .filter(|o| o.usable_on_error(&self.cc))
                        .cloned();
                    return match self.fetch_failed(f, stale_ok, Some(&mut mode)).await {
                        Some(r) => r,
                        None if can_resend => continue,
                        None => self.default_error().await,
                    };
                }
            };
            let status = fetched.response.status();
            self.shared
                .metrics
                .backend_response(&be.name, status.as_u16());
            // 502/503/504 say the backend (or what is behind it) is failing or
            // overloaded; a 500 is usually one broken URL and must not eject it.
            if matches!(status.as_u16(), 502..=504) {
                be.health.failure();
            } else {
                be.health.success();
            }
            let (parts, incoming) = fetched.response.into_parts();
            let mut headers = parts.headers;
            // RFC 9112 §6.3: with Transfer-Encoding, Content-Length is
            // ignored (the client decoded the chunks), so it must go: kept,
            // it would frame every delivery of the object wrongly.
            if headers.contains_key(header::TRANSFER_ENCODING) {
                headers.remove(header::CONTENT_LENGTH);
            }
            lacquer_cache_semantics::strip_connection_headers(&mut headers);
            let mut resp = RespState { status, headers };
            let response_time = SystemTime::now();
            // A 304 to our revalidation: the stored copy, with its headers updated.
            let revalidated = match &stale {
                Some(o)
                    if lookup
                        && status == StatusCode::NOT_MODIFIED
                        && o.status == StatusCode::OK =>
                {
                    let mut merged = o.headers.clone();
                    cs::merge_not_modified(&mut merged, &resp.headers);
                    resp = RespState {
                        status: o.status,
                        headers: merged,
                    };
                    Some(o.body.clone())
                }
                _ => None,
            };
            let (proposal, facts) = if lookup {
                policy::propose(
                    &self.rs.headers,
                    resp.status,
                    &resp.headers,
                    request_time,
                    response_time,
                    &self.generation.config.cache,
                )
            } else {
                (pass_proposal(), Facts::default())
            };
            let chain = &self.generation.chain;
            let decision = if chain.implements(Hook::BackendResponse) {
                match chain
                    .on_backend_response(&mut self.rs, &mut resp, proposal)
                    .await
                {
                    Ok(d) => d,
                    Err(pf) => {
                        mode.resolve(Outcome::Uncacheable);
                        return self.plugin_failed(pf);
                    }
                }
            } else {
                BerespDecision::Proposal(proposal)
            };
            let body = match revalidated {
                Some(buf) => Source::Stored(buf),
                None => Source::Backend(TimeoutBody::new(
                    incoming,
                    be.cfg.section.between_bytes_timeout,
                    fetched.permit,
                )),
            };
            match decision {
                BerespDecision::Retry if !self.body_sent && attempt < MAX_ATTEMPTS => {
                    tried.push(be.name.clone());
                    continue;
                }
                BerespDecision::Retry => {
                    return self
                        .store_or_stream(mode, &be, resp, body, pass_proposal(), facts)
                        .await;
                }
                BerespDecision::Synth(s) => {
                    mode.resolve(Outcome::Uncacheable);
                    return self.deliver_synth(s).await;
                }
                BerespDecision::Proposal(p) => {
                    return self.store_or_stream(mode, &be, resp, body, p, facts).await;
                }
            }
        }
    }

    /// Choose a backend and send the request to it.
    async fn send(
        &mut self,
        lookup: bool,
        stale: Option<&Object>,
        tried: &[Arc<str>],
    ) -> Result<(Arc<Backend>, crate::backend::Fetched), FetchFailure> {
        let url = self
            .rs
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let key = PickKey {
            url: &url,
            client_ip: self.rs.client.ip(),
            headers: &self.rs.headers,
        };
        let be = self
            .generation
            .backends
            .choose(self.rs.backend.as_deref(), &key, tried)?;
        let mut headers = self.rs.headers.clone();
        // The backend sees exactly the host the cache key used.
        headers.remove(header::HOST);
        if !self.rs.host.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.rs.host)
        {
            headers.insert(header::HOST, v);
        }
        if lookup {
            // The cache fetches whole objects and answers conditionals and ranges itself.
            for h in [
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_RANGE,
                header::RANGE,
                header::IF_MATCH,
                header::IF_UNMODIFIED_SINCE,
            ] {
                headers.remove(h);
            }
            // Revalidate a stale copy instead of fetching it again.
            if let Some(o) = stale.filter(|o| !o.hfm && o.status == StatusCode::OK) {
                for (k, v) in cs::conditional_request_headers(&o.headers) {
                    if let Some(k) = k {
                        headers.insert(k, v);
                    }
                }
            }
        }
        headers.append(header::VIA, VIA);
        if let Ok(v) = HeaderValue::from_str(&self.rs.client.ip().to_string()) {
            headers.append("x-forwarded-for", v);
        }
        let body: ProxyBody = match (lookup, self.body.take()) {
            (false, Some(b)) if !http_body::Body::is_end_stream(&b) => {
                self.body_sent = true;
                b.map_err(Into::into).boxed_unsync()
            }
            _ => empty(),
        };
        let method = if lookup {
            Method::GET
        } else {
            self.rs.method.clone()
        };
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = self.rs.uri.clone();
        *req.headers_mut() = headers;
        match be.send(req).await {
            // Interim answers (a 101 above all) are the host's business: no
            // request asked to switch protocols, so one is a broken backend.
            Ok(f) if f.response.status().is_informational() => Err(FetchFailure {
                kind: FetchKind::ProtocolError,
                backend: be.name.to_string(),
                attempt: 0,
                elapsed: Duration::ZERO,
                detail: format!(
                    "backend answered {} to a request that asked for no protocol switch",
                    f.response.status()
                ),
            }),
            Ok(f) => Ok((be, f)),
            Err((kind, detail)) => Err(FetchFailure {
                kind,
                backend: be.name.to_string(),
                attempt: 0,
                elapsed: Duration::ZERO,
                detail,
            }),
        }
    }

    /// Log, count and remember a failure; feed the circuit breaker.
    fn note_failure(&self, f: &FetchFailure) {
        tracing::warn!(
            req = &*self.rs.id,
            backend = %f.backend,
            kind = f.kind.as_str(),
            elapsed_ms = f.elapsed.as_millis() as u64,
            attempt = f.attempt,
            "fetch failed: {}",
            f.detail
        );
        self.shared
            .metrics
            .fetch_failure(&f.backend, f.kind.as_str());
        self.shared.record_failure(
            &self.rs.id,
            format!("{} {}", self.rs.method, self.rs.uri),
            f,
        );
        if f.kind.breaker_failure()
            && let Some(crate::backend::Target::Backend(b)) =
                self.generation.backends.targets.get(&f.backend)
            && b.health.failure()
        {
            tracing::error!(backend = %f.backend, "circuit opened after consecutive failures");
        }
    }

    /// Ask on-fetch-error what to do. `None` means retry.
    pub async fn fetch_failed(
        &mut self,
        f: FetchFailure,
        stale: Option<Arc<Object>>,
        mode: Option<&mut Mode>,
    ) -> Option<(Response<ProxyBody>, State)> {
        let werr = WitFetchError {
            kind: wit_kind(f.kind),
            backend: f.backend.clone(),
            attempt: f.attempt,
            elapsed_ms: f.elapsed.as_millis() as u64,
            detail: f.detail.clone(),
        };
        let decision = self
            .generation
            .chain
            .on_fetch_error(&mut self.rs, &werr, stale.is_some())
            .await;
        let is_retry = matches!(decision, Ok(FetchErrorDecision::Retry));
        if is_retry && mode.is_some() {
            return None;
        }
        if let Some(m) = mode {
            m.resolve(Outcome::Failed(f.clone()));
        }
        self.failure = Some(f);
        Some(match decision {
            Err(pf) => self.plugin_failed(pf),
            Ok(FetchErrorDecision::ServeStale) => match stale {
                Some(o) => self.deliver_object(&o, State::Stale, None).await,
                None => self.default_error().await,
            },
            Ok(FetchErrorDecision::Synth(s)) => self.deliver_synth(s).await,
            Ok(FetchErrorDecision::Default | FetchErrorDecision::Retry) => {
                self.default_error().await
            }
        })
    }

    /// The host's own error, when no plugin made a page: 502 when the
    /// backend answered something unusable, else 503.
    pub async fn default_error(&mut self) -> (Response<ProxyBody>, State) {
        let status = match self.failure.as_ref().map(|f| f.kind) {
            Some(FetchKind::ProtocolError | FetchKind::ResponseTooLarge) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut body = format!(
            "{status}\nbackend fetch failed\nrequest id: {}\n",
            self.rs.id
        );
        if self.generation.config.debug_headers
            && let Some(f) = &self.failure
        {
            body.push_str(&format!(
                "cause: {} backend={} ({})\n",
                f.kind.as_str(),
                f.backend,
                f.detail
            ));
        }
        self.deliver_synth(Synth {
            status,
            headers: text_headers(),
            body: Bytes::from(body),
        })
        .await
    }

    async fn store_or_stream(
        &mut self,
        mut mode: Mode,
        be: &Backend,
        mut resp: RespState,
        body: Source,
        p: Proposal,
        facts: Facts,
    ) -> (Response<ProxyBody>, State) {
        let cfg = &self.generation.config.cache;
        let length = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_big = length.is_some_and(|l| l > cfg.max_object_size.0);
        if too_big && p.storage == Storage::Cache {
            self.shared.metrics.cache_too_large.inc();
        }
        let storable =
            p.storage == Storage::Cache && !too_big && resp.status != StatusCode::PARTIAL_CONTENT;
        let cache = &self.shared.cache;
        match (mode.key(), storable, p.storage) {
            (Some(key), true, _) => {
                let opts = policy::options(cfg);
                cs::remove_unstorable_fields(&mut resp.headers, &opts);
                cs::ensure_date(&mut resp.headers, SystemTime::now());
                let (buf, backend_body) = match body {
                    Source::Stored(buf) => (buf, None),
                    Source::Backend(b) => (BodyBuf::filling(), Some(b)),
                };
                let obj = cache.insert(
                    key,
                    NewObject {
                        status: resp.status,
                        headers: resp.headers,
                        body: buf,
                        initial_age: facts.initial_age,
                        ttl: p.ttl,
                        grace: p.grace,
                        keep: p.keep,
                        hfm: false,
                        vary: facts
                            .vary
                            .map(|names| VaryKey::new(names, &self.rs.headers)),
                        must_revalidate: facts.must_revalidate,
                        no_cache: facts.no_cache,
                        stale_if_error: facts.stale_if_error,
                        host: self.rs.host.as_str().into(),
                        url: self
                            .rs
                            .uri
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .into(),
                    },
                );
                mode.resolve(Outcome::Stored);
                // The first client reads from the start: registered before
                // the fill runs, so an overflow streams to it.
                let first =
                    (!self.background && self.rs.method != Method::HEAD).then(|| obj.body.reader());
                if let Some(body) = backend_body {
                    tokio::spawn(fill(
                        self.shared.clone(),
                        obj.clone(),
                        body,
                        FillCx {
                            max: cfg.max_object_size.0,
                            req: self.rs.id.clone(),
                            request: format!("{} {}", self.rs.method, self.rs.uri),
                            backend: be.name.clone(),
                        },
                    ));
                }
                if self.background {
                    return (Response::new(empty()), State::Miss);
                }
                self.deliver_object(&obj, State::Miss, first).await
            }
            (key, _, storage) => {
                if let Some(key) = key
                    && storage == Storage::HitForMiss
                    && !p.ttl.is_zero()
                {
                    cache.insert(key, hit_for_miss(p.ttl, &self.rs.host, &self.rs.uri));
                }
                let state = if matches!(mode, Mode::Miss(_)) {
                    State::Miss
                } else {
                    State::Pass
                };
                mode.resolve(Outcome::Uncacheable);
                if self.background {
                    return (Response::new(empty()), state);
                }
                let body = match body {
                    _ if self.rs.method == Method::HEAD => empty(),
                    Source::Stored(buf) => buf.reader(),
                    Source::Backend(b) => b.boxed_unsync(),
                };
                self.deliver(Delivery {
                    status: resp.status,
                    headers: resp.headers,
                    body,
                    state,
                    hits: 0,
                    age: 0,
                })
                .await
            }
        }
    }
}

/// Where a response's body comes from.
enum Source {
    /// The backend, still streaming.
    Backend(TimeoutBody<Incoming>),
    /// A stored object's body (after a 304 revalidated it).
    Stored(Arc<BodyBuf>),
}

fn pass_proposal() -> Proposal {
    Proposal {
        storage: Storage::Uncacheable,
        ttl: Duration::ZERO,
        grace: Duration::ZERO,
        keep: Duration::ZERO,
        reason: "pass".into(),
    }
}

fn hit_for_miss(ttl: Duration, host: &str, uri: &http::Uri) -> NewObject {
    NewObject {
        status: StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: BodyBuf::complete(Bytes::new()),
        initial_age: Duration::ZERO,
        ttl,
        grace: Duration::ZERO,
        keep: Duration::ZERO,
        hfm: true,
        vary: None,
        must_revalidate: false,
        no_cache: false,
        stale_if_error: Duration::ZERO,
        host: host.into(),
        url: uri.path_and_query().map_or("/", |p| p.as_str()).into(),
    }
}

/// Read the backend body into a stored object. Past `max` (data bytes, or
/// twice that counting chunk overhead) the object leaves the cache and the
/// rest only streams to the clients already reading it, no faster than the
/// slowest; with none left, the backend is no longer read. A failed body
/// drops the object.
async fn fill(shared: Arc<Shared>, obj: Arc<Object>, mut body: TimeoutBody<Incoming>, f: FillCx) {
    let start = Instant::now();
    let (mut data_len, mut cost) = (0u64, 0u64);
    let mut kept = true;
    loop {
        match body.frame().await {
            None => {
                obj.body.finish();
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                data_len += data.len() as u64;
                let chunk_cost = (data.len() + crate::cache::body::CHUNK_OVERHEAD) as u64;
                if kept && (data_len > f.max || cost + chunk_cost > 2 * f.max) {
                    kept = false;
                    shared.cache.remove(&obj);
                    shared.metrics.cache_too_large.inc();
                    obj.body.overflow();
                    tracing::info!(
                        req = &*f.req,
                        "object exceeds max_object_size ({} bytes): not cached, streaming through",
                        f.max
                    );
                }
                match obj.body.push(data).await {
                    Some(c) => {
                        cost += c as u64;
                        if kept {
                            shared.cache.grow(&obj, c);
                        }
                    }
                    None => {
                        // Not cached and nobody reads it any more.
                        obj.body.fail();
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                obj.body.fail();
                shared.cache.remove(&obj);
                let kind = if e.downcast_ref::<BetweenBytesTimeout>().is_some() {
                    FetchKind::BetweenBytesTimeout
                } else {
                    FetchKind::ConnectionReset
                };
                let failure = FetchFailure {
                    kind,
                    backend: f.backend.to_string(),
                    attempt: 1,
                    elapsed: start.elapsed(),
                    detail: format!("after {data_len} body bytes: {e}"),
                };
                tracing::warn!(
                    req = &*f.req,
                    backend = %f.backend,
                    kind = kind.as_str(),
                    "body fetch failed: {e}"
                );
                shared.metrics.fetch_failure(&f.backend, kind.as_str());
                shared.record_failure(&f.req, f.request, &failure);
                return;
            }
        }
    }
}

/// What a fill task needs to know of its request.
struct FillCx {
    max: u64,
    req: Arc<str>,
    /// Method and URL, for `/fetch-errors`.
    request: String,
    backend: Arc<str>,
}
