//! An object's body: filled by one task from the backend while any number of
//! clients read it (streaming while the cache fills); hits are a
//! reference-count increment per chunk.
//!
//! Memory is bounded. Each chunk is counted at its length plus
//! [`CHUNK_OVERHEAD`], so a backend sending tiny chunks pays for them. When a
//! body outgrows `max_object_size` while filling, the object leaves the
//! cache and the body [`BodyBuf::overflow`]s into a pass-through: chunks
//! every reader has sent are released, and [`BodyBuf::push`] waits until the
//! slowest reader is within [`WINDOW`] bytes of the end, so the backend is
//! read no faster than the slowest client; with no reader left it stops.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use crate::body::{BoxError, ProxyBody};

/// Bytes counted for each chunk besides its data.
pub const CHUNK_OVERHEAD: usize = 64;
/// How far ahead of its slowest reader an overflowed body may read.
pub const WINDOW: usize = 1024 * 1024;

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

/// A reader's progress: bytes sent, or `usize::MAX` once it is gone.
type Position = AtomicUsize;
const GONE: usize = usize::MAX;

#[derive(Default)]
struct Chunks {
    list: Vec<Bytes>,
    /// Bytes pushed so far.
    len: usize,
    /// Chunks before this index were released (overflow mode).
    released: usize,
}

/// The shared body.
pub struct BodyBuf {
    chunks: RwLock<Chunks>,
    state: watch::Sender<Fill>,
    overflowed: AtomicBool,
    readers: Mutex<Vec<Weak<Position>>>,
    progress: Notify,
}

impl BodyBuf {
    fn new(chunks: Chunks, fill: Fill) -> Arc<Self> {
        Arc::new(Self {
            chunks: RwLock::new(chunks),
            state: watch::channel(fill).0,
            overflowed: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
            progress: Notify::new(),
        })
    }

    /// An empty body being filled.
    pub fn filling() -> Arc<Self> {
        Self::new(Chunks::default(), Fill::Filling(0))
    }

    /// A complete body.
    pub fn complete(b: Bytes) -> Arc<Self> {
        let len = b.len();
        let list = if b.is_empty() { Vec::new() } else { vec![b] };
        Self::new(
            Chunks {
                list,
                len,
                released: 0,
            },
            Fill::Done,
        )
    }

    /// Append a chunk. Returns the bytes it counts for (its length plus
    /// [`CHUNK_OVERHEAD`]). After [`BodyBuf::overflow`] it first waits for
    /// the slowest reader; `None` means no reader is left: stop filling.
    pub async fn push(&self, chunk: Bytes) -> Option<usize> {
        if self.overflowed.load(Ordering::Acquire) {
            self.wait_for_readers().await?;
        }
        let cost = chunk.len() + CHUNK_OVERHEAD;
        let n = {
            let mut c = self.chunks.write();
            c.len += chunk.len();
            c.list.push(chunk);
            c.list.len()
        };
        self.state.send_replace(Fill::Filling(n));
        Some(cost)
    }

    /// The body no longer belongs to the cache (it grew past
    /// `max_object_size`): from now on it only feeds its current readers.
    pub fn overflow(&self) {
        self.overflowed.store(true, Ordering::Release);
        self.release_sent();
    }

    /// Drop the chunks every live reader has sent; the slowest position.
    fn release_sent(&self) -> Option<usize> {
        let slowest = self.slowest();
        let mut c = self.chunks.write();
        let upto = slowest.unwrap_or(c.len);
        let mut offset: usize = c.list[..c.released].iter().map(Bytes::len).sum();
        while c.released < c.list.len() && offset + c.list[c.released].len() <= upto {
            offset += c.list[c.released].len();
            let i = c.released;
            c.list[i] = Bytes::new();
            c.released += 1;
        }
        slowest
    }

    /// The position of the slowest live reader, pruning gone ones.
    fn slowest(&self) -> Option<usize> {
        let mut r = self.readers.lock();
        r.retain(|w| {
            w.upgrade()
                .is_some_and(|p| p.load(Ordering::Acquire) != GONE)
        });
        r.iter()
            .filter_map(Weak::upgrade)
            .map(|p| p.load(Ordering::Acquire))
            .min()
    }

    /// Wait until the slowest reader is within [`WINDOW`] of the end.
    async fn wait_for_readers(&self) -> Option<()> {
        loop {
            let progressed = self.progress.notified();
            let slowest = self.release_sent()?;
            if self.chunks.read().len.saturating_sub(slowest) <= WINDOW {
                return Some(());
            }
            progressed.await;
        }
    }

