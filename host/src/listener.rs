//! Accepting client (and admin) connections within bounds: at most
//! `[server] max_connections` open (more are closed at once and counted), a
//! request head within `header_read_timeout` of the connection's start (and,
//! for HTTP/1, of the previous response), and no connection left open with
//! no request in progress for `idle_timeout`. On a listener that wants
//! them, a PROXY header and then a TLS handshake come first, both within
//! the same `header_read_timeout` from the connection's start. hyper does
//! the HTTP work (h2 or HTTP/1 on either listener); this module owns the
//! timers and the counts.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::service::service_fn;

use crate::interim::{Interim, InterimIo};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{BoxError, ProxyBody};
use crate::proxy_protocol::{Prefixed, Rejected};
use crate::state::Shared;

/// Connections the admin listener keeps open at once.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Which listener: the admin one answers the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Client traffic.
    Proxy,
    /// The admin API.
    Admin,
}

/// Whether a connection is busy, and since when it is idle. A request
/// beginning or ending touches only these fields: the timer that enforces
/// the bounds looks at them when it fires (at a bound, or every
/// [`BUSY_RECHECK`] while a request is in progress), so a busy connection
/// costs no timer work and no wake-up per request.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    /// The connection speaks HTTP/2 (set by its first request).
    h2: AtomicBool,
}

/// Which bound a connection with no request in progress ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// No whole request head in time: the first, or on HTTP/1 the next one
    /// after a response.
    HeaderRead,
    /// No request for `idle_timeout`.
    Idle,
}

/// How often a connection with a request in progress looks again whether
/// it has gone idle (at most; `idle_timeout` when that is shorter).
const BUSY_RECHECK: Duration = Duration::from_secs(1);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            // `None`: no request yet, the header-read bound applies.
            idle_since: Mutex::new(None),
            h2: AtomicBool::new(false),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves when the connection has had no request in progress for its
    /// bound: `header_read` before the first request; after one, `idle`,
    /// or on HTTP/1 `header_read` when that is shorter (the next head is
    /// due within it of the previous response, as hyper's own header timer
    /// would have it, without a timer armed and dropped per request).
    async fn expired(&self, opened: Instant, header_read: Duration, idle: Duration) -> Expired {
        let recheck = idle.min(BUSY_RECHECK);
        let timer = tokio::time::sleep_until(opened + header_read);
        tokio::pin!(timer);
        loop {
            timer.as_mut().await;
            let now = Instant::now();
            // Read after `in_flight`: an ending request sets `idle_since`
            // before it stops counting.
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let (deadline, bound) = match *self.idle_since.lock() {
                _ if busy => (now + recheck, Expired::Idle),
                None => (opened + header_read, Expired::HeaderRead),
                Some(t) if header_read < idle && !self.h2.load(Ordering::Relaxed) => {
                    (t + header_read, Expired::HeaderRead)
                }
                Some(t) => (t + idle, Expired::Idle),
            };
            if !busy && now >= deadline {
                return bound;
            }
            timer.as_mut().reset(deadline);
        }
    }
}

