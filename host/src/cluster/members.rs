//! Membership: every `heartbeat` each node sets its key (living three
//! heartbeats) and reads the others'; a node whose key is there is alive.
//! The key's owner among the live nodes is chosen by rendezvous hashing.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::aio::ConnectionManagerConfig;

use super::Inner;
use crate::cache::Key;

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The node (by index) with the highest score for `key` among those
/// `alive` says are; none if no node is.
pub(super) fn rendezvous(
    nodes: &[String],
    alive: impl Fn(usize) -> bool,
    key: Key,
) -> Option<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| alive(*i))
        .max_by_key(|(_, url)| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(url.as_bytes());
            h.update(&key.to_le_bytes());
            h.digest()
        })
        .map(|(i, _)| i)
}

/// A connection manager to the cluster's Redis with the given response
/// timeout, or the error (Redis unreachable).
pub(super) async fn connect(
    inner: &Inner,
    response: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(inner.cfg.redis.as_str())?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(inner.cfg.heartbeat.max(Duration::from_millis(500)))
        .set_response_timeout(response)
        .set_number_of_retries(1)
        .set_max_delay(1000);
    ConnectionManager::new_with_config(client, cfg).await
}

/// The heartbeat loop: connect (again and again while Redis is
/// unreachable), set this node's key, read every node's.
pub(super) async fn heartbeat(inner: Arc<Inner>) {
    let hb = inner.cfg.heartbeat;
    let mut tick = tokio::time::interval(hb);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let keys: Vec<String> = inner
        .cfg
        .nodes
        .iter()
        .map(|n| inner.key(&format!("node:{n}")))
        .collect();
    let mine = keys[inner.cfg.me].clone();
    let life = u64::try_from((hb * 3).as_millis()).unwrap_or(u64::MAX);
    let mut warned = false;
    loop {
        tick.tick().await;
        let conn = inner.conn.read().clone();
        let mut conn = match conn {
            Some(c) => c,
            None => match connect(&inner, hb.max(inner.cfg.timeout)).await {
                Ok(c) => {
                    *inner.conn.write() = Some(c.clone());
                    c
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            redis = %inner.redis_shown(),
                            "cluster: cannot reach Redis ({e}): serving alone until it is reached"
                        );
                        warned = true;
                    }
                    mark_alone(&inner);
                    continue;
                }
            },
        };
        let now = now_ms();
        let round: redis::RedisResult<((), Vec<Option<u64>>)> = redis::pipe()
            .cmd("SET")
            .arg(&mine)
            .arg(now)
            .arg("PX")
            .arg(life)
            .cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await;
        match round {
            Ok(((), seen)) => {
                let mut nodes = inner.nodes.write();
                let mut up = 0;
                for (i, (s, t)) in nodes.iter_mut().zip(seen).enumerate() {
                    s.alive = i == inner.cfg.me || t.is_some();
                    if i == inner.cfg.me {
                        s.last_seen_ms = Some(now);
                    } else if t.is_some() {
                        s.last_seen_ms = t;
                    }
                    up += i64::from(s.alive);
                }
                drop(nodes);
                inner.metrics.nodes_up.set(up);
                inner.set_redis_up(true);
            }
            Err(e) => {
                tracing::debug!("cluster: heartbeat failed: {e}");
                mark_alone(&inner);
            }
        }
    }
}

/// Redis is unreachable: only this node is known alive.
fn mark_alone(inner: &Inner) {
    let mut nodes = inner.nodes.write();
    for (i, s) in nodes.iter_mut().enumerate() {
        s.alive = i == inner.cfg.me;
    }
    drop(nodes);
    inner.metrics.nodes_up.set(1);
    inner.set_redis_up(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_only_the_keys_of_a_node_that_goes() {
        let nodes: Vec<String> = (0..3).map(|i| format!("http://n{i}:6081")).collect();
        let mut moved = 0;
        let mut spread = [0; 3];
        for k in 0..3000u128 {
            let key = crate::cache::key("h", &format!("/{k}"), &[]);
            let all = rendezvous(&nodes, |_| true, key).unwrap();
            spread[all] += 1;
            let without2 = rendezvous(&nodes, |i| i != 2, key).unwrap();
            if all != 2 {
                assert_eq!(all, without2, "a key not on the lost node stays");
            } else {
                moved += 1;
            }
        }
        assert!(spread.iter().all(|&n| n > 800), "spread {spread:?}");
        assert_eq!(moved, spread[2]);
        assert_eq!(rendezvous(&nodes, |_| false, 1), None);
    }
}
