//! The TOML file as written: serde structs with `deny_unknown_fields`, and
//! every default as a named constant (each field's doc states its default).

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

mod backend;
mod plugin;

pub use backend::*;
pub use plugin::*;

/// Default `[server] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6081";
/// Default `[cache] memory`: 256 MiB.
pub const DEFAULT_CACHE_MEMORY: u64 = 256 * 1024 * 1024;
/// Default `[cache] max_object_size`: an eighth of `memory`, at most 16 MiB.
pub const DEFAULT_MAX_OBJECT: u64 = 16 * 1024 * 1024;
/// Default `[cache] default_grace`: 0 s (stale only with the origin's permission).
pub const DEFAULT_GRACE: Duration = Duration::ZERO;
/// Default `[cache] stale_if_error`: 1 h.
pub const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(3600);
/// Default backend `connect_timeout`: 3.5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3500);
/// Default backend `first_byte_timeout`: 60 s.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default backend `between_bytes_timeout`: 60 s.
pub const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(60);
/// Default plugin `timeout`: 100 ms of CPU time per hook call (the thread's
/// CPU clock, so a descheduled thread does not fail a healthy call).
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Default plugin memory limit per instance: 32 MiB.
pub const DEFAULT_PLUGIN_MEMORY: u64 = 32 * 1024 * 1024;
/// Largest plugin memory limit accepted: 512 MiB.
pub const MAX_PLUGIN_MEMORY: u64 = 512 * 1024 * 1024;
/// Default plugin `max_instances`: instances of one plugin alive at once.
pub const DEFAULT_PLUGIN_INSTANCES: u32 = 32;
/// Plugin instances the process can hold at once, across every plugin and
/// every config generation still draining. A config's plugins may claim at
/// most half (`max_instances` summed), so a reload always finds room.
pub const TOTAL_PLUGIN_INSTANCES: u32 = 1000;
/// Default `[server] header_read_timeout`: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[server] idle_timeout`: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[server] max_connections`: 10,000 client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default probe `path`: "/".
pub const DEFAULT_PROBE_PATH: &str = "/";
/// Default probe `interval`: 5 s.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Default probe `timeout`: 2 s.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default probe `window`: 8 probes.
pub const DEFAULT_PROBE_WINDOW: u32 = 8;
/// Default probe `threshold`: 3 good probes in the window.
pub const DEFAULT_PROBE_THRESHOLD: u32 = 3;
/// Default probe `expected_status`: 200.
pub const DEFAULT_PROBE_STATUS: u16 = 200;
/// Default `[server] max_retries`: 1.
pub const DEFAULT_MAX_RETRIES: u32 = 1;
/// Default `[server] drain_timeout`: 10 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[cache] max_bans`: 10,000 active bans.
pub const DEFAULT_MAX_BANS: usize = 10_000;
/// Default `[cache] default_keep`: 1 h.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(3600);
/// Default `[cache] heuristic_max`: 24 h.
pub const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(24 * 3600);
/// Default `[cache] compress.min_size`: 1 KiB.
pub const DEFAULT_COMPRESS_MIN_SIZE: u64 = 1024;
/// Default `[cache] compress.level`: 6 (gzip's own default).
pub const DEFAULT_COMPRESS_LEVEL: u32 = 6;
/// Default `[cache] compress.types`: text and the structured text formats.
pub const DEFAULT_COMPRESS_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
];
/// Default `[cache] partial.max_pieces`: 16.
pub const DEFAULT_MAX_PIECES: usize = 16;
/// Default `[cache] max_variants`: 16.
pub const DEFAULT_MAX_VARIANTS: usize = 16;
/// Default `[runtime] recycle_after`: 10,000 calls.
pub const DEFAULT_RECYCLE_AFTER: u64 = 10_000;
/// Default plugin `quarantine_window`: 10 s.
pub const DEFAULT_QUARANTINE_WINDOW: Duration = Duration::from_secs(10);
/// Default plugin `quarantine_backoff`: 5 s.
pub const DEFAULT_QUARANTINE_BACKOFF: Duration = Duration::from_secs(5);