/// A request in progress on a connection, until its response body is done.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = Some(Instant::now());
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in progress.
struct Tracked {
    inner: ProxyBody,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a listener speaks beneath HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wire {
    /// A PROXY protocol header first.
    pub proxy_protocol: bool,
    /// Then TLS, with the generation's certificates.
    pub tls: bool,
}

/// Accept connections on `listener` until `stop` changes, then let the
/// open ones finish (up to 10 s). `open` counts the connections open
/// against the role's limit: the plain and the TLS listener share one.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    role: Role,
    wire: Wire,
    open: Arc<AtomicUsize>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let config = shared.generation.load().config.clone();
        let limit = match role {
            Role::Proxy => config.max_connections,
            Role::Admin => ADMIN_MAX_CONNECTIONS,
        };
        if open.load(Ordering::SeqCst) >= limit {
            if role == Role::Proxy {
                shared.metrics.connections_refused.inc();
            }
            tracing::debug!(client = %peer, "connection refused: {limit} connections open");
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        if role == Role::Proxy {
            shared.metrics.connections.inc();
        }
        let _ = stream.set_nodelay(true);
        let c = Accepted {
            shared: shared.clone(),
            role,
            local,
            peer,
            header_read: config.header_read_timeout,
            idle: config.idle_timeout,
            opened: Instant::now(),
        };
        let (open, watcher) = (open.clone(), graceful.watcher());
        tokio::spawn(async move {
            let shared = c.shared.clone();
            c.run(stream, wire, watcher).await;
            open.fetch_sub(1, Ordering::SeqCst);
            if role == Role::Proxy {
                shared.metrics.connections.dec();
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// One accepted connection, before and while it serves HTTP.
struct Accepted {
    shared: Arc<Shared>,
    role: Role,
    local: Option<SocketAddr>,
    peer: SocketAddr,
    header_read: Duration,
    idle: Duration,
    /// The bounds on the PROXY header, the TLS handshake and the first
    /// request head all count from here.
    opened: Instant,
}

impl Accepted {
    /// The PROXY header (if the listener wants one), the TLS handshake (if
    /// it is the TLS listener), then HTTP; a failure before HTTP is counted
    /// and the connection closed.
    async fn run(self, mut stream: TcpStream, wire: Wire, watcher: Watcher) {
        let mut prefix = bytes::Bytes::new();
        let mut client = self.peer;
        let deadline = self.opened + self.header_read;
        if wire.proxy_protocol {
            let read = crate::proxy_protocol::read_header(&mut stream);
            let r = match tokio::time::timeout_at(deadline, read).await {
                Ok(r) => r,
                Err(_) => Err(Rejected::Timeout),
            };
            match r {
                Ok((addr, rest)) => {
                    client = addr.unwrap_or(self.peer);
                    prefix = rest;
                }
                Err(r) => {
                    self.shared.metrics.proxy_protocol_rejected(r.as_str());
                    tracing::debug!(peer = %self.peer, "connection refused: PROXY header {}", r.as_str());
                    return;
                }
            }
        }
        let io = Prefixed::new(prefix, stream);
        if !wire.tls {
            return self.http(io, client, false, watcher).await;
        }
        let Some(tls) = self
            .shared
            .generation
            .load()
            .tls
            .as_ref()
            .map(|t| t.config.clone())
        else {
            return;
        };
        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(io);
        let reason = match tokio::time::timeout_at(deadline, accept).await {
            Ok(Ok(s)) => return self.http(s, client, true, watcher).await,
            Ok(Err(e)) => {
                tracing::debug!(client = %client, "TLS handshake failed: {e}");
                crate::tls::failure_reason(&e)
            }
            Err(_) => "timeout",
        };
        self.shared.metrics.tls_handshake_failed(reason);
    }

    /// Serve HTTP/1 or HTTP/2 on an established connection.
    async fn http<I>(self, io: I, client: SocketAddr, tls: bool, watcher: Watcher)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Accepted {
            shared,
            role,
            local,
            peer,
            header_read,
            idle,
            opened,
        } = self;
        let activity = Activity::new();
        let interim = Interim::new();
        let svc = {
            let (shared, activity, interim) = (shared.clone(), activity.clone(), interim.clone());
            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                let in_flight = activity.begin();
                if req.version() == http::Version::HTTP_2 && !activity.h2.load(Ordering::Relaxed) {
                    activity.h2.store(true, Ordering::Relaxed);
                }
                // 1xx only to HTTP/1.1 clients (RFC 9110 §15.2: never to 1.0).
                let interim = (role == Role::Proxy && req.version() == http::Version::HTTP_11)
                    .then(|| (interim.clone(), interim.begin()));
                async move {
                    // Boxed: the request's future is several KiB, and hyper
                    // moves the one it is given into its connection state.
                    let (interim, sink) = interim.unzip();
                    let resp = match role {
                        Role::Admin => Box::pin(crate::admin::handle(shared, req, local)).await,
                        Role::Proxy => {
                            Box::pin(crate::flow::handle(shared, req, client, tls, sink)).await
                        }
                    };
                    if let Some(i) = interim {
                        i.finish().await;
                    }
                    let resp = resp.map(|inner| {
                        Tracked {
                            inner,
                            _in_flight: in_flight,
                        }
                        .boxed_unsync()
                    });
                    Ok::<_, std::convert::Infallible>(resp)
                }
            })
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Request heads are timed by `activity` (see `Activity::expired`).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        // A client that stops reading a response (its TCP window shut)
        // fails the write after `idle_timeout`, like nginx's send_timeout:
        // a request in progress is otherwise never timed out.
        let mut timed = tokio_io_timeout::TimeoutStream::new(io);
        timed.set_write_timeout(Some(idle));
        let io = InterimIo::new(Box::pin(timed), interim);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .into_owned();
        let conn = watcher.watch(conn);
        tokio::pin!(conn);
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    // Request heads are timed by `activity`, not by hyper.
                    if send_timed_out(&*e) {
                        shared.metrics.send_timeouts.inc();
                    }
                    tracing::debug!("connection from {peer}: {e}");
                }
            }
            bound = activity.expired(opened, header_read, idle) => {
                let why = match bound {
                    Expired::HeaderRead => {
                        shared.metrics.header_read_timeouts.inc();
                        "no request head in header_read_timeout"
                    }
                    Expired::Idle => {
                        shared.metrics.idle_timeouts.inc();
                        "idle"
                    }
                };
                tracing::debug!("connection from {peer} closed: {why}");
            }
        }
    }
}

/// Whether a connection ended because a write to the client timed out.
fn send_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}
