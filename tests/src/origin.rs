//! Real HTTP origins: on TCP ([`Origin`], [`ParkedPort`]) and on Unix domain
//! sockets ([`UnixOrigin`]). Each records what it sees and answers with a
//! handler's [`Reply`]; a [`Gate`] holds replies until the test opens it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::SEQ;

/// What the origin sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The HTTP version the request came in (HTTP/2 from an h2 or h2c client).
    pub version: http::Version,
    /// The request target's authority (HTTP/2's `:authority`), if it had one.
    pub authority: Option<String>,
}

/// Holds replies back until opened (then lets every reply through, for
/// good): the way to keep a request in flight for as long as a test needs,
/// without a sleep.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
    waiting: Arc<AtomicUsize>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Let every held reply (and every later one) through.
    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    /// Replies held at the gate right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        let mut rx = self.tx.subscribe();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = rx.wait_for(|open| *open).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// How the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body chunks (sent one frame each).
    pub chunks: Vec<Bytes>,
    /// Wait this long before the response headers.
    pub delay: Duration,
    /// Wait for this gate to open before the response headers (or the reset).
    pub gate: Option<Gate>,
    /// Wait this long between chunks.
    pub chunk_delay: Duration,
    /// Close the connection without answering.
    pub reset: bool,
    /// Counts the chunks sent, and notes a client that left before the end.
    pub progress: Option<Arc<Progress>>,
}

/// How far an origin's streamed body got.
#[derive(Debug, Default)]
pub struct Progress {
    /// Chunks handed to the connection.
    pub chunks: AtomicUsize,
    /// The client went away before the last chunk.
    pub aborted: AtomicBool,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }
    /// A status with a body.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            chunks: vec![Bytes::copy_from_slice(body.as_bytes())],
            delay: Duration::ZERO,
            gate: None,
            chunk_delay: Duration::ZERO,
            reset: false,
            progress: None,
        }
    }
    /// Close the connection without answering.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::ok("")
        }
    }
    /// Add a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    /// Hold the response head (or the reset) until `gate` opens.
    pub fn held(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

/// An origin's request handler.
pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// An origin's request handling: records what it sees, answers with the handler's [`Reply`].
#[derive(Clone)]
pub(crate) struct Recorder {
    handler: Handler,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub(crate) fn new(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            handler: Arc::new(f),
            hits: Arc::new(AtomicUsize::new(0)),
            connections: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn answer(
        self,
        req: Request<Incoming>,
    ) -> Result<Response<StreamBody<ChunkStream>>, &'static str> {
        let (parts, body) = req.into_parts();
        let _ = body.collect().await;
        let s = Seen {
            method: parts.method,
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.to_string(), ToString::to_string),
            authority: parts.uri.authority().map(ToString::to_string),
            headers: parts.headers,
            version: parts.version,
        };
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(s.clone());
        let reply = (self.handler)(&s);
        if let Some(g) = &reply.gate {
            g.pass().await;
        }
        if reply.reset {
            return Err("reset on purpose");
        }
        tokio::time::sleep(reply.delay).await;
        let mut r = Response::new(StreamBody::new(futures_stream(
            reply.chunks,
            reply.chunk_delay,
            reply.progress,
        )));
        *r.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (k, v) in &reply.headers {
            r.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        Ok(r)
    }

    /// Serve one connection (HTTP/1.1 or h2c).
    pub(crate) async fn serve<IO>(self, stream: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let svc = hyper::service::service_fn(move |req| self.clone().answer(req));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type ChunkStream =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

fn futures_stream(
    chunks: Vec<Bytes>,
    delay: Duration,
    progress: Option<Arc<Progress>>,
) -> ChunkStream {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for (i, c) in chunks.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(c))).await.is_err() {
                if let Some(p) = &progress {
                    p.aborted.store(true, Ordering::SeqCst);
                }
                return;
            }
            if let Some(p) = &progress {
                p.chunks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A real HTTP origin on 127.0.0.1:0 that counts requests and connections.
pub struct Origin {
    /// Address.
    pub addr: SocketAddr,
    recorder: Recorder,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Start an origin answering with `f`.
    pub async fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve(listener, f)
    }

    /// Serve on a listener the caller already bound (see [`ParkedPort`]).
    pub fn serve(
        listener: TcpListener,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let recorder = Recorder::new(f);
        let r = recorder.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(r.clone().serve(stream));
            }
        });
        Origin {
            addr,
            recorder,
            task,
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.recorder.hits()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.recorder.connections()
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.recorder.seen()
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on 127.0.0.1 that refuses connections (bound, not listening, so
/// nothing else can take it) until [`ParkedPort::listen`] turns it into an origin.
pub struct ParkedPort {
    socket: tokio::net::TcpSocket,
    /// Address.
    pub addr: SocketAddr,
}

impl ParkedPort {
    /// Reserve a port.
    pub fn new() -> ParkedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let addr = socket.local_addr().expect("addr");
        ParkedPort { socket, addr }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Start listening: from now on the port is an origin answering with `f`.
    pub fn listen(self, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::serve(self.socket.listen(1024).expect("listen"), f)
    }
}

impl Default for ParkedPort {
    fn default() -> Self {
        Self::new()
    }
}

// ---- Unix domain socket origins ----

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// Make one.
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "lacquer-tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A real HTTP origin on a Unix domain socket in a fresh temp dir, counting
/// requests and connections.
pub struct UnixOrigin {
    /// The socket file.
    pub path: std::path::PathBuf,
    recorder: Recorder,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<TempDir>,
}

impl UnixOrigin {
    /// Start an origin answering with `f`.
    pub fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> UnixOrigin {
        let dir = TempDir::new();
        let path = dir.path.join("origin.sock");
        let mut o = UnixOrigin::bind(path, f);
        o._dir = Some(dir);
        o
    }

    /// Start an origin answering with `f` on a socket at `path` (which must not exist).
    pub fn bind(
        path: std::path::PathBuf,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> UnixOrigin {
        let listener = tokio::net::UnixListener::bind(&path).expect("bind unix origin");
        let recorder = Recorder::new(f);
        let r = recorder.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(r.clone().serve(stream));
            }
        });
        UnixOrigin {
            path,
            recorder,
            task,
            _dir: None,
        }
    }

    /// `unix:/path/to/origin.sock`.
    pub fn url(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.recorder.hits()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.recorder.connections()
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.recorder.seen()
    }
}

impl Drop for UnixOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
