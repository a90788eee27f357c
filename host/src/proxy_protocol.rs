//! The PROXY protocol (v1 text and v2 binary, parsed by `ppp`) on a
//! listener with `proxy_protocol = true`: every connection must begin with
//! a header, read within [`MAX_HEADER`] bytes and the listener's
//! `header_read_timeout`; the source address it carries is the client's
//! from then on. `LOCAL` (v2) and `UNKNOWN` (v1) headers, sent by a proxy's
//! own health checks, keep the connection's peer. A connection without a
//! valid header is closed and counted by reason.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use ppp::{HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Most bytes read while looking for a complete header. A v1 header is at
/// most 107 bytes; a v2 header is 16 bytes and its addresses and TLVs.
pub const MAX_HEADER: usize = 4096;

/// Why a connection was refused (the `reason` label of
/// `lacquer_proxy_protocol_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The bytes are not a PROXY header.
    Invalid,
    /// No complete header within [`MAX_HEADER`] bytes.
    TooLarge,
    /// No complete header within the time bound.
    Timeout,
    /// The peer closed (or reset) before a complete header.
    Closed,
}

impl Rejected {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Invalid => "invalid",
            Rejected::TooLarge => "too-large",
            Rejected::Timeout => "timeout",
            Rejected::Closed => "closed",
        }
    }
}

/// The client address a complete header names (`None`: keep the peer).
fn source(h: &HeaderResult<'_>) -> Option<SocketAddr> {
    match h {
        HeaderResult::V1(Ok(h)) => match &h.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            ppp::v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(h)) if h.command == ppp::v2::Command::Proxy => match &h.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            ppp::v2::Addresses::IPv6(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Length of a complete, valid header; `None` for an error.
fn length(h: &HeaderResult<'_>) -> Option<usize> {
    match h {
        HeaderResult::V1(Ok(h)) => Some(h.header.len()),
        HeaderResult::V2(Ok(h)) => Some(h.header.len()),
        _ => None,
    }
}

/// Parse what has been read so far: `Ok(None)` wants more bytes.
fn parse(buf: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, Rejected> {
    let h = HeaderResult::parse(buf);
    if h.is_incomplete() {
        return if buf.len() >= MAX_HEADER {
            Err(Rejected::TooLarge)
        } else {
            Ok(None)
        };
    }
    match length(&h) {
        Some(n) => Ok(Some((source(&h), n))),
        None => Err(Rejected::Invalid),
    }
}

/// Read the PROXY header at the start of `stream` (the caller bounds the
/// time). Returns the client address it names (if any) and the bytes read
/// past it, which belong to the protocol that follows.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Option<SocketAddr>, Bytes), Rejected> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut filled = 0;
    loop {
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|_| Rejected::Closed)?;
        if n == 0 {
            return Err(Rejected::Closed);
        }
        filled += n;
        if let Some((addr, len)) = parse(&buf[..filled])? {
            buf.truncate(filled);
            let mut rest = Bytes::from(buf);
            rest.advance(len);
            return Ok((addr, rest));
        }
    }
}

/// A stream whose first bytes were already read: they are returned first.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read before anything of it.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_v1_header_names_the_client_and_keeps_what_follows() {
        let mut input: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n";
        let (addr, rest) = read_header(&mut input).await.unwrap();
        assert_eq!(addr, Some("192.0.2.7:5555".parse().unwrap()));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn garbage_too_much_and_eof_are_refused() {
        let mut garbage: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            read_header(&mut garbage).await.unwrap_err(),
            Rejected::Invalid
        );
        let long = [
            b'\r', b'\n', b'\r', b'\n', 0, b'\r', b'\n', b'Q', b'U', b'I', b'T', b'\n', 0x21, 0x11,
            0xff, 0xff,
        ];
        let mut big = long.to_vec();
        big.resize(MAX_HEADER + 10, 0);
        assert_eq!(
            read_header(&mut &big[..]).await.unwrap_err(),
            Rejected::TooLarge
        );
        let mut short: &[u8] = b"PROXY TCP4 1.2";
        assert_eq!(read_header(&mut short).await.unwrap_err(), Rejected::Closed);
    }
}
