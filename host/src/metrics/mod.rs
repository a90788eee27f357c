//! Metrics: every name in one place (they are a contract), Prometheus text on
//! the admin listener. Hot-path handles are resolved once (an atomic add per
//! use), never looked up by label per request.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

mod histogram;

pub use crate::kinds::State;
use crate::kinds::{FaultKind, Hook};
pub use histogram::DurationHistogram;

/// `lacquer_requests_total{state}`: client requests by how they were answered.
pub const REQUESTS: &str = "requests";
/// `lacquer_request_duration_seconds{state}`: time to response headers.
pub const REQUEST_DURATION: &str = "request_duration_seconds";
/// `lacquer_cache_objects`: objects in the cache.
pub const CACHE_OBJECTS: &str = "cache_objects";
/// `lacquer_cache_bytes`: bytes counted against `[cache] memory`.
pub const CACHE_BYTES: &str = "cache_bytes";
/// `lacquer_cache_evictions_total`: objects evicted to stay within the budget.
pub const CACHE_EVICTIONS: &str = "cache_evictions";
/// `lacquer_backend_requests_total{backend,status}`: responses from backends.
pub const BACKEND_REQUESTS: &str = "backend_requests";
/// `lacquer_fetch_failures_total{backend,kind}`: failed fetches by cause.
pub const FETCH_FAILURES: &str = "fetch_failures";
/// `lacquer_backend_healthy{backend}`: 1 when healthy (0 while sick or while
/// its circuit is open).
pub const BACKEND_HEALTHY: &str = "backend_healthy";
/// `lacquer_backend_circuit_open{backend}`: 1 while the circuit breaker is open.
pub const BACKEND_CIRCUIT_OPEN: &str = "backend_circuit_open";
/// `lacquer_plugin_calls_total{plugin,hook}`.
pub const PLUGIN_CALLS: &str = "plugin_calls";
/// `lacquer_plugin_skipped_total{plugin,hook}`: calls not made because the
/// plugin said it continues for such requests (`skip-recv-for`).
pub const PLUGIN_SKIPPED: &str = "plugin_skipped";
/// `lacquer_plugin_faults_total{plugin,hook,kind}`.
pub const PLUGIN_FAULTS: &str = "plugin_faults";
/// `lacquer_plugin_duration_seconds{plugin,hook}`.
pub const PLUGIN_DURATION: &str = "plugin_duration_seconds";
/// `lacquer_plugin_quarantines_total{plugin}`.
pub const PLUGIN_QUARANTINES: &str = "plugin_quarantines";
/// `lacquer_reloads_total{result}`.
pub const RELOADS: &str = "reloads";
/// `lacquer_connections`: client connections open now.
pub const CONNECTIONS: &str = "connections";
/// `lacquer_connections_refused_total`: connections closed at once because
/// `[server] max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "connections_refused";
/// `lacquer_connection_timeouts_total{kind}`: connections closed by the host
/// (`header-read`: no complete request head in `header_read_timeout`;
/// `idle`: no request for `idle_timeout`).
pub const CONNECTION_TIMEOUTS: &str = "connection_timeouts";
/// `lacquer_requests_refused_total{reason}`: client requests answered 400
/// before any plugin ran (e.g. `host-missing`, `host-duplicate`, `host-invalid`).
pub const REQUESTS_REFUSED: &str = "requests_refused";
/// `lacquer_responses_total{status}`: responses sent to clients, by status code.
pub const RESPONSES: &str = "responses";
/// `lacquer_responses_truncated_total`: backend bodies that failed after the
/// response had started (a between-bytes timeout or a reset mid-body): the
/// clients reading them got a cut response.
pub const RESPONSES_TRUNCATED: &str = "responses_truncated";
/// `lacquer_access_log_dropped_total`: access log records dropped because the
/// writer fell behind (requests never wait for the log).
pub const ACCESS_LOG_DROPPED: &str = "access_log_dropped";
/// `lacquer_cache_bans`: bans active now.
pub const CACHE_BANS: &str = "cache_bans";
/// `lacquer_cache_bans_refused_total`: bans refused because `[cache] max_bans` were active.
pub const CACHE_BANS_REFUSED: &str = "cache_bans_refused";
/// `lacquer_cache_too_large_total`: responses not stored (or dropped while
/// filling) because they exceed `[cache] max_object_size`.
pub const CACHE_TOO_LARGE: &str = "cache_too_large";
/// `lacquer_compressed_objects_total`: objects stored gzip-compressed by
/// the cache (`[cache] compress`).
pub const COMPRESSED_OBJECTS: &str = "compressed_objects";
/// `lacquer_compression_saved_bytes_total`: body bytes the compressed
/// objects did not take (identity size less stored size, counted when a
/// compressed fill completes).
pub const COMPRESSION_SAVED_BYTES: &str = "compression_saved_bytes";
/// `lacquer_decompressions_total`: responses decompressed from a stored
/// gzip object for a client that does not accept gzip.
pub const DECOMPRESSIONS: &str = "decompressions";
/// `lacquer_kv_bytes{plugin}`: bytes a plugin's key-value namespace holds.
pub const KV_BYTES: &str = "kv_bytes";
/// `lacquer_kv_refused_total{plugin}`: writes refused because the namespace was full.
pub const KV_REFUSED: &str = "kv_refused";
/// `lacquer_plugin_log_dropped_total{plugin}`: log lines (host log calls or
/// stdout/stderr lines) dropped by the per-call and per-second bounds.
pub const PLUGIN_LOG_DROPPED: &str = "plugin_log_dropped";

