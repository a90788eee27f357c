//! Redis down at start, Redis lost and back, a node gone mid-load: no
//! request fails because of the cluster.

use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, Reply, log_lines, wait_until};

use super::*;

#[tokio::test]
async fn redis_down_at_start_nodes_serve_alone_and_count_the_fallback() {
    let origin = Origin::start(|_| Reply::ok("alone").header("cache-control", "max-age=60")).await;
    let nowhere = TempDir::new();
    let redis = format!("redis+unix://{}/none.sock", nowhere.path.display());
    let plugins = "[[plugins]]\nname = \"rate-limit\"\nbuiltin = \"rate-limit\"\nconfig = { requests_per_second = 100, burst = 100 }\n\
[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n";
    let nodes = start_nodes(2, &origin.url(), &redis, plugins, "").await;
    for (i, l) in nodes.iter().enumerate() {
        let first = get(l, "/a").await;
        assert_eq!(first.status, 200, "node {i} serves");
        assert_eq!(
            get(l, "/a").await.header("x-cache"),
            "HIT",
            "node {i} caches alone"
        );
        assert!(
            fallbacks(l, "limits").await >= 1.0,
            "node {i}: local limits, counted"
        );
        assert_eq!(l.metric("lacquer_cluster_redis_up").await, 0.0);
        assert_eq!(cluster_status(l).await["redis_up"], false);
    }
    assert_eq!(origin.hits(), 2, "no sharding without Redis");
    let p = nodes[0]
        .request("PURGE", "/a", &[("host", "site.example")], "")
        .await;
    assert_eq!(p.status, 200);
    let l = &nodes[0];
    wait_until(
        Duration::from_secs(10),
        "the unpublished purge is counted",
        || async { fallbacks(l, "invalidations").await >= 1.0 },
    )
    .await;
    wait_until(Duration::from_secs(10), "the warning is logged", || async {
        !log_lines("cannot reach Redis").is_empty()
    })
    .await;
}

#[tokio::test]
async fn redis_killed_and_restarted_serves_no_purged_content() {
    let mut redis = Redis::start().await;
    let origin = versioned().await;
    let nodes = start_nodes(2, &origin.url(), &redis.url(), "", "shard = false\n").await;
    wait_formed(&nodes, 2).await;
    let old1 = get(&nodes[1], "/x").await.text();
    get(&nodes[0], "/x").await;
    assert_eq!(get(&nodes[1], "/x").await.header("x-cache"), "HIT");
    redis.kill();
    for l in &nodes {
        wait_until(Duration::from_secs(10), "Redis seen down", || async {
            l.metric("lacquer_cluster_redis_up").await == 0.0
        })
        .await;
    }
    // Purged while Redis is away: kept on node 0 to publish later.
    let p = nodes[0]
        .request("PURGE", "/x", &[("host", "site.example")], "")
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(cluster_status(&nodes[0]).await["pending_invalidations"], 1);
    redis.restart().await;
    let l1 = &nodes[1];
    wait_until(
        Duration::from_secs(15),
        "node 1 drops or purges its copy",
        || async {
            l1.metric("lacquer_cluster_cache_drops_total").await >= 1.0
                || invalidations(l1, "applied").await >= 1.0
        },
    )
    .await;
    let g = get(l1, "/x").await;
    assert_eq!(g.header("x-cache"), "MISS");
    assert_ne!(g.text(), old1, "no purged content");
    let l0 = &nodes[0];
    wait_until(
        Duration::from_secs(15),
        "the kept purge is published",
        || async { invalidations(l0, "published").await == 1.0 },
    )
    .await;
}

#[tokio::test]
async fn a_node_dropped_mid_load_loses_no_request() {
    let redis = Redis::start().await;
    let origin = Origin::start(|s| Reply::ok(&format!("body {}", s.uri))).await;
    let mut nodes = start_nodes(3, &origin.url(), &redis.url(), "", "local_ttl = \"0s\"\n").await;
    wait_formed(&nodes, 3).await;
    let mut failed = Vec::new();
    for i in 0..300 {
        if i == 100 {
            drop(nodes.pop());
        }
        let path = format!("/m{}", i % 30);
        let g = get(&nodes[i % 2], &path).await;
        if g.status != 200 || g.text() != format!("body {path}") {
            failed.push((i, g.status, g.text()));
        }
    }
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    for l in &nodes {
        wait_until(
            Duration::from_secs(10),
            "the dropped node is seen gone",
            || async { l.metric("lacquer_cluster_nodes_up").await == 2.0 },
        )
        .await;
    }
}

