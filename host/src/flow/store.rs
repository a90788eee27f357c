//! What becomes of a backend response: stored while it streams to the
//! client (a fill task reads the backend into the object), remembered as
//! hit-for-miss, or passed straight through.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use lacquer_cache_semantics as cs;

use super::{Answer, Cx, Delivery, Mode};
use crate::backend::Backend;
use crate::body::{BetweenBytesTimeout, TimeoutBody, empty};
use crate::cache::body::BodyBuf;
use crate::cache::gzip::{Encoder, Gunzip, Gzipped};
use crate::cache::policy::{self, Facts, VaryKey};
use crate::cache::{NewObject, Object, Outcome};
use crate::kinds::{FetchFailure, FetchKind, Proposal, State, Storage};
use crate::plugin::RespState;
use crate::state::Shared;

/// Where a response's body comes from.
pub(super) enum Source {
    /// The backend, still streaming.
    Backend(TimeoutBody<Incoming>),
    /// A stored object's body (after a 304 revalidated it), and whether
    /// the cache stored it compressed.
    Stored(Arc<BodyBuf>, Option<Arc<Gzipped>>),
}

impl Cx {
    /// What is stored for this request: `status`, `headers` and `body`, kept
    /// as the policy (`p`) and the response's caching facts decided, neither
    /// compressed nor a partial piece.
    pub(super) fn new_object(
        &self,
        status: StatusCode,
        headers: http::HeaderMap,
        body: Arc<BodyBuf>,
        p: &Proposal,
        facts: Facts,
    ) -> NewObject {
        NewObject {
            status,
            headers,
            body,
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
            gzip: None,
            partial: None,
        }
    }

    pub(super) async fn store_or_stream(
        &mut self,
        mut mode: Mode,
        be: &Backend,
        mut resp: RespState,
        mut body: Source,
        p: Proposal,
        facts: Facts,
    ) -> Answer {
        if let Source::Backend(b) = body {
            if let Some(cr) = self.storable_piece(&mode, &resp, &p) {
                return self.store_piece(mode, be, resp, b, cr, p, facts).await;
            }
            body = Source::Backend(b);
        }
        let cfg = &self.generation.config.cache;
        let length = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_big = length.is_some_and(|l| l > cfg.max_object());
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
                // Compress what the backend sent uncompressed (a revalidated
                // body keeps the coding it was stored with).
                let compress =
                    matches!(body, Source::Backend(_)) && self.compressible(&resp, length);
                let (buf, backend_body, gzip) = match body {
                    Source::Stored(buf, gzip) => (buf, None, gzip),
                    Source::Backend(b) => {
                        let gzip = compress.then(|| Gzipped::new(length));
                        (BodyBuf::filling(), Some(b), gzip)
                    }
                };
                if gzip.is_some() {
                    // Its length is the compressed one, known when it completes.
                    resp.headers.remove(header::CONTENT_LENGTH);
                }
                if compress {
                    self.shared.metrics.compressed_objects.inc();
                }
                let obj = cache.insert(
                    key,
                    NewObject {
                        gzip,
                        ..self.new_object(resp.status, resp.headers, buf, &p, facts)
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
                            gzip: obj.gzip.as_ref().map(|_| Encoder::new(cfg.compress.level)),
                            max: cfg.max_object(),
                            req: self.rs.id.clone(),
                            method: self.rs.method.clone(),
                            uri: self.rs.uri.clone(),
                            backend: be.name.clone(),
                        },
                    ));
                }
                if self.background {
                    return Answer::new(Response::new(empty()), State::Miss);
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
                    return Answer::new(Response::new(empty()), state);
                }
                let body = match body {
                    _ if self.rs.method == Method::HEAD => empty(),
                    Source::Stored(buf, None) => buf.reader(),
                    Source::Stored(buf, Some(gzip)) => {
                        Gunzip::new(buf.reader(), gzip).boxed_unsync()
                    }
                    Source::Backend(b) => Watched {
                        inner: b,
                        shared: self.shared.clone(),
                        f: FillCx {
                            gzip: None,
                            max: 0,
                            req: self.rs.id.clone(),
                            method: self.rs.method.clone(),
                            uri: self.rs.uri.clone(),
                            backend: be.name.clone(),
                        },
                        start: Instant::now(),
                        bytes: 0,
                    }
                    .boxed_unsync(),
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
        gzip: None,
        partial: None,
    }
}

