//! Each key has one owner node; the others fetch from it, and from the
//! origin when it fails.

use std::time::Duration;

use lacquer_tests::{Gate, Origin, ParkedPort, Reply, wait_until};

use super::*;

const OWNER_OK: &str = "lacquer_cluster_owner_fetches_total{result=\"ok\"}";
const OWNER_FAILED: &str = "lacquer_cluster_owner_fetches_total{result=\"failed\"}";

#[tokio::test]
async fn a_cold_url_asked_on_every_node_at_once_reaches_the_origin_once() {
    let redis = Redis::start().await;
    let gate = Gate::new();
    let g2 = gate.clone();
    let origin = Origin::start(move |_| {
        Reply::ok("cold")
            .header("cache-control", "max-age=3600")
            .held(&g2)
    })
    .await;
    let nodes = start_nodes(3, &origin.url(), &redis.url(), "", "").await;
    wait_formed(&nodes, 3).await;
    let (a, b, c, ()) = tokio::join!(
        get(&nodes[0], "/cold"),
        get(&nodes[1], "/cold"),
        get(&nodes[2], "/cold"),
        async {
            wait_until(Duration::from_secs(10), "the origin is asked", || async {
                gate.waiting() >= 1
            })
            .await;
            gate.open();
        }
    );
    for (i, g) in [a, b, c].iter().enumerate() {
        assert_eq!(g.status, 200, "node {i}");
        assert_eq!(g.text(), "cold", "node {i}");
    }
    assert_eq!(origin.hits(), 1, "one owner fetched it for the three nodes");
    let mut via_owner = 0.0;
    for l in &nodes {
        via_owner += l.metric(OWNER_OK).await;
    }
    assert_eq!(via_owner, 2.0, "the two other nodes asked the owner");
    assert!(
        origin.seen()[0]
            .headers
            .get("x-lacquer-cluster-hop")
            .is_none(),
        "the hop header (the secret) never reaches the origin"
    );
    // A second round: every node answers from its copy or the owner's.
    for l in &nodes {
        assert_eq!(get(l, "/cold").await.text(), "cold");
    }
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn a_client_cannot_forge_a_hop() {
    let redis = Redis::start().await;
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=3600")).await;
    let nodes = start_nodes(2, &origin.url(), &redis.url(), "", "local_ttl = \"0s\"\n").await;
    wait_formed(&nodes, 2).await;
    // 40 URLs: some are owned by node 1 (all on node 0 has odds 2^-40).
    for i in 0..40 {
        let g = nodes[0]
            .request(
                "GET",
                &format!("/f{i}"),
                &[("host", "site.example"), ("x-lacquer-cluster-hop", "guess")],
                "",
            )
            .await;
        assert_eq!(g.status, 200);
    }
    assert!(
        nodes[0].metric(OWNER_OK).await > 0.0,
        "a forged hop is no hop: node 0 still asked the owner"
    );
    assert_eq!(origin.hits(), 40, "each URL fetched once, by its owner");
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| s.headers.get("x-lacquer-cluster-hop").is_none()),
        "the forged header is not sent on"
    );
}

#[tokio::test]
async fn an_owner_that_does_not_answer_is_a_fetch_failure_with_failover_to_the_origin() {
    let redis = Redis::start().await;
    let origin = Origin::start(|s| Reply::ok(&format!("origin {}", s.uri))).await;
    // Node 1 is alive for Redis (its heartbeat is there) but refuses
    // connections: a node killed before its heartbeat expired.
    let dead = ParkedPort::new();
    let dead_url = dead.url();
    let me = format!("http://127.0.0.1:{}", super::free_ports(1)[0]);
    let nodes_list = vec![me.clone(), dead_url.clone()];
    redis.cli(&[
        "SET",
        &format!("lacquer:node:{dead_url}"),
        "1",
        "PX",
        "600000",
    ]);
    let toml =
        node_config(&origin.url(), &nodes_list, 0, &redis.url(), "") + "heartbeat = \"100ms\"\n";
    let l = Lacquer::start_at(&toml, me.trim_start_matches("http://"))
        .await
        .expect("node starts");
    wait_formed(std::slice::from_ref(&l), 2).await;
    for i in 0..40 {
        let g = get(&l, &format!("/d{i}")).await;
        assert_eq!(g.status, 200, "/d{i}: {}", g.text());
        assert_eq!(g.text(), format!("origin /d{i}"));
    }
    assert!(
        l.metric(OWNER_FAILED).await >= 1.0,
        "the dead owner was tried"
    );
    assert!(
        fallbacks(&l, "owner").await >= 1.0,
        "and counted as a fallback"
    );
    assert_eq!(origin.hits(), 40);
}
