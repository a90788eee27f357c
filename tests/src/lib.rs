//! Test harness: a real Lacquer host and real origin servers on `127.0.0.1:0`,
//! talking real HTTP. Everything shuts down when its guard is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub mod poll;
pub mod raw;

pub use poll::wait_until;

/// Paths of the test guest plugins and the example plugin, built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// What the origin sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
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
    pub aborted: std::sync::atomic::AtomicBool,
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
            chunk_delay: Duration::ZERO,
            reset: false,
            progress: None,
        }
    }
    /// Add a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// An origin's request handling: records what it sees, answers with the handler's [`Reply`].
#[derive(Clone)]
struct Recorder {
    handler: Handler,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn new(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            handler: Arc::new(f),
            hits: Arc::new(AtomicUsize::new(0)),
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
            uri: parts.uri.to_string(),
            headers: parts.headers,
        };
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(s.clone());
        let reply = (self.handler)(&s);
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
    async fn serve<IO>(self, stream: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let svc = hyper::service::service_fn(move |req| self.clone().answer(req));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    }
}

/// A real HTTP origin on 127.0.0.1:0 that counts requests.
pub struct Origin {
    /// Address.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Start an origin answering with `f`.
    pub async fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve(listener, f)
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
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

type ChunkStream =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

fn futures_stream(
    chunks: Vec<Bytes>,
    delay: Duration,
    progress: Option<Arc<Progress>>,
) -> ChunkStream {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
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
    Box::pin(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An address nothing listens on (connections are refused).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A response as the client got it.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Got {
    /// A header as text ("" if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A running Lacquer with its config written to a temp dir.
pub struct Lacquer {
    /// The server.
    pub server: lacquer::Server,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    /// Directory holding the config file.
    pub dir: std::path::PathBuf,
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(l) = LOGS.get() {
            l.lock().unwrap().extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture the host's log lines (once per test binary).
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
        Arc::new(Mutex::new(Vec::new()))
    });
}

/// Every log line captured so far that contains `needle`.
pub fn log_lines(needle: &str) -> Vec<String> {
    let l = LOGS
        .get()
        .map(|l| l.lock().unwrap().clone())
        .unwrap_or_default();
    String::from_utf8_lossy(&l)
        .lines()
        .filter(|x| x.contains(needle))
        .map(str::to_owned)
        .collect()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Lacquer {
    /// Start with a config (TOML). `listen` and `[admin] listen` are forced to port 0.
    pub async fn start(toml: &str) -> anyhow::Result<Lacquer> {
        capture_logs();
        let dir = std::env::temp_dir().join(format!(
            "lacquer-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("lacquer.toml");
        std::fs::write(&path, toml)?;
        let server = lacquer::Server::start(lacquer::ConfigSource {
            path: Some(path),
            listen: Some("127.0.0.1:0".into()),
            backend: None,
        })
        .await?;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Ok(Lacquer {
            server,
            client,
            dir,
        })
    }

    /// A config with one backend at `origin` and the given extra TOML.
    pub async fn with_origin(origin: &str, extra: &str) -> Lacquer {
        let toml = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{origin}\"\n{extra}"
        );
        Lacquer::start(&toml).await.expect("lacquer starts")
    }

    /// Rewrite the config file (for reload tests).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.dir.join("lacquer.toml"), toml).unwrap();
    }

    /// Send a request through the proxy.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        self.send(self.server.addr(), method, path, headers, body)
            .await
    }

    /// GET through the proxy, returning as soon as the response head
    /// arrives: the body is read (or dropped) by the caller.
    pub async fn stream(&self, path: &str) -> Response<Incoming> {
        let req = Request::get(format!("http://{}{path}", self.server.addr()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("proxy answers within 30 s")
            .expect("request succeeds")
    }

    /// GET through the proxy.
    pub async fn get(&self, path: &str) -> Got {
        self.request("GET", path, &[], "").await
    }

    /// Send a request to the admin listener.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Got {
        let addr = self.server.admin_addr().expect("admin listener configured");
        self.send(addr, method, path, &[], body).await
    }

    /// Send a request to the admin listener (on 127.0.0.1 when it is bound
    /// to every address) with extra headers, e.g. `authorization`.
    pub async fn admin_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        let mut addr = self.server.admin_addr().expect("admin listener configured");
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        self.send(addr, method, path, headers, body).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("proxy answers within 30 s")
            .expect("request succeeds");
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Got {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl Drop for Lacquer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- Helpers for backend tests (timeouts, failures, health) ----

/// A response whose body may have been cut short, and how long it took.
#[derive(Debug)]
pub struct Tried {
    /// Status, headers and whatever body arrived.
    pub got: Got,
    /// Why the body stopped early, if it did.
    pub body_error: Option<String>,
    /// From sending the request to the end (or failure) of the body.
    pub elapsed: Duration,
}

impl Lacquer {
    /// Send a request through the proxy with a client-side `timeout` for the
    /// whole exchange. Unlike [`Lacquer::request`] it reports failures:
    /// `Err` when no response head arrived (or the timeout hit), and a cut
    /// body as [`Tried::body_error`].
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        timeout: Duration,
    ) -> Result<Tried, String> {
        let start = std::time::Instant::now();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.server.addr()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("request: {e:?}"))?;
            let (parts, mut body) = resp.into_parts();
            let mut data = Vec::new();
            let mut body_error = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(d) = f.into_data() {
                            data.extend_from_slice(&d);
                        }
                    }
                    Err(e) => {
                        body_error = Some(format!("{e:?}"));
                        break;
                    }
                }
            }
            Ok::<_, String>((parts, data, body_error))
        };
        let (parts, data, body_error) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no complete answer within {timeout:?}"))??;
        Ok(Tried {
            got: Got {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: Bytes::from(data),
            },
            body_error,
            elapsed: start.elapsed(),
        })
    }

