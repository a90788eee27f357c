//! Attempts against backends: choose one, send, classify a failure into
//! its kind, retry within bounds, and run `on-backend-response` /
//! `on-fetch-error`. What becomes of a response is [`super::store`]'s job.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;

use lacquer_cache_semantics as cs;

use super::store::Source;
use super::{AfterError, Answer, Cx, Mode};
use crate::backend::{Backend, PickKey};
use crate::body::{ProxyBody, TimeoutBody, empty};
use crate::cache::policy::{self, Facts};
use crate::cache::{Object, Outcome};
use crate::http_util::{VIA, idempotent};
use crate::kinds::{FetchFailure, FetchKind, Hook, Proposal, State};
use crate::plugin::RespState;
use crate::plugin::chain::{BerespDecision, FetchErrorDecision, WitFetchError};

/// Attempts per request at most, whatever plugins ask.
const MAX_ATTEMPTS: u32 = 5;

impl Cx {
    /// Fetch from a backend and answer the client. The fetch's future is
    /// several KiB: it is boxed, so that the future of every request (a hit
    /// never fetches) stays small and cheap to move.
    pub fn fetch(
        &mut self,
        mode: Mode,
        stale: Option<Arc<Object>>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Answer> + Send + '_>> {
        Box::pin(self.fetch_unboxed(mode, stale))
    }