    /// Mark complete.
    pub fn finish(&self) {
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

    /// The length of a complete body.
    pub fn complete_len(&self) -> Option<u64> {
        (self.state() == Fill::Done).then(|| self.chunks.read().len as u64)
    }

    /// Bytes `start..=end` of a complete, unreleased body.
    pub fn slice(&self, start: u64, end: u64) -> Option<Vec<Bytes>> {
        if self.state() != Fill::Done {
            return None;
        }
        let c = self.chunks.read();
        if c.released > 0 || end >= c.len as u64 || start > end {
            return None;
        }
        let (start, end) = (start as usize, end as usize + 1);
        let mut out = Vec::new();
        let mut offset = 0;
        for b in &c.list {
            let (lo, hi) = (offset, offset + b.len());
            if hi > start && lo < end {
                out.push(b.slice(start.max(lo) - lo..end.min(hi) - lo));
            }
            offset = hi;
        }
        Some(out)
    }

    /// A body of these chunks.
    pub fn of_chunks(chunks: Vec<Bytes>) -> ProxyBody {
        if chunks.len() == 1 {
            return Full::new(chunks.into_iter().next().unwrap_or_default())
                .map_err(|e| match e {})
                .boxed_unsync();
        }
        let frames = chunks.into_iter().map(|c| Ok(Frame::data(c)));
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    /// A body that reads this buffer from the start, waiting for new chunks as they come.
    pub fn reader(self: &Arc<Self>) -> ProxyBody {
        if self.state() == Fill::Done {
            let c = self.chunks.read();
            if c.released == 0 {
                return Self::of_chunks(c.list.clone());
            }
        }
        let pos = Arc::new(Position::new(0));
        self.readers.lock().push(Arc::downgrade(&pos));
        Reader {
            buf: self.clone(),
            rx: self.state.subscribe(),
            idx: 0,
            sent: 0,
            pos,
            wait: None,
            end: false,
        }
        .boxed_unsync()
    }
}

type Changed = Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + Send>>;

/// One client's view of a filling body.
struct Reader {
    buf: Arc<BodyBuf>,
    rx: watch::Receiver<Fill>,
    idx: usize,
    sent: usize,
    pos: Arc<Position>,
    wait: Option<Changed>,
    end: bool,
}

impl Reader {
    fn advance(&mut self, n: usize) {
        self.sent += n;
        self.idx += 1;
        self.pos.store(self.sent, Ordering::Release);
        self.buf.progress.notify_waiters();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.pos.store(GONE, Ordering::Release);
        self.buf.progress.notify_waiters();
    }
}

impl Body for Reader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.end {
                return Poll::Ready(None);
            }
            // Mark the state seen before reading, so no push is missed.
            let fill = *this.rx.borrow_and_update();
            let next = {
                let c = this.buf.chunks.read();
                if this.idx < c.released {
                    None
                } else {
                    Some(c.list.get(this.idx).cloned())
                }
            };
            match next {
                None => {
                    this.end = true;
                    let e: BoxError = "body released before this reader read it".into();
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Some(chunk)) => {
                    this.wait = None;
                    this.advance(chunk.len());
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Some(None) => {}
            }
            match fill {
                Fill::Done => {
                    this.end = true;
                    return Poll::Ready(None);
                }
                Fill::Failed => {
                    this.end = true;
                    let e: BoxError = "backend body failed while filling the cache".into();
                    return Poll::Ready(Some(Err(e)));
                }
                Fill::Filling(_) => {}
            }
            let wait = this.wait.get_or_insert_with(|| {
                let mut rx = this.rx.clone();
                Box::pin(async move { rx.changed().await })
            });
            match wait.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => this.wait = None,
                Poll::Ready(Err(_)) => {
                    this.end = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(mut b: ProxyBody) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            out.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        out
    }

    #[tokio::test]
    async fn readers_stream_while_filling_and_after() {
        let b = BodyBuf::filling();
        let early = b.reader();
        b.push(Bytes::from_static(b"ab")).await.unwrap();
        let task = tokio::spawn(read_all(early));
        b.push(Bytes::from_static(b"cd")).await.unwrap();
        b.finish();
        assert_eq!(task.await.unwrap(), b"abcd");
        assert_eq!(read_all(b.reader()).await, b"abcd");
        assert_eq!(b.complete_len(), Some(4));
        let part = b.slice(1, 2).unwrap();
        assert_eq!(read_all(BodyBuf::of_chunks(part)).await, b"bc");
        assert!(b.slice(2, 9).is_none());
    }

    #[tokio::test]
    async fn an_overflowed_body_waits_for_its_slowest_reader_and_releases() {
        let b = BodyBuf::filling();
        let mut slow = b.reader();
        let chunk = Bytes::from(vec![7u8; 256 * 1024]);
        b.overflow();
        // The window fills, then the next push waits for the reader.
        for _ in 0..5 {
            b.push(chunk.clone()).await.unwrap();
        }
        let blocked = b.push(chunk.clone());
        tokio::pin!(blocked);
        assert!((&mut blocked).now_or_never().is_none());
        // Reading one chunk makes room and releases it.
        let f = slow.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap().len(), chunk.len());
        assert!(blocked.await.is_some());
        assert!(b.chunks.read().released >= 1);
        // With no reader left, filling stops.
        drop(slow);
        assert!(b.push(chunk).await.is_none());
    }

    #[tokio::test]
    async fn a_failed_fill_fails_its_readers() {
        let b = BodyBuf::filling();
        let r = b.reader();
        b.push(Bytes::from_static(b"x")).await.unwrap();
        b.fail();
        let mut r = r;
        assert!(r.frame().await.unwrap().is_ok());
        assert!(r.frame().await.unwrap().is_err());
    }
}
