//! The state every request shares: the current config generation (swapped
//! atomically on reload) and what outlives generations (cache, health,
//! plugin key-value store, metrics, recent fetch failures).

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;

use crate::backend::{Backends, HealthRegistry};
use crate::cache::Cache;
use crate::config::{Config, ConfigError, ConfigSource, PluginSource};
use crate::kinds::FetchFailure;
use crate::metrics::Metrics;
use crate::plugin::host_api::PluginEnv;
use crate::plugin::kv::KvStore;
use crate::plugin::runtime::LoadedPlugin;
use crate::plugin::{Chain, LogBudget, PluginError};

/// Recent fetch failures kept for `GET /fetch-errors`.
const RECENT_ERRORS: usize = 200;

/// Errors starting or reloading.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin failed to load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The access log file could not be opened.
    #[error("log.access: cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    /// The cluster's thread could not be started.
    #[error("cluster: cannot start: {0}")]
    Cluster(std::io::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        cause: std::io::Error,
    },
}

/// One config generation: in-flight requests keep the one they started with.
pub struct Generation {
    /// Number, from 1.
    pub number: u64,
    /// The config.
    pub config: Arc<Config>,
    /// Plugins.
    pub chain: Chain,
    /// Backends and directors.
    pub backends: Arc<Backends>,
    /// The TLS listener's certificates and settings, read when this
    /// generation was built.
    pub tls: Option<Arc<crate::tls::Tls>>,
}

/// A recorded fetch failure.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// Request id.
    pub request_id: String,
    /// Method and URL.
    pub request: String,
    /// Backend.
    pub backend: String,
    /// Kind.
    pub kind: &'static str,
    /// Attempt.
    pub attempt: u32,
    /// Milliseconds spent.
    pub elapsed_ms: u64,
    /// Detail.
    pub detail: String,
}

