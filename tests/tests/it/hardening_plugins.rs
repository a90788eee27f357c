//! What a plugin returns can't break the proxy: framing stays the host's,
//! floods of headers, log lines, bans and kv entries are bounded, and time
//! and instances a plugin holds are bounded too. Each test drives the
//! `faulty` (or `kv`) guest against the real host.

use std::time::Duration;

use lacquer_tests::raw::{exchange, responses};
use lacquer_tests::{Lacquer, Origin, Reply, guests, log_lines};

/// A `faulty` plugin entry with `config` (TOML inline table body).
fn faulty(name: &str, on_error: &str, config: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\non_error = \"{on_error}\"\nmemory = \"64MiB\"\n{extra}config = {{ {config} }}\n",
        guests::FAULTY
    )
}

fn fault_series(plugin: &str, hook: &str, kind: &str) -> String {
    format!("lacquer_plugin_faults_total{{plugin=\"{plugin}\",hook=\"{hook}\",kind=\"{kind}\"}}")
}

async fn origin() -> Origin {
    Origin::start(|_| Reply::ok("from origin\n").header("cache-control", "max-age=600")).await
}

// ---- Framing belongs to the host (defect 2) ----

#[tokio::test]
async fn a_synthetic_response_cannot_frame_itself() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &format!(
            "[server]\ndebug_headers = true\n{}",
            faulty("faulty", "fail-closed", "mode = \"framing\"", "")
        ),
    )
    .await;
    // Pipelined: if the plugin's Content-Length: 3 were obeyed, the rest of
    // its 60-byte body would be read as a second response.
    let raw = exchange(
        l.server.addr(),
        b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\nGET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (got, rest) = responses(raw.as_bytes());
    assert_eq!(got.len(), 2, "{raw}");
    assert!(rest.is_empty(), "{raw}");
    assert!(!raw.contains("x-smuggled"), "{raw}");
    assert_eq!(got[0].status, 500, "{raw}");
    assert_eq!(
        got[0].all("x-lacquer-error"),
        ["plugin-invalid-output plugin=faulty"],
        "{raw}"
    );
    assert_eq!(got[1].body, b"from origin\n", "{raw}");
    assert_eq!(
        l.metric(&fault_series("faulty", "on-recv", "invalid-output"))
            .await,
        1.0
    );
}

#[tokio::test]
async fn edits_cannot_set_framing_fields_or_interim_statuses() {
    let o = origin().await;
    for (mode, hook) in [
        ("framing-edit", "deliver"),
        ("framing-edit", "backend-response"),
        ("set-status-101", "deliver"),
        ("status-101", "recv"),
    ] {
        let l = Lacquer::with_origin(
            &o.url(),
            &faulty(
                "faulty",
                "fail-closed",
                &format!("mode = \"{mode}\", hook = \"{hook}\""),
                "",
            ),
        )
        .await;
        let raw = exchange(
            l.server.addr(),
            b"GET /boom/x HTTP/1.1\r\nHost: a\r\n\r\nGET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (got, rest) = responses(raw.as_bytes());
        assert_eq!(got.len(), 2, "{mode} in {hook}: {raw}");
        assert!(rest.is_empty(), "{mode} in {hook}: {raw}");
        assert_eq!(got[0].status, 500, "{mode} in {hook}: {raw}");
        assert_eq!(got[1].body, b"from origin\n", "{mode} in {hook}: {raw}");
        let lower = raw.to_ascii_lowercase();
        assert!(!lower.contains("content-length: 3\r\n"), "{mode}: {raw}");
        assert!(!lower.contains("upgrade:"), "{mode}: {raw}");
        assert!(!lower.contains(" 101 "), "{mode}: {raw}");
        let hook_name = format!("on-{hook}");
        assert_eq!(
            l.metric(&fault_series("faulty", &hook_name, "invalid-output"))
                .await,
            1.0,
            "{mode} in {hook}"
        );
    }
}

#[tokio::test]
async fn with_skip_the_refused_edits_are_simply_not_applied() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &faulty(
            "faulty",
            "skip",
            "mode = \"framing-edit\", hook = \"deliver\"",
            "",
        ),
    )
    .await;
    let miss = l.get("/boom").await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.text(), "from origin\n");
    // The hit is framed by the host: its real length, not the plugin's 3.
    let hit = l.get("/boom").await;
    assert_eq!(hit.text(), "from origin\n");
    assert_eq!(hit.header("content-length"), "12");
    assert!(hit.header("transfer-encoding").is_empty());
    assert_eq!(o.hits(), 1);
    assert_eq!(
        l.metric(&fault_series("faulty", "on-deliver", "invalid-output"))
            .await,
        2.0
    );
}

