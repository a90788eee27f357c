//! The cluster's metrics (names in [`crate::metrics`]): handles resolved
//! once, registered with the server's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{
    CLUSTER_CACHE_DROPS, CLUSTER_FALLBACKS, CLUSTER_INVALIDATIONS, CLUSTER_NODES_UP,
    CLUSTER_OWNER_FETCHES, CLUSTER_REDIS_UP,
};

type Labels = Vec<(&'static str, String)>;

/// What falls back to the node alone when Redis (or an owner) fails.
#[derive(Debug, Clone, Copy)]
pub enum Fallback {
    /// A shared counter or token bucket answered locally.
    Limits,
    /// A shared kv read or write answered locally.
    Kv,
    /// An invalidation that could not be published yet (kept, sent later).
    Invalidations,
    /// A fetch from the owner node failed: the origin was asked.
    Owner,
}

impl Fallback {
    /// The `what` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Limits => "limits",
            Fallback::Kv => "kv",
            Fallback::Invalidations => "invalidations",
            Fallback::Owner => "owner",
        }
    }
}

/// The cluster's handles.
#[derive(Clone, Default)]
pub struct ClusterMetrics {
    /// `lacquer_cluster_nodes_up`
    pub nodes_up: Gauge,
    /// `lacquer_cluster_redis_up`
    pub redis_up: Gauge,
    fallbacks: Family<Labels, Counter>,
    /// `lacquer_cluster_invalidations_total{direction="published"}`
    pub published: Counter,
    /// `lacquer_cluster_invalidations_total{direction="applied"}`
    pub applied: Counter,
    invalidations: Family<Labels, Counter>,
    /// `lacquer_cluster_cache_drops_total`
    pub cache_drops: Counter,
    owner: Family<Labels, Counter>,
    /// `lacquer_cluster_owner_fetches_total{result="ok"}`
    pub owner_ok: Counter,
    /// `lacquer_cluster_owner_fetches_total{result="failed"}`
    pub owner_failed: Counter,
}

impl ClusterMetrics {
    /// Register every cluster metric.
    pub fn register(r: &mut Registry) -> Self {
        let mut m = ClusterMetrics::default();
        m.published = m
            .invalidations
            .get_or_create(&vec![("direction", "published".into())])
            .clone();
        m.applied = m
            .invalidations
            .get_or_create(&vec![("direction", "applied".into())])
            .clone();
        m.owner_ok = m
            .owner
            .get_or_create(&vec![("result", "ok".into())])
            .clone();
        m.owner_failed = m
            .owner
            .get_or_create(&vec![("result", "failed".into())])
            .clone();
        r.register(
            CLUSTER_NODES_UP,
            "Cluster nodes whose heartbeat is recent (this one included)",
            m.nodes_up.clone(),
        );
        r.register(
            CLUSTER_REDIS_UP,
            "1 while this node reaches the cluster's Redis",
            m.redis_up.clone(),
        );
        r.register(
            CLUSTER_FALLBACKS,
            "Cluster operations answered by the node alone, by what",
            m.fallbacks.clone(),
        );
        r.register(
            CLUSTER_INVALIDATIONS,
            "Invalidations published to or applied from the other nodes",
            m.invalidations.clone(),
        );
        r.register(
            CLUSTER_CACHE_DROPS,
            "Times the cache was dropped because invalidations may have been missed",
            m.cache_drops.clone(),
        );
        r.register(
            CLUSTER_OWNER_FETCHES,
            "Fetches from a key's owner node, by result",
            m.owner.clone(),
        );
        m
    }

    /// Count a fallback.
    pub fn fallback(&self, what: Fallback) {
        self.fallbacks
            .get_or_create(&vec![("what", what.as_str().into())])
            .inc();
    }
}
