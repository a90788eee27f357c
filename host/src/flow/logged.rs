//! A response body that writes the request's access log record when it
//! ends (or is dropped: a client that went away is logged with the bytes it
//! got), so the record carries the bytes sent and the whole duration.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::access::Record;
use crate::body::{BoxError, ProxyBody};
use crate::state::Shared;

/// The body, and the record it completes.
pub struct Logged {
    inner: ProxyBody,
    record: Option<Record>,
    start: Instant,
    shared: Arc<Shared>,
}

impl Logged {
    /// Wrap `inner`; `start` is when the request arrived.
    pub fn new(inner: ProxyBody, record: Record, start: Instant, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            record: Some(record),
            start,
            shared,
        }
    }

    fn finish(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.duration = self.start.elapsed();
            if let Some(log) = self.shared.access.get() {
                log.send(r);
            }
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(d), Some(rec)) = (f.data_ref(), self.record.as_mut()) {
                    rec.bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let kind = super::store::body_failure_kind(&**e).as_str();
                if let Some(rec) = self.record.as_mut() {
                    rec.fetch_error.get_or_insert(kind);
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}