    async fn fetch_unboxed(&mut self, mut mode: Mode, stale: Option<Arc<Object>>) -> Answer {
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
                        AfterError::Answer(a) => a,
                        AfterError::Retry if can_resend => continue,
                        AfterError::Retry => self.default_error().await,
                    };
                }
            };
            let status = fetched.response.status();
            self.shared
                .metrics
                .backend_response(&be.name, status.as_u16());
            // 502/503/504 (by default) say the backend, or what is behind
            // it, is failing or overloaded; a 500 is usually one broken URL
            // and must not eject it.
            if be.cfg.circuit.statuses.contains(&status.as_u16()) {
                let reason = format!(
                    "status {} to {} {}",
                    status.as_u16(),
                    self.rs.method,
                    self.rs.uri
                );
                if let Some(o) = be.health.failure(&reason) {
                    circuit_opened(&be.name, o, &reason);
                }
            } else {
                be.health.success();
            }
            // RFC 5861 §4: a server error while a stored copy may be served
            // on error gets that copy (waiters fetch for themselves).
            if lookup
                && self
                    .generation
                    .config
                    .cache
                    .stale_on_status
                    .contains(&status.as_u16())
                && let Some(o) = stale.as_ref().filter(|o| o.usable_on_error(&self.cc))
            {
                tracing::info!(
                    req = &*self.rs.id,
                    backend = %be.name,
                    status = status.as_u16(),
                    "backend answered {status}: serving the stored copy (stale-if-error)"
                );
                let o = o.clone();
                mode.resolve(Outcome::Uncacheable);
                return self.deliver_object(&o, State::Stale, None).await;
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
                    Some((o.body.clone(), o.gzip.clone()))
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
                (Proposal::pass(), Facts::default())
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
                Some((buf, gzip)) => Source::Stored(buf, gzip),
                None => Source::Backend(TimeoutBody::new(
                    incoming,
                    be.cfg.timeouts.between_bytes,
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
                        .store_or_stream(mode, &be, resp, body, Proposal::pass(), facts)
                        .await;
                }
                BerespDecision::Synth(s) => {
                    mode.resolve(Outcome::Uncacheable);
                    return self.deliver_synth(s).await;
                }
                BerespDecision::Proposal(mut p) => {
                    if let Some(c) = self.shared.cluster.get()
                        && be.name.starts_with("cluster:")
                    {
                        p = c.local_copy(p);
                    }
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
        let mut headers = self.rs.headers.clone();
        // The backend sees exactly the host the cache key used.
        headers.remove(header::HOST);
        if !self.rs.host.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.rs.host)
        {
            headers.insert(header::HOST, v);
        }
        if lookup {
            // The cache fetches whole objects and answers conditionals and
            // ranges itself; with `[cache] partial` it asks for the range.
            // A stale complete copy is revalidated whole instead.
            let mut ranged = self.generation.config.cache.partial.enabled
                && self.rs.method == Method::GET
                && headers.contains_key(header::RANGE)
                && stale.is_none_or(|o| o.partial.is_some() || o.hfm);
            // The pieces stored: their range is asked for if they are still
            // the current object (`If-Range` with their tag), else the whole
            // changed object comes. A client's own `If-Range` goes to the
            // backend when nothing is stored (it decides between the range
            // and the whole object); one naming another version than the
            // pieces' asks for the whole object (RFC 9110 §13.1.5: a range
            // of a version the client doesn't have must not be sent).
            let pieces_tag = if ranged {
                self.shared
                    .cache
                    .partial_variant(self.key(), &self.rs.headers)
                    .and_then(|o| o.headers.get(header::ETAG).cloned())
            } else {
                None
            };
            let client_if_range = headers.get(header::IF_RANGE).cloned();
            if let (Some(tag), Some(theirs)) = (&pieces_tag, &client_if_range)
                && tag != theirs
            {
                ranged = false;
            }
            for h in [
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_RANGE,
                header::RANGE,
                header::IF_MATCH,
                header::IF_UNMODIFIED_SINCE,
            ] {
                if !(ranged && h == header::RANGE) {
                    headers.remove(h);
                }
            }
            if ranged && let Some(v) = pieces_tag.or(client_if_range) {
                headers.insert(header::IF_RANGE, v);
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
        self.forwarded.apply(
            &mut headers,
            self.forwarded.scheme,
            self.generation.config.forwarded,
        );
        if let Ok(v) = HeaderValue::from_str(&self.rs.id) {
            headers.insert(super::REQUEST_ID, v);
        }
        // Never sent on: a hop is answered here, and a forged one is none.
        headers.remove(crate::cluster::HOP_HEADER);
        if lookup
            && let Some(c) = self.shared.cluster.get()
            && let Some(peer) = c.peer_for(self.key(), &self.rs.headers)
        {
            let mut hop = headers.clone();
            c.hop_headers(self.key(), &mut hop);
            let mut req = Request::new(empty());
            *req.uri_mut() = self.rs.uri.clone();
            *req.headers_mut() = hop;
            match peer.send(req).await {
                Ok(f)
                    if !f.response.status().is_server_error()
                        && !f.response.status().is_informational() =>
                {
                    c.owner_fetched(&peer, Ok(()));
                    self.backend_used = Some((peer.name.to_string(), f.response.status().as_u16()));
                    return Ok((peer, f));
                }
                Ok(f) => c.owner_fetched(
                    &peer,
                    Err((None, format!("status {}", f.response.status()))),
                ),
                Err((kind, detail)) => c.owner_fetched(&peer, Err((Some(kind), detail))),
            }
        }
        let be = self
            .generation
            .backends
            .choose(self.rs.backend.as_deref(), &key, tried)?;
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
        // RFC 8297: early hints go on to the client as they come; they are
        // never part of the final response nor of what is stored.
        if let Some(sink) = self.interim.clone().filter(|_| !self.background) {
            hyper::ext::on_informational(&mut req, move |r| {
                if r.status() == StatusCode::EARLY_HINTS {
                    sink.early_hints(r.headers());
                }
            });
        }
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
            Ok(f) => {
                self.backend_used = Some((be.name.to_string(), f.response.status().as_u16()));
                Ok((be, f))
            }
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
        {
            let reason = format!("{} on {} {}", f.kind.as_str(), self.rs.method, self.rs.uri);
            if let Some(o) = b.health.failure(&reason) {
                circuit_opened(&f.backend, o, &reason);
            }
        }
    }

    /// Ask on-fetch-error what to do.
    pub async fn fetch_failed(
        &mut self,
        f: FetchFailure,
        stale: Option<Arc<Object>>,
        mode: Option<&mut Mode>,
    ) -> AfterError {
        let werr = WitFetchError {
            kind: f.kind.into(),
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
            return AfterError::Retry;
        }
        if let Some(m) = mode {
            m.resolve(Outcome::Failed(f.clone()));
        }
        self.failure = Some(f);
        AfterError::Answer(match decision {
            Err(pf) => self.plugin_failed(pf),
            Ok(FetchErrorDecision::ServeStale) => match stale {
                Some(o) => self.deliver_object(&o, State::Stale, None).await,
                None => self.default_error().await,
            },
            Ok(FetchErrorDecision::Synth(s)) => self.deliver_synth(s).await,
            // No plugin decided: a copy usable on error (RFC 5861
            // `stale-if-error`, or `[cache] stale_if_error`) beats an error.
            Ok(FetchErrorDecision::Default | FetchErrorDecision::Retry) => match stale {
                Some(o) => self.deliver_object(&o, State::Stale, None).await,
                None => self.default_error().await,
            },
        })
    }
}

/// One line when a circuit opens: the backend, the count, for how long, and
/// the failure that tipped it (until a trial succeeds, every request to the
/// backend fails fast as `circuit-open`).
fn circuit_opened(backend: &str, o: crate::backend::health::Opened, last: &str) {
    tracing::error!(
        backend = %backend,
        failures = o.failures,
        "circuit opened after {} consecutive failures (last: {last}); requests fail fast as circuit-open for {:?}, then one trial request (set with [[backends]] circuit)",
        o.failures,
        o.period
    );
}