    /// A series from the admin `/metrics`, written exactly as exported
    /// (name and labels, e.g. `lacquer_fetch_failures_total{backend="app",kind="connect-refused"}`);
    /// 0 when the series is absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin("GET", "/metrics", "").await.text();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// `lacquer_fetch_failures_total{backend,kind}`.
    pub async fn fetch_failures(&self, backend: &str, kind: &str) -> f64 {
        self.metric(&format!(
            "lacquer_fetch_failures_total{{backend=\"{backend}\",kind=\"{kind}\"}}"
        ))
        .await
    }

    /// Admin `GET /backends`, parsed.
    pub async fn backends(&self) -> serde_json::Value {
        let r = self.admin("GET", "/backends", "").await;
        serde_json::from_slice(&r.body).expect("GET /backends answers JSON")
    }

    /// Admin `POST /backends/{name}/health` with `state` (auto, healthy or sick).
    pub async fn force_health(&self, backend: &str, state: &str) {
        let r = self
            .admin("POST", &format!("/backends/{backend}/health"), state)
            .await;
        assert_eq!(r.status, 200, "forcing {backend} {state}: {}", r.text());
    }
}

impl Origin {
    /// Serve on a listener the caller already bound (see [`ParkedPort`]).
    pub fn serve(
        listener: TcpListener,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let recorder = Recorder::new(f);
        let (hits, seen) = (recorder.hits.clone(), recorder.seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(recorder.clone().serve(stream));
            }
        });
        Origin {
            addr,
            hits,
            seen,
            task,
        }
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
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl UnixOrigin {
    /// Start an origin answering with `f`.
    pub fn start(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> UnixOrigin {
        let dir = TempDir::new();
        let path = dir.path.join("origin.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind unix origin");
        let recorder = Recorder::new(f);
        let (hits, seen) = (recorder.hits.clone(), recorder.seen.clone());
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(recorder.clone().serve(stream));
            }
        });
        UnixOrigin {
            path,
            hits,
            connections,
            seen,
            task,
            _dir: dir,
        }
    }

    /// `unix:/path/to/origin.sock`.
    pub fn url(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for UnixOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
