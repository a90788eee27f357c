//! A backend's `206` stored as a piece of its object (`[cache] partial`,
//! RFC 9111 §3.3–3.4): read whole, combined with the stored pieces of the
//! same representation, and stored as a complete object once every byte is
//! there.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use lacquer_cache_semantics as cs;

use super::store::{FillCx, body_failed};
use super::{Answer, Cx, Delivery, Mode};
use crate::backend::Backend;
use crate::body::{TimeoutBody, empty};
use crate::cache::body::BodyBuf;
use crate::cache::partial::Pieces;
use crate::cache::policy::{self, Facts};
use crate::cache::{NewObject, Outcome};
use crate::kinds::{FetchFailure, FetchKind, Proposal, State, Storage};
use crate::plugin::RespState;

impl Cx {
    /// The range a backend's `206` holds, when it is stored as a piece
    /// (`[cache] partial`): cacheable, single-part with a known complete
    /// length, within `max_object_size`, with a strong `ETag`.
    pub(super) fn storable_piece(
        &self,
        mode: &Mode,
        resp: &RespState,
        p: &Proposal,
    ) -> Option<cs::ContentRange> {
        let cfg = &self.generation.config.cache;
        if !(cfg.partial.enabled
            && resp.status == StatusCode::PARTIAL_CONTENT
            && p.storage == Storage::Cache
            && mode.key().is_some()
            && cs::has_strong_etag(&resp.headers))
        {
            return None;
        }
        cs::stored_content_range(&resp.headers).filter(|cr| cr.len() <= cfg.max_object())
    }

    /// Store a backend's `206` (RFC 9111 §3.3): its body is read whole
    /// (it is at most `max_object_size`), combined with the stored pieces
    /// of the same representation (§3.4: same strong `ETag`, same length),
    /// and stored as a complete 200 once every byte is there.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_piece(
        &mut self,
        mut mode: Mode,
        be: &Backend,
        mut resp: RespState,
        mut body: TimeoutBody<Incoming>,
        cr: cs::ContentRange,
        p: Proposal,
        facts: Facts,
    ) -> Answer {
        let Some(key) = mode.key() else {
            return self.default_error().await;
        };
        let start = Instant::now();
        let mut data = bytes::BytesMut::new();
        let failure = loop {
            match body.frame().await {
                None if data.len() as u64 == cr.len() => break None,
                None => break Some(format!("{} of {} range bytes", data.len(), cr.len())),
                Some(Ok(frame)) => {
                    if let Ok(d) = frame.into_data() {
                        if data.len() as u64 + d.len() as u64 > cr.len() {
                            break Some(format!("more than the {} range bytes", cr.len()));
                        }
                        data.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => {
                    let f = FillCx {
                        gzip: None,
                        max: 0,
                        req: self.rs.id.clone(),
                        method: self.rs.method.clone(),
                        uri: self.rs.uri.clone(),
                        backend: be.name.clone(),
                    };
                    body_failed(&self.shared, &f, start.elapsed(), data.len() as u64, &*e);
                    break Some(e.to_string());
                }
            }
        };
        if let Some(detail) = failure {
            mode.resolve(Outcome::Uncacheable);
            let kind = FetchKind::ProtocolError;
            self.shared.metrics.fetch_failure(&be.name, kind.as_str());
            tracing::warn!(
                req = &*self.rs.id,
                backend = %be.name,
                "206 not stored: its body does not match its Content-Range: {detail}"
            );
            self.failure = Some(FetchFailure {
                kind,
                backend: be.name.to_string(),
                attempt: 1,
                elapsed: start.elapsed(),
                detail: format!("206 body does not match its Content-Range: {detail}"),
            });
            return self.default_error().await;
        }
        let data = data.freeze();
        let cfg = &self.generation.config.cache;
        let opts = policy::options(cfg);
        cs::remove_unstorable_fields(&mut resp.headers, &opts);
        cs::ensure_date(&mut resp.headers, SystemTime::now());
        let cache = &self.shared.cache;
        let stored = cache.partial_variant(key, &self.rs.headers).and_then(|o| {
            let p = o.partial.as_ref()?;
            (p.total() == cr.complete_len && cs::combinable(&o.headers, &resp.headers))
                .then(|| p.with(cr.start, data.clone()))
        });
        // Bounded: past max_pieces (or max_object_size held), this piece replaces them.
        let pieces = stored
            .filter(|p| p.count() <= cfg.partial.max_pieces && p.bytes() <= cfg.max_object())
            .unwrap_or_else(|| Pieces::new(cr.complete_len, cr.start, data));
        let as_sent = resp.headers.clone();
        for h in [header::CONTENT_RANGE, header::CONTENT_LENGTH] {
            resp.headers.remove(h);
        }
        let (status, buf, partial) = match pieces.complete() {
            Some(whole) => (StatusCode::OK, BodyBuf::complete(whole), None),
            None => (
                StatusCode::PARTIAL_CONTENT,
                BodyBuf::complete(Bytes::new()),
                Some(Arc::new(pieces)),
            ),
        };
        let obj = cache.insert(
            key,
            NewObject {
                partial,
                ..self.new_object(status, resp.headers, buf, &p, facts)
            },
        );
        mode.resolve(Outcome::Stored);
        if self.background {
            return Answer::new(Response::new(empty()), State::Miss);
        }
        if obj.partial.is_none() || super::deliver::piece_covers(&obj, &self.rs.headers) {
            return self.deliver_object(&obj, State::Miss, None).await;
        }
        // The backend sent another range than asked: pass it on as it came.
        let body = obj
            .partial
            .as_ref()
            .and_then(|p| p.covers(cr.start, cr.end))
            .map_or_else(empty, crate::body::full);
        self.deliver(Delivery {
            status: StatusCode::PARTIAL_CONTENT,
            headers: as_sent,
            body,
            state: State::Miss,
            hits: 0,
            age: 0,
        })
        .await
    }
}
