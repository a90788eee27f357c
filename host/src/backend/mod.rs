//! Backends: a pooled client per backend (HTTP/1.1, or HTTP/2 by ALPN or
//! prior knowledge; over TCP, TLS or a Unix domain socket) with connect,
//! first-byte and between-bytes timeouts, a concurrency limit, health
//! (probes and a circuit breaker) and classification of every failure into a kind.

mod connect;
pub mod director;
pub mod health;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::connect::BackendConnector;
pub use self::director::{Director, PickKey};
use self::health::{Admission, Health, Unavailable};
use crate::body::ProxyBody;
use crate::config::{BackendConfig, BackendProtocol, Config};
pub use crate::kinds::{FetchFailure, FetchKind};
use crate::metrics::Metrics;

/// Streams one HTTP/2 connection opens before the backend's own limit is known.
const H2_MAX_STREAMS: usize = 100;
/// Distinct Hosts that get their own `:authority` (and so their own
/// connection pool) on a backend that may speak HTTP/2; requests for
/// further ones carry the backend's configured authority. Clients choose
/// the Host: without a bound, each new one would open and keep a
/// connection to the backend.
const MAX_AUTHORITIES: usize = 256;

/// One backend.
pub struct Backend {
    /// Name.
    pub name: Arc<str>,
    /// Its checked config.
    pub cfg: BackendConfig,
    authority: Authority,
    host_header: Option<HeaderValue>,
    scheme: http::uri::Scheme,
    /// HTTP/2 may be spoken (h2c, or ALPN on https): the request URI then
    /// carries the Host the backend is to see, as `:authority`.
    may_h2: bool,
    /// The Hosts given their own `:authority` so far (at most
    /// [`MAX_AUTHORITIES`]).
    authorities: parking_lot::Mutex<std::collections::HashSet<Authority>>,
    client: Client<BackendConnector, ProxyBody>,
    /// Health, shared across reloads.
    pub health: Arc<Health>,
    slots: Option<Arc<Semaphore>>,
}

/// A response whose body still streams from the backend.
pub struct Fetched {
    /// The response.
    pub response: Response<Incoming>,
    /// Held until the body is done (for `max_connections`).
    pub permit: Option<OwnedSemaphorePermit>,
}

impl Backend {
    pub(crate) fn new(cfg: &BackendConfig, health: Arc<Health>) -> Self {
        let conn = match &cfg.socket {
            Some(path) => BackendConnector::unix(path, cfg.timeouts.connect),
            None => BackendConnector::tcp(&cfg.uri, cfg.timeouts.connect, cfg.tls.as_ref()),
        };
        let h2c = cfg.protocol == BackendProtocol::H2c;
        let may_h2 = h2c || (cfg.tls.is_some() && cfg.protocol == BackendProtocol::Auto);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http2_only(h2c)
            // Streams opened on one HTTP/2 connection before the backend's
            // SETTINGS say how many it takes; then its limit holds.
            .http2_initial_max_send_streams(H2_MAX_STREAMS)
            .build(conn);
        Self {
            scheme: if cfg.tls.is_some() {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            may_h2,
            authorities: Default::default(),
            name: cfg.name.as_str().into(),
            authority: cfg
                .uri
                .authority()
                .cloned()
                .expect("checked: url has an authority"),
            host_header: cfg.host_header.clone(),
            cfg: cfg.clone(),
            client,
            health,
            slots: (cfg.max_connections > 0).then(|| Arc::new(Semaphore::new(cfg.max_connections))),
        }
    }

    /// Send a request (origin-form URI) to this backend and wait for the response head.
    ///
    /// `connect_timeout` bounds getting a connection (new or pooled);
    /// `first_byte_timeout` runs from then until the response head.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Fetched, (FetchKind, String)> {
        let trial = match self.health.admit() {
            Ok(a) => TrialGuard {
                health: &self.health,
                armed: a == Admission::Trial,
            },
            Err(Unavailable::Sick) => {
                return Err((
                    FetchKind::BackendUnhealthy,
                    "probes report the backend sick".into(),
                ));
            }
            Err(Unavailable::CircuitOpen) => {
                let last = self
                    .health
                    .last_failure()
                    .map_or_else(|| "unknown".to_owned(), |(what, _)| what);
                return Err((
                    FetchKind::CircuitOpen,
                    format!(
                        "not sent: the circuit is open after consecutive failures (last: {last}); one trial request follows the backoff"
                    ),
                ));
            }
        };
        // A trial that ends here without an outcome fetch.rs reports (no slot,
        // or the request went away) gives the trial slot back on drop.
        let result = self.send_admitted(req).await;
        match &result {
            Ok(_) => trial.disarm(),
            Err((kind, _)) if kind.breaker_failure() => trial.disarm(),
            Err(_) => {}
        }
        result
    }