#[tokio::test]
async fn a_config_naming_a_self_not_in_nodes_is_refused() {
    let toml = "[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:1\"\n\
[cluster]\nnodes = [\"http://127.0.0.1:6081\"]\nself = \"http://127.0.0.1:6099\"\nredis = \"redis://127.0.0.1:6379\"\nsecret = \"0123456789abcdef\"\n";
    let e = Lacquer::start(toml)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("cluster.self"), "{e}");
}

#[tokio::test]
async fn redis_unreachable_then_back_the_invalidations_catch_up() {
    let redis = Redis::start().await;
    let origin = versioned().await;
    let nodes = start_nodes(2, &origin.url(), &redis.url(), "", "shard = false\n").await;
    wait_formed(&nodes, 2).await;
    let old1 = get(&nodes[1], "/y").await.text();
    get(&nodes[0], "/y").await;
    // Redis stops answering every client for 4 s (it keeps its data; the
    // pause cannot be lifted early from another connection: that one waits too).
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "4000", "ALL"]), "OK");
    for l in &nodes {
        wait_until(Duration::from_secs(10), "Redis seen down", || async {
            l.metric("lacquer_cluster_redis_up").await == 0.0
        })
        .await;
    }
    let p = nodes[0]
        .request("PURGE", "/y", &[("host", "site.example")], "")
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(
        cluster_status(&nodes[0]).await["pending_invalidations"],
        1,
        "kept while Redis does not answer"
    );
    let l1 = &nodes[1];
    wait_until(Duration::from_secs(15), "node 1 catches up", || async {
        invalidations(l1, "applied").await == 1.0
    })
    .await;
    assert_eq!(
        l1.metric("lacquer_cluster_cache_drops_total").await,
        0.0,
        "it read what it missed: no need to drop its cache"
    );
    let g = get(l1, "/y").await;
    assert_eq!(g.header("x-cache"), "MISS");
    assert_ne!(g.text(), old1);
}

#[tokio::test]
async fn a_node_dropped_under_concurrent_load_loses_no_request() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let redis = Redis::start().await;
    let origin = Origin::start(|s| Reply::ok(&format!("body {}", s.uri))).await;
    let mut nodes = start_nodes(3, &origin.url(), &redis.url(), "", "local_ttl = \"0s\"\n").await;
    wait_formed(&nodes, 3).await;
    let third = nodes.pop().unwrap();
    let third_url = cluster_status(&third).await["self"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = AtomicUsize::new(0);
    let client = |c: usize| {
        let (nodes, done) = (&nodes, &done);
        async move {
            let mut failed = Vec::new();
            for i in 0..100 {
                let path = format!("/c{}", (i * 7 + c) % 40);
                let g = get(&nodes[(i + c) % 2], &path).await;
                if g.status != 200 || g.text() != format!("body {path}") {
                    failed.push((c, i, g.status, g.text()));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failed
        }
    };
    let dropper = async {
        wait_until(Duration::from_secs(30), "load under way", || async {
            done.load(Ordering::SeqCst) >= 100
        })
        .await;
        drop(third);
        // Killed, not stopped: its heartbeat stays until it expires. (The
        // stopped node deletes its key: wait for that, then put it back.)
        let key = format!("lacquer:node:{third_url}");
        wait_until(
            Duration::from_secs(10),
            "the stopped node's key goes",
            || async { redis.cli(&["EXISTS", &key]) == "0" },
        )
        .await;
        redis.cli(&["SET", &key, "1", "PX", "600000"]);
    };
    let (a, b, c, d, ()) = tokio::join!(client(0), client(1), client(2), client(3), dropper);
    let failed: Vec<_> = [a, b, c, d].into_iter().flatten().collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    assert_eq!(done.load(Ordering::SeqCst), 400);
    let mut failovers = 0.0;
    for l in &nodes {
        failovers += fallbacks(l, "owner").await;
    }
    assert!(
        failovers >= 1.0,
        "requests owned by the dead node went to the origin"
    );
}
