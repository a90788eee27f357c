//! Broken plugins are contained: a trap, an endless loop, unbounded memory,
//! a panic, bad output. Each gets its fault kind in metrics, the plugin's
//! policy decides the request's fate, and the next request is served normally.

use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, Reply, guests, log_lines, wait_until};

fn faulty(mode: &str, on_error: &str, extra: &str) -> String {
    faulty_in(mode, "recv", on_error, extra)
}

/// cache-policy, then `faulty` misbehaving with `mode` in `hook` (`recv`,
/// `backend-response`, `fetch-error` or `deliver`) for URLs under `/boom`.
fn faulty_in(mode: &str, hook: &str, on_error: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n\
[[plugins]]\nname = \"faulty\"\npath = \"{}\"\non_error = \"{on_error}\"\ntimeout = \"{timeout}\"\nmemory = \"16MiB\"\n{extra}config = {{ mode = \"{mode}\", hook = \"{hook}\" }}\n",
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

// ---- Containment in every hook ----

/// `/boom/fail…` closes the connection unanswered (a fetch error for
/// on-fetch-error); anything else answers "fine", never stored, so every
/// request reaches on-backend-response.
async fn hook_origin() -> Origin {
    Origin::start(|s| {
        if s.uri.starts_with("/boom/fail") {
            Reply::reset()
        } else {
            Reply::ok("fine").header("cache-control", "no-store")
        }
    })
    .await
}

/// `mode` in `hook` is a `kind` fault: fail-closed answers 500 naming the
/// plugin, the hook and the kind; skip goes on as if the plugin had said
/// continue. Either way the fault is counted for that hook, and the next
/// request is served.
async fn contained_in(hook: &str, mode: &str, kind: &str) {
    let wit_hook = format!("on-{hook}");
    let path = if hook == "fetch-error" {
        "/boom/fail"
    } else {
        "/boom/x"
    };
    let o = hook_origin().await;
    let config = |policy| {
        format!(
            "[server]\ndebug_headers = true\n{}",
            faulty_in(mode, hook, policy, "")
        )
    };

    let l = Lacquer::with_origin(&o.url(), &config("fail-closed")).await;
    let bad = l.get(path).await;
    assert_eq!(
        bad.status,
        500,
        "{hook}/{mode}: {:?} {}",
        bad.headers,
        bad.text()
    );
    assert!(
        bad.text()
            .contains(&format!("plugin faulty failed in {wit_hook} ({kind})")),
        "{hook}/{mode}: the 500 names the plugin, hook and kind: {}",
        bad.text()
    );
    assert_eq!(
        bad.header("x-lacquer-error"),
        format!("plugin-{kind} plugin=faulty")
    );
    assert_eq!(
        l.plugin_faults("faulty", &wit_hook, kind).await,
        1.0,
        "{hook}/{mode}"
    );
    let good = l.get("/fine").await;
    assert_eq!(
        (good.status, good.text().as_str()),
        (200, "fine"),
        "{hook}/{mode}: next request"
    );
    let m = l.admin("GET", "/metrics", "").await.text();
    let faults: Vec<_> = m
        .lines()
        .filter(|x| {
            x.starts_with("lacquer_plugin_faults_total{plugin=\"faulty\"") && !x.ends_with(" 0")
        })
        .collect();
    assert_eq!(
        faults.len(),
        1,
        "{hook}/{mode}: one fault, in its hook: {faults:?}"
    );

    let l = Lacquer::with_origin(&o.url(), &config("skip")).await;
    let r = l.get(path).await;
    if hook == "fetch-error" {
        assert_eq!(
            r.status,
            503,
            "{mode}: the host's own error page: {}",
            r.text()
        );
        assert_eq!(r.header("x-lacquer-error"), "connection-reset backend=app");
    } else {
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "fine"),
            "{hook}/{mode} skipped"
        );
    }
    assert_eq!(
        l.plugin_faults("faulty", &wit_hook, kind).await,
        1.0,
        "{hook}/{mode}: skipped, but counted"
    );
}

#[tokio::test]
async fn faults_in_on_recv_are_contained() {
    contained_in("recv", "trap", "trap").await;
    contained_in("recv", "loop", "timeout").await;
}

#[tokio::test]
async fn faults_in_on_backend_response_are_contained() {
    contained_in("backend-response", "trap", "trap").await;
    contained_in("backend-response", "crlf", "invalid-output").await;
}

#[tokio::test]
async fn faults_in_on_fetch_error_are_contained() {
    contained_in("fetch-error", "trap", "trap").await;
    contained_in("fetch-error", "loop", "timeout").await;
}

#[tokio::test]
async fn faults_in_on_deliver_are_contained() {
    contained_in("deliver", "trap", "trap").await;
    contained_in("deliver", "oom", "memory").await;
}