    async fn send_admitted(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Fetched, (FetchKind, String)> {
        let s = &self.cfg;
        let t = s.timeouts;
        let permit = match &self.slots {
            None => None,
            Some(sem) => {
                let wait = s.max_connections_wait;
                let p = if wait.is_zero() {
                    sem.clone().try_acquire_owned().ok()
                } else {
                    tokio::time::timeout(wait, sem.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                };
                match p {
                    Some(p) => Some(p),
                    None => {
                        return Err((
                            FetchKind::BackendBusy,
                            format!("max_connections ({}) reached", s.max_connections),
                        ));
                    }
                }
            }
        };
        if let Some(h) = &self.host_header {
            req.headers_mut().insert(http::header::HOST, h.clone());
        }
        let pq = req.uri().path_and_query().cloned();
        *req.uri_mut() = self
            .target(req.headers().get(http::header::HOST), pq)
            .map_err(|e| (FetchKind::ProtocolError, e.to_string()))?;
        // Learn when the request has a connection, so that the first-byte
        // clock starts then and not at connect time.
        let mut captured = capture_connection(&mut req);
        let response = self.client.request(req);
        tokio::pin!(response);
        let connected = async { captured.wait_for_connection_metadata().await.is_some() };
        tokio::select! {
            biased;
            r = &mut response => return Self::head(r, permit),
            _ = connected => {}
            () = tokio::time::sleep(t.connect) => {
                return Err((
                    FetchKind::ConnectTimeout,
                    format!("no connection within {:?}", t.connect),
                ));
            }
        }
        match tokio::time::timeout(t.first_byte, response).await {
            Err(_) => Err((
                FetchKind::FirstByteTimeout,
                format!("no response headers within {:?}", t.first_byte),
            )),
            Ok(r) => Self::head(r, permit),
        }
    }

    /// The absolute URI a request goes out with. Its authority keys the
    /// connection pool (the connector always dials the configured address);
    /// on a backend that may speak HTTP/2 it is the Host the backend is to
    /// see, since HTTP/2 carries that as `:authority` (RFC 9113 §8.3.1).
    fn target(
        &self,
        host: Option<&HeaderValue>,
        pq: Option<http::uri::PathAndQuery>,
    ) -> Result<Uri, http::Error> {
        let authority = host
            .filter(|_| self.may_h2)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .filter(|a| {
                let mut known = self.authorities.lock();
                known.contains(a) || (known.len() < MAX_AUTHORITIES && known.insert(a.clone()))
            })
            .unwrap_or_else(|| self.authority.clone());
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(pq.unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")))
            .build()
    }

    fn head(
        r: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Fetched, (FetchKind, String)> {
        match r {
            Ok(response) => Ok(Fetched { response, permit }),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Holds a half-open trial slot; gives it back if dropped while armed.
struct TrialGuard<'a> {
    health: &'a Health,
    armed: bool,
}

impl TrialGuard<'_> {
    /// The outcome will be reported: keep the slot taken.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.health.abandon_trial();
        }
    }
}

/// Map a client error to a kind and a detail.
fn classify(e: &hyper_util::client::legacy::Error) -> (FetchKind, String) {
    let mut detail = e.to_string();
    let mut io_kind = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut incomplete = false;
    while let Some(s) = src {
        detail = s.to_string();
        if let Some(f) = s.downcast_ref::<connect::ConnectFailure>() {
            return (f.kind, f.detail.clone());
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>()
            && (h2.is_reset() || h2.is_go_away())
        {
            return (FetchKind::ConnectionReset, format!("HTTP/2: {h2}"));
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(t) = tls::rustls_error(io) {
                return (tls::kind_of(t), format!("TLS: {t}"));
            }
            io_kind = Some(io.kind());
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            incomplete |= h.is_incomplete_message() || h.is_closed() || h.is_canceled();
        }
        src = s.source();
    }
    use std::io::ErrorKind as K;
    let kind = if e.is_connect() {
        match io_kind {
            Some(K::TimedOut) => FetchKind::ConnectTimeout,
            _ if detail.contains("timed out") => FetchKind::ConnectTimeout,
            _ => FetchKind::ConnectRefused,
        }
    } else if incomplete
        || matches!(
            io_kind,
            Some(K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof)
        )
    {
        FetchKind::ConnectionReset
    } else {
        FetchKind::ProtocolError
    };
    (kind, detail)
}

/// What a name resolves to.
#[derive(Clone)]
pub enum Target {
    /// A backend.
    Backend(Arc<Backend>),
    /// A director.
    Director(Arc<Director>),
}

impl Target {
    /// Whether any backend behind it is healthy.
    pub fn healthy(&self) -> bool {
        match self {
            Target::Backend(b) => b.health.healthy(),
            Target::Director(d) => d.healthy(),
        }
    }
}

/// Health by backend name, kept across reloads.
#[derive(Default)]
pub struct HealthRegistry {
    map: DashMap<String, Arc<Health>>,
}

impl HealthRegistry {
    /// The health of a backend, made on first use.
    pub fn get(&self, name: &str) -> Arc<Health> {
        self.map
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Health::named(name)))
            .clone()
    }
}

/// The backends and directors of one config generation.
pub struct Backends {
    /// By name.
    pub targets: HashMap<String, Target>,
    /// Backends in config order.
    pub list: Vec<Arc<Backend>>,
    /// `[server] default_backend`.
    pub default: String,
}

/// Which backends exist and whether they are healthy (what plugins may ask).
pub trait BackendLookup: Send + Sync {
    /// `None` for an unknown name.
    fn healthy(&self, name: &str) -> Option<bool>;
}

impl BackendLookup for Backends {
    fn healthy(&self, name: &str) -> Option<bool> {
        self.targets.get(name).map(Target::healthy)
    }
}

impl Backends {
    /// Whether requests routed to `name` (None: the default) go through a director.
    pub fn is_director(&self, name: Option<&str>) -> bool {
        matches!(
            self.targets.get(name.unwrap_or(&self.default)),
            Some(Target::Director(_))
        )
    }

    /// Build backends and directors. Shared health is not touched until
    /// [`Backends::activate`], so a config that is refused changes nothing.
    pub fn build(cfg: &Config, health: &HealthRegistry) -> Arc<Self> {
        let mut targets = HashMap::new();
        let mut list = Vec::new();
        for b in &cfg.backends {
            let be = Arc::new(Backend::new(b, health.get(&b.name)));
            targets.insert(b.name.clone(), Target::Backend(be.clone()));
            list.push(be);
        }
        director::build_all(&cfg.directors, &mut targets);
        Arc::new(Self {
            targets,
            list,
            default: cfg.default_backend.clone(),
        })
    }

    /// Put this generation's probe settings into effect and start its probes
    /// (they stop when it is dropped, and their results stop counting when a
    /// later generation reconfigures the probe).
    pub fn activate(&self, metrics: &Arc<Metrics>) {
        for b in &self.list {
            if b.cfg.tls.as_ref().is_some_and(|t| !t.verify) {
                tracing::warn!(
                    backend = %b.name,
                    "backend {}: tls_verify = false, its certificate is not verified (anyone on the path can pose as it)",
                    b.name
                );
            }
            let h = &b.health;
            match &b.cfg.probe {
                Some(p) => h.configure_probe(p.window, p.threshold, p.initial),
                // A reload that removes the probe must not leave its last verdict standing.
                None => h.clear_probe(),
            }
            let c = &b.cfg.circuit;
            h.configure_breaker(c.failures, c.backoff, c.max_backoff);
            metrics.backend_health(&b.name, h.healthy());
            if b.cfg.probe.is_some() {
                tokio::spawn(probe_loop(Arc::downgrade(b), metrics.clone()));
            }
        }
    }

    /// Choose a backend for a request routed to `name` (None: the default),
    /// skipping backends already tried.
    pub fn choose(
        &self,
        name: Option<&str>,
        key: &PickKey<'_>,
        tried: &[Arc<str>],
    ) -> Result<Arc<Backend>, FetchFailure> {
        let name = name.unwrap_or(&self.default);
        let fail = |kind, detail: String| FetchFailure {
            kind,
            backend: name.to_owned(),
            attempt: tried.len() as u32 + 1,
            elapsed: Duration::ZERO,
            detail,
        };
        match self.targets.get(name) {
            None => Err(fail(
                FetchKind::NoBackend,
                format!("unknown backend {name:?}"),
            )),
            Some(Target::Backend(b)) => Ok(b.clone()),
            Some(Target::Director(d)) => d.pick(key, tried).ok_or_else(|| {
                fail(
                    FetchKind::NoBackend,
                    format!("director {name} has no healthy backend"),
                )
            }),
        }
    }
}

async fn probe_loop(backend: Weak<Backend>, metrics: Arc<Metrics>) {
    let Some(interval) = backend
        .upgrade()
        .and_then(|b| b.cfg.probe.as_ref().map(|p| p.interval))
    else {
        return;
    };
    let Some(epoch) = backend.upgrade().map(|b| b.health.probe_epoch()) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = backend.upgrade() else { return };
        let Some(p) = b.cfg.probe.clone() else {
            return;
        };
        let host = HeaderValue::from_str(b.authority.as_str()).ok();
        let Ok(uri) = b.target(host.as_ref(), p.path.parse().ok()) else {
            return;
        };
        let mut req = Request::get(uri)
            .header(http::header::USER_AGENT, "lacquer-probe")
            .body(crate::body::empty())
            .expect("a probe request is valid");
        if let Some(h) = host {
            req.headers_mut().insert(http::header::HOST, h);
        }
        let start = Instant::now();
        let (ok, detail) = match tokio::time::timeout(p.timeout, b.client.request(req)).await {
            Err(_) => (false, format!("timeout after {:?}", p.timeout)),
            Ok(Err(e)) => (false, classify(&e).1),
            Ok(Ok(r)) => (
                r.status().as_u16() == p.expected_status,
                format!("{} in {:?}", r.status().as_u16(), start.elapsed()),
            ),
        };
        if b.health.probe_result(epoch, ok, detail.clone()) {
            let healthy = b.health.healthy();
            metrics.backend_health(&b.name, healthy);
            if healthy {
                tracing::info!(backend = %b.name, "backend healthy: {detail}");
            } else {
                tracing::warn!(backend = %b.name, "backend sick: {detail}");
            }
        }
    }
}
