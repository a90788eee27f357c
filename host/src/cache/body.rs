//! An object's body: filled by one task from the backend while any number of
//! clients read it (streaming while the cache fills), then merged into one
//! buffer so hits are a reference-count increment.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, StreamBody};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::body::{BoxError, ProxyBody};

/// Fill progress, published to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Chunks so far.
    Filling(usize),
    /// Complete.
    Done,
    /// The fetch failed; readers get an error.
    Failed,
}

/// The shared body.
pub struct BodyBuf {
    chunks: RwLock<Vec<Bytes>>,
    whole: RwLock<Option<Bytes>>,
    state: watch::Sender<Fill>,
}

impl BodyBuf {
    /// An empty body being filled.
    pub fn filling() -> Arc<Self> {
        Arc::new(Self {
            chunks: RwLock::new(Vec::new()),
            whole: RwLock::new(None),
            state: watch::channel(Fill::Filling(0)).0,
        })
    }

    /// A complete body.
    pub fn complete(b: Bytes) -> Arc<Self> {
        Arc::new(Self {
            chunks: RwLock::new(Vec::new()),
            whole: RwLock::new(Some(b)),
            state: watch::channel(Fill::Done).0,
        })
    }

    /// Append a chunk.
    pub fn push(&self, chunk: Bytes) {
        let n = {
            let mut c = self.chunks.write();
            c.push(chunk);
            c.len()
        };
        self.state.send_replace(Fill::Filling(n));
    }

    /// Mark complete: merge the chunks into one buffer.
    pub fn finish(&self) {
        let mut c = self.chunks.write();
        let whole = if c.len() == 1 {
            c[0].clone()
        } else {
            let mut b = BytesMut::with_capacity(c.iter().map(Bytes::len).sum());
            for x in c.iter() {
                b.extend_from_slice(x);
            }
            b.freeze()
        };
        *self.whole.write() = Some(whole);
        c.clear();
        drop(c);
        self.state.send_replace(Fill::Done);
    }

    /// Mark failed.
    pub fn fail(&self) {
        self.state.send_replace(Fill::Failed);
    }

    /// Current progress.
    pub fn state(&self) -> Fill {
        *self.state.borrow()
    }

    /// The complete body, if done.
    pub fn whole(&self) -> Option<Bytes> {
        self.whole.read().clone()
    }

    /// A body that reads this buffer from the start, waiting for new chunks as they come.
    pub fn reader(self: &Arc<Self>) -> ProxyBody {
        if let Some(b) = self.whole() {
            return Full::new(b).map_err(|e| match e {}).boxed_unsync();
        }
        // State: the buffer, progress, next chunk index, bytes sent, finished.
        let st = (self.clone(), self.state.subscribe(), 0usize, 0usize, false);
        let stream = futures_util::stream::unfold(st, |(buf, mut rx, idx, sent, end)| async move {
            if end {
                return None;
            }
            loop {
                if let Some(whole) = buf.whole() {
                    // Complete: what is left comes from the merged buffer.
                    let rest = whole.slice(sent.min(whole.len())..);
                    if rest.is_empty() {
                        return None;
                    }
                    return Some((Ok(http_body::Frame::data(rest)), (buf, rx, idx, sent, true)));
                }
                let next = buf.chunks.read().get(idx).cloned();
                if let Some(chunk) = next {
                    let sent = sent + chunk.len();
                    return Some((
                        Ok(http_body::Frame::data(chunk)),
                        (buf, rx, idx + 1, sent, false),
                    ));
                }
                if buf.state() == Fill::Failed {
                    let e: BoxError = "backend body failed while filling the cache".into();
                    return Some((Err(e), (buf, rx, idx, sent, true)));
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        StreamBody::new(stream).boxed_unsync()
    }
}
