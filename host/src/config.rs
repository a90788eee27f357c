//! Configuration: the TOML file as written ([`FileConfig`]), loaded with the
//! `config` crate (file + `LACQUER_*` environment overrides), then checked once
//! into the runtime [`Config`] the proxy uses.
//!
//! Every default is a named constant below and is stated in the field's docs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use http::Uri;
use serde::Deserialize;

/// The configuration used when `lacquer serve` is given no file: listen on
/// 6081, admin on 6082, one backend on 127.0.0.1:8080, the default bundle.
pub const EMBEDDED_DEFAULT: &str = r#"
[server]
listen = "127.0.0.1:6081"

[admin]
listen = "127.0.0.1:6082"

[[backends]]
name = "default"
url = "http://127.0.0.1:8080"
"#;

/// The plugins loaded, in this order, when a config has no `[[plugins]]`.
pub const DEFAULT_BUNDLE: &[&str] = &["cache-policy", "error-pages"];

/// Default `[server] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6081";
/// Default `[cache] memory`: 256 MiB.
pub const DEFAULT_CACHE_MEMORY: u64 = 256 * 1024 * 1024;
/// Default `[cache] max_object_size`: 16 MiB.
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
/// Default plugin call deadline: 500 ms. It is wall-clock time (epoch
/// interruption), so it must leave room for a loaded machine descheduling the
/// thread; it exists to stop runaway plugins, not to police slow ones.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_millis(500);
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
/// Default `[cache] max_variants`: 16.
pub const DEFAULT_MAX_VARIANTS: usize = 16;
/// Default `[runtime] recycle_after`: 10,000 calls.
pub const DEFAULT_RECYCLE_AFTER: u64 = 10_000;
/// Default plugin `quarantine_window`: 10 s.
pub const DEFAULT_QUARANTINE_WINDOW: Duration = Duration::from_secs(10);
/// Default plugin `quarantine_backoff`: 5 s.
pub const DEFAULT_QUARANTINE_BACKOFF: Duration = Duration::from_secs(5);

/// A configuration error, naming the file, the key and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or mistyped.
    #[error("{file}: {cause}")]
    Parse {
        /// The file (or "embedded default").
        file: String,
        /// The parser's message (it names the key).
        cause: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{file}: {key}: {cause}")]
    Invalid {
        /// The file (or "embedded default").
        file: String,
        /// The key, e.g. `backends[0].url`.
        key: String,
        /// What is wrong with it.
        cause: String,
    },
}

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
    /// Client connections open at once; more are accepted and closed at once
    /// (counted in `lacquer_connections_refused_total`). Default 10,000.
    pub max_connections: usize,
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
    /// Responses larger than this pass. Default 16 MiB.
    pub max_object_size: ByteSize,
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
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            memory: ByteSize(DEFAULT_CACHE_MEMORY),
            max_object_size: ByteSize(DEFAULT_MAX_OBJECT),
            default_ttl: Duration::ZERO,
            default_grace: DEFAULT_GRACE,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            default_keep: DEFAULT_KEEP,
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            max_variants: DEFAULT_MAX_VARIANTS,
            max_bans: DEFAULT_MAX_BANS,
        }
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

/// `[[backends]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// Unique name.
    pub name: String,
    /// `http://host:port` (a path prefix is not allowed), or `unix:/absolute/path.sock`.
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
            path: "/".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            window: 8,
            threshold: 3,
            initial: None,
            expected_status: 200,
        }
    }
}

/// `[[directors]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorSection {
    /// Unique name (shared namespace with backends).
    pub name: String,
    /// "round-robin", "random", "hash" or "fallback".
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

