//! Plugins' token buckets live in Redis: a limit holds across the nodes.

use super::*;

fn rate_limit(limit: &str) -> String {
    format!(
        "[[plugins]]\nname = \"rate-limit\"\nbuiltin = \"rate-limit\"\nconfig = {{ {limit} }}\n\
[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
[[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n"
    )
}

#[tokio::test]
async fn a_rate_limit_is_shared_by_the_nodes() {
    let redis = Redis::start().await;
    let origin = lacquer_tests::Origin::start(|_| {
        lacquer_tests::Reply::ok("ok").header("cache-control", "no-store")
    })
    .await;
    // One token per 100 s: none comes back during the test.
    let nodes = start_nodes(
        3,
        &origin.url(),
        &redis.url(),
        &rate_limit("requests_per_second = 0.01, burst = 3"),
        "",
    )
    .await;
    wait_formed(&nodes, 3).await;
    // Sharded: some of these go on to their owner node, whose rate limit
    // must not charge the hop a second time.
    for (n, i) in [0, 0, 1].into_iter().enumerate() {
        let g = get(&nodes[i], &format!("/r{n}")).await;
        assert_eq!(g.status, 200, "request {n} on node {i}: {}", g.text());
    }
    let g = get(&nodes[2], "/r3").await;
    assert_eq!(g.status, 429, "the burst of 3 was spent on the other nodes");
    for (i, l) in nodes.iter().enumerate() {
        assert_eq!(fallbacks(l, "limits").await, 0.0, "node {i} used Redis");
    }
    let buckets = redis.cli(&["--scan", "--pattern", "lacquer:bucket:rate-limit:*"]);
    assert!(!buckets.is_empty(), "the bucket is in Redis");
}