// ---- Floods (defect 7) ----

#[tokio::test]
async fn header_floods_are_refused_without_a_panic() {
    let o = origin().await;
    for (config, hook) in [
        ("mode = \"header-flood\", hook = \"deliver\"", "on-deliver"),
        ("mode = \"header-flood\", hook = \"recv\"", "on-recv"),
        ("mode = \"synth-header-flood\"", "on-recv"),
        (
            "mode = \"header-flood\", hook = \"deliver\", count = 400, size = 1048576",
            "on-deliver",
        ),
        ("mode = \"cache-key-flood\"", "on-recv"),
        ("mode = \"url-flood\"", "on-recv"),
    ] {
        // 400 MiB through header calls takes seconds in a debug build on
        // a loaded machine: the longest deadline, so the fault is the
        // refused output and not the clock.
        let l = Lacquer::with_origin(
            &o.url(),
            &faulty("faulty", "fail-closed", config, "timeout = \"10s\"\n"),
        )
        .await;
        let r = l.get("/boom").await;
        assert_eq!(r.status, 500, "{config}: {}", r.text());
        assert!(
            r.headers.len() < 64,
            "{config}: no flood reached the client"
        );
        assert_eq!(
            l.metric(&fault_series("faulty", hook, "invalid-output"))
                .await,
            1.0,
            "{config}"
        );
        // The worker survived: the next request is served.
        assert_eq!(l.get("/fine").await.status, 200, "{config}");
    }
}

#[tokio::test]
async fn a_log_flood_is_bounded_and_counted() {
    let o = origin().await;
    for (mode, needle) in [
        ("log-flood", "faulty flood "),
        ("print-flood", "plugin output: faulty flood "),
    ] {
        let l = Lacquer::with_origin(
            &o.url(),
            &faulty(
                mode,
                "fail-closed",
                &format!("mode = \"{mode}\""),
                "timeout = \"5s\"\n",
            ),
        )
        .await;
        let before = log_lines(needle).len();
        assert_eq!(l.get("/boom").await.status, 200, "{mode}");
        let written = log_lines(needle).len() - before;
        // 20,000 lines of 1 KiB asked; at most 64 KiB per call get out.
        assert!(
            (1..=64).contains(&written),
            "{mode}: {written} lines written"
        );
        let dropped = l
            .metric(&format!(
                "lacquer_plugin_log_dropped_total{{plugin=\"{mode}\"}}"
            ))
            .await;
        assert!(dropped >= 1.0, "{mode}: {dropped}");
    }
}