/// `[[plugins]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Name used in logs and metrics.
    pub name: String,
    /// Path to a `.wasm` component (relative to the config file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Name of a plugin of the embedded bundle.
    #[serde(default)]
    pub builtin: Option<String>,
    /// "fail-closed" (default: answer 500 naming the plugin) or "skip"; or a
    /// table per hook: `{ default = "skip", on_recv = "fail-closed" }`.
    #[serde(default)]
    pub on_error: OnErrorSpec,
    /// Deadline per hook call for the plugin's own running (epoch
    /// interruption). Default 500 ms.
    #[serde(default = "d_plugin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Wall-clock bound per hook call, waits included (a guest sleeping or
    /// polling through WASI does not run, so `timeout` alone can't see it).
    /// Default: twice `timeout`.
    #[serde(default, with = "humantime_serde")]
    pub wall_timeout: Option<Duration>,
    /// Instances of this plugin alive at once (each serves one call at a
    /// time); a call that finds none free within `timeout` is a `busy`
    /// fault. Default 32.
    #[serde(default = "d_plugin_instances")]
    pub max_instances: u32,
    /// Memory limit per instance. Default 32 MiB.
    #[serde(default = "d_plugin_memory")]
    pub memory: ByteSize,
    /// Faults within `quarantine_window` that quarantine the plugin. Default 0 (never).
    #[serde(default)]
    pub quarantine_after: u32,
    /// Window for counting faults. Default 10 s.
    #[serde(default = "d_qwindow", with = "humantime_serde")]
    pub quarantine_window: Duration,
    /// First quarantine period; doubles on each new quarantine, up to 5 min. Default 5 s.
    #[serde(default = "d_qbackoff", with = "humantime_serde")]
    pub quarantine_backoff: Duration,
    /// The plugin's own settings, handed to its `init` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

fn d_plugin_timeout() -> Duration {
    DEFAULT_PLUGIN_TIMEOUT
}
fn d_plugin_memory() -> ByteSize {
    ByteSize(DEFAULT_PLUGIN_MEMORY)
}
fn d_plugin_instances() -> u32 {
    DEFAULT_PLUGIN_INSTANCES
}
fn d_qwindow() -> Duration {
    DEFAULT_QUARANTINE_WINDOW
}
fn d_qbackoff() -> Duration {
    DEFAULT_QUARANTINE_BACKOFF
}

/// What happens to a request when a plugin faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Answer 500 naming the plugin.
    #[default]
    FailClosed,
    /// Continue as if the plugin had said "continue".
    Skip,
}

/// `on_error` as written: one policy, or one per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OnErrorSpec {
    /// The same policy for every hook.
    All(OnError),
    /// Per hook, with a default for the others.
    PerHook(PerHookOnError),
}

impl Default for OnErrorSpec {
    fn default() -> Self {
        OnErrorSpec::All(OnError::FailClosed)
    }
}

/// `on_error` per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PerHookOnError {
    /// For hooks not named. Default "fail-closed".
    #[serde(default)]
    pub default: OnError,
    /// For `on-recv`.
    pub on_recv: Option<OnError>,
    /// For `on-backend-response`.
    pub on_backend_response: Option<OnError>,
    /// For `on-fetch-error`.
    pub on_fetch_error: Option<OnError>,
    /// For `on-deliver`.
    pub on_deliver: Option<OnError>,
}

impl OnErrorSpec {
    /// The policy of each hook, by hook index (recv, backend-response, fetch-error, deliver).
    pub fn per_hook(self) -> [OnError; 4] {
        match self {
            OnErrorSpec::All(p) => [p; 4],
            OnErrorSpec::PerHook(h) => [
                h.on_recv,
                h.on_backend_response,
                h.on_fetch_error,
                h.on_deliver,
            ]
            .map(|x| x.unwrap_or(h.default)),
        }
    }
}