/// State shared by every request.
pub struct Shared {
    /// The current generation.
    pub generation: ArcSwap<Generation>,
    /// The cache (survives reloads).
    pub cache: Arc<Cache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Backend health by name (survives reloads).
    pub health: HealthRegistry,
    /// Plugin state (survives reloads).
    pub kv: KvStore,
    /// Where the config comes from.
    pub source: ConfigSource,
    /// Recent fetch failures.
    pub recent: Mutex<VecDeque<FailureRecord>>,
    next_id: AtomicU64,
    /// Random per process, so request ids differ across restarts and nodes.
    instance: u32,
    reload_lock: tokio::sync::Mutex<()>,
    /// When the server started.
    pub started: Instant,
    /// The address the admin listener is bound to: the token rule follows
    /// the socket, whatever a reloaded config says.
    pub admin_bound: std::sync::OnceLock<SocketAddr>,
    /// The access log (set once the server starts).
    pub access: std::sync::OnceLock<crate::access::AccessLog>,
    /// The cluster this node is in (`[cluster]`; set once at start).
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// State for a config, with an empty generation 0 (call [`Shared::build`] to fill it).
    pub fn new(source: ConfigSource, config: &Config) -> Arc<Shared> {
        let metrics = Arc::new(Metrics::new());
        let cache = Cache::new(
            config.cache.memory.0,
            config.cache.max_variants,
            config.cache.max_bans,
            metrics.clone(),
        );
        Arc::new(Shared {
            generation: ArcSwap::from_pointee(Generation {
                number: 0,
                config: Arc::new(config.clone()),
                chain: Chain::new(Vec::new()),
                backends: Arc::new(Backends {
                    targets: Default::default(),
                    list: Vec::new(),
                    default: String::new(),
                }),
                tls: None,
            }),
            cache,
            metrics,
            health: HealthRegistry::default(),
            kv: KvStore::default(),
            source,
            recent: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            instance: rand::random(),
            reload_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            admin_bound: std::sync::OnceLock::new(),
            access: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// The request id: the client's `x-request-id` when it is a sane token
    /// (1–128 of `A-Za-z0-9-_.:`), else a new one.
    pub fn request_id_for(&self, given: Option<&http::HeaderValue>) -> Arc<str> {
        match given.map(http::HeaderValue::as_bytes) {
            Some(b)
                if (1..=128).contains(&b.len())
                    && b.iter()
                        .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c)) =>
            {
                // Checked ASCII above.
                String::from_utf8_lossy(b).into()
            }
            _ => self.request_id(),
        }
    }

    /// A new request id: `{instance:08x}-{n:x}`, `n` unique in this process.
    ///
    /// Each thread takes [`ID_BLOCK`] numbers at a time from the shared
    /// counter, so that workers do not write one cache line per request,
    /// and the text is made in place (through `format!`, the id was a
    /// twentieth of a cache hit's own instructions).
    pub fn request_id(&self) -> Arc<str> {
        thread_local! {
            /// The block this thread is using: whose (the counter's address
            /// and the instance), next and end.
            static BLOCK: Cell<(usize, u32, u64, u64)> = const { Cell::new((0, 0, 0, 0)) };
        }
        let owner = (std::ptr::from_ref(&self.next_id) as usize, self.instance);
        let n = BLOCK.with(|b| {
            let (o, i, mut next, mut end) = b.get();
            if (o, i) != owner || next == end {
                next = self.next_id.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = next + ID_BLOCK;
            }
            b.set((owner.0, owner.1, next + 1, end));
            next
        });
        let mut buf = [0u8; 8 + 1 + 16];
        let mut len = hex(u64::from(self.instance), 8, &mut buf);
        buf[len] = b'-';
        len += 1;
        len += hex(n, 1, &mut buf[len..]);
        // Hex digits and '-' only.
        Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
    }

    /// Record a fetch failure for `/fetch-errors`.
    pub fn record_failure(&self, request_id: &str, request: String, f: &FetchFailure) {
        let mut r = self.recent.lock();
        if r.len() == RECENT_ERRORS {
            r.pop_front();
        }
        r.push_back(FailureRecord {
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            request_id: request_id.into(),
            request,
            backend: f.backend.clone(),
            kind: f.kind.as_str(),
            attempt: f.attempt,
            elapsed_ms: f.elapsed.as_millis() as u64,
            detail: f.detail.clone(),
        });
    }

    /// Build a generation from a config: backends, then every plugin loaded and initialised.
    pub async fn build(&self, config: Config, number: u64) -> Result<Generation, ServeError> {
        let tls = crate::tls::server_config(&config)?.map(Arc::new);
        let backends = Backends::build(&config, &self.health);
        let mut plugins = Vec::new();
        for p in &config.plugins {
            let name = p.section.name.clone();
            let bytes: std::borrow::Cow<'static, [u8]> = match &p.source {
                PluginSource::Builtin(b) => crate::bundle::bytes(b)
                    .expect("checked: builtin exists")
                    .into(),
                PluginSource::Path(path) => std::fs::read(path)
                    .map_err(|cause| PluginError::Read {
                        plugin: name.clone(),
                        path: path.display().to_string(),
                        cause,
                    })?
                    .into(),
            };
            let metrics = self.metrics.plugin(&name);
            let env = Arc::new(PluginEnv {
                name: name.as_str().into(),
                debug_headers: config.debug_headers,
                kv: self.kv.namespace(&name),
                backends: backends.clone(),
                cache: self.cache.clone(),
                log: LogBudget::new(metrics.log_dropped.clone()),
                cluster: self.cluster.get().cloned(),
                shared_kv: p.section.shared_kv,
            });
            let loaded = LoadedPlugin::load(
                p,
                &bytes,
                env,
                config.runtime.recycle_after,
                config.runtime.cache_dir.as_deref(),
                metrics,
            )
            .await?;
            plugins.push(Arc::new(loaded));
        }
        Ok(Generation {
            number,
            config: Arc::new(config),
            chain: Chain::new(plugins),
            backends,
            tls,
        })
    }