/// The file as written. Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`
    #[serde(default)]
    pub server: ServerSection,
    /// `[admin]`
    #[serde(default)]
    pub admin: AdminSection,
    /// `[cache]`
    #[serde(default)]
    pub cache: CacheSection,
    /// `[runtime]`: the plugin runtime.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// `[[backends]]`
    #[serde(default)]
    pub backends: Vec<BackendSection>,
    /// `[[directors]]`
    #[serde(default)]
    pub directors: Vec<DirectorSection>,
    /// `[[plugins]]`; none means the default bundle.
    pub plugins: Option<Vec<PluginSection>>,
    /// `[log]`
    #[serde(default)]
    pub log: LogSection,
    /// `[cluster]`: none means a node alone.
    #[serde(default)]
    pub cluster: Option<super::ClusterSection>,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// The access log: "off", "stdout", or a file path (appended to, reopened
    /// on SIGUSR1). Default "off".
    pub access: String,
    /// "combined" (the access log in NCSA combined format, process logs as
    /// text) or "json" (both as one JSON object per line). Default "combined".
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            access: "off".into(),
            format: LogFormat::Combined,
        }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// NCSA combined access log (with Lacquer's fields appended), text process logs.
    Combined,
    /// JSON lines for both.
    Json,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Client listener. Default "127.0.0.1:6081".
    pub listen: String,
    /// Backend or director for requests no plugin routed. May be left out
    /// only when exactly one backend is declared.
    pub default_backend: Option<String>,
    /// Send `x-lacquer-error` on errors and let plugins show causes. Default false.
    pub debug_headers: bool,
    /// Retries of an idempotent request after a connect failure or a reset
    /// before any response byte. Default 1.
    pub max_retries: u32,
    /// How long shutdown waits for in-flight requests. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long an HTTP/1 client may take to send a request head, counted
    /// from the connection's start or the end of the previous response (so
    /// it is also HTTP/1's keep-alive idle time). Default 10 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection (HTTP/1 or HTTP/2) with no request in progress for this
    /// long is closed. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Client connections open at once, on the plain and the TLS listener
    /// together; more are accepted and closed at once
    /// (counted in `lacquer_connections_refused_total`). Default 10,000.
    pub max_connections: usize,
    /// Add `x-cache: HIT|MISS|PASS|STALE|SYNTH` to responses (before
    /// `on-deliver`, so plugins may change it). Default true.
    pub x_cache: bool,
    /// Peers (addresses or CIDR networks) whose `X-Forwarded-For`,
    /// `X-Forwarded-Proto` and `Forwarded` are believed: from them the
    /// client address is the nearest untrusted address those name. Default
    /// none.
    pub trusted_proxies: Vec<String>,
    /// Also send the backend an RFC 7239 `Forwarded` field. Default false.
    pub forwarded: bool,
    /// Every connection on `listen` must begin with a PROXY protocol (v1 or
    /// v2) header; the address it carries is the client's. Default false.
    pub proxy_protocol: bool,
    /// `[server.tls]`: a TLS listener beside `listen`. Default: none.
    pub tls: Option<TlsSection>,
}

/// `[server.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The TLS listener's address (required), e.g. "0.0.0.0:6443".
    pub listen: String,
    /// Certificates with their keys (at least one). The client's SNI name
    /// picks the one whose subject alternative names match it (wildcards
    /// included); the first is used when no name matches or none is sent.
    pub certificates: Vec<CertificateSection>,
    /// Every connection must begin with a PROXY protocol header (before
    /// the TLS handshake). Default false.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// One entry of `[server.tls] certificates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    /// PEM file: the leaf certificate first, then its intermediates.
    pub chain: PathBuf,
    /// PEM file: the leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            default_backend: None,
            debug_headers: false,
            max_retries: DEFAULT_MAX_RETRIES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            x_cache: true,
            trusted_proxies: Vec::new(),
            forwarded: false,
            proxy_protocol: false,
            tls: None,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Admin listener, e.g. "127.0.0.1:6082". Default: none (no admin listener).
    pub listen: Option<String>,
    /// Bearer token for mutations; required when `listen` is not loopback.
    /// An empty or blank token is refused.
    pub token: Option<String>,
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Memory budget for cached objects. Default 256 MiB.
    pub memory: ByteSize,
    /// Responses larger than this pass. Default: an eighth of `memory`, at
    /// most 16 MiB (see [`CacheSection::max_object`]).
    pub max_object_size: Option<ByteSize>,
    /// TTL for responses with no explicit freshness and no Last-Modified. Default 0 s.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// How long a stale object may be served while it is refreshed in the
    /// background, for responses without `stale-while-revalidate`. Default 0 s:
    /// RFC 9111 forbids serving stale content without permission, and the
    /// origin grants it with `stale-while-revalidate`.
    #[serde(with = "humantime_serde")]
    pub default_grace: Duration,
    /// How long past freshness a stored object may be served when the backend
    /// cannot be reached (RFC 9111 §4.2.4 allows it when disconnected), for
    /// responses without `stale-if-error`. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    /// How long past grace objects with validators (ETag, Last-Modified) are
    /// kept for conditional revalidation. Default 1 h (they still count
    /// against `memory` and are evicted first when unused).
    #[serde(with = "humantime_serde")]
    pub default_keep: Duration,
    /// Upper bound for heuristic freshness (10% of Last-Modified age). Default 24 h.
    #[serde(with = "humantime_serde")]
    pub heuristic_max: Duration,
    /// Most variants (by `Vary`) kept per URL. Default 16.
    pub max_variants: usize,
    /// Most bans active at once (admin and plugins together); more are
    /// refused until old ones retire. Default 10,000.
    pub max_bans: usize,
    /// Backend statuses that count as an error for `stale-if-error` (RFC
    /// 5861 §4): answered so while a stored copy is usable on error, the
    /// client gets that copy instead. Default [500, 502, 503, 504]; [] turns
    /// it off.
    pub stale_on_status: Vec<u16>,
    /// Store compressible responses gzip-compressed (see [`CompressSection`]).
    pub compress: CompressSection,
    /// Fetch and store byte ranges (see [`PartialSection`]).
    pub partial: PartialSection,
}

