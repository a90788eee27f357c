//! Invalidation fan-out through a Redis stream (`<prefix>:invalidations`).
//!
//! The publisher sends this node's invalidations in order (XADD, the
//! stream trimmed to about `stream_length`); while Redis is unreachable
//! they wait in a bounded queue. The reader applies every other node's
//! entries in stream order (XREAD from the last id it applied). Each round
//! it also checks that its last id is still in the stream: when it is gone
//! (trimmed while this node was away, or Redis restarted empty) the node
//! cannot tell what it missed and drops its cache, then starts again at
//! the stream's end. It does the same when it first reads the stream
//! holding objects stored while it could not read.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::{Fallback, Inner};
use crate::cache::Invalidation;

/// How long one XREAD waits for entries.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries read at once.
const BATCH: usize = 512;
/// Pause after a failed Redis call in these loops.
const RETRY: Duration = Duration::from_millis(200);

/// Stream entry fields of an invalidation.
fn fields(inv: &Invalidation) -> Vec<(&'static str, String)> {
    match inv {
        Invalidation::Purge(k) => vec![("op", "purge".into()), ("key", format!("{k:032x}"))],
        Invalidation::SoftPurge(k) => vec![("op", "soft".into()), ("key", format!("{k:032x}"))],
        Invalidation::Ban { host, pattern } => vec![
            ("op", "ban".into()),
            ("host", host.clone().unwrap_or_default()),
            ("pattern", pattern.clone()),
        ],
        Invalidation::Clear => vec![("op", "clear".into())],
    }
}

/// The invalidation an entry carries; none for a marker or a malformed
/// entry (skipped: Redis is the operator's, but nothing in it may panic us).
fn parse(e: &StreamId) -> Option<Invalidation> {
    let key = || u128::from_str_radix(&e.get::<String>("key")?, 16).ok();
    match e.get::<String>("op")?.as_str() {
        "purge" => Some(Invalidation::Purge(key()?)),
        "soft" => Some(Invalidation::SoftPurge(key()?)),
        "ban" => Some(Invalidation::Ban {
            host: e.get::<String>("host").filter(|h| !h.is_empty()),
            pattern: e.get("pattern")?,
        }),
        "clear" => Some(Invalidation::Clear),
        _ => None,
    }
}

async fn xadd(
    inner: &Inner,
    conn: &mut ConnectionManager,
    stream: &str,
    f: &[(&'static str, String)],
) -> redis::RedisResult<String> {
    let mut c = redis::cmd("XADD");
    c.arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(inner.cfg.stream_length)
        .arg("*")
        .arg("node")
        .arg(&inner.incarnation);
    for (k, v) in f {
        c.arg(*k).arg(v);
    }
    c.query_async(conn).await
}

/// Publish this node's invalidations, in order, until stopped.
pub(super) async fn publisher(inner: Arc<Inner>) {
    let stream = inner.key("invalidations");
    let mut counted = false;
    loop {
        let next = inner.pending.lock().front().cloned();
        let Some(inv) = next else {
            inner.wake_publisher.notified().await;
            continue;
        };
        let conn = inner.conn.read().clone();
        let sent = match conn {
            Some(mut c) if inner.redis_up.load(std::sync::atomic::Ordering::Relaxed) => {
                xadd(&inner, &mut c, &stream, &fields(&inv)).await.is_ok()
            }
            _ => false,
        };
        if sent {
            let mut q = inner.pending.lock();
            // The queue may have been replaced by a Clear meanwhile.
            if q.front() == Some(&inv) {
                q.pop_front();
            }
            drop(q);
            inner.metrics.published.inc();
            counted = false;
        } else {
            if !counted {
                inner.metrics.fallback(Fallback::Invalidations);
                counted = true;
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// The id to start reading after: the stream's last entry, or a marker
/// added to an empty stream (so that a later check can tell whether the
/// stream still holds it).
async fn tail(
    inner: &Inner,
    conn: &mut ConnectionManager,
    stream: &str,
) -> redis::RedisResult<String> {
    let r: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    match r.ids.into_iter().next() {
        Some(e) => Ok(e.id),
        None => xadd(inner, conn, stream, &[("op", "hello".into())]).await,
    }
}

/// Apply the other nodes' invalidations, in order, until stopped.
pub(super) async fn reader(inner: Arc<Inner>) {
    let stream = inner.key("invalidations");
    let mut conn: Option<ConnectionManager> = None;
    loop {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match super::members::connect(&inner, BLOCK + Duration::from_secs(2)).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tokio::time::sleep(inner.cfg.heartbeat).await;
                    continue;
                }
            },
        };
        let last = inner.last_id.lock().clone();
        let Some(last) = last else {
            match tail(&inner, c, &stream).await {
                Ok(id) => {
                    if inner.cache.objects() > 0 {
                        inner.recent.note(&Invalidation::Clear);
                        let n = inner.cache.clear();
                        inner.metrics.cache_drops.inc();
                        tracing::warn!(
                            "cluster: invalidations may have been missed: dropped the cache ({n} objects)"
                        );
                    }
                    tracing::info!(id = %id, "cluster: following invalidations");
                    *inner.last_id.lock() = Some(id);
                }
                Err(e) => {
                    tracing::debug!("cluster: reading the stream's end: {e}");
                    tokio::time::sleep(RETRY).await;
                }
            }
            continue;
        };
        let round: redis::RedisResult<(StreamRangeReply, Option<StreamReadReply>)> = redis::pipe()
            .cmd("XRANGE")
            .arg(&stream)
            .arg(&last)
            .arg(&last)
            .arg("COUNT")
            .arg(1)
            .cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last)
            .query_async(c)
            .await;
        let (still, read) = match round {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("cluster: reading invalidations: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if still.ids.is_empty() {
            // Trimmed away, or a Redis that restarted empty.
            tracing::warn!(last = %last, "cluster: the last invalidation applied is no longer in the stream");
            *inner.last_id.lock() = None;
            if inner.cache.objects() == 0 {
                // Nothing to drop, but count that the node lost track.
                inner.metrics.cache_drops.inc();
            }
            continue;
        }
        for e in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let own = e.get::<String>("node").as_deref() == Some(inner.incarnation.as_str());
            if !own && let Some(inv) = parse(&e) {
                inner.recent.note(&inv);
                if let Err(why) = inner.cache.apply(&inv) {
                    tracing::warn!(id = %e.id, "cluster: invalidation not applied: {why}");
                }
                inner.metrics.applied.inc();
            }
            *inner.last_id.lock() = Some(e.id);
        }
    }
}
