//! `[cluster]`: several nodes sharing one Redis/Valkey. The section as
//! written, its checked form, and the check (every error names the key).

use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use super::ConfigError;

/// Default `[cluster] key_prefix`: "lacquer".
pub const DEFAULT_CLUSTER_PREFIX: &str = "lacquer";
/// Default `[cluster] timeout`: 50 ms for one Redis call made while a
/// request waits (a plugin's shared counter or token bucket).
pub const DEFAULT_CLUSTER_TIMEOUT: Duration = Duration::from_millis(50);
/// Default `[cluster] heartbeat`: 1 s between a node's heartbeats.
pub const DEFAULT_CLUSTER_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default `[cluster] local_ttl`: 5 s.
pub const DEFAULT_CLUSTER_LOCAL_TTL: Duration = Duration::from_secs(5);
/// Default `[cluster] stream_length`: invalidations kept in the stream.
pub const DEFAULT_CLUSTER_STREAM_LENGTH: usize = 100_000;
/// Default `[cluster] owner_timeout`: 10 s to get a response head from
/// the owner node before the origin is asked instead.
pub const DEFAULT_CLUSTER_OWNER_TIMEOUT: Duration = Duration::from_secs(10);

/// `[cluster]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Every node's client-facing URL (`http://host:port`), this one included.
    pub nodes: Vec<String>,
    /// Which of `nodes` this node is.
    #[serde(rename = "self")]
    pub self_url: String,
    /// The Redis/Valkey URL: `redis://host:port[/db]`, `rediss://` or
    /// `redis+unix:///path.sock`.
    pub redis: String,
    /// Shared by every node: sent in `x-lacquer-cluster-hop` when a node
    /// fetches from a key's owner, so clients cannot forge a hop. At least
    /// 16 characters.
    pub secret: String,
    /// Prefix of every Redis key (so several clusters may share a Redis).
    /// Default "lacquer".
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
    /// Bound on one Redis call a request waits for (shared counters and
    /// buckets); past it the node uses its local state. Default 50 ms.
    #[serde(default = "d_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Time between heartbeats; a node silent for three is taken as down.
    /// Default 1 s.
    #[serde(default = "d_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Shard the cache: each key has one owner node, the others fetch from
    /// it. Default true.
    #[serde(default = "d_true")]
    pub shard: bool,
    /// How long a node keeps its own copy of what it fetched from the
    /// owner; 0 s keeps none. Default 5 s.
    #[serde(default = "d_local_ttl", with = "humantime_serde")]
    pub local_ttl: Duration,
    /// How long a node waits for the owner's response head before it asks
    /// the origin itself. Default 10 s.
    #[serde(default = "d_owner_timeout", with = "humantime_serde")]
    pub owner_timeout: Duration,
    /// Invalidations kept in the Redis stream: a node away for longer than
    /// these many invalidations drops its cache when it comes back.
    /// Default 100,000.
    #[serde(default = "d_stream_length")]
    pub stream_length: usize,
}

fn d_prefix() -> String {
    DEFAULT_CLUSTER_PREFIX.into()
}
fn d_timeout() -> Duration {
    DEFAULT_CLUSTER_TIMEOUT
}
fn d_heartbeat() -> Duration {
    DEFAULT_CLUSTER_HEARTBEAT
}
fn d_local_ttl() -> Duration {
    DEFAULT_CLUSTER_LOCAL_TTL
}
fn d_owner_timeout() -> Duration {
    DEFAULT_CLUSTER_OWNER_TIMEOUT
}
fn d_stream_length() -> usize {
    DEFAULT_CLUSTER_STREAM_LENGTH
}
fn d_true() -> bool {
    true
}

/// The checked `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Node URLs, normalised (`http://host:port`, no trailing slash).
    pub nodes: Vec<String>,
    /// The same, parsed.
    pub uris: Vec<Uri>,
    /// This node's index in `nodes`.
    pub me: usize,
    /// The Redis URL.
    pub redis: String,
    /// The hop secret.
    pub secret: String,
    /// Prefix of every Redis key.
    pub prefix: String,
    /// Bound on a Redis call a request waits for.
    pub timeout: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Whether keys are sharded over the nodes.
    pub shard: bool,
    /// Life of a local copy of an object fetched from its owner.
    pub local_ttl: Duration,
    /// Wait for the owner's response head.
    pub owner_timeout: Duration,
    /// Stream length kept.
    pub stream_length: usize,
}

