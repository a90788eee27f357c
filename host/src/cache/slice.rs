//! A byte range of a streaming body: what a range request gets from an
//! object that is still filling, or from a decompressed one, without
//! waiting for the whole body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

/// Frames skipped in one poll at most: skipping to the end of a large
/// decompressed object is CPU work on always-ready frames, so past this the
/// slice yields to other tasks and goes on at its next poll.
const SKIPS_PER_POLL: usize = 16;

/// Bytes `start..start + len` of `inner`. The inner body is read only as
/// far as needed; one that ends early is an error (the client was promised
/// `len` bytes).
pub struct Slice {
    inner: ProxyBody,
    skip: u64,
    left: u64,
}

impl Slice {
    /// The range `start..start + len` of `inner`.
    pub fn new(inner: ProxyBody, start: u64, len: u64) -> Self {
        Self {
            inner,
            skip: start,
            left: len,
        }
    }
}

impl Body for Slice {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut skipped = 0;
        loop {
            if skipped == SKIPS_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if this.left == 0 {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.left = 0;
                    let e: BoxError = "body ended before the end of the range".into();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.left = 0;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(mut data) = frame.into_data() else {
                        skipped += 1;
                        continue;
                    };
                    let skip = this.skip.min(data.len() as u64);
                    data.advance(skip as usize);
                    this.skip -= skip;
                    if data.is_empty() {
                        skipped += 1;
                        continue;
                    }
                    data.truncate(this.left.min(data.len() as u64) as usize);
                    this.left -= data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
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

    fn chunks() -> ProxyBody {
        let c = [&b"abc"[..], b"defg", b"hij"]
            .map(Bytes::from_static)
            .to_vec();
        crate::cache::body::BodyBuf::of_chunks(c)
    }

    #[tokio::test]
    async fn ranges_across_chunks() {
        for (start, len, want) in [
            (0, 10, "abcdefghij"),
            (2, 3, "cde"),
            (3, 4, "defg"),
            (9, 1, "j"),
            (4, 5, "efghi"),
        ] {
            let got = read_all(Slice::new(chunks(), start, len).boxed_unsync()).await;
            assert_eq!(got.unwrap(), want.as_bytes(), "{start}+{len}");
        }
    }

    #[test]
    fn skipping_a_long_way_yields_between_polls() {
        let many: Vec<Bytes> = (0..100)
            .map(|_| Bytes::from_static(b"0123456789"))
            .collect();
        let mut slice = Slice::new(crate::cache::body::BodyBuf::of_chunks(many), 995, 5);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut polls = 0;
        let data = loop {
            polls += 1;
            match Pin::new(&mut slice).poll_frame(&mut cx) {
                Poll::Pending => continue,
                Poll::Ready(f) => break f.unwrap().unwrap().into_data().unwrap(),
            }
        };
        assert_eq!(&data[..], b"56789");
        // 99 frames to skip, at most SKIPS_PER_POLL in one poll.
        assert_eq!(polls, 99 / SKIPS_PER_POLL + 1);
    }

    #[tokio::test]
    async fn a_short_body_is_an_error() {
        assert!(
            read_all(Slice::new(chunks(), 8, 5).boxed_unsync())
                .await
                .is_err()
        );
    }
}
