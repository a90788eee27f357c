//! Interim responses (RFC 9110 §15.2) to HTTP/1.1 clients: a backend's
//! `103 Early Hints` goes on to the client before the final response.
//!
//! hyper's server cannot send a 1xx, so a client connection's I/O goes
//! through [`InterimIo`]. An interim head is queued (built from a parsed,
//! validated header map, never from the backend's bytes) and written when
//! hyper flushes with nothing of its own buffered, so it can never land
//! inside another response. Before a request's final response goes to
//! hyper, [`Interim::finish`] waits until the queued heads are out (or drops
//! those not begun). HTTP/1.1 has one response in progress per connection,
//! so the queue always belongs to the request being served. HTTP/2 clients
//! get no interim responses (an intermediary may drop them, RFC 8297 §2).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::HeaderMap;
use http::header;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Interim responses forwarded per request at most; later ones are dropped.
pub const MAX_PER_REQUEST: u32 = 4;
/// Size of one interim head at most; a larger one is dropped.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a final response waits for its interim heads to be written
/// before those not yet begun are dropped.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Heads queued, and how much of them is written.
    queue: Vec<u8>,
    written: usize,
    /// The request that may queue (0: none).
    open: u64,
    /// Requests begun on this connection.
    requests: u64,
    /// Heads queued for the open request.
    count: u32,
    /// A head was cut short and can't be finished: the connection is unusable.
    broken: bool,
    /// The connection's task (woken to write a new head).
    conn: Option<Waker>,
    /// The request waiting in [`Interim::finish`].
    settle: Option<Waker>,
}

impl State {
    /// Nothing is left to write for the open request (or nothing can be).
    fn settled(&self) -> bool {
        self.queue.is_empty() || self.broken
    }
}

/// One client connection's interim responses.
#[derive(Clone, Default)]
pub struct Interim(Arc<Mutex<State>>);

/// Where one request's interim responses go.
#[derive(Clone)]
pub struct InterimSink {
    interim: Interim,
    request: u64,
}

impl Interim {
    /// For a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request begins: interim responses may be queued for it until [`Interim::finish`].
    pub fn begin(&self) -> InterimSink {
        let mut s = self.0.lock();
        s.requests += 1;
        s.open = s.requests;
        s.count = 0;
        InterimSink {
            interim: self.clone(),
            request: s.requests,
        }
    }

    /// The request's final response is ready: wait (briefly) until its
    /// interim heads are written, drop those not begun, and take no more.
    pub async fn finish(&self) {
        // Nearly always nothing is queued: no timer to arm.
        let queued = !self.0.lock().settled();
        let written = std::future::poll_fn(|cx| {
            let mut s = self.0.lock();
            if s.settled() {
                return Poll::Ready(());
            }
            s.settle = Some(cx.waker().clone());
            Poll::Pending
        });
        let timed_out = queued && tokio::time::timeout(SETTLE, written).await.is_err();
        let mut s = self.0.lock();
        s.open = 0;
        s.settle = None;
        if timed_out && !s.queue.is_empty() {
            if s.written == 0 {
                s.queue.clear();
            } else {
                s.broken = true;
            }
        }
    }
}

impl InterimSink {
    /// Queue a `103 Early Hints` with these fields (hop-by-hop and framing
    /// fields left out). False when dropped: the request is over, its
    /// limit is reached, or the head is too large.
    pub fn early_hints(&self, fields: &HeaderMap) -> bool {
        let mut head = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        let mut fields = fields.clone();
        lacquer_cache_semantics::strip_connection_headers(&mut fields);
        for (name, value) in &fields {
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        if head.len() > MAX_HEAD_BYTES {
            return false;
        }
        let mut s = self.interim.0.lock();
        if s.open != self.request || s.count >= MAX_PER_REQUEST || s.broken {
            return false;
        }
        s.count += 1;
        s.queue.extend_from_slice(&head);
        if let Some(w) = &s.conn {
            w.wake_by_ref();
        }
        true
    }
}

/// A client connection's I/O, writing queued interim heads between hyper's
/// own writes (see the module docs).
pub struct InterimIo<T> {
    io: T,
    interim: Interim,
}

impl<T> InterimIo<T> {
    /// Wrap a connection.
    pub fn new(io: T, interim: Interim) -> Self {
        Self { io, interim }
    }
}

fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        remember(&mut self.interim.0.lock().conn, cx);
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.interim.0.lock().broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.interim.0.lock().broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// hyper flushes only once its own buffer is written: the one moment an
    /// interim head can go out between responses.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut s = this.interim.0.lock();
        remember(&mut s.conn, cx);
        if s.broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while s.written < s.queue.len() {
            let st = &mut *s;
            match Pin::new(&mut this.io).poll_write(cx, &st.queue[st.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => st.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !s.queue.is_empty() {
            s.queue.clear();
            s.written = 0;
            if let Some(w) = s.settle.take() {
                w.wake();
            }
        }
        drop(s);
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn hints() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(
            header::LINK,
            HeaderValue::from_static("</a.css>; rel=preload"),
        );
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-drop"));
        h.append("x-drop", HeaderValue::from_static("1"));
        h
    }

    /// What a client reads after the host flushes `io`.
    async fn flushed(interim: &Interim, then: &[u8]) -> String {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut io = InterimIo::new(server, interim.clone());
        io.flush().await.unwrap();
        io.write_all(then).await.unwrap();
        drop(io);
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_head_is_rebuilt_without_framing_or_hop_by_hop_fields() {
        let i = Interim::new();
        let sink = i.begin();
        assert!(sink.early_hints(&hints()));
        let out = flushed(&i, b"FINAL").await;
        assert_eq!(
            out,
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nFINAL"
        );
    }

    #[tokio::test]
    async fn per_request_limits_and_finished_requests_drop_hints() {
        let i = Interim::new();
        let sink = i.begin();
        for _ in 0..MAX_PER_REQUEST {
            assert!(sink.early_hints(&hints()));
        }
        assert!(!sink.early_hints(&hints()), "past the limit");
        let mut big = HeaderMap::new();
        big.insert(
            header::LINK,
            HeaderValue::from_str(&"x".repeat(MAX_HEAD_BYTES)).unwrap(),
        );
        let out = flushed(&i, b"").await;
        assert_eq!(
            out.matches("103 Early Hints").count(),
            MAX_PER_REQUEST as usize
        );
        // Written: the final response need not wait.
        i.finish().await;
        let next = i.begin();
        assert!(!sink.early_hints(&hints()), "that request is over");
        assert!(!next.early_hints(&big), "too large");
        assert_eq!(flushed(&i, b"").await, "", "nothing queued");
    }
}