#[tokio::test]
async fn a_ban_flood_is_capped_and_hits_stay_cheap() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &format!(
            "[cache]\nmax_bans = 1000\n{}",
            faulty(
                "faulty",
                "fail-closed",
                "mode = \"ban-flood\", count = 5000",
                "timeout = \"10s\"\n"
            )
        ),
    )
    .await;
    assert_eq!(l.get("/page").await.status, 200);
    assert_eq!(l.get("/boom").await.status, 200);
    // The periodic sweep retires bans once every object has been checked
    // against them, which frees room: one that ran during the flood let up
    // to 1000 more in. The cap holds either way.
    assert!(l.metric("lacquer_cache_bans").await <= 1000.0);
    let refused = l.metric("lacquer_cache_bans_refused_total").await;
    assert!((3000.0..=4000.0).contains(&refused), "{refused} refused");
    // The stored page predates the bans and none matches it: still a hit.
    assert_eq!(l.get("/page").await.status, 200);
    let pages = o.seen().iter().filter(|s| s.uri == "/page").count();
    assert_eq!(pages, 1, "served from cache");
    let bans = l.admin("GET", "/bans", "").await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bans.body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1000
    );
}

#[tokio::test]
async fn a_full_kv_namespace_refuses_growth_at_once_and_nothing_hangs() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        // 100,000 writes in one call: a deadline for a loaded machine, not
        // the default 100 ms of CPU (nothing here is about time).
        &format!(
            "[[plugins]]\nname = \"kv\"\npath = \"{}\"\ntimeout = \"10s\"\n",
            guests::KV
        ),
    )
    .await;
    let fill = l.get("/kv-fill/100000?size=1024").await;
    assert_eq!(fill.status, 200, "{}", fill.text());
    assert!(fill.text().ends_with("1 refused\n"), "{}", fill.text());
    // Growing an existing key on a full namespace: refused, not a deadlock.
    let grow = l.get("/kv-grow/fill-0?size=65536").await;
    assert_eq!(grow.status, 507, "{}", grow.text());
    assert!(grow.text().contains("full"), "{}", grow.text());
    // 100 more refusals, and the admin listener still answers.
    let more = l.get("/kv-fill/100?size=2048&continue=1").await;
    assert!(
        more.text().ends_with("0 stored, 100 refused\n"),
        "{}",
        more.text()
    );
    let bytes = l.metric("lacquer_kv_bytes{plugin=\"kv\"}").await;
    assert!(
        bytes > 15.0 * 1024.0 * 1024.0 && bytes <= 16.0 * 1024.0 * 1024.0,
        "{bytes}"
    );
    assert!(l.metric("lacquer_kv_refused_total{plugin=\"kv\"}").await >= 2.0);
}

// ---- Time and instances (defect 8) ----

// Plugins have no network. wasmtime-wasi's synchronous socket bind runs on
// `Handle::block_on`, which panics on a tokio worker: linked as a trap, it
// ends the call as a fault (fail-closed here: a 500 naming it), and the
// host goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_plugin_binding_sockets_faults_without_harming_the_host() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &faulty("faulty", "fail-closed", "mode = \"sockets\"", ""),
    )
    .await;
    let r = l.get("/boom").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        l.metric(&fault_series("faulty", "on-recv", "trap")).await,
        1.0
    );
    assert!(
        lacquer_tests::log_lines("plugins have no network")
            .iter()
            .any(|line| line.contains("faulty")),
        "the fault names its cause"
    );
    assert_eq!(l.get("/fine").await.status, 200);
}

// A guest may get over a refused memory growth (`try_reserve`) and go on:
// its instance stays warm, and what faults it later is named for what it
// is, not for that old refusal.
#[tokio::test]
async fn a_refused_growth_the_guest_got_over_does_not_name_a_later_fault() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &faulty(
            "faulty",
            "fail-closed",
            "mode = \"refused-growth\"",
            "max_instances = 1\n",
        ),
    )
    .await;
    assert_eq!(l.get("/boom/1").await.status, 200, "got over the refusal");
    let r = l.get("/boom/2").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        l.metric(&fault_series("faulty", "on-recv", "trap")).await,
        1.0
    );
    assert_eq!(
        l.metric(&fault_series("faulty", "on-recv", "memory")).await,
        0.0
    );
}

