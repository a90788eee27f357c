//! The cluster: several nodes sharing one Redis/Valkey (`[cluster]`).
//!
//! - membership (`members.rs`): each node's heartbeat is a Redis key with a
//!   short life; the live nodes are those whose key is there;
//! - sharding ([`Cluster::owner`], `hop.rs`): each cache key has one owner
//!   among the live nodes by rendezvous hashing; the others fetch from it
//!   as from a backend, with a hop header carrying the shared secret;
//! - invalidations (`stream.rs`): every purge, soft purge and ban made here
//!   goes to a Redis stream, and every node applies the others' in order;
//! - shared plugin state (`shared.rs`): counters, token buckets and opt-in
//!   kv in Redis, each call bounded by `[cluster] timeout`.
//!
//! The Redis client runs on a runtime of its own thread: plugin host calls
//! are synchronous and wait for it (bounded), which would deadlock on the
//! request's own runtime. Whenever Redis is unreachable the node works
//! alone: local limits, no sharding, invalidations kept to publish later.

mod hop;
mod members;
mod metrics;
mod shared;
mod stream;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, watch};

pub use self::hop::HOP_HEADER;
pub use self::metrics::{ClusterMetrics, Fallback};
use crate::cache::{Cache, Invalidation, InvalidationSink, Key};
use crate::config::ClusterConfig;

/// Invalidations kept while Redis is unreachable; past this the queue is
/// replaced by one "drop your cache" for the other nodes.
const MAX_PENDING: usize = 10_000;

/// What this node knows of one node.
#[derive(Debug, Clone, Default)]
struct NodeState {
    /// Its heartbeat is recent.
    alive: bool,
    /// Milliseconds since the Unix epoch of its last heartbeat seen.
    last_seen_ms: Option<u64>,
}

/// State shared by the cluster's tasks and the request path.
struct Inner {
    cfg: ClusterConfig,
    cache: Arc<Cache>,
    metrics: ClusterMetrics,
    /// This process among the nodes (URL and a random number): its own
    /// stream entries are recognised by it.
    incarnation: String,
    /// The connection for short calls, once made.
    conn: RwLock<Option<ConnectionManager>>,
    /// The last heartbeat round reached Redis.
    redis_up: AtomicBool,
    /// Plugin calls are falling back (logged once each way).
    degraded: AtomicBool,
    nodes: RwLock<Vec<NodeState>>,
    /// Invalidations made here, not yet in the stream.
    pending: Mutex<VecDeque<Invalidation>>,
    wake_publisher: Notify,
    /// The id of the last stream entry applied (or skipped as our own).
    last_id: Mutex<Option<String>>,
    /// Keys invalidated here lately.
    recent: hop::Recent,
}

impl Inner {
    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.cfg.prefix)
    }

    /// The Redis URL as logged: without a password.
    fn redis_shown(&self) -> String {
        shown(&self.cfg.redis)
    }

    fn set_redis_up(&self, up: bool) {
        let was = self.redis_up.swap(up, Ordering::Relaxed);
        self.metrics.redis_up.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!(redis = %self.redis_shown(), "cluster: Redis reached");
            } else {
                tracing::warn!(
                    redis = %self.redis_shown(),
                    "cluster: Redis unreachable: this node serves alone (local limits, no sharding) until it is back"
                );
            }
        }
    }
}

/// A Redis URL without its user information (a password may be there).
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// A node's membership in a cluster. Dropping it (or [`Cluster::stop`])
/// ends its tasks: its heartbeat stops and the others see it go.
pub struct Cluster {
    inner: Arc<Inner>,
    handle: tokio::runtime::Handle,
    stop: watch::Sender<bool>,
    hop: hop::Peers,
}

