//! What an operator relies on from the first day: the access log (combined
//! and JSON), request ids tying client, proxy and backend together, the
//! client address behind trusted proxies, responses counted by status, and
//! defaults that follow each other.

use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, wait_until};

/// The access log's lines once it has at least `n`.
async fn access_lines(l: &Lacquer, n: usize) -> Vec<String> {
    let path = l.dir.join("access.log");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    wait_until(Duration::from_secs(10), "access log lines", || async {
        read().lines().count() >= n
    })
    .await;
    read().lines().map(str::to_owned).collect()
}

fn two_backends(origin: &str, dead: &str, extra: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\ndefault_backend = \"app\"\n\
         [[backends]]\nname = \"app\"\nurl = \"{origin}\"\n\
         [[backends]]\nname = \"dead\"\nurl = \"{dead}\"\n\
         [[plugins]]\nname = \"router\"\nbuiltin = \"router\"\nconfig = {{ rules = [{{ path_prefix = \"/dead\", backend = \"dead\" }}] }}\n\
         [[plugins]]\nname = \"cache-policy\"\nbuiltin = \"cache-policy\"\n{extra}"
    )
}

#[tokio::test]
async fn the_combined_access_log_names_id_state_backend_and_cause() {
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "max-age=60")).await;
    let dead = ParkedPort::new();
    let l = Lacquer::start(&two_backends(
        &origin.url(),
        &dead.url(),
        "[log]\naccess = \"access.log\"\n",
    ))
    .await
    .unwrap();
    let miss = l
        .request("GET", "/page", &[("user-agent", "probe/1")], "")
        .await;
    let hit = l.get("/page").await;
    let failed = l.get("/dead/x").await;
    assert_eq!((miss.status, hit.status, failed.status), (200, 200, 503));
    let lines = access_lines(&l, 3).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let id = miss.header("x-request-id");
    assert!(!id.is_empty());
    assert!(
        lines[0].starts_with("127.0.0.1 - - [")
            && lines[0].contains("] \"GET /page HTTP/1.1\" 200 5 - \"probe/1\" ")
            && lines[0].contains(&format!(" id={id} state=miss "))
            && lines[0].contains(" backend=app fetch_error=- fault=-"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" state=hit ") && lines[1].contains(" 200 5 "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("\"GET /dead/x HTTP/1.1\" 503 ")
            && lines[2].contains(" backend=dead fetch_error=connect-refused "),
        "{}",
        lines[2]
    );
    // Responses are counted by status, so a 5xx rate can be computed.
    assert_eq!(
        l.metric("lacquer_responses_total{status=\"200\"}").await,
        2.0
    );
    assert_eq!(
        l.metric("lacquer_responses_total{status=\"503\"}").await,
        1.0
    );
    assert_eq!(l.metric("lacquer_access_log_dropped_total").await, 0.0);
}

#[tokio::test]
async fn the_json_access_log_is_one_object_per_request() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let l = Lacquer::with_origin(
        &origin.url(),
        "[log]\naccess = \"access.log\"\nformat = \"json\"\n",
    )
    .await;
    let r = l.request("POST", "/form?a=1", &[], "x=1").await;
    assert_eq!(r.status, 200);
    let lines = access_lines(&l, 1).await;
    let j: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(j["method"], "POST");
    assert_eq!(j["url"], "/form?a=1");
    assert_eq!(j["status"], 200);
    assert_eq!(j["bytes"], 5);
    assert_eq!(j["state"], "pass");
    assert_eq!(j["backend"], "app");
    assert_eq!(j["id"], r.header("x-request-id"));
    assert!(j["fetch_error"].is_null());
    assert!(j["duration_ms"].as_f64().is_some());
}

#[tokio::test]
async fn one_request_id_reaches_client_and_backend() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    let own = l
        .request("POST", "/a", &[("x-request-id", "client-id.42")], "")
        .await;
    assert_eq!(own.header("x-request-id"), "client-id.42");
    let bogus = l
        .request("POST", "/b", &[("x-request-id", "has space")], "")
        .await;
    let generated = bogus.header("x-request-id");
    assert!(!generated.is_empty() && generated != "has space");
    let seen = origin.seen();
    assert_eq!(seen[0].headers["x-request-id"], "client-id.42");
    assert_eq!(seen[1].headers["x-request-id"], generated);
    assert_eq!(seen[1].headers.get_all("x-request-id").iter().count(), 1);
}

#[tokio::test]
async fn an_untrusted_client_cannot_forge_its_address() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let l = Lacquer::with_origin(&origin.url(), "").await;
    l.request(
        "POST",
        "/",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ],
        "",
    )
    .await;
    let h = &origin.seen()[0].headers;
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h.get("forwarded").is_none(), "Forwarded is opt-in");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_chain_is_one_field_and_names_the_client() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let l = Lacquer::with_origin(
        &origin.url(),
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\nforwarded = true\n[log]\naccess = \"access.log\"\nformat = \"json\"\n",
    )
    .await;
    l.request(
        "POST",
        "/",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.4"),
            ("x-forwarded-proto", "https"),
        ],
        "",
    )
    .await;
    let h = &origin.seen()[0].headers;
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.4, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http");
    // The client is the nearest untrusted hop, not the spoofable first one.
    let lines = access_lines(&l, 1).await;
    let j: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(j["client"], "198.51.100.4");
}

#[tokio::test]
async fn max_object_size_follows_a_small_memory_budget() {
    let big = "x".repeat(600 * 1024);
    let origin =
        Origin::start(move |_| Reply::ok(&big).header("cache-control", "max-age=60")).await;
    // 4 MiB of cache: objects up to 512 KiB, no max_object_size needed.
    let l = Lacquer::with_origin(&origin.url(), "[cache]\nmemory = \"4MiB\"\n").await;
    assert_eq!(l.get("/big").await.text().len(), 600 * 1024);
    assert_eq!(l.get("/big").await.text().len(), 600 * 1024);
    assert_eq!(origin.hits(), 2, "600 KiB exceeds memory/8: not stored");
    assert_eq!(l.metric("lacquer_cache_too_large_total").await, 2.0);
}