/// The checked configuration the proxy runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (for messages); relative plugin paths resolve against its directory.
    pub source: String,
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Admin token.
    pub admin_token: Option<String>,
    /// See [`ServerSection`].
    pub default_backend: String,
    /// See [`ServerSection`].
    pub debug_headers: bool,
    /// See [`ServerSection`].
    pub max_retries: u32,
    /// See [`ServerSection`].
    pub drain_timeout: Duration,
    /// See [`ServerSection`].
    pub header_read_timeout: Duration,
    /// See [`ServerSection`].
    pub idle_timeout: Duration,
    /// See [`ServerSection`].
    pub max_connections: usize,
    /// See [`CacheSection`].
    pub cache: CacheSection,
    /// See [`RuntimeSection`].
    pub runtime: RuntimeSection,
    /// Backends with checked URLs.
    pub backends: Vec<BackendConfig>,
    /// Directors.
    pub directors: Vec<DirectorSection>,
    /// Plugins, resolved.
    pub plugins: Vec<PluginConfig>,
}

/// A checked backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The section as written.
    pub section: BackendSection,
    /// The parsed URL (scheme http, with authority); `http://localhost` for
    /// a Unix socket.
    pub uri: Uri,
    /// The socket path of a `unix:/path` URL.
    pub socket: Option<PathBuf>,
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
    /// The section as written.
    pub section: PluginSection,
    /// Resolved source.
    pub source: PluginSource,
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
        }
    }
}

