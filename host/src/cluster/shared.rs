//! Plugin state shared through Redis: counters (`counter-add`), token
//! buckets (`take-token`) and, for plugins with `shared_kv`, `kv-get` /
//! `kv-set`. Host calls are synchronous: each waits at most `[cluster]
//! timeout` for the cluster's runtime, then the caller uses its local
//! store. Falling back is counted, and logged once each way.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Script;

use super::{Cluster, Fallback};
use crate::plugin::kv::MAX_KEY_BYTES;

/// Largest value `kv-set` stores in Redis: 64 KiB (larger ones stay local).
pub const MAX_SHARED_VALUE: usize = 64 * 1024;
/// Longest life of a shared kv value or counter: a plugin's `ttl_ms` of 0
/// (or more) gets this, so nothing a plugin writes lives in Redis forever.
const MAX_SHARED_TTL_MS: u64 = 24 * 3600 * 1000;

/// `counter-add`: add, restart the life, return the value.
const COUNTER: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
";

/// `take-token`: a bucket filling at `rate` per second up to `burst`, on
/// Redis's clock; returns 0 when a token was taken, else the milliseconds
/// until one is there.
const BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
";

static COUNTER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNTER));
static BUCKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BUCKET));

fn clamp_ttl(ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        MAX_SHARED_TTL_MS
    } else {
        ttl_ms.min(MAX_SHARED_TTL_MS)
    }
}

impl Cluster {
    fn state_key(&self, plugin: &str, kind: &str, key: &str) -> String {
        self.inner.key(&format!("{kind}:{plugin}:{key}"))
    }

    /// Run `call` on the cluster's runtime and await it at most `[cluster]
    /// timeout` (the caller's task yields meanwhile; no worker thread
    /// waits); none (counted as a fallback) when Redis is down, slow or
    /// failing.
    async fn wait<T, F, Fut>(&self, what: Fallback, call: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(redis::aio::ConnectionManager) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let i = &self.inner;
        let conn = i.conn.read().clone();
        let conn = match conn {
            Some(c) if i.redis_up.load(Ordering::Relaxed) => c,
            _ => return self.fell_back(what, "Redis unreachable"),
        };
        let t = i.cfg.timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let r = tokio::time::timeout(t, call(conn)).await;
            let _ = tx.send(r);
        });
        match tokio::time::timeout(t + Duration::from_millis(10), rx).await {
            Ok(Ok(Ok(Ok(v)))) => {
                if i.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("cluster: shared plugin state back in Redis");
                }
                Some(v)
            }
            Ok(Ok(Ok(Err(e)))) => self.fell_back(what, &e.to_string()),
            _ => self.fell_back(what, "timed out"),
        }
    }

    fn fell_back<T>(&self, what: Fallback, why: &str) -> Option<T> {
        self.inner.metrics.fallback(what);
        if !self.inner.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cluster: shared plugin state unavailable ({why}): plugins use this node's limits until Redis answers"
            );
        }
        None
    }

    /// `counter-add` in Redis; none: use the local counter.
    pub async fn counter_add(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl_ms: u64,
    ) -> Option<i64> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        let k = self.state_key(plugin, "counter", key);
        let ttl = clamp_ttl(ttl_ms);
        self.wait(Fallback::Limits, move |mut c| async move {
            COUNTER_SCRIPT
                .key(k)
                .arg(delta)
                .arg(ttl)
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// `take-token` in Redis; none: use the local bucket.
    pub async fn take_token(
        &self,
        plugin: &str,
        key: &str,
        rate: f64,
        burst: u32,
    ) -> Option<Result<(), u64>> {
        if key.len() > MAX_KEY_BYTES || !(rate.is_finite() && rate > 0.0) || burst == 0 {
            return None;
        }
        let k = self.state_key(plugin, "bucket", key);
        let wait: u64 = self
            .wait(Fallback::Limits, move |mut c| async move {
                BUCKET_SCRIPT
                    .key(k)
                    .arg(rate)
                    .arg(burst)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(if wait == 0 { Ok(()) } else { Err(wait) })
    }

    /// `kv-get` in Redis (plugins with `shared_kv`); none: use the local store.
    pub async fn kv_get(&self, plugin: &str, key: &str) -> Option<Option<Vec<u8>>> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        let k = self.state_key(plugin, "kv", key);
        self.wait(Fallback::Kv, move |mut c| async move {
            redis::cmd("GET").arg(k).query_async(&mut c).await
        })
        .await
    }

    /// `kv-set` in Redis (plugins with `shared_kv`); none: use the local store.
    pub async fn kv_set(&self, plugin: &str, key: &str, value: &[u8], ttl_ms: u64) -> Option<()> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_SHARED_VALUE {
            return None;
        }
        let k = self.state_key(plugin, "kv", key);
        let v = value.to_vec();
        let ttl = clamp_ttl(ttl_ms);
        self.wait(Fallback::Kv, move |mut c| async move {
            redis::cmd("SET")
                .arg(k)
                .arg(v)
                .arg("PX")
                .arg(ttl)
                .query_async(&mut c)
                .await
        })
        .await
    }
}