// A call that waits hands its worker over (a multi-thread runtime, as the
// binary runs): on a current-thread runtime it could not wait at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_sleeping_plugin_is_bounded_by_the_wall_clock() {
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &faulty(
            "faulty",
            "fail-closed",
            "mode = \"sleep\"",
            "timeout = \"200ms\"\n",
        ),
    )
    .await;
    // The guest sleeps 10 minutes; the harness gives up after 30 s.
    let r = l.get("/boom").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        l.metric(&fault_series("faulty", "on-recv", "timeout"))
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn sleeping_calls_cannot_starve_other_plugins_or_a_reload() {
    let o = origin().await;
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{}\"\n{}{}",
        o.url(),
        faulty(
            "sleepy",
            "skip",
            "mode = \"sleep\", sleep_ms = 600000",
            "timeout = \"200ms\"\nwall_timeout = \"20s\"\nmax_instances = 8\n"
        ),
        faulty("marker", "fail-closed", "mode = \"ok\"", ""),
    );
    let l = std::sync::Arc::new(Lacquer::start(&config).await.unwrap());
    // 40 requests sleep in the plugin: 8 hold its instances (until the
    // wall-clock bound), the others find none free and fault as `busy`
    // (skipped: the plugin's faults cost only its own work).
    let mut sleepers = Vec::new();
    for i in 0..40 {
        let l = l.clone();
        sleepers.push(tokio::spawn(async move {
            l.get(&format!("/boom/{i}")).await.status
        }));
    }
    let busy = fault_series("sleepy", "on-recv", "busy");
    lacquer_tests::wait_until(Duration::from_secs(30), "32 busy faults", || async {
        l.metric(&busy).await >= 32.0
    })
    .await;
    // While 8 calls sleep, another plugin still gets instances (the sleepy
    // one is busy and skipped), and a reload has room for a new generation.
    let fine = l.get("/fine").await;
    assert_eq!(fine.status, 200);
    assert_eq!(fine.header("x-faulty"), "ok");
    let reload = l.admin("POST", "/reload", "").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    let statuses: Vec<u16> = futures_util::future::join_all(sleepers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The /fine request also found sleepy busy.
    assert_eq!(l.metric(&busy).await, 33.0);
    assert_eq!(
        l.metric(&fault_series("sleepy", "on-recv", "timeout"))
            .await,
        8.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_looping_plugin_hands_its_worker_over_so_other_requests_go_on() {
    // One worker thread serves everything here: had a looping call kept
    // it (instead of handing it over at its second tick), it would hold it
    // until its deadline and nothing else could run.
    let o = origin().await;
    let l = std::sync::Arc::new(
        Lacquer::with_origin(
            &o.url(),
            &faulty(
                "looper",
                "fail-closed",
                "mode = \"loop\"",
                "timeout = \"1s\"\nwall_timeout = \"60s\"\n",
            ),
        )
        .await,
    );
    let mut loopers = Vec::new();
    for i in 0..4 {
        let l = l.clone();
        loopers.push(tokio::spawn(async move {
            l.get(&format!("/boom/{i}")).await.status
        }));
    }
    lacquer_tests::wait_until(Duration::from_secs(30), "4 looping calls", || async {
        l.metric("lacquer_plugin_calls_total{plugin=\"looper\",hook=\"on-recv\"}")
            .await
            >= 4.0
    })
    .await;
    let normal: Vec<_> = (0..20)
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move { l.get(&format!("/fine/{i}")).await.status })
        })
        .collect();
    for n in futures_util::future::join_all(normal).await {
        assert_eq!(n.unwrap(), 200);
    }
    // They were all answered while the loops still ran.
    let timeouts = fault_series("looper", "on-recv", "timeout");
    assert_eq!(l.metric(&timeouts).await, 0.0, "no loop had ended yet");
    // And the loops end at their CPU deadline.
    for s in futures_util::future::join_all(loopers).await {
        assert_eq!(s.unwrap(), 500);
    }
    assert_eq!(l.metric(&timeouts).await, 4.0);
}
