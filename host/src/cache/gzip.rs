//! Objects the cache stores gzip-compressed (`[cache] compress`): the
//! encoder a fill runs the backend's identity body through, and the
//! streaming decoder that gives the identity bytes back to clients that do
//! not accept gzip.
//!
//! Only what the cache compressed itself is ever decompressed: a body the
//! backend sent with a `Content-Encoding` is stored and sent as it came, so
//! a backend cannot hand the decoder a gzip bomb. The decoder still holds
//! its output to the identity length the fill recorded (and stops with an
//! error past it), and turns at most [`INPUT_STEP`] compressed bytes into
//! output per frame, so one frame is bounded by deflate's ratio (about
//! 1,000:1) times that step.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};
use http_body::{Body, Frame};

use crate::body::{BoxError, ProxyBody};

/// Compressed bytes decoded per output frame at most.
pub const INPUT_STEP: usize = 1024;
const UNKNOWN: u64 = u64::MAX;

/// What the cache knows of a body it stored compressed.
#[derive(Debug)]
pub struct Gzipped {
    identity_len: AtomicU64,
}

impl Gzipped {
    /// `identity_len` is the backend's `Content-Length`, when it sent one.
    pub fn new(identity_len: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            identity_len: AtomicU64::new(identity_len.unwrap_or(UNKNOWN)),
        })
    }

    /// The length of the identity body: from the backend's
    /// `Content-Length`, or counted once the fill completed.
    pub fn identity_len(&self) -> Option<u64> {
        Some(self.identity_len.load(Ordering::Acquire)).filter(|&l| l != UNKNOWN)
    }

    /// Record the identity length a completed fill counted.
    pub fn set_identity_len(&self, len: u64) {
        self.identity_len.store(len, Ordering::Release);
    }
}

/// Compresses a body chunk by chunk. Each chunk is flushed (a sync flush),
/// so clients reading a filling object get every backend chunk's bytes as
/// they arrive instead of when the compressor's window fills.
pub struct Encoder {
    gz: GzEncoder<Vec<u8>>,
}

impl Encoder {
    /// An encoder at gzip `level` (1..=9).
    pub fn new(level: u32) -> Self {
        Self {
            gz: GzEncoder::new(Vec::new(), Compression::new(level)),
        }
    }

    /// The compressed bytes for `data` (the stream so far is decodable).
    pub fn push(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        self.gz.write_all(data)?;
        self.gz.flush()?;
        Ok(Bytes::from(std::mem::take(self.gz.get_mut())))
    }

    /// The last compressed bytes (the gzip trailer).
    pub fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(self.gz.finish()?))
    }
}

/// Decoding failed: our own stored data was cut or longer than recorded.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    /// The decoder refused the data.
    #[error("stored gzip body is corrupt: {0}")]
    Corrupt(std::io::Error),
    /// More identity bytes than the object recorded.
    #[error("stored gzip body decodes past its recorded identity length of {0} bytes")]
    TooLong(u64),
}

/// A body that gunzips a stored object's body as it streams.
pub struct Gunzip {
    inner: ProxyBody,
    dec: GzDecoder<Vec<u8>>,
    pending: Bytes,
    info: Arc<Gzipped>,
    produced: u64,
    done: bool,
}

impl Gunzip {
    /// Decode `inner`, a reader of a body compressed by [`Encoder`].
    pub fn new(inner: ProxyBody, info: Arc<Gzipped>) -> Self {
        Self {
            inner,
            dec: GzDecoder::new(Vec::new()),
            pending: Bytes::new(),
            info,
            produced: 0,
            done: false,
        }
    }

    fn take_output(&mut self) -> Result<Bytes, GunzipError> {
        let out = Bytes::from(std::mem::take(self.dec.get_mut()));
        self.produced += out.len() as u64;
        match self.info.identity_len() {
            Some(limit) if self.produced > limit => Err(GunzipError::TooLong(limit)),
            _ => Ok(out),
        }
    }
}

impl Body for Gunzip {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.pending.is_empty() {
                let step = this.pending.len().min(INPUT_STEP);
                let fed = match this.dec.write(&this.pending[..step]) {
                    Ok(n) => n,
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(GunzipError::Corrupt(e).into())));
                    }
                };
                this.pending.advance(fed);
                if fed == 0 {
                    // The gzip member ended: anything after it is not ours.
                    this.pending.clear();
                }
                match this.take_output() {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let finished = this.dec.try_finish().map_err(GunzipError::Corrupt);
                    let out = finished.and_then(|()| this.take_output());
                    return match out {
                        Ok(out) if out.is_empty() => Poll::Ready(None),
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn read_all(mut b: ProxyBody) -> Result<Vec<u8>, BoxError> {
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            out.extend_from_slice(&f?.into_data().unwrap());
        }
        Ok(out)
    }

    fn compressed(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut e = Encoder::new(6);
        let mut out: Vec<Bytes> = chunks.iter().map(|c| e.push(c).unwrap()).collect();
        out.push(e.finish().unwrap());
        out
    }

    #[tokio::test]
    async fn round_trip_in_chunks() {
        let text = "lacquer ".repeat(5000);
        let (a, b) = text.as_bytes().split_at(12345);
        let body = crate::cache::body::BodyBuf::of_chunks(compressed(&[a, b]));
        let got = read_all(Gunzip::new(body, Gzipped::new(None)).boxed_unsync()).await;
        assert_eq!(got.unwrap(), text.as_bytes());
    }

    #[tokio::test]
    async fn output_is_held_to_the_recorded_length() {
        let body = crate::cache::body::BodyBuf::of_chunks(compressed(&[&[b'x'; 10_000]]));
        let info = Gzipped::new(Some(100));
        let err = read_all(Gunzip::new(body, info).boxed_unsync()).await;
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("recorded identity length")
        );
    }

    #[tokio::test]
    async fn a_cut_body_is_an_error() {
        let mut chunks = compressed(&[&[b'y'; 5000]]);
        chunks.pop();
        let body = crate::cache::body::BodyBuf::of_chunks(chunks);
        let got = read_all(Gunzip::new(body, Gzipped::new(None)).boxed_unsync()).await;
        assert!(got.is_err());
    }
}
