//! How a backend's client opens connections: TCP for `http://host:port`, a
//! Unix domain socket for `unix:/path`. One connector type covers both, so a
//! backend's pooled client, timeouts and probes are the same either way.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens connections to one backend.
#[derive(Clone)]
pub enum BackendConnector {
    /// TCP to the host and port of the request URI.
    Tcp(HttpConnector),
    /// A Unix domain socket; the request URI's authority plays no part.
    Unix {
        /// The socket file.
        path: Arc<Path>,
        /// Bound on the connect.
        connect_timeout: Duration,
    },
}

impl BackendConnector {
    /// TCP, with `connect_timeout` and `TCP_NODELAY`.
    pub fn tcp(connect_timeout: Duration) -> Self {
        let mut c = HttpConnector::new();
        c.set_connect_timeout(Some(connect_timeout));
        c.set_nodelay(true);
        Self::Tcp(c)
    }

    /// The Unix domain socket at `path`.
    pub fn unix(path: &Path, connect_timeout: Duration) -> Self {
        Self::Unix {
            path: path.into(),
            connect_timeout,
        }
    }
}

impl Service<Uri> for BackendConnector {
    type Response = BackendIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<BackendIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Tcp(c) => c.poll_ready(cx).map_err(Into::into),
            Self::Unix { .. } => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Self::Tcp(c) => {
                let connecting = c.call(dst);
                Box::pin(async move { Ok(BackendIo::Tcp(connecting.await?)) })
            }
            Self::Unix {
                path,
                connect_timeout,
            } => {
                let (path, timeout) = (path.clone(), *connect_timeout);
                Box::pin(async move { Ok(connect_unix(&path, timeout).await?) })
            }
        }
    }
}

/// Connect to a Unix socket within `timeout`. Errors keep their OS kind
/// (a missing file is `NotFound`, nobody listening `ConnectionRefused`) and
/// name the path.
#[cfg(unix)]
async fn connect_unix(path: &Path, timeout: Duration) -> io::Result<BackendIo> {
    let connected = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )),
    };
    match connected {
        Ok(s) => Ok(BackendIo::Unix(TokioIo::new(s))),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

#[cfg(not(unix))]
async fn connect_unix(path: &Path, _timeout: Duration) -> io::Result<BackendIo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{}: Unix domain sockets are not supported here",
            path.display()
        ),
    ))
}

/// A connection made by [`BackendConnector`].
pub enum BackendIo {
    /// TCP.
    Tcp(TokioIo<TcpStream>),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(TokioIo<UnixStream>),
}

/// Run `$e` with `$io` bound to the inner stream, whichever it is.
macro_rules! each_io {
    ($self:expr, $io:ident => $e:expr) => {
        match $self {
            BackendIo::Tcp($io) => $e,
            #[cfg(unix)]
            BackendIo::Unix($io) => $e,
        }
    };
}

impl Read for BackendIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        each_io!(self.get_mut(), io => Pin::new(io).poll_read(cx, buf))
    }
}

impl Write for BackendIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_io!(self.get_mut(), io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(self.get_mut(), io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(self.get_mut(), io => Pin::new(io).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        each_io!(self, io => io.is_write_vectored())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_io!(self.get_mut(), io => Pin::new(io).poll_write_vectored(cx, bufs))
    }
}

impl Connection for BackendIo {
    fn connected(&self) -> Connected {
        each_io!(self, io => io.connected())
    }
}