impl ClusterConfig {
    /// This node's URL.
    pub fn self_url(&self) -> &str {
        &self.nodes[self.me]
    }
}

/// Longest `[cluster] key_prefix`.
const MAX_PREFIX: usize = 64;

fn node_url(v: &str) -> Result<(String, Uri), String> {
    let uri: Uri = v
        .parse()
        .map_err(|e| format!("{v:?} is not a URL like http://10.0.0.1:6081 ({e})"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("{v:?}: expected http://host:port"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{v:?}: a node URL has no path"));
    }
    let norm =
        format!("http://{}", uri.authority().expect("checked").as_str()).to_ascii_lowercase();
    let uri = norm.parse().map_err(|e| format!("{v:?}: {e}"))?;
    Ok((norm, uri))
}

impl ClusterSection {
    /// Check every key; `bad(key, cause)` builds the error.
    pub(super) fn check(
        self,
        bad: impl Fn(&str, String) -> ConfigError,
    ) -> Result<ClusterConfig, ConfigError> {
        if self.nodes.is_empty() {
            return Err(bad("cluster.nodes", "at least one node (this one)".into()));
        }
        if self.nodes.len() > 64 {
            return Err(bad("cluster.nodes", "at most 64 nodes".into()));
        }
        let mut nodes = Vec::new();
        let mut uris = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let (norm, uri) = node_url(n).map_err(|e| bad(&format!("cluster.nodes[{i}]"), e))?;
            if nodes.contains(&norm) {
                return Err(bad(
                    &format!("cluster.nodes[{i}]"),
                    format!("{n:?} is listed twice"),
                ));
            }
            nodes.push(norm);
            uris.push(uri);
        }
        let (me_url, _) = node_url(&self.self_url).map_err(|e| bad("cluster.self", e))?;
        let Some(me) = nodes.iter().position(|n| *n == me_url) else {
            return Err(bad(
                "cluster.self",
                format!("{:?} is not one of cluster.nodes", self.self_url),
            ));
        };
        let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| self.redis.starts_with(s));
        if !scheme_ok || redis::Client::open(self.redis.as_str()).is_err() {
            return Err(bad(
                "cluster.redis",
                format!(
                    "{:?} is not a Redis URL like redis://127.0.0.1:6379 or redis+unix:///run/redis.sock",
                    self.redis
                ),
            ));
        }
        if self.secret.trim().len() < 16 {
            return Err(bad(
                "cluster.secret",
                "must be at least 16 characters (the same on every node)".into(),
            ));
        }
        if !self.secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "cluster.secret",
                "must be printable ASCII without spaces (it travels in a header)".into(),
            ));
        }
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > MAX_PREFIX
            || !self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(bad(
                "cluster.key_prefix",
                format!("1 to {MAX_PREFIX} of A-Za-z0-9-_.:"),
            ));
        }
        for (k, d) in [
            ("cluster.timeout", self.timeout),
            ("cluster.heartbeat", self.heartbeat),
            ("cluster.owner_timeout", self.owner_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(k, "must be more than 0s".into()));
            }
        }
        if self.timeout > Duration::from_secs(1) {
            return Err(bad(
                "cluster.timeout",
                "at most 1s (a request waits for it)".into(),
            ));
        }
        if self.stream_length < 100 {
            return Err(bad("cluster.stream_length", "at least 100".into()));
        }
        Ok(ClusterConfig {
            nodes,
            uris,
            me,
            redis: self.redis,
            secret: self.secret,
            prefix: self.key_prefix,
            timeout: self.timeout,
            heartbeat: self.heartbeat,
            shard: self.shard,
            local_ttl: self.local_ttl,
            owner_timeout: self.owner_timeout,
            stream_length: self.stream_length,
        })
    }
}