/// `lacquer_tls_handshake_failures_total{reason}`: TLS handshakes that failed
/// on the TLS listener, by reason (`no-shared-cipher`, `protocol-version`,
/// `bad-certificate`, `not-tls`, `timeout`, `closed`, `other`).
pub const TLS_HANDSHAKE_FAILURES: &str = "tls_handshake_failures";
/// `lacquer_proxy_protocol_rejected_total{reason}`: connections closed on a
/// `proxy_protocol` listener because they did not begin with a valid PROXY
/// header (`invalid`, `too-large`, `timeout`, `closed`).
pub const PROXY_PROTOCOL_REJECTED: &str = "proxy_protocol_rejected";
/// `lacquer_cluster_nodes_up`: cluster nodes whose heartbeat is recent.
pub const CLUSTER_NODES_UP: &str = "cluster_nodes_up";
/// `lacquer_cluster_redis_up`: 1 while the node reaches the cluster's Redis.
pub const CLUSTER_REDIS_UP: &str = "cluster_redis_up";
/// `lacquer_cluster_fallbacks_total{what}`: cluster operations answered by
/// the node alone (`limits`, `kv`, `invalidations`, `owner`).
pub const CLUSTER_FALLBACKS: &str = "cluster_fallbacks";
/// `lacquer_cluster_invalidations_total{direction}`: `published` to the
/// other nodes, `applied` from them.
pub const CLUSTER_INVALIDATIONS: &str = "cluster_invalidations";
/// `lacquer_cluster_cache_drops_total`: the cache dropped because
/// invalidations may have been missed.
pub const CLUSTER_CACHE_DROPS: &str = "cluster_cache_drops";
/// `lacquer_cluster_owner_fetches_total{result}`: fetches from a key's
/// owner node (`ok`, `failed`).
pub const CLUSTER_OWNER_FETCHES: &str = "cluster_owner_fetches";

