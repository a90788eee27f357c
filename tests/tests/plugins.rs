//! Broken plugins are contained: a trap, an endless loop, unbounded memory,
//! a panic, bad output. Each gets its fault kind in metrics, the plugin's
//! policy decides the request's fate, and the next request is served normally.

use lacquer_tests::{Lacquer, Origin, Reply, guests, log_lines};

fn faulty(mode: &str, on_error: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
[[plugins]]\nname = \"faulty\"\npath = \"{}\"\non_error = \"{on_error}\"\ntimeout = \"{timeout}\"\nmemory = \"16MiB\"\n{extra}config = {{ mode = \"{mode}\" }}\n",
        guests::FAULTY,
        // Only the endless loop should meet the deadline; the others get time
        // to fail their own way on a loaded machine.
        timeout = if mode == "loop" { "20ms" } else { "5s" },
    )
}

async fn origin() -> Origin {
    Origin::start(|_| Reply::ok("fine").header("cache-control", "max-age=60")).await
}

async fn contained(mode: &str, kind: &str) {
    let o = origin().await;
    let l = Lacquer::with_origin(&o.url(), &faulty(mode, "fail-closed", "")).await;
    let bad = l.get("/boom").await;
    assert_eq!(bad.status, 500, "{mode}: {}", bad.text());
    assert!(
        bad.text().contains("plugin faulty"),
        "the 500 names the plugin: {}",
        bad.text()
    );
    let good = l.get("/fine").await;
    assert_eq!(
        (good.status, good.text().as_str()),
        (200, "fine"),
        "{mode}: next request is served"
    );
    let bad_again = l.get("/boom").await;
    assert_eq!(
        bad_again.status, 500,
        "a fresh instance replaced the faulty one"
    );
    let m = l.admin("GET", "/metrics", "").await.text();
    let line = format!(
        "lacquer_plugin_faults_total{{plugin=\"faulty\",hook=\"on-recv\",kind=\"{kind}\"}} 2"
    );
    assert!(m.contains(&line), "{mode}: expected {line} in\n{m}");
}

#[tokio::test]
async fn trap_is_contained() {
    contained("trap", "trap").await;
}

#[tokio::test]
async fn endless_loop_is_stopped_by_the_deadline() {
    contained("loop", "timeout").await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    contained("oom", "memory").await;
}

#[tokio::test]
async fn panic_is_contained_and_its_message_logged() {
    contained("panic", "trap").await;
    assert!(
        log_lines("faulty plugin panicked on purpose")
            .iter()
            .any(|l| l.contains("faulty")),
        "the panic message reaches the log"
    );
}

#[tokio::test]
async fn crlf_in_a_synthetic_header_is_refused() {
    contained("crlf", "invalid-output").await;
}

#[tokio::test]
async fn skip_policy_continues_as_if_nothing_happened() {
    let o = origin().await;
    let l = Lacquer::with_origin(&o.url(), &faulty("trap", "skip", "")).await;
    let r = l.get("/boom").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
}

#[tokio::test]
async fn quarantine_after_repeated_faults() {
    let o = origin().await;
    let extra = "quarantine_after = 2\nquarantine_backoff = \"1h\"\n";
    let l = Lacquer::with_origin(&o.url(), &faulty("trap", "skip", extra)).await;
    for _ in 0..4 {
        assert_eq!(l.get("/boom").await.status, 200);
    }
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        m.contains("lacquer_plugin_quarantines_total{plugin=\"faulty\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(
            "lacquer_plugin_faults_total{plugin=\"faulty\",hook=\"on-recv\",kind=\"quarantined\"} 2"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn bad_init_refuses_to_start_with_the_plugins_message() {
    let o = origin().await;
    let toml = format!(
        "[[backends]]\nname = \"app\"\nurl = \"{}\"\n{}",
        o.url(),
        faulty("bad-init", "fail-closed", "")
    );
    let err = Lacquer::start(&toml)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("faulty") && err.contains("bad-init requested"),
        "{err}"
    );
}

#[tokio::test]
async fn plugin_for_an_unknown_major_version_is_refused() {
    let o = origin().await;
    let toml = format!(
        "[[backends]]\nname = \"app\"\nurl = \"{}\"\n[[plugins]]\nname = \"future\"\npath = \"{}\"\n",
        o.url(),
        guests::FUTURE_MAJOR
    );
    let err = Lacquer::start(&toml)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("lacquer:plugin@1.0.0") && err.contains("0.1"),
        "{err}"
    );
}

#[tokio::test]
async fn example_plugin_loaded_by_path_changes_responses() {
    let o = Origin::start(|s| Reply::ok(&s.uri)).await;
    let toml = format!(
        "[[plugins]]\nname = \"hello\"\npath = \"{}\"\nconfig = {{ greeting = \"from a test\" }}\n",
        guests::HELLO_HEADER
    );
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    let r = l.get("/old/page").await;
    assert_eq!(r.header("x-hello"), "from a test");
    assert_eq!(
        r.text(),
        "/new/page",
        "the path was rewritten before the fetch"
    );
}

#[tokio::test]
async fn host_counters_are_shared_across_requests() {
    let o = origin().await;
    let toml = format!("[[plugins]]\nname = \"kv\"\npath = \"{}\"\n", guests::KV);
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    assert_eq!(l.get("/count").await.text(), "1");
    assert_eq!(l.get("/count").await.text(), "2");
}

#[tokio::test]
async fn on_error_can_differ_per_hook() {
    let o = origin().await;
    let toml = format!(
        "[[plugins]]\nname = \"faulty\"\npath = \"{}\"\non_error = {{ default = \"fail-closed\", on_recv = \"skip\" }}\nconfig = {{ mode = \"trap\" }}\n",
        guests::FAULTY
    );
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    assert_eq!(
        l.get("/boom").await.status,
        200,
        "on-recv faults are skipped"
    );
    let toml = toml.replace("on_recv = \"skip\"", "on_deliver = \"skip\"");
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    assert_eq!(
        l.get("/boom").await.status,
        500,
        "on-recv falls back to the default"
    );
}

#[tokio::test]
async fn huge_synthetic_body_is_bounded() {
    // 16 MiB of memory: the guest cannot even build a 64 MiB body.
    contained("huge-body", "memory").await;
    // With room to build it, the host refuses a body over its 8 MiB limit.
    let o = origin().await;
    let toml =
        faulty("huge-body", "fail-closed", "").replace("memory = \"16MiB\"", "memory = \"256MiB\"");
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    let r = l.get("/boom").await;
    assert_eq!(r.status, 500);
    assert!(r.body.len() < 4096, "the huge body was not sent");
    assert_eq!(l.get("/fine").await.status, 200);
    let m = l.admin("GET", "/metrics", "").await.text();
    assert!(
        m.contains("lacquer_plugin_faults_total{plugin=\"faulty\",hook=\"on-recv\",kind=\"invalid-output\"} 1"),
        "{m}"
    );
}
