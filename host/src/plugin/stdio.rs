//! Guest stdout/stderr: captured into a bounded buffer per instance and
//! written to the log (tagged with plugin and request id) after each call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes kept between two drains; more is dropped (and said so).
const CAPACITY: usize = 16 * 1024;

/// A shared buffer the guest writes into.
#[derive(Clone, Default)]
pub struct LogPipe(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// The bytes kept, and whether some were dropped.
    buf: Mutex<(Vec<u8>, bool)>,
    /// Set by a write: most calls write nothing, and their drain is then
    /// one load instead of a lock.
    written: AtomicBool,
}

impl LogPipe {
    /// Take what was written since the last drain, as lossy UTF-8 text, and
    /// whether some was dropped for want of room.
    pub fn drain(&self) -> Option<(String, bool)> {
        if !self.0.written.load(Ordering::Acquire) {
            return None;
        }
        let mut b = self.0.buf.lock();
        self.0.written.store(false, Ordering::Relaxed);
        if b.0.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&b.0).trim_end().to_string();
        let cut = b.1;
        b.0.clear();
        b.1 = false;
        Some((text, cut))
    }

    fn push(&self, bytes: &[u8]) {
        let mut b = self.0.buf.lock();
        let room = CAPACITY.saturating_sub(b.0.len());
        b.1 |= bytes.len() > room;
        b.0.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.0.written.store(true, Ordering::Release);
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(CAPACITY)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