impl FileConfig {
    /// Parse TOML text, with `LACQUER_*` environment overrides (e.g.
    /// `LACQUER_SERVER__LISTEN`). Unknown keys are errors.
    pub fn parse(text: &str, file: &str) -> Result<FileConfig, ConfigError> {
        let parse_err = |e: config::ConfigError| ConfigError::Parse {
            file: file.to_string(),
            cause: e.to_string(),
        };
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("LACQUER")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_overrides())),
            )
            .build()
            .map_err(parse_err)?;
        raw.try_deserialize().map_err(parse_err)
    }

    /// Check every value and resolve names and paths.
    pub fn check(self, file: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let bad = |key: String, cause: String| ConfigError::Invalid {
            file: file.to_string(),
            key,
            cause,
        };
        let addr = |key: &str, v: &str| {
            v.parse::<SocketAddr>().map_err(|e| {
                bad(
                    key.into(),
                    format!("{v:?} is not an address like 127.0.0.1:6081 ({e})"),
                )
            })
        };
        let listen = addr("server.listen", &self.server.listen)?;
        let admin_listen = match &self.admin.listen {
            Some(v) => Some(addr("admin.listen", v)?),
            None => None,
        };
        if let Some(t) = &self.admin.token
            && t.trim().is_empty()
        {
            return Err(bad(
                "admin.token".into(),
                "must not be empty or blank (leave it out for no token)".into(),
            ));
        }
        if let Some(a) = admin_listen
            && !a.ip().is_loopback()
            && self.admin.token.is_none()
        {
            return Err(bad(
                "admin.token".into(),
                "required when admin.listen is not a loopback address".into(),
            ));
        }

        let mut names = HashSet::new();
        let mut backends = Vec::new();
        if self.backends.is_empty() {
            return Err(bad(
                "backends".into(),
                "at least one [[backends]] is required".into(),
            ));
        }
        for (i, b) in self.backends.into_iter().enumerate() {
            let key = |k: &str| format!("backends[{i}].{k}");
            check_name(&b.name).map_err(|c| bad(key("name"), c))?;
            if !names.insert(b.name.clone()) {
                return Err(bad(key("name"), format!("duplicate name {:?}", b.name)));
            }
            let (uri, socket) = if let Some(path) = b.url.strip_prefix("unix:") {
                // One spelling: `unix:` then an absolute path (not `unix://`).
                if !Path::new(path).is_absolute() || path.starts_with("//") {
                    return Err(bad(
                        key("url"),
                        format!("{:?}: expected unix:/absolute/path/to.sock", b.url),
                    ));
                }
                if !cfg!(unix) {
                    return Err(bad(
                        key("url"),
                        format!("{:?}: Unix domain sockets are not supported here", b.url),
                    ));
                }
                (
                    Uri::from_static("http://localhost"),
                    Some(PathBuf::from(path)),
                )
            } else {
                let uri: Uri = b
                    .url
                    .parse()
                    .map_err(|e| bad(key("url"), format!("{:?}: {e}", b.url)))?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(bad(
                        key("url"),
                        format!("{:?}: expected http://host:port or unix:/path", b.url),
                    ));
                }
                if !matches!(uri.path(), "" | "/") {
                    return Err(bad(
                        key("url"),
                        format!("{:?}: a path prefix is not supported", b.url),
                    ));
                }
                (uri, None)
            };
            for (k, d) in [
                ("connect_timeout", b.connect_timeout),
                ("first_byte_timeout", b.first_byte_timeout),
                ("between_bytes_timeout", b.between_bytes_timeout),
            ] {
                if d.is_zero() {
                    return Err(bad(key(k), "must be more than 0s".into()));
                }
            }
            if let Some(p) = &b.probe {
                if !p.path.starts_with('/') {
                    return Err(bad(key("probe.path"), "must start with /".into()));
                }
                if p.window == 0 || p.window > 64 {
                    return Err(bad(key("probe.window"), "must be 1..=64".into()));
                }
                if p.threshold == 0 || p.threshold > p.window {
                    return Err(bad(key("probe.threshold"), "must be 1..=window".into()));
                }
                if p.interval.is_zero() || p.timeout.is_zero() {
                    return Err(bad(
                        key("probe.interval"),
                        "interval and timeout must be more than 0s".into(),
                    ));
                }
                if !(100..=999).contains(&p.expected_status) {
                    return Err(bad(
                        key("probe.expected_status"),
                        "must be 100..=999".into(),
                    ));
                }
            }
            backends.push(BackendConfig {
                section: b,
                uri,
                socket,
            });
        }
        let backend_count = backends.len();
        for (i, d) in self.directors.iter().enumerate() {
            let key = |k: &str| format!("directors[{i}].{k}");
            check_name(&d.name).map_err(|c| bad(key("name"), c))?;
            if !names.insert(d.name.clone()) {
                return Err(bad(key("name"), format!("duplicate name {:?}", d.name)));
            }
            if !matches!(
                d.kind.as_str(),
                "round-robin" | "random" | "hash" | "fallback"
            ) {
                return Err(bad(
                    key("kind"),
                    format!(
                        "{:?}: expected round-robin, random, hash or fallback",
                        d.kind
                    ),
                ));
            }
            if d.backends.is_empty() {
                return Err(bad(
                    key("backends"),
                    "a director needs at least one member".into(),
                ));
            }
            if !d.weights.is_empty() && d.weights.len() != d.backends.len() {
                return Err(bad(key("weights"), "one weight per member".into()));
            }
            if let Some(k) = &d.key
                && !(k == "url" || k == "client-ip" || k.starts_with("header:"))
            {
                return Err(bad(
                    key("key"),
                    format!("{k:?}: expected url, client-ip or header:<name>"),
                ));
            }
        }
        // Members must exist, and directors must not contain themselves.
        let director_members: HashMap<&str, &Vec<String>> = self
            .directors
            .iter()
            .map(|d| (d.name.as_str(), &d.backends))
            .collect();
        for (i, d) in self.directors.iter().enumerate() {
            for m in &d.backends {
                if !names.contains(m) {
                    return Err(bad(
                        format!("directors[{i}].backends"),
                        format!("unknown backend or director {m:?}"),
                    ));
                }
            }
            if reaches(&director_members, &d.name, &d.name, 0) {
                return Err(bad(
                    format!("directors[{i}].backends"),
                    "a director cannot contain itself".into(),
                ));
            }
        }
        let default_backend = match self.server.default_backend {
            Some(n) if names.contains(&n) => n,
            Some(n) => {
                return Err(bad(
                    "server.default_backend".into(),
                    format!("unknown backend or director {n:?}"),
                ));
            }
            None if backend_count == 1 && self.directors.is_empty() => {
                backends[0].section.name.clone()
            }
            None => {
                return Err(bad(
                    "server.default_backend".into(),
                    "required when more than one backend or director is declared".into(),
                ));
            }
        };
        for (k, d) in [
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.idle_timeout", self.server.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(k.into(), "must be more than 0s".into()));
            }
        }
        if self.server.max_connections == 0 {
            return Err(bad(
                "server.max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        if self.cache.max_bans == 0 {
            return Err(bad("cache.max_bans".into(), "must be at least 1".into()));
        }
        if self.cache.max_variants == 0 {
            return Err(bad(
                "cache.max_variants".into(),
                "must be at least 1".into(),
            ));
        }

        let sections = match self.plugins {
            Some(p) => p,
            None => DEFAULT_BUNDLE
                .iter()
                .map(|n| PluginSection {
                    name: (*n).into(),
                    path: None,
                    builtin: Some((*n).into()),
                    on_error: OnErrorSpec::default(),
                    timeout: DEFAULT_PLUGIN_TIMEOUT,
                    wall_timeout: None,
                    max_instances: DEFAULT_PLUGIN_INSTANCES,
                    memory: ByteSize(DEFAULT_PLUGIN_MEMORY),
                    quarantine_after: 0,
                    quarantine_window: d_qwindow(),
                    quarantine_backoff: d_qbackoff(),
                    config: None,
                })
                .collect(),
        };
        let mut plugin_names = HashSet::new();
        let mut plugins = Vec::new();
        let mut instances = 0u64;
        for (i, p) in sections.into_iter().enumerate() {
            let key = |k: &str| format!("plugins[{i}].{k}");
            check_name(&p.name).map_err(|c| bad(key("name"), c))?;
            if !plugin_names.insert(p.name.clone()) {
                return Err(bad(key("name"), format!("duplicate name {:?}", p.name)));
            }
            let source = match (&p.path, &p.builtin) {
                (Some(path), None) => PluginSource::Path(match base {
                    Some(b) if path.is_relative() => b.join(path),
                    _ => path.clone(),
                }),
                (None, Some(b)) => {
                    if !crate::plugin::builtin_names().any(|n| n == b) {
                        let known: Vec<_> = crate::plugin::builtin_names().collect();
                        return Err(bad(
                            key("builtin"),
                            format!("unknown builtin {b:?} (known: {})", known.join(", ")),
                        ));
                    }
                    PluginSource::Builtin(b.clone())
                }
                _ => {
                    return Err(bad(
                        key("path"),
                        "set exactly one of `path` and `builtin`".into(),
                    ));
                }
            };
            if p.timeout.is_zero() || p.timeout > Duration::from_secs(10) {
                return Err(bad(
                    key("timeout"),
                    "must be more than 0s and at most 10s".into(),
                ));
            }
            if let Some(w) = p.wall_timeout
                && (w < p.timeout || w > Duration::from_secs(60))
            {
                return Err(bad(
                    key("wall_timeout"),
                    "must be at least timeout and at most 60s".into(),
                ));
            }
            if p.max_instances == 0 {
                return Err(bad(key("max_instances"), "must be at least 1".into()));
            }
            instances += u64::from(p.max_instances);
            if p.memory.0 < 1024 * 1024 || p.memory.0 > MAX_PLUGIN_MEMORY {
                return Err(bad(key("memory"), "must be between 1MiB and 512MiB".into()));
            }
            let config_json = match &p.config {
                Some(v) => v.to_string(),
                None => "{}".into(),
            };
            plugins.push(PluginConfig {
                section: p,
                source,
                config_json,
            });
        }
        if instances > u64::from(TOTAL_PLUGIN_INSTANCES / 2) {
            return Err(bad(
                "plugins".into(),
                format!(
                    "max_instances add up to {instances}: at most {} across all plugins (half the process's {TOTAL_PLUGIN_INSTANCES}, so a reload always has room)",
                    TOTAL_PLUGIN_INSTANCES / 2
                ),
            ));
        }
        let max_object_size = self.cache.max_object_size.0;
        if max_object_size > self.cache.memory.0 {
            return Err(bad(
                "cache.max_object_size".into(),
                "must not exceed cache.memory".into(),
            ));
        }

        let mut runtime = self.runtime;
        if let (Some(dir), Some(b)) = (&runtime.cache_dir, base)
            && dir.is_relative()
        {
            runtime.cache_dir = Some(b.join(dir));
        }
        Ok(Config {
            source: file.to_string(),
            listen,
            admin_listen,
            admin_token: self.admin.token,
            default_backend,
            debug_headers: self.server.debug_headers,
            max_retries: self.server.max_retries,
            drain_timeout: self.server.drain_timeout,
            header_read_timeout: self.server.header_read_timeout,
            idle_timeout: self.server.idle_timeout,
            max_connections: self.server.max_connections,
            cache: self.cache,
            runtime,
            backends,
            directors: self.directors,
            plugins,
        })
    }
}

