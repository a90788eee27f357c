//! Invalidations made on one node are applied on every other, once each.

use std::time::{Duration, Instant};

use lacquer_tests::wait_until;

use super::*;

#[tokio::test]
async fn a_purge_on_one_node_is_applied_on_every_node() {
    let redis = Redis::start().await;
    let origin = versioned().await;
    let nodes = start_nodes(3, &origin.url(), &redis.url(), "", "shard = false\n").await;
    wait_formed(&nodes, 3).await;
    let mut old = Vec::new();
    for l in &nodes {
        old.push(get(l, "/p").await.text());
        assert_eq!(get(l, "/p").await.header("x-cache"), "HIT");
    }
    assert_eq!(
        origin.hits(),
        3,
        "not sharded: each node fetched its own copy"
    );
    let start = Instant::now();
    let p = nodes[0]
        .request("PURGE", "/p", &[("host", "site.example")], "")
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    for (i, l) in nodes.iter().enumerate().skip(1) {
        wait_until(
            Duration::from_secs(10),
            &format!("node {i} applies the purge"),
            || async { invalidations(l, "applied").await == 1.0 },
        )
        .await;
    }
    println!(
        "MEASURE cluster purge propagation (PURGE answered to applied on 2 other nodes, heartbeat 100ms): {:?}",
        start.elapsed()
    );
    // Node 0 counts it once Redis has acknowledged the XADD, which may
    // be after the others read it.
    let l0 = &nodes[0];
    wait_until(
        Duration::from_secs(10),
        "node 0 counts the publication",
        || async { invalidations(l0, "published").await == 1.0 },
    )
    .await;
    assert_eq!(
        invalidations(&nodes[0], "applied").await,
        0.0,
        "the originating node ignores its own entry"
    );
    for (i, l) in nodes.iter().enumerate() {
        let g = get(l, "/p").await;
        assert_eq!(
            g.header("x-cache"),
            "MISS",
            "node {i} serves no purged copy"
        );
        assert_ne!(g.text(), old[i], "node {i}");
    }
    assert_eq!(origin.hits(), 6);
    // Exactly once: nothing more arrives later.
    let _ = get(&nodes[0], "/other").await;
    for l in &nodes[1..] {
        assert_eq!(invalidations(l, "applied").await, 1.0);
    }
}

#[tokio::test]
async fn a_ban_fans_out() {
    let redis = Redis::start().await;
    let origin = versioned().await;
    let nodes = start_nodes(3, &origin.url(), &redis.url(), "", "shard = false\n").await;
    wait_formed(&nodes, 3).await;
    for l in &nodes {
        get(l, "/b/1").await;
        get(l, "/keep").await;
    }
    let r = nodes[1]
        .admin("POST", "/ban?url=^/b/&host=site.example", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in [0, 2] {
        let l = &nodes[i];
        wait_until(
            Duration::from_secs(10),
            &format!("node {i} has the ban"),
            || async { l.admin("GET", "/bans", "").await.text().contains("^/b/") },
        )
        .await;
        assert_eq!(invalidations(l, "applied").await, 1.0, "node {i}");
    }
    for (i, l) in nodes.iter().enumerate() {
        assert_eq!(
            get(l, "/b/1").await.header("x-cache"),
            "MISS",
            "node {i}: banned"
        );
        assert_eq!(
            get(l, "/keep").await.header("x-cache"),
            "HIT",
            "node {i}: not banned"
        );
    }
    // A soft purge fans out too: the copies go stale everywhere.
    let r = nodes[2]
        .admin("POST", "/purge?url=/keep&host=site.example&soft=1", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in [0, 1] {
        let l = &nodes[i];
        let want = if i == 0 { 2.0 } else { 1.0 };
        wait_until(
            Duration::from_secs(10),
            &format!("node {i} applies the soft purge"),
            || async { invalidations(l, "applied").await == want },
        )
        .await;
        assert_ne!(
            get(l, "/keep").await.header("x-cache"),
            "HIT",
            "node {i}: stale now"
        );
    }
}

#[tokio::test]
async fn a_purge_reaches_the_owner_and_every_local_copy() {
    let redis = Redis::start().await;
    let origin = versioned().await;
    let nodes = start_nodes(3, &origin.url(), &redis.url(), "", "local_ttl = \"1h\"\n").await;
    wait_formed(&nodes, 3).await;
    for k in 0..10 {
        let path = format!("/s{k}");
        let old = get(&nodes[0], &path).await.text();
        for (i, l) in nodes.iter().enumerate() {
            assert_eq!(get(l, &path).await.text(), old, "node {i} has a copy");
        }
        let p = nodes[k % 3]
            .request("PURGE", &path, &[("host", "site.example")], "")
            .await;
        assert_eq!(p.status, 200);
        for (i, l) in nodes.iter().enumerate() {
            wait_until(
                Duration::from_secs(10),
                &format!("node {i} drops {path}"),
                || async { get(l, &path).await.text() != old },
            )
            .await;
        }
    }
}
