//! Delivery: a stored object answers the client's conditionals (304/412)
//! and ranges (206/416) itself; every response then goes through
//! `on-deliver`, and the host frames it.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;

use lacquer_cache_semantics as cs;

use super::{Answer, Cx, Delivery, text_headers};
use crate::body::{ProxyBody, empty, full};
use crate::cache::Object;
use crate::cache::body::BodyBuf;
use crate::cache::gzip::Gunzip;
use crate::cache::partial::Pieces;
use crate::cache::slice::Slice;
use crate::http_util::VIA;
use crate::kinds::{Hook, State};
use crate::plugin::chain::DeliverInfo;
use crate::plugin::{RespState, Synth};

/// `x-cache`, set by the host from the state it knows (`[server] x_cache`).
const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-cache");

fn x_cache_value(state: State) -> HeaderValue {
    HeaderValue::from_static(state.x_cache())
}

impl Cx {
    /// Deliver a cached object, answering the client's conditionals (304/412)
    /// and byte ranges (206/416) from it. `reader`, when given, is a reader
    /// of its body made earlier (the first client of a filling object).
    ///
    /// An object stored compressed is sent as stored to a client that
    /// accepts gzip (with `Content-Encoding: gzip` and the tag from
    /// [`cs::coded_etag`]) and decompressed for the others (with the
    /// backend's tag); both get `Vary: Accept-Encoding`. Conditionals and
    /// ranges apply to the representation the client gets.
    pub async fn deliver_object(
        &mut self,
        o: &Arc<Object>,
        state: State,
        reader: Option<ProxyBody>,
    ) -> Answer {
        if let Some(p) = &o.partial {
            // Boxed: rare, and its future would enlarge every hit's.
            return Box::pin(self.deliver_piece(o, p, state)).await;
        }
        let mut headers = o.headers.clone();
        let age = o.age();
        headers.insert(header::AGE, cs::age_header_value(age));
        let head = self.rs.method == Method::HEAD;
        let mut status = o.status;
        let complete = o.body.complete_len();
        // The length of what this client gets, when known, and whether it
        // gets the stored bytes as they are.
        let (len, decode) = match &o.gzip {
            None => (complete.or_else(|| content_length(&o.headers)), None),
            Some(g) => {
                cs::vary_accept_encoding(&mut headers);
                if cs::accepts_gzip(&self.rs.headers) {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    match headers
                        .get(header::ETAG)
                        .and_then(|t| cs::coded_etag(t, "gzip"))
                    {
                        Some(t) => headers.insert(header::ETAG, t),
                        None => headers.remove(header::ETAG),
                    };
                    (complete, None)
                } else {
                    (g.identity_len(), Some(g.clone()))
                }
            }
        };
        // The host frames what it sends.
        match len {
            // The stored field usually says this already: kept as it is.
            Some(len) if o.status != StatusCode::NO_CONTENT => {
                let mut stored = headers.get_all(header::CONTENT_LENGTH).iter();
                let says_len = match (stored.next(), stored.next()) {
                    (Some(v), None) => is_length(v.as_bytes(), len),
                    _ => false,
                };
                if !says_len {
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                }
            }
            _ => {
                headers.remove(header::CONTENT_LENGTH);
            }
        }
        let mut body = match reader {
            _ if head => empty(),
            Some(r) => r,
            None => o.body.reader(),
        };
        if let Some(g) = &decode
            && !head
        {
            body = Gunzip::new(body, g.clone()).boxed_unsync();
        }
        match cs::evaluate_conditionals(&self.rs.method, &self.rs.headers, o.status, &headers) {
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
                    if let Some(len) = len {
                        let d = cs::range(&self.rs.headers, len, &headers);
                        if let Some(cr) = d.content_range(len) {
                            headers.insert(header::CONTENT_RANGE, cr);
                        }
                        match d {
                            cs::RangeDecision::Full => {}
                            cs::RangeDecision::Partial { start, end } => {
                                status = StatusCode::PARTIAL_CONTENT;
                                headers.insert(
                                    header::CONTENT_LENGTH,
                                    HeaderValue::from(end - start + 1),
                                );
                                // A complete body stored as sent is sliced in
                                // place; a filling or decompressed one streams.
                                body = match o.body.slice(start, end) {
                                    Some(part) if decode.is_none() => BodyBuf::of_chunks(part),
                                    _ => Slice::new(body, start, end - start + 1).boxed_unsync(),
                                };
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
        if decode.is_some() && !head && status.is_success() {
            self.shared.metrics.decompressions.inc();
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

    /// Answer a range from a stored partial object; the lookup made sure
    /// it covers the request's range ([`piece_covers`]).
    async fn deliver_piece(&mut self, o: &Arc<Object>, p: &Pieces, state: State) -> Answer {
        let mut headers = o.headers.clone();
        let age = o.age();
        headers.insert(header::AGE, cs::age_header_value(age));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let (status, body) = match cs::evaluate_conditionals(
            &self.rs.method,
            &self.rs.headers,
            StatusCode::OK,
            &headers,
        ) {
            cs::Conditional::NotModified => (StatusCode::NOT_MODIFIED, empty()),
            cs::Conditional::PreconditionFailed => {
                headers = text_headers();
                (StatusCode::PRECONDITION_FAILED, empty())
            }
            cs::Conditional::None => {
                let d = cs::range(&self.rs.headers, p.total(), &headers);
                match (d, d.content_range(p.total())) {
                    (cs::RangeDecision::Partial { start, end }, Some(cr)) => {
                        match p.covers(start, end) {
                            Some(part) => {
                                headers.insert(header::CONTENT_RANGE, cr);
                                headers
                                    .insert(header::CONTENT_LENGTH, HeaderValue::from(part.len()));
                                (StatusCode::PARTIAL_CONTENT, full(part))
                            }
                            None => return self.default_error().await,
                        }
                    }
                    (cs::RangeDecision::Unsatisfiable, Some(cr)) => {
                        headers.insert(header::CONTENT_RANGE, cr);
                        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                        (StatusCode::RANGE_NOT_SATISFIABLE, empty())
                    }
                    _ => return self.default_error().await,
                }
            }
        };
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
    pub async fn deliver_synth(&mut self, s: Synth) -> Answer {
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
    pub async fn deliver(&mut self, d: Delivery) -> Answer {
        let Delivery {
            status,
            headers,
            mut body,
            state,
            hits,
            age,
        } = d;
        let mut resp = RespState { status, headers };
        let x_cache = self.generation.config.x_cache;
        if x_cache {
            resp.headers.insert(X_CACHE, x_cache_value(state));
        }
        let chain = &self.generation.chain;
        if !self.background && chain.implements(Hook::Deliver) {
            let info = DeliverInfo {
                state: state.into(),
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
                    if x_cache && !resp.headers.contains_key(X_CACHE) {
                        resp.headers.insert(X_CACHE, x_cache_value(State::Synth));
                    }
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
        Answer::new(r, state)
    }
}

/// Whether a `Content-Length` value is exactly `len` written canonically
/// (digits only, no leading zero).
fn is_length(v: &[u8], len: u64) -> bool {
    !v.is_empty()
        && (v.len() == 1 || v[0] != b'0')
        && v.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            == Some(len)
}

/// A stored `Content-Length` (the backend's, while the body still fills).
fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Whether a stored partial object answers this request by itself: a GET
/// whose single range (after `If-Range`) lies within one stored piece, or
/// is unsatisfiable. Anything else (no range, HEAD, bytes not held) is
/// fetched.
pub(super) fn piece_covers(o: &Object, req: &HeaderMap) -> bool {
    let Some(p) = &o.partial else {
        return true;
    };
    if req.get(header::RANGE).is_none() {
        return false;
    }
    match cs::range(req, p.total(), &o.headers) {
        cs::RangeDecision::Partial { start, end } => p.covers(start, end).is_some(),
        cs::RangeDecision::Unsatisfiable => true,
        cs::RangeDecision::Full => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_length;

    #[test]
    fn only_a_canonical_length_is_kept_as_stored() {
        assert!(is_length(b"1024", 1024));
        assert!(is_length(b"0", 0));
        for (v, len) in [
            (&b"1023"[..], 1024),
            (b"+1024", 1024),
            (b"01024", 1024),
            (b" 1024", 1024),
            (b"", 0),
            (b"1024, 1024", 1024),
        ] {
            assert!(!is_length(v, len), "{v:?}");
        }
    }
}