/// `[cache] partial`: partial content (RFC 9111 §3.3–3.4). Off, a miss
/// for a `Range` request fetches the whole object (as Varnish does) and the
/// range is cut from it. On, the backend is asked for the range, its `206`
/// is stored as a piece of the object, later ranges it covers are answered
/// from it, and pieces with the same strong `ETag` are combined (into a
/// complete object once every byte is there).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartialSection {
    /// On or off. Default off.
    pub enabled: bool,
    /// Most separate pieces one object keeps; a piece that would make more
    /// replaces the stored ones. Default 16.
    pub max_pieces: usize,
}

impl Default for PartialSection {
    fn default() -> Self {
        Self {
            enabled: false,
            max_pieces: DEFAULT_MAX_PIECES,
        }
    }
}

/// `[cache] compress`: responses the backend sends uncompressed, of a
/// listed type and at least `min_size` bytes, are stored gzip-compressed,
/// sent as they are to clients that accept gzip and decompressed for the
/// others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressSection {
    /// On or off. Default off, as in Varnish (`beresp.do_gzip`), nginx and
    /// Envoy: a client that doesn't accept gzip pays a decompression on
    /// every hit of a compressed object.
    pub enabled: bool,
    /// Media types compressed: `type/subtype`, or `type/*` for a whole
    /// type, compared without parameters and case-insensitively. Default
    /// [`DEFAULT_COMPRESS_TYPES`].
    pub types: Vec<String>,
    /// Responses whose `Content-Length` is smaller are stored as sent; a
    /// response without one is compressed as it streams. Default 1 KiB.
    pub min_size: ByteSize,
    /// gzip level, 1 (fastest) to 9 (smallest). Default 6.
    pub level: u32,
}

impl Default for CompressSection {
    fn default() -> Self {
        Self {
            enabled: false,
            types: DEFAULT_COMPRESS_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            min_size: ByteSize(DEFAULT_COMPRESS_MIN_SIZE),
            level: DEFAULT_COMPRESS_LEVEL,
        }
    }
}

impl CompressSection {
    /// Whether a `Content-Type` value is one of `types`.
    pub fn compressible(&self, content_type: &[u8]) -> bool {
        let essence = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(ty) => {
                essence.len() > ty.len() + 1
                    && essence[..ty.len()].eq_ignore_ascii_case(ty.as_bytes())
                    && essence[ty.len()] == b'/'
            }
            None => essence.eq_ignore_ascii_case(t.as_bytes()),
        })
    }
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            memory: ByteSize(DEFAULT_CACHE_MEMORY),
            max_object_size: None,
            default_ttl: Duration::ZERO,
            default_grace: DEFAULT_GRACE,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            default_keep: DEFAULT_KEEP,
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            max_variants: DEFAULT_MAX_VARIANTS,
            max_bans: DEFAULT_MAX_BANS,
            stale_on_status: vec![500, 502, 503, 504],
            compress: CompressSection::default(),
            partial: PartialSection::default(),
        }
    }
}

impl CacheSection {
    /// The largest object stored: `max_object_size` when set, else an
    /// eighth of `memory`, at most 16 MiB.
    pub fn max_object(&self) -> u64 {
        self.max_object_size
            .map_or((self.memory.0 / 8).min(DEFAULT_MAX_OBJECT), |b| b.0)
    }
}

/// `[runtime]`: the plugin runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// An instance is replaced by a fresh one after this many calls. Default 10000.
    pub recycle_after: u64,
    /// Directory for compiled plugins, keyed by content hash and engine
    /// version, so starts and reloads don't recompile unchanged plugins. Must be
    /// writable only by the operator (its files are loaded as native code).
    /// Relative to the config file. Default: none (compile at every start).
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            recycle_after: DEFAULT_RECYCLE_AFTER,
            cache_dir: None,
        }
    }
}