/// Read the backend body into a stored object. Past `max` (data bytes, or
/// twice that counting chunk overhead) the object leaves the cache and the
/// rest only streams to the clients already reading it, no faster than the
/// slowest; with none left, the backend is no longer read. A failed body
/// drops the object. With an encoder the object's body is the backend's
/// compressed; `max` still counts the backend's (identity) bytes.
async fn fill(
    shared: Arc<Shared>,
    obj: Arc<Object>,
    mut body: TimeoutBody<Incoming>,
    mut f: FillCx,
) {
    let start = Instant::now();
    let (mut data_len, mut cost, mut stored) = (0u64, 0u64, 0u64);
    let mut kept = true;
    loop {
        let data = match body.frame().await {
            None => {
                let tail = match f.gzip.take().map(Encoder::finish) {
                    Some(Ok(tail)) => tail,
                    Some(Err(e)) => {
                        compress_failed(&shared, &obj, &f, &e);
                        return;
                    }
                    None => Bytes::new(),
                };
                if !tail.is_empty() {
                    stored += tail.len() as u64;
                    match obj.body.push(tail).await {
                        Some(c) if kept => shared.cache.grow(&obj, c),
                        Some(_) => {}
                        None => {
                            obj.body.fail();
                            return;
                        }
                    }
                }
                if let Some(g) = &obj.gzip {
                    g.set_identity_len(data_len);
                    shared
                        .metrics
                        .compression_saved_bytes
                        .inc_by(data_len.saturating_sub(stored));
                }
                obj.body.finish();
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                data
            }
            Some(Err(e)) => {
                obj.body.fail();
                shared.cache.remove(&obj);
                body_failed(&shared, &f, start.elapsed(), data_len, &*e);
                return;
            }
        };
        data_len += data.len() as u64;
        let data = match &mut f.gzip {
            None => data,
            Some(enc) => match enc.push(&data) {
                Ok(out) => out,
                Err(e) => {
                    compress_failed(&shared, &obj, &f, &e);
                    return;
                }
            },
        };
        if data.is_empty() {
            continue;
        }
        stored += data.len() as u64;
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
}

/// The encoder failed (it writes to memory, so this should not happen):
/// the object is dropped and its readers get an error.
fn compress_failed(shared: &Shared, obj: &Arc<Object>, f: &FillCx, e: &std::io::Error) {
    obj.body.fail();
    shared.cache.remove(obj);
    tracing::warn!(req = &*f.req, "compressing a stored object failed: {e}");
}

impl Cx {
    /// Whether a response about to be stored is compressed (`[cache]
    /// compress`): a 200 the backend sent uncompressed (and without
    /// `no-transform`), of a listed type, not known to be under `min_size`,
    /// for a GET.
    fn compressible(&self, resp: &RespState, length: Option<u64>) -> bool {
        let c = &self.generation.config.cache.compress;
        c.enabled
            && resp.status == StatusCode::OK
            && self.rs.method == Method::GET
            && length.is_none_or(|l| l >= c.min_size.0)
            && cs::may_compress(&resp.headers)
            && resp
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| c.compressible(t.as_bytes()))
    }
}

/// A backend body failed after its response started: count the cut
/// response and record the failure (with its request) for `/fetch-errors`.
pub(super) fn body_failed(
    shared: &Shared,
    f: &FillCx,
    elapsed: Duration,
    data_len: u64,
    e: &(dyn std::error::Error + 'static),
) {
    let kind = body_failure_kind(e);
    let failure = FetchFailure {
        kind,
        backend: f.backend.to_string(),
        attempt: 1,
        elapsed,
        detail: format!("response cut after {data_len} body bytes: {e}"),
    };
    tracing::warn!(
        req = &*f.req,
        backend = %f.backend,
        kind = kind.as_str(),
        "body fetch failed after {data_len} bytes, the response is cut: {e}"
    );
    shared.metrics.responses_truncated.inc();
    shared.metrics.fetch_failure(&f.backend, kind.as_str());
    shared.record_failure(&f.req, format!("{} {}", f.method, f.uri), &failure);
}

/// The kind of a failed backend body: a between-bytes timeout, else a reset.
pub fn body_failure_kind(e: &(dyn std::error::Error + 'static)) -> FetchKind {
    if e.downcast_ref::<BetweenBytesTimeout>().is_some() {
        FetchKind::BetweenBytesTimeout
    } else {
        FetchKind::ConnectionReset
    }
}

/// A passed (not stored) backend body on its way to the client: a failure
/// mid-body is counted and recorded like a stored one's.
struct Watched {
    inner: TimeoutBody<Incoming>,
    shared: Arc<Shared>,
    f: FillCx,
    start: Instant,
    bytes: u64,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                body_failed(
                    &this.shared,
                    &this.f,
                    this.start.elapsed(),
                    this.bytes,
                    &**e,
                );
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a fill task needs to know of its request.
pub(super) struct FillCx {
    /// Set when the object is stored compressed.
    pub(super) gzip: Option<Encoder>,
    pub(super) max: u64,
    pub(super) req: Arc<str>,
    /// Method and URL, for `/fetch-errors`.
    pub(super) method: Method,
    pub(super) uri: http::Uri,
    pub(super) backend: Arc<str>,
}
