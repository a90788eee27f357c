//! Fetching from a key's owner node: each other node is a backend (its
//! client-facing URL, with its own timeouts and circuit breaker), asked
//! with the hop header carrying `[cluster] secret`. A node answers a hop
//! from its cache or its origin and never forwards it again; a header
//! without the right secret is no hop (and is not sent on).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

use super::Cluster;
use crate::backend::Backend;
use crate::backend::health::Health;
use crate::cache::Key;
use crate::config::{BackendConfig, CircuitSection, ClusterConfig, Timeouts};
use crate::kinds::{FetchKind, Proposal, Storage};

/// The request header of a fetch from the owner node: its value is
/// `[cluster] secret`.
pub const HOP_HEADER: &str = "x-lacquer-cluster-hop";
/// Connect timeout to another node.
const PEER_CONNECT: Duration = Duration::from_secs(1);
/// Keys remembered as just invalidated; past this every owner fetch
/// refreshes for the window.
const MAX_RECENT: usize = 100_000;

/// What this node invalidated lately (its own or applied from the stream).
/// The owner may not have applied the same invalidation yet: a fetch from
/// it within the window asks it to refresh (`Cache-Control: no-cache`), so
/// a copy just purged here does not come back from the owner.
pub(super) struct Recent {
    window: Duration,
    keys: parking_lot::Mutex<std::collections::HashMap<Key, std::time::Instant>>,
    all_until: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl Recent {
    /// The window: three heartbeats and 2 s, time for the owner to apply.
    pub(super) fn new(cfg: &ClusterConfig) -> Recent {
        Recent {
            window: cfg.heartbeat * 3 + Duration::from_secs(2),
            keys: Default::default(),
            all_until: Default::default(),
        }
    }

    /// Remember an invalidation made or applied here.
    pub(super) fn note(&self, inv: &crate::cache::Invalidation) {
        use crate::cache::Invalidation as I;
        let now = std::time::Instant::now();
        let until = now + self.window;
        match inv {
            I::Purge(k) | I::SoftPurge(k) => {
                let mut m = self.keys.lock();
                if m.len() >= MAX_RECENT {
                    m.retain(|_, t| *t > now);
                }
                if m.len() >= MAX_RECENT {
                    // Every key remembered ends within the window: one
                    // refresh-all for it covers them, and the map starts
                    // again (so a purge storm scans it once per window,
                    // not once per purge).
                    m.clear();
                    drop(m);
                    *self.all_until.lock() = Some(until);
                } else {
                    m.insert(*k, until);
                }
            }
            I::Ban { .. } | I::Clear => *self.all_until.lock() = Some(until),
        }
    }

    /// Whether a fetch of `key` from its owner must ask for a refresh.
    fn refresh(&self, key: Key) -> bool {
        let now = std::time::Instant::now();
        if self.all_until.lock().is_some_and(|t| t > now) {
            return true;
        }
        let mut m = self.keys.lock();
        match m.get(&key) {
            Some(t) if *t > now => true,
            Some(_) => {
                m.remove(&key);
                false
            }
            None => false,
        }
    }
}

/// The other nodes as backends (none at this node's index).
pub(super) struct Peers {
    backends: Vec<Option<Arc<Backend>>>,
    secret: HeaderValue,
}

impl Peers {
    pub(super) fn new(cfg: &ClusterConfig) -> Peers {
        let backends = cfg
            .nodes
            .iter()
            .zip(&cfg.uris)
            .enumerate()
            .map(|(i, (url, uri))| {
                (i != cfg.me).then(|| {
                    let circuit = CircuitSection::default();
                    let bc = BackendConfig {
                        name: format!("cluster:{url}"),
                        url: url.clone(),
                        uri: uri.clone(),
                        socket: None,
                        timeouts: Timeouts {
                            connect: PEER_CONNECT.min(cfg.owner_timeout),
                            first_byte: cfg.owner_timeout,
                            between_bytes: crate::config::DEFAULT_BETWEEN_BYTES_TIMEOUT,
                        },
                        max_connections: 0,
                        max_connections_wait: Duration::ZERO,
                        host_header: None,
                        probe: None,
                        circuit: circuit.clone(),
                        protocol: crate::config::BackendProtocol::Auto,
                        tls: None,
                    };
                    let health = Arc::new(Health::default());
                    health.configure_breaker(
                        circuit.failures,
                        circuit.backoff,
                        circuit.max_backoff,
                    );
                    Arc::new(Backend::new(&bc, health))
                })
            })
            .collect();
        Peers {
            backends,
            // Checked: printable ASCII.
            secret: HeaderValue::from_str(&cfg.secret).expect("checked secret"),
        }
    }
}

impl Cluster {
    /// Whether a request is a hop from another node (the header carries
    /// the secret; compared in constant time).
    pub fn is_hop(&self, headers: &HeaderMap) -> bool {
        headers
            .get(HOP_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(self.hop.secret.as_bytes())))
    }

    /// The owner node's backend for `key`, when the owner is another live
    /// node and this request is not itself a hop.
    pub fn peer_for(&self, key: Key, headers: &HeaderMap) -> Option<Arc<Backend>> {
        if self.is_hop(headers) {
            return None;
        }
        self.hop.backends[self.owner(key)?].clone()
    }

    /// Make `headers` those of a fetch of `key` from its owner: the hop
    /// header, and `Cache-Control: no-cache` when this node invalidated the
    /// key lately (the owner may not have yet).
    pub fn hop_headers(&self, key: Key, headers: &mut HeaderMap) {
        headers.insert(HOP_HEADER, self.hop.secret.clone());
        if self.inner.recent.refresh(key) {
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
        }
    }

    /// Count a fetch from the owner, and tell its circuit breaker; a
    /// failed one (the kind, when it did not answer) is a fallback to the
    /// origin, logged unless the owner's circuit is already open.
    pub fn owner_fetched(&self, peer: &Backend, r: Result<(), (Option<FetchKind>, String)>) {
        match r {
            Ok(()) => {
                peer.health.success();
                self.inner.metrics.owner_ok.inc();
            }
            Err((kind, detail)) => {
                self.inner.metrics.owner_failed.inc();
                self.inner.metrics.fallback(super::Fallback::Owner);
                if kind == Some(FetchKind::CircuitOpen) {
                    return;
                }
                if kind.is_none_or(|k| k.breaker_failure()) {
                    let _ = peer.health.failure(&detail);
                }
                let kind = kind.map_or("status", |k| k.as_str());
                tracing::info!(owner = %peer.name, "cluster: owner fetch failed ({kind}: {detail}): asking the origin");
            }
        }
    }

    /// What this node keeps of an object it got from its owner: at most
    /// `[cluster] local_ttl` fresh, nothing past it; nothing for 0 s.
    pub fn local_copy(&self, mut p: Proposal) -> Proposal {
        let ttl = self.inner.cfg.local_ttl;
        if p.storage == Storage::Cache {
            if ttl.is_zero() {
                p.storage = Storage::Uncacheable;
            } else {
                p.ttl = p.ttl.min(ttl);
                p.grace = p.grace.min(ttl);
                p.keep = Duration::ZERO;
            }
        }
        p
    }
}
