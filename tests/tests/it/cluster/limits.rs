//! Plugins' token buckets live in Redis: a limit holds across the nodes.

use super::*;

fn rate_limit(limit: &str) -> String {
    format!(
        "[[plugins]]\nname = \"rate-limit\"\nbuiltin = \"rate-limit\"\nconfig = {{ {limit} }}\n\
[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
[[plugins]]\nname = \"error-pages\"\nbuiltin = \"error-pages\"\n"
    )
}

// Plugins wait on Redis with their worker handed over: a multi-thread
// runtime, as the binary runs.
#[tokio::test(flavor = "multi_thread")]
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
    // The limit waits on Redis: it is called on a fiber, which the wait
    // suspends; the plugins that never wait are called synchronously.
    let status: serde_json::Value =
        serde_json::from_slice(&nodes[0].admin("GET", "/status", "").await.body).unwrap();
    let calls = |name: &str| {
        status["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["calls"].clone())
    };
    assert_eq!(calls("rate-limit"), Some("fiber".into()));
    assert_eq!(calls("cache-policy"), Some("sync".into()));
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

#[tokio::test(flavor = "multi_thread")]
async fn counters_are_shared_and_kv_only_with_shared_kv() {
    let redis = Redis::start().await;
    let origin = lacquer_tests::Origin::start(|_| lacquer_tests::Reply::ok("origin")).await;
    let plugins = |shared: bool| {
        format!(
            "[[plugins]]\nname = \"kv\"\npath = \"{}\"\nshared_kv = {shared}\n",
            lacquer_tests::guests::KV
        )
    };
    for shared in [true, false] {
        let nodes = start_nodes(2, &origin.url(), &redis.url(), &plugins(shared), "").await;
        wait_formed(&nodes, 2).await;
        let a = get(&nodes[0], "/count").await.text();
        let b = get(&nodes[1], "/count").await.text();
        let first: i64 = a.trim().parse().unwrap();
        assert_eq!(
            b.trim().parse::<i64>().unwrap(),
            first + 1,
            "one counter for both nodes (shared_kv = {shared})"
        );
        let key = format!("k-{shared}");
        let set = get(&nodes[0], &format!("/kv/{key}?set=hello")).await;
        assert_eq!(set.status, 204, "{}", set.text());
        let got = get(&nodes[1], &format!("/kv/{key}")).await;
        if shared {
            assert_eq!(
                (got.status, got.text().as_str()),
                (200, "hello"),
                "shared kv"
            );
        } else {
            assert_eq!(got.status, 404, "kv stays on its node without shared_kv");
        }
        for l in &nodes {
            assert_eq!(fallbacks(l, "limits").await + fallbacks(l, "kv").await, 0.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_request_waiting_on_redis_holds_no_worker() {
    let redis = Redis::start().await;
    let origin = lacquer_tests::Origin::start(|_| {
        lacquer_tests::Reply::ok("ok").header("cache-control", "no-store")
    })
    .await;
    // A long heartbeat: the node keeps taking Redis for up while it is
    // paused, so the limit's call waits its whole `timeout` on it.
    let nodes = start_nodes(
        1,
        &origin.url(),
        &redis.url(),
        &rate_limit("requests_per_second = 100, burst = 100"),
        "timeout = \"500ms\"\nheartbeat = \"10s\"\n",
    )
    .await;
    wait_formed(&nodes, 1).await;
    let l = &nodes[0];
    assert_eq!(get(l, "/warm").await.status, 200);
    assert_eq!(fallbacks(l, "limits").await, 0.0);
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "5000", "ALL"]), "OK");
    let calls = "lacquer_plugin_calls_total{plugin=\"rate-limit\",hook=\"on-recv\"}";
    // The node runs on one worker thread: had the wait held the worker
    // (instead of handing it over), neither the metrics nor anything else
    // would be answered before it ended (in its fallback).
    let waiting = get(l, "/waits");
    let meanwhile = async {
        wait_until(
            Duration::from_secs(10),
            "the limit's call began",
            || async { l.metric(calls).await == 2.0 },
        )
        .await;
        let status = l.admin("GET", "/status", "").await.status;
        (status, fallbacks(l, "limits").await)
    };
    let (g, (status, during)) = tokio::join!(waiting, meanwhile);
    assert_eq!(status, 200);
    assert_eq!(during, 0.0, "answered while the call still waited on Redis");
    assert_eq!(
        g.status,
        200,
        "the limit fell back to this node's: {}",
        g.text()
    );
    assert_eq!(fallbacks(l, "limits").await, 1.0);
}

// A call on a fiber whose host calls answer at once (without `shared_kv`
// the kv plugin's store is this node's) is as bounded as a synchronous
// one: its ticks go on through those calls, so a loop over them hands its
// worker over, and ends at its CPU budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_fiber_call_looping_over_host_calls_hands_its_worker_over() {
    let redis = Redis::start().await;
    let origin = lacquer_tests::Origin::start(|_| lacquer_tests::Reply::ok("origin")).await;
    let plugin = format!(
        "[[plugins]]\nname = \"kv\"\npath = \"{}\"\non_error = \"fail-closed\"\n\
timeout = \"1s\"\nwall_timeout = \"60s\"\n",
        lacquer_tests::guests::KV
    );
    let nodes = start_nodes(1, &origin.url(), &redis.url(), &plugin, "").await;
    wait_formed(&nodes, 1).await;
    let l = &nodes[0];
    let status: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/status", "").await.body).unwrap();
    assert_eq!(
        status["plugins"][0]["calls"], "fiber",
        "it imports counter-add: called on a fiber"
    );
    let calls = "lacquer_plugin_calls_total{plugin=\"kv\",hook=\"on-recv\"}";
    let timeouts = "lacquer_plugin_faults_total{plugin=\"kv\",hook=\"on-recv\",kind=\"timeout\"}";
    let before = l.metric(calls).await;
    // Four thousand million kv-sets: the call runs until its budget ends.
    let looping = get(l, "/kv-fill/4000000000?size=1&continue=1");
    // The node runs on one worker thread: had the loop kept it, nothing
    // else would be answered before the loop ended.
    let meanwhile = async {
        wait_until(
            Duration::from_secs(10),
            "the looping call began",
            || async { l.metric(calls).await > before },
        )
        .await;
        let fine = get(l, "/fine").await;
        (fine.status, fine.text(), l.metric(timeouts).await)
    };
    let (g, (status, body, during)) = tokio::join!(looping, meanwhile);
    assert_eq!((status, body.as_str()), (200, "origin"));
    assert_eq!(during, 0.0, "answered while the loop still ran");
    assert_eq!(g.status, 500, "{}", g.text());
    assert_eq!(l.metric(timeouts).await, 1.0);
}