#[tokio::test]
async fn skip_policy_continues_as_if_nothing_happened() {
    let o = origin().await;
    let l = Lacquer::with_origin(&o.url(), &faulty("trap", "skip", "")).await;
    let r = l.get("/boom").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
    // It did run, and trap: the fault is counted and logged, then skipped.
    assert_eq!(l.plugin_faults("faulty", "on-recv", "trap").await, 1.0);
    assert!(
        log_lines("plugin fault")
            .iter()
            .any(|x| x.contains("plugin=\"faulty\"") || x.contains("plugin=faulty")),
        "the fault is logged"
    );
}

#[tokio::test]
async fn quarantine_after_repeated_faults() {
    let o = origin().await;
    let extra = "quarantine_after = 2\nquarantine_backoff = \"1h\"\n";
    let l = Lacquer::with_origin(&o.url(), &faulty("trap", "skip", extra)).await;
    for _ in 0..4 {
        assert_eq!(l.get("/boom").await.status, 200);
    }
    assert_eq!(
        l.metric("lacquer_plugin_quarantines_total{plugin=\"faulty\"}")
            .await,
        1.0
    );
    assert_eq!(l.plugin_faults("faulty", "on-recv", "trap").await, 2.0);
    assert_eq!(
        l.plugin_faults("faulty", "on-recv", "quarantined").await,
        2.0,
        "the last two requests did not call it"
    );
}

#[tokio::test]
async fn quarantine_expires_after_its_backoff() {
    let o = origin().await;
    let extra = "quarantine_after = 2\nquarantine_backoff = \"200ms\"\n";
    let l = Lacquer::with_origin(&o.url(), &faulty("trap", "skip", extra)).await;
    for _ in 0..2 {
        assert_eq!(l.get("/boom").await.status, 200);
    }
    assert_eq!(
        l.metric("lacquer_plugin_quarantines_total{plugin=\"faulty\"}")
            .await,
        1.0
    );
    // Quarantined: the plugin is not called; once the backoff is over it is
    // called again (and traps again).
    wait_until(
        Duration::from_secs(10),
        "the plugin is called again",
        || async {
            assert_eq!(l.get("/boom").await.status, 200);
            l.plugin_faults("faulty", "on-recv", "trap").await == 3.0
        },
    )
    .await;
    // (That calls are suspended meanwhile is `quarantine_after_repeated_faults`.)
    // The fault count started again: two more faults quarantine it again.
    assert_eq!(l.get("/boom").await.status, 200);
    assert_eq!(l.plugin_faults("faulty", "on-recv", "trap").await, 4.0);
    assert_eq!(
        l.metric("lacquer_plugin_quarantines_total{plugin=\"faulty\"}")
            .await,
        2.0
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
async fn plugin_built_against_an_earlier_minor_version_loads_and_runs() {
    // Built against lacquer:plugin@0.1.0, before `skip-recv-for` was added:
    // wasmtime matches its `@0.1.0` imports and exports to the host's 0.1.x.
    let o = origin().await;
    let l = Lacquer::with_origin(
        &o.url(),
        &format!(
            "[[plugins]]\nname = \"older\"\npath = \"{}\"\n",
            guests::OLDER_MINOR
        ),
    )
    .await;
    let r = l.get("/x").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "0.1.0 plugin saw GET 127.0.0.1\n")
    );
    assert_eq!(o.hits(), 0, "the plugin answered");
    assert_eq!(l.plugin_calls("older", "on-recv").await, 1.0);
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
    // Each call is timed: the histogram counts as many as were made.
    let calls = l.plugin_calls("kv", "on-recv").await;
    assert_eq!(calls, 2.0);
    let series = "lacquer_plugin_duration_seconds";
    let labels = "plugin=\"kv\",hook=\"on-recv\"";
    assert_eq!(
        l.metric(&format!("{series}_count{{{labels}}}")).await,
        calls
    );
    assert_eq!(
        l.metric(&format!("{series}_bucket{{le=\"+Inf\",{labels}}}"))
            .await,
        calls
    );
    assert!(l.metric(&format!("{series}_sum{{{labels}}}")).await > 0.0);
}

#[tokio::test]
async fn on_error_can_differ_per_hook() {
    let o = origin().await;
    let toml = format!(
        "[[plugins]]\nname = \"faulty\"\npath = \"{}\"\non_error = {{ default = \"fail-closed\", on_recv = \"skip\" }}\nconfig = {{ mode = \"trap\" }}\n",
        guests::FAULTY
    );
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    let r = l.get("/boom").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "fine"),
        "on-recv faults are skipped"
    );
    assert_eq!(l.plugin_faults("faulty", "on-recv", "trap").await, 1.0);
    let toml = toml.replace("on_recv = \"skip\"", "on_deliver = \"skip\"");
    let l = Lacquer::with_origin(&o.url(), &toml).await;
    let r = l.get("/boom").await;
    assert_eq!(r.status, 500, "on-recv falls back to the default");
    assert!(
        r.text().contains("plugin faulty failed in on-recv (trap)"),
        "{}",
        r.text()
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