type Labels = Vec<(&'static str, String)>;

/// All metrics of one server.
pub struct Metrics {
    registry: Registry,
    requests: [Counter; 5],
    request_duration: [DurationHistogram; 5],
    /// `lacquer_cache_objects`
    pub cache_objects: Gauge,
    /// `lacquer_cache_bytes`
    pub cache_bytes: Gauge,
    /// `lacquer_cache_evictions_total`
    pub cache_evictions: Counter,
    backend_requests: Family<Labels, Counter>,
    fetch_failures: Family<Labels, Counter>,
    backend_healthy: Family<Labels, Gauge>,
    backend_circuit_open: Family<Labels, Gauge>,
    plugin_calls: Family<Labels, Counter>,
    plugin_skipped: Family<Labels, Counter>,
    plugin_faults: Family<Labels, Counter>,
    plugin_duration: Family<Labels, DurationHistogram>,
    plugin_quarantines: Family<Labels, Counter>,
    plugin_log_dropped: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    /// `lacquer_connections`
    pub connections: Gauge,
    /// `lacquer_connections_refused_total`
    pub connections_refused: Counter,
    /// `lacquer_connection_timeouts_total{kind="header-read"}`
    pub header_read_timeouts: Counter,
    /// `lacquer_connection_timeouts_total{kind="idle"}`
    pub idle_timeouts: Counter,
    /// `lacquer_connection_timeouts_total{kind="send"}`: a client that read
    /// nothing of a response for `idle_timeout`.
    pub send_timeouts: Counter,
    requests_refused: Family<Labels, Counter>,
    tls_handshake_failures: Family<Labels, Counter>,
    proxy_protocol_rejected: Family<Labels, Counter>,
    /// `lacquer_cache_bans`
    pub cache_bans: Gauge,
    /// `lacquer_cache_bans_refused_total`
    pub cache_bans_refused: Counter,
    /// `lacquer_cache_too_large_total`
    pub cache_too_large: Counter,
    /// `lacquer_compressed_objects_total`
    pub compressed_objects: Counter,
    /// `lacquer_compression_saved_bytes_total`
    pub compression_saved_bytes: Counter,
    /// `lacquer_decompressions_total`
    pub decompressions: Counter,
    kv_bytes: Family<Labels, Gauge>,
    kv_refused: Family<Labels, Counter>,
    responses: Family<Labels, Counter>,
    /// One handle per status code (100..=599), made on first use.
    response_handles: Box<[std::sync::OnceLock<Counter>]>,
    /// `lacquer_access_log_dropped_total`
    pub access_log_dropped: Counter,
    /// `lacquer_responses_truncated_total`
    pub responses_truncated: Counter,
    /// `lacquer_cluster_*`
    pub cluster: crate::cluster::ClusterMetrics,
}

fn plugin_histogram() -> DurationHistogram {
    DurationHistogram::new(exponential_buckets(1e-6, 4.0, 11))
}

fn request_histogram() -> DurationHistogram {
    DurationHistogram::new(exponential_buckets(1e-5, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lacquer");
        let requests_f = Family::<Labels, Counter>::default();
        let duration_f = Family::<Labels, DurationHistogram>::new_with_constructor(
            request_histogram as fn() -> DurationHistogram,
        );
        let requests = State::ALL.map(|s| {
            requests_f
                .get_or_create(&vec![("state", s.as_str().into())])
                .clone()
        });
        let request_duration = State::ALL.map(|s| {
            duration_f
                .get_or_create(&vec![("state", s.as_str().into())])
                .clone()
        });
        registry.register(
            REQUESTS,
            "Client requests by how they were answered",
            requests_f,
        );
        registry.register(
            REQUEST_DURATION,
            "Time from request to response headers",
            duration_f,
        );
        let mut m = Metrics {
            requests,
            request_duration,
            cache_objects: Gauge::default(),
            cache_bytes: Gauge::default(),
            cache_evictions: Counter::default(),
            backend_requests: Family::default(),
            fetch_failures: Family::default(),
            backend_healthy: Family::default(),
            backend_circuit_open: Family::default(),
            plugin_calls: Family::default(),
            plugin_skipped: Family::default(),
            plugin_faults: Family::default(),
            plugin_duration: Family::new_with_constructor(
                plugin_histogram as fn() -> DurationHistogram,
            ),
            plugin_quarantines: Family::default(),
            plugin_log_dropped: Family::default(),
            reloads: Family::default(),
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            header_read_timeouts: Counter::default(),
            idle_timeouts: Counter::default(),
            send_timeouts: Counter::default(),
            requests_refused: Family::default(),
            tls_handshake_failures: Family::default(),
            proxy_protocol_rejected: Family::default(),
            cache_bans: Gauge::default(),
            cache_bans_refused: Counter::default(),
            cache_too_large: Counter::default(),
            compressed_objects: Counter::default(),
            compression_saved_bytes: Counter::default(),
            decompressions: Counter::default(),
            kv_bytes: Family::default(),
            kv_refused: Family::default(),
            responses: Family::default(),
            response_handles: (100..600).map(|_| std::sync::OnceLock::new()).collect(),
            access_log_dropped: Counter::default(),
            responses_truncated: Counter::default(),
            cluster: Default::default(),
            registry,
        };
        m.cluster = crate::cluster::ClusterMetrics::register(&mut m.registry);
        let timeouts = Family::<Labels, Counter>::default();
        m.header_read_timeouts = timeouts
            .get_or_create(&vec![("kind", "header-read".into())])
            .clone();
        m.idle_timeouts = timeouts
            .get_or_create(&vec![("kind", "idle".into())])
            .clone();
        m.send_timeouts = timeouts
            .get_or_create(&vec![("kind", "send".into())])
            .clone();
        let r = &mut m.registry;
        r.register(
            CACHE_OBJECTS,
            "Objects in the cache",
            m.cache_objects.clone(),
        );
        r.register(
            CACHE_BYTES,
            "Bytes counted against the cache memory budget",
            m.cache_bytes.clone(),
        );
        r.register(
            CACHE_EVICTIONS,
            "Objects evicted to stay within the budget",
            m.cache_evictions.clone(),
        );
        r.register(
            BACKEND_REQUESTS,
            "Backend responses by status",
            m.backend_requests.clone(),
        );
        r.register(
            FETCH_FAILURES,
            "Failed fetches by cause",
            m.fetch_failures.clone(),
        );
        r.register(
            BACKEND_HEALTHY,
            "1 when the backend is healthy",
            m.backend_healthy.clone(),
        );
        r.register(
            BACKEND_CIRCUIT_OPEN,
            "1 while the backend's circuit breaker is open",
            m.backend_circuit_open.clone(),
        );
        r.register(PLUGIN_CALLS, "Plugin hook calls", m.plugin_calls.clone());
        r.register(
            PLUGIN_SKIPPED,
            "Plugin hook calls skipped: the plugin continues for such requests",
            m.plugin_skipped.clone(),
        );
        r.register(
            PLUGIN_FAULTS,
            "Plugin faults by kind",
            m.plugin_faults.clone(),
        );
        r.register(
            PLUGIN_DURATION,
            "Plugin hook call time",
            m.plugin_duration.clone(),
        );
        r.register(
            PLUGIN_QUARANTINES,
            "Times a plugin was quarantined",
            m.plugin_quarantines.clone(),
        );
        r.register(
            RELOADS,
            "Configuration reloads by result",
            m.reloads.clone(),
        );
        r.register(
            PLUGIN_LOG_DROPPED,
            "Plugin log lines dropped by the log bounds",
            m.plugin_log_dropped.clone(),
        );
        r.register(
            CONNECTIONS,
            "Client connections open",
            m.connections.clone(),
        );
        r.register(
            CONNECTIONS_REFUSED,
            "Client connections refused at max_connections",
            m.connections_refused.clone(),
        );
        r.register(
            CONNECTION_TIMEOUTS,
            "Client connections closed by a timeout",
            timeouts,
        );
        r.register(
            REQUESTS_REFUSED,
            "Client requests refused before any plugin ran",
            m.requests_refused.clone(),
        );
        r.register(
            TLS_HANDSHAKE_FAILURES,
            "TLS handshakes failed on the TLS listener, by reason",
            m.tls_handshake_failures.clone(),
        );
        r.register(
            PROXY_PROTOCOL_REJECTED,
            "Connections closed for a missing or invalid PROXY header, by reason",
            m.proxy_protocol_rejected.clone(),
        );
        r.register(CACHE_BANS, "Bans active", m.cache_bans.clone());
        r.register(
            CACHE_BANS_REFUSED,
            "Bans refused at max_bans",
            m.cache_bans_refused.clone(),
        );
        r.register(
            CACHE_TOO_LARGE,
            "Responses not stored because they exceed max_object_size",
            m.cache_too_large.clone(),
        );
        r.register(
            COMPRESSED_OBJECTS,
            "Objects stored gzip-compressed by the cache",
            m.compressed_objects.clone(),
        );
        r.register(
            COMPRESSION_SAVED_BYTES,
            "Body bytes saved by storing objects compressed",
            m.compression_saved_bytes.clone(),
        );
        r.register(
            DECOMPRESSIONS,
            "Responses decompressed from a stored gzip object",
            m.decompressions.clone(),
        );
        r.register(
            KV_BYTES,
            "Bytes held by a plugin's key-value namespace",
            m.kv_bytes.clone(),
        );
        r.register(
            KV_REFUSED,
            "Key-value writes refused because the namespace was full",
            m.kv_refused.clone(),
        );
        r.register(
            RESPONSES,
            "Responses sent to clients, by status code",
            m.responses.clone(),
        );
        r.register(
            RESPONSES_TRUNCATED,
            "Backend bodies that failed after the response had started",
            m.responses_truncated.clone(),
        );
        r.register(
            ACCESS_LOG_DROPPED,
            "Access log records dropped because the writer fell behind",
            m.access_log_dropped.clone(),
        );
        m
    }

    /// Count a response sent to a client.
    pub fn response(&self, status: u16) {
        let Some(slot) = self
            .response_handles
            .get(usize::from(status).wrapping_sub(100))
        else {
            return;
        };
        slot.get_or_init(|| {
            self.responses
                .get_or_create(&vec![("status", status.to_string())])
                .clone()
        })
        .inc();
    }

    /// Count a client request refused with 400 before any plugin ran.
    pub fn request_refused(&self, reason: &'static str) {
        self.requests_refused
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }

    /// Count a failed TLS handshake (`reason` is one of a fixed set).
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }

    /// Count a connection refused for its PROXY header.
    pub fn proxy_protocol_rejected(&self, reason: &'static str) {
        self.proxy_protocol_rejected
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }

    /// Publish a plugin namespace's size and refusals (read at scrape time).
    pub fn kv(&self, plugin: &str, bytes: usize, refused: u64) {
        let l = vec![("plugin", plugin.to_string())];
        self.kv_bytes.get_or_create(&l).set(bytes as i64);
        let c = self.kv_refused.get_or_create(&l);
        c.inc_by(refused.saturating_sub(c.get()));
    }

    /// Count an answered request that took `took` to its response headers.
    pub fn request(&self, state: State, took: std::time::Duration) {
        self.requests[state as usize].inc();
        self.request_duration[state as usize].observe(took);
    }

    /// Count a backend response.
    pub fn backend_response(&self, backend: &str, status: u16) {
        self.backend_requests
            .get_or_create(&vec![
                ("backend", backend.into()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// Count a failed fetch.
    pub fn fetch_failure(&self, backend: &str, kind: &str) {
        self.fetch_failures
            .get_or_create(&vec![("backend", backend.into()), ("kind", kind.into())])
            .inc();
    }

    /// Set a backend's circuit gauge.
    pub fn backend_circuit(&self, backend: &str, open: bool) {
        self.backend_circuit_open
            .get_or_create(&vec![("backend", backend.into())])
            .set(i64::from(open));
    }

    /// Set a backend's health gauge.
    pub fn backend_health(&self, backend: &str, healthy: bool) {
        self.backend_healthy
            .get_or_create(&vec![("backend", backend.into())])
            .set(i64::from(healthy));
    }

    /// Count a reload.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.reloads
            .get_or_create(&vec![("result", result.into())])
            .inc();
    }

    /// Resolve a plugin's handles.
    pub fn plugin(&self, plugin: &str) -> PluginMetrics {
        let hooks = Hook::ALL.map(|h| {
            let l = vec![
                ("plugin", plugin.to_string()),
                ("hook", h.as_str().to_string()),
            ];
            HookMetrics {
                calls: self.plugin_calls.get_or_create(&l).clone(),
                skipped: self.plugin_skipped.get_or_create(&l).clone(),
                duration: self.plugin_duration.get_or_create(&l).clone(),
                faults: FaultKind::ALL.map(|k| {
                    let mut l = l.clone();
                    l.push(("kind", k.as_str().into()));
                    self.plugin_faults.get_or_create(&l).clone()
                }),
            }
        });
        PluginMetrics {
            hooks,
            log_dropped: self
                .plugin_log_dropped
                .get_or_create(&vec![("plugin", plugin.to_string())])
                .clone(),
            quarantines: self
                .plugin_quarantines
                .get_or_create(&vec![("plugin", plugin.to_string())])
                .clone(),
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One hook's handles for one plugin.
#[derive(Clone)]
pub struct HookMetrics {
    /// Calls.
    pub calls: Counter,
    /// Calls skipped (`skip-recv-for`).
    pub skipped: Counter,
    /// Call time.
    pub duration: DurationHistogram,
    /// Faults by kind.
    pub faults: [Counter; FaultKind::ALL.len()],
}

/// A plugin's handles.
#[derive(Clone)]
pub struct PluginMetrics {
    /// Per hook, by [`Hook`] index.
    pub hooks: [HookMetrics; 4],
    /// Quarantines.
    pub quarantines: Counter,
    /// Log lines dropped by the log bounds.
    pub log_dropped: Counter,
}

impl PluginMetrics {
    /// Count a fault.
    pub fn fault(&self, hook: Hook, kind: FaultKind) {
        self.hooks[hook as usize].faults[kind as usize].inc();
    }
}
