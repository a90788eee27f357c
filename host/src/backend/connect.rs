//! How a backend's client opens connections: TCP for `http://host:port`,
//! TCP then TLS for `https://host:port`, a Unix domain socket for
//! `unix:/path`. One connector type covers all three, so a backend's pooled
//! client, timeouts and probes are the same either way. The connector always
//! dials the configured address: the request URI only keys the pool (and
//! gives HTTP/2 its `:authority`).

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
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::tls::{BackendTls, classify_handshake};
use crate::kinds::FetchKind;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connect that failed in a way the connector classifies itself (TLS).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ConnectFailure {
    /// The fetch kind it maps to.
    pub kind: FetchKind,
    /// The cause, naming the server.
    pub detail: String,
}

/// Opens connections to one backend.
#[derive(Clone)]
pub struct BackendConnector {
    to: To,
    tls: Option<Tls>,
}

#[derive(Clone)]
enum To {
    /// TCP to `addr` (`http://host:port`, the configured one).
    Tcp { http: HttpConnector, addr: Uri },
    /// A Unix domain socket.
    Unix {
        path: Arc<Path>,
        connect_timeout: Duration,
    },
}

#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
    timeout: Duration,
}

impl BackendConnector {
    /// TCP to `uri`'s host and port (80, or 443 for https, when absent),
    /// with `connect_timeout` and `TCP_NODELAY`; TLS on top when `tls` is
    /// given, its handshake bounded by `connect_timeout` too.
    pub fn tcp(uri: &Uri, connect_timeout: Duration, tls: Option<&BackendTls>) -> Self {
        let mut c = HttpConnector::new();
        c.set_connect_timeout(Some(connect_timeout));
        c.set_nodelay(true);
        let host = uri.host().unwrap_or("localhost");
        let port = uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let addr = format!("http://{host}:{port}")
            .parse()
            .unwrap_or_else(|_| uri.clone());
        Self {
            to: To::Tcp { http: c, addr },
            tls: tls.map(|t| Tls {
                connector: TlsConnector::from(t.config.clone()),
                name: t.server_name.clone(),
                timeout: connect_timeout,
            }),
        }
    }

    /// The Unix domain socket at `path`.
    pub fn unix(path: &Path, connect_timeout: Duration) -> Self {
        Self {
            to: To::Unix {
                path: path.into(),
                connect_timeout,
            },
            tls: None,
        }
    }
}

impl Service<Uri> for BackendConnector {
    type Response = BackendIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<BackendIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.to {
            To::Tcp { http, .. } => http.poll_ready(cx).map_err(Into::into),
            To::Unix { .. } => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, _dst: Uri) -> Self::Future {
        match &mut self.to {
            To::Tcp { http, addr } => {
                let connecting = http.call(addr.clone());
                let tls = self.tls.clone();
                Box::pin(async move {
                    let tcp = connecting.await?;
                    match tls {
                        None => Ok(BackendIo::Tcp(tcp)),
                        Some(t) => Ok(BackendIo::Tls(Box::new(TokioIo::new(
                            handshake(&t, tcp.into_inner()).await?,
                        )))),
                    }
                })
            }
            To::Unix {
                path,
                connect_timeout,
            } => {
                let (path, timeout) = (path.clone(), *connect_timeout);
                Box::pin(async move { Ok(connect_unix(&path, timeout).await?) })
            }
        }
    }
}

/// The TLS handshake on a fresh TCP connection, bounded in time; a failure
/// says whether the certificate was refused or the handshake itself failed.
async fn handshake(t: &Tls, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ConnectFailure> {
    match tokio::time::timeout(t.timeout, t.connector.connect(t.name.clone(), tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let (kind, detail) = classify_handshake(&e, &t.name);
            Err(ConnectFailure { kind, detail })
        }
        Err(_) => Err(ConnectFailure {
            kind: FetchKind::ConnectTimeout,
            detail: format!(
                "TLS handshake with {} timed out after {:?}",
                t.name.to_str(),
                t.timeout
            ),
        }),
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
    /// TLS over TCP (boxed: the session state is large).
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(TokioIo<UnixStream>),
}

/// Run `$e` with `$io` bound to the inner stream, whichever it is.
macro_rules! each_io {
    ($self:expr, $io:ident => $e:expr) => {
        match $self {
            BackendIo::Tcp($io) => $e,
            BackendIo::Tls($io) => $e,
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
        match self {
            BackendIo::Tcp(io) => io.connected(),
            // ALPN's choice decides the protocol the pooled client speaks.
            BackendIo::Tls(io) => {
                let (tcp, session) = io.inner().get_ref();
                let c = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    c.negotiated_h2()
                } else {
                    c
                }
            }
            #[cfg(unix)]
            BackendIo::Unix(io) => io.connected(),
        }
    }
}
