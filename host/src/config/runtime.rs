//! The checked configuration the proxy runs on: typed values, names
//! resolved, strings parsed once (a director's kind is an enum, its hash key
//! a parsed header name), nothing re-read from the file's sections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use super::file::{CacheSection, LogSection, OnError, PluginSection, RuntimeSection};
use super::{ConfigError, EMBEDDED_DEFAULT, FileConfig};

/// The checked configuration the proxy runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (for messages); relative plugin paths resolve against its directory.
    pub source: String,
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Admin token (never blank).
    pub admin_token: Option<String>,
    /// Backend or director for requests no plugin routed.
    pub default_backend: String,
    /// `[server] debug_headers`.
    pub debug_headers: bool,
    /// `[server] max_retries`.
    pub max_retries: u32,
    /// `[server] drain_timeout`.
    pub drain_timeout: Duration,
    /// `[server] header_read_timeout`.
    pub header_read_timeout: Duration,
    /// `[server] idle_timeout`.
    pub idle_timeout: Duration,
    /// `[server] max_connections`.
    pub max_connections: usize,
    /// `[server] x_cache`.
    pub x_cache: bool,
    /// `[server] trusted_proxies`, as networks.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[server] forwarded`.
    pub forwarded: bool,
    /// `[server] proxy_protocol`: on the plain listener.
    pub proxy_protocol: bool,
    /// `[server.tls]`, paths resolved.
    pub tls: Option<TlsConfig>,
    /// `[log]`.
    pub log: LogSection,
    /// `[cache]`, every value checked.
    pub cache: CacheSection,
    /// `[runtime]`, `cache_dir` resolved against the config's directory.
    pub runtime: RuntimeSection,
    /// Backends, in config order.
    pub backends: Vec<BackendConfig>,
    /// Directors, members known to exist, no cycles.
    pub directors: Vec<DirectorConfig>,
    /// Plugins, resolved.
    pub plugins: Vec<PluginConfig>,
    /// `[cluster]`, checked; none for a node alone.
    pub cluster: Option<super::ClusterConfig>,
}

/// `[server.tls]`, checked: the certificate files are read when a
/// generation is built (so a reload re-reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The TLS listener.
    pub listen: SocketAddr,
    /// Certificate chain and key files, absolute or relative to the working
    /// directory; the first is the default.
    pub certificates: Vec<CertificateFiles>,
    /// A PROXY header comes before the handshake.
    pub proxy_protocol: bool,
}

/// One certificate's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM chain, leaf first.
    pub chain: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The three timeouts of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Getting a connection (new or pooled).
    pub connect: Duration,
    /// From the connection to the response head.
    pub first_byte: Duration,
    /// Longest silence inside a body.
    pub between_bytes: Duration,
}

/// A checked backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Unique name.
    pub name: String,
    /// The URL as written (shown in `/backends`).
    pub url: String,
    /// Scheme http with an authority; `http://localhost` for a Unix socket.
    pub uri: Uri,
    /// The socket path of a `unix:/path` URL.
    pub socket: Option<PathBuf>,
    /// Connect, first-byte and between-bytes timeouts.
    pub timeouts: Timeouts,
    /// Concurrent requests; 0 = unlimited.
    pub max_connections: usize,
    /// How long a request waits for a slot.
    pub max_connections_wait: Duration,
    /// Host sent instead of the request's.
    pub host_header: Option<HeaderValue>,
    /// Active health probe.
    pub probe: Option<ProbeSpec>,
    /// The circuit breaker, checked.
    pub circuit: super::file::CircuitSection,
    /// The HTTP version spoken to it.
    pub protocol: super::file::BackendProtocol,
    /// TLS settings of an `https://` backend (None for plain ones).
    pub tls: Option<crate::backend::tls::BackendTls>,
}

/// A checked probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Path requested (starts with `/`).
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Probes remembered (1..=64).
    pub window: u32,
    /// Good probes in the window needed to be healthy (1..=window).
    pub threshold: u32,
    /// Good probes assumed at start.
    pub initial: u32,
    /// Status a good probe answers.
    pub expected_status: u16,
}

/// What a hash director hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// Path and query.
    Url,
    /// The client's address.
    ClientIp,
    /// A request header's value (empty when absent).
    Header(HeaderName),
}

/// How a director picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorKind {
    /// In turn.
    RoundRobin,
    /// At random, one weight per member.
    Random {
        /// Weights, by member.
        weights: Vec<u32>,
    },
    /// Rendezvous hashing over the key.
    Hash(HashKey),
    /// The first healthy member.
    Fallback,
}

/// A checked director.
#[derive(Debug, Clone)]
pub struct DirectorConfig {
    /// Unique name (shared namespace with backends).
    pub name: String,
    /// How it picks.
    pub kind: DirectorKind,
    /// Members: backend or director names, all known.
    pub members: Vec<String>,
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` file.
    Path(PathBuf),
    /// A plugin of the embedded bundle.
    Builtin(String),
}

/// A checked plugin entry.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The section as written (every value checked).
    pub section: PluginSection,
    /// Resolved source.
    pub source: PluginSource,
    /// The fault policy of each hook, by hook index.
    pub on_error: [OnError; 4],
    /// The `config` table as JSON text ("{}" when absent).
    pub config_json: String,
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Self::from_toml(EMBEDDED_DEFAULT, "embedded default", None)
    }

    /// Parse and check TOML text. `base` is the directory relative plugin paths resolve against.
    pub fn from_toml(text: &str, file: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        FileConfig::parse(text, file)?.check(file, base)
    }
}
