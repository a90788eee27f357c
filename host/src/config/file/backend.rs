//! `[[backends]]` and `[[directors]]` as written: timeouts, probes, the
//! circuit breaker, TLS and the HTTP version spoken to a backend.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;

/// `[[backends]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// Unique name.
    pub name: String,
    /// `http://host:port`, `https://host:port` (a path prefix is not allowed), or `unix:/absolute/path.sock`.
    pub url: String,
    /// Default 3.5 s.
    #[serde(default = "d_connect", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Default 60 s.
    #[serde(default = "d_first_byte", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Default 60 s.
    #[serde(default = "d_between", with = "humantime_serde")]
    pub between_bytes_timeout: Duration,
    /// Concurrent requests to this backend; 0 = unlimited (default).
    #[serde(default)]
    pub max_connections: usize,
    /// How long a request waits for a free connection slot. Default 0 s (fail at once).
    #[serde(default, with = "humantime_serde")]
    pub max_connections_wait: Duration,
    /// Host header sent to this backend instead of the client's.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Active health probe.
    #[serde(default)]
    pub probe: Option<ProbeSection>,
    /// The passive circuit breaker.
    #[serde(default)]
    pub circuit: CircuitSection,
    /// HTTP version spoken to the backend: "auto" (default: ALPN chooses h2
    /// or HTTP/1.1 on https, HTTP/1.1 on plain), "http1" or "h2c" (HTTP/2
    /// with prior knowledge over plain TCP).
    #[serde(default)]
    pub protocol: BackendProtocol,
    /// PEM file of the CA certificates that verify an https backend
    /// (replacing the system roots). Default: the system roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Server name sent in SNI and verified in the certificate. Default: the URL's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Client certificate presented to an https backend.
    #[serde(default)]
    pub client_cert: Option<ClientCertSection>,
    /// Verify the https backend's certificate. Default true; false is
    /// warned about at every (re)load.
    #[serde(default = "d_true")]
    pub tls_verify: bool,
}

/// The HTTP version spoken to a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendProtocol {
    /// ALPN (h2, then http/1.1) on https; HTTP/1.1 on plain connections.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN offers only http/1.1).
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP or a Unix socket.
    H2c,
}

/// A client certificate for an https backend: PEM files, paths relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertSection {
    /// The certificate chain, leaf first.
    pub chain: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn d_true() -> bool {
    true
}

/// A backend's circuit breaker: consecutive failed requests open it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitSection {
    /// Consecutive failures that open the circuit; 0 turns the breaker
    /// off. Default 5.
    pub failures: u32,
    /// Backend statuses that count as failures (besides connect errors,
    /// timeouts and resets). Default [502, 503, 504]: a 500 is usually one
    /// broken URL, not a failing backend.
    pub statuses: Vec<u16>,
    /// First open period, doubled after each failed trial. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Longest open period. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for CircuitSection {
    fn default() -> Self {
        Self {
            failures: 5,
            statuses: vec![502, 503, 504],
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

fn d_connect() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn d_first_byte() -> Duration {
    DEFAULT_FIRST_BYTE_TIMEOUT
}
fn d_between() -> Duration {
    DEFAULT_BETWEEN_BYTES_TIMEOUT
}

/// A backend's health probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSection {
    /// Path requested. Default "/".
    pub path: String,
    /// Time between probes. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Probe timeout. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Probes remembered. Default 8.
    pub window: u32,
    /// Good probes in the window needed to be healthy. Default 3.
    pub threshold: u32,
    /// Good probes assumed at start. Default threshold − 1.
    pub initial: Option<u32>,
    /// Status a good probe answers. Default 200.
    pub expected_status: u16,
}

impl Default for ProbeSection {
    fn default() -> Self {
        Self {
            path: DEFAULT_PROBE_PATH.into(),
            interval: DEFAULT_PROBE_INTERVAL,
            timeout: DEFAULT_PROBE_TIMEOUT,
            window: DEFAULT_PROBE_WINDOW,
            threshold: DEFAULT_PROBE_THRESHOLD,
            initial: None,
            expected_status: DEFAULT_PROBE_STATUS,
        }
    }
}

/// `[[directors]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorSection {
    /// Unique name (shared namespace with backends).
    pub name: String,
    /// "round-robin", "random", "hash" or "fallback" (checked into
    /// [`super::DirectorKind`]).
    pub kind: String,
    /// Members: backend or director names.
    pub backends: Vec<String>,
    /// For "random": one weight per member (default all 1).
    #[serde(default)]
    pub weights: Vec<u32>,
    /// For "hash": "url" (default), "client-ip" or "header:<name>".
    #[serde(default)]
    pub key: Option<String>,
}

impl BackendSection {
    /// A backend with every default.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            between_bytes_timeout: DEFAULT_BETWEEN_BYTES_TIMEOUT,
            max_connections: 0,
            max_connections_wait: Duration::ZERO,
            host_header: None,
            probe: None,
            circuit: CircuitSection::default(),
            protocol: BackendProtocol::Auto,
            ca: None,
            sni: None,
            client_cert: None,
            tls_verify: true,
        }
    }
}