impl Cluster {
    /// Join the cluster: start the Redis client's thread and its tasks.
    /// Never fails for want of Redis: the node serves alone until it is reached.
    pub fn start(
        cfg: ClusterConfig,
        cache: Arc<Cache>,
        metrics: ClusterMetrics,
    ) -> std::io::Result<Arc<Cluster>> {
        let nodes = vec![NodeState::default(); cfg.nodes.len()];
        let incarnation = format!("{}#{:08x}", cfg.self_url(), rand::random::<u32>());
        let hop = hop::Peers::new(&cfg);
        let recent = hop::Recent::new(&cfg);
        let inner = Arc::new(Inner {
            cfg,
            cache: cache.clone(),
            metrics,
            incarnation,
            conn: RwLock::new(None),
            redis_up: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            nodes: RwLock::new(nodes),
            pending: Mutex::new(VecDeque::new()),
            wake_publisher: Notify::new(),
            last_id: Mutex::new(None),
            recent,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (htx, hrx) = std::sync::mpsc::channel();
        let tasks = inner.clone();
        std::thread::Builder::new()
            .name("lacquer-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("lacquer-cluster-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = htx.send(Err(e));
                        return;
                    }
                };
                let _ = htx.send(Ok(rt.handle().clone()));
                rt.block_on(run(tasks, stop_rx));
                // In-flight calls are abandoned: their callers time out.
                rt.shutdown_background();
            })?;
        let handle = hrx
            .recv()
            .map_err(|_| std::io::Error::other("cluster thread ended at start"))??;
        let cluster = Arc::new(Cluster {
            inner,
            handle,
            stop,
            hop,
        });
        cache.set_sink(Arc::new(Sink(cluster.inner.clone())));
        Ok(cluster)
    }

    /// End the cluster's tasks (the heartbeat stops: the others see this
    /// node go within three heartbeats).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The checked `[cluster]`.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.cfg
    }

    /// The owner of a key among the live nodes, by rendezvous hashing; none
    /// while sharding is off or Redis is unreachable (each node serves
    /// alone then), or when this node is the owner.
    pub fn owner(&self, key: Key) -> Option<usize> {
        let i = &self.inner;
        if !i.cfg.shard || !i.redis_up.load(Ordering::Relaxed) {
            return None;
        }
        let nodes = i.nodes.read();
        let best = members::rendezvous(&i.cfg.nodes, |n| n == i.cfg.me || nodes[n].alive, key)?;
        (best != i.cfg.me).then_some(best)
    }

    /// What `/status` shows under `cluster`.
    pub fn status(&self) -> serde_json::Value {
        let i = &self.inner;
        let now = members::now_ms();
        let nodes = i.nodes.read();
        let list: Vec<_> = i
            .cfg
            .nodes
            .iter()
            .zip(nodes.iter())
            .enumerate()
            .map(|(n, (url, s))| {
                serde_json::json!({
                    "url": url,
                    "self": n == i.cfg.me,
                    "alive": s.alive,
                    "last_heartbeat_ms_ago": s.last_seen_ms.map(|t| now.saturating_sub(t)),
                })
            })
            .collect();
        serde_json::json!({
            "self": i.cfg.self_url(),
            "redis_up": i.redis_up.load(Ordering::Relaxed),
            "shard": i.cfg.shard,
            "nodes": list,
            "pending_invalidations": i.pending.lock().len(),
            "last_stream_id": *i.last_id.lock(),
            "published": i.metrics.published.get(),
            "applied": i.metrics.applied.get(),
            "cache_drops": i.metrics.cache_drops.get(),
        })
    }
}

#[cfg(test)]
#[test]
fn a_password_in_the_redis_url_is_not_logged() {
    assert_eq!(
        shown("redis://:pw@10.0.0.9:6379/0"),
        "redis://***@10.0.0.9:6379/0"
    );
    assert_eq!(
        shown("redis+unix:///run/r.sock"),
        "redis+unix:///run/r.sock"
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hands this node's invalidations to the publisher.
struct Sink(Arc<Inner>);

impl InvalidationSink for Sink {
    fn publish(&self, inv: Invalidation) {
        self.0.recent.note(&inv);
        let mut q = self.0.pending.lock();
        if q.len() >= MAX_PENDING {
            // The others cannot get every one: they drop their caches.
            q.clear();
            q.push_back(Invalidation::Clear);
            tracing::warn!(
                "cluster: over {MAX_PENDING} invalidations unpublished: the other nodes will drop their caches"
            );
        }
        q.push_back(inv);
        drop(q);
        self.0.wake_publisher.notify_one();
    }
}

/// The cluster's tasks, until stopped.
async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let tasks = [
        tokio::spawn(members::heartbeat(inner.clone())),
        tokio::spawn(stream::publisher(inner.clone())),
        tokio::spawn(stream::reader(inner.clone())),
    ];
    let _ = stop.wait_for(|s| *s).await;
    for t in &tasks {
        t.abort();
    }
    // Leave at once rather than in three heartbeats.
    let conn = inner.conn.read().clone();
    if let Some(mut c) = conn {
        let key = inner.key(&format!("node:{}", inner.cfg.self_url()));
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            redis::cmd("DEL").arg(key).query_async::<()>(&mut c),
        )
        .await;
    }
}