/// The `LACQUER_<SECTION>__<KEY>` variables: only names with the `__`
/// separator are overrides (`LACQUER_LOG`, the log filter, is not).
fn env_overrides() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("LACQUER_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: use 1-64 characters of a-z, 0-9, '-', '_', '.'"
        ))
    }
}

fn reaches(m: &HashMap<&str, &Vec<String>>, from: &str, target: &str, depth: usize) -> bool {
    if depth > 16 {
        return true;
    }
    m.get(from).is_some_and(|members| {
        members
            .iter()
            .any(|x| x == target || reaches(m, x, target, depth + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text, "t.toml", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default().unwrap();
        assert_eq!(c.listen.port(), 6081);
        assert_eq!(c.admin_listen.unwrap().port(), 6082);
        assert_eq!(c.default_backend, "default");
        let names: Vec<_> = c.plugins.iter().map(|p| p.section.name.as_str()).collect();
        assert_eq!(names, DEFAULT_BUNDLE);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(
            "[server]\nlisten = \"127.0.0.1:1\"\nlisn = 1\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"",
        );
        assert!(e.contains("lisn"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = err("[[backends]]\nname=\"a\"\nurl=\"ftp://x\"");
        assert!(e.contains("backends[0].url"), "{e}");
        let e = err("[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\nfirst_byte_timeout=\"soon\"");
        assert!(e.contains("first_byte_timeout"), "{e}");
        let e = err(
            "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n[[backends]]\nname=\"b\"\nurl=\"http://y:1\"",
        );
        assert!(e.contains("server.default_backend"), "{e}");
        let e = err("[cache]\nmemory=\"lots\"\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"");
        assert!(e.contains("memory"), "{e}");
    }

    #[test]
    fn durations_and_sizes_are_human() {
        let c = Config::from_toml(
            "[cache]\nmemory=\"64MiB\"\nmax_object_size=\"1MiB\"\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\nfirst_byte_timeout=\"250ms\"",
            "t",
            None,
        )
        .unwrap();
        assert_eq!(c.cache.memory.0, 64 << 20);
        assert_eq!(
            c.backends[0].section.first_byte_timeout,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn director_cycles_and_unknown_members_are_refused() {
        let base = "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n";
        let e = err(&format!(
            "{base}[[directors]]\nname=\"d\"\nkind=\"fallback\"\nbackends=[\"d\"]"
        ));
        assert!(e.contains("itself"), "{e}");
        let e = err(&format!(
            "{base}[[directors]]\nname=\"d\"\nkind=\"fallback\"\nbackends=[\"zz\"]"
        ));
        assert!(e.contains("zz"), "{e}");
    }
}