    /// A config may drop the admin token only if the admin socket actually
    /// bound is loopback: listen addresses change on restart, not on reload.
    fn check_admin_token(&self, cfg: &Config) -> Result<(), ConfigError> {
        match self.admin_bound.get() {
            Some(a) if !a.ip().is_loopback() && cfg.admin_token.is_none() => {
                Err(ConfigError::Invalid {
                    file: cfg.source.clone(),
                    key: "admin.token".into(),
                    cause: format!(
                        "required: the admin listener is bound to {a}, which is not loopback (a new admin.listen takes effect on restart)"
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Drop expired plugin state and retire bans; publish the gauges that
    /// are read rather than counted (called every few seconds).
    pub fn maintain(&self) {
        self.cache.sweep();
        self.kv.sweep();
        self.publish_gauges();
    }

    /// Bring the scrape-time gauges (kv namespaces) up to date.
    pub fn publish_gauges(&self) {
        for b in &self.generation.load().backends.list {
            self.metrics.backend_health(&b.name, b.health.healthy());
            self.metrics
                .backend_circuit(&b.name, b.health.circuit_open());
        }
        for (plugin, ns) in self.kv.namespaces() {
            self.metrics.kv(&plugin, ns.bytes(), ns.refusals());
        }
    }

    /// Re-read the config and plugins; swap only if everything loads.
    pub async fn reload(self: &Arc<Self>) -> Result<u64, ServeError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let start = Instant::now();
        let me = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let cfg = me.source.load()?;
            me.check_admin_token(&cfg)?;
            let n = me.generation.load().number + 1;
            // Compiling is CPU work: keep it off the async workers.
            tokio::runtime::Handle::current().block_on(me.build(cfg, n))
        })
        .await
        .expect("reload task does not panic");
        match built {
            Ok(mut g) => {
                let n = g.number;
                let old = self.generation.load();
                let tls_listen = |g: &Generation| g.config.tls.as_ref().map(|t| t.listen);
                if old.config.listen != g.config.listen
                    || old.config.admin_listen != g.config.admin_listen
                    || tls_listen(&old) != tls_listen(&g)
                    || old.config.cluster.is_some() != g.config.cluster.is_some()
                {
                    tracing::warn!(
                        "listen addresses or [cluster] changed: they take effect on restart"
                    );
                }
                if g.tls.is_none() && old.tls.is_some() {
                    // The TLS listener stays bound until a restart: it keeps
                    // the certificates it has.
                    g.tls = old.tls.clone();
                }
                g.backends.activate(&self.metrics);
                self.generation.store(Arc::new(g));
                self.metrics.reload(true);
                tracing::info!(generation = n, "reloaded in {:?}", start.elapsed());
                Ok(n)
            }
            Err(e) => {
                self.metrics.reload(false);
                tracing::error!("reload refused, keeping the current config: {e}");
                Err(e)
            }
        }
    }
}

/// Request ids a thread takes from [`Shared`]'s counter at a time.
const ID_BLOCK: u64 = 1024;

/// Write `v` in lower-case hex, at least `min` digits, at the start of
/// `out`; the number of bytes written.
fn hex(v: u64, min: usize, out: &mut [u8]) -> usize {
    let digits = (((64 - v.leading_zeros()) as usize).div_ceil(4)).max(min);
    for (i, b) in out[..digits].iter_mut().enumerate() {
        let nibble = (v >> (4 * (digits - 1 - i))) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_pads_to_the_minimum_and_no_further() {
        let mut b = [0u8; 16];
        let n = hex(0xabc, 8, &mut b);
        assert_eq!(&b[..n], b"00000abc");
        let n = hex(0, 1, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = hex(u64::MAX, 1, &mut b);
        assert_eq!(&b[..n], b"ffffffffffffffff");
    }

    #[test]
    fn request_ids_are_unique_across_threads() {
        let config = Config::embedded_default().expect("the embedded config");
        let shared = Shared::new(ConfigSource::default(), &config);
        let ids = std::sync::Mutex::new(std::collections::HashSet::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..3000 {
                        let id = shared.request_id();
                        assert!(ids.lock().unwrap().insert(id), "an id given twice");
                    }
                });
            }
        });
        let prefix = format!("{:08x}-", shared.instance);
        assert!(ids.lock().unwrap().iter().all(|i| i.starts_with(&prefix)));
    }
}
