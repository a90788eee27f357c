//! Backends end to end, each behaviour written once and run over both
//! transports (`<test>::tcp` and `<test>::unix`, see
//! `lacquer_tests::both_transports!`): every failure kind (status, cause
//! header, metric, log line), connection limits, Host rewriting, probes,
//! forced health, the circuit breaker, directors, retries, and grace while
//! a backend fails. A few behaviours exist on one transport only (a TCP
//! reset or a full accept queue; a socket path); they say so.
//!
//! Each test names its backends after itself and its transport, so its log
//! lines can be told apart from other tests' (they share one log capture).
//! Nothing here asserts how long something took: a test asserts the outcome
//! and the order of events (a request answered while the origin still holds
//! another, by a [`lacquer_tests::Gate`]). Timings are printed as
//! `MEASURE ...` lines (run with `--nocapture` to see them).

use std::time::Duration;

use lacquer_tests::{Lacquer, Seen, Tried, log_lines};

mod breaker;
mod directors;
mod failures;
mod grace;
mod health;
mod limits;

/// Client-side bound on any single exchange in these tests: reaching it
/// means the host did not answer, which fails the test.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A `[[backends]]` entry.
pub fn backend(name: &str, url: &str, extra: &str) -> String {
    format!("[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

/// A `[[directors]]` entry.
pub fn director(name: &str, kind: &str, members: &[&str], extra: &str) -> String {
    let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[directors]]\nname = \"{name}\"\nkind = \"{kind}\"\nbackends = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// Start with an admin listener, debug headers and one attempt per request
/// (so every failure is counted once), then `parts` in order.
pub async fn start(parts: &[String]) -> Lacquer {
    start_with("debug_headers = true\nmax_retries = 0\n", parts).await
}

/// Start with this `[server]` section, then `parts` in order.
pub async fn start_with(server: &str, parts: &[String]) -> Lacquer {
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\n{server}\n{}",
        parts.concat()
    );
    Lacquer::start(&toml).await.expect("lacquer starts")
}

/// GET through the proxy, asking for HTML (error-pages answers in kind).
pub async fn get(l: &Lacquer, path: &str) -> Tried {
    l.try_request("GET", path, &[("accept", "text/html")], "", CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A 503 from error-pages for `kind` on `backend` (debug headers are on).
pub fn assert_branded_503(t: &Tried, kind: &str, backend: &str) {
    assert_branded(t, 503, kind, backend);
}

/// An error-pages HTML page with this status naming the kind and backend.
pub fn assert_branded(t: &Tried, status: u16, kind: &str, backend: &str) {
    let g = &t.got;
    assert_eq!(g.status, status, "{:?} {}", g.headers, g.text());
    assert!(
        g.header("content-type").starts_with("text/html"),
        "{:?}",
        g.headers
    );
    assert_eq!(
        g.header("x-lacquer-error"),
        format!("{kind} backend={backend}"),
        "{:?}",
        g.headers
    );
}

/// A `fetch failed` log line for this backend and kind exists.
pub fn assert_logged(backend: &str, kind: &str) {
    let lines = log_lines(&format!("backend={backend} "));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("kind=\"{kind}\"")) && l.contains("failed")),
        "no log line for backend={backend} kind={kind}: {lines:#?}"
    );
}

/// An origin whose `/health` answers 200 while `up`, else 500; every other
/// URL answers "app", never cacheable.
pub fn health_origin(
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl Fn(&Seen) -> lacquer_tests::Reply + Send + Sync + 'static {
    use lacquer_tests::Reply;
    move |s| {
        if s.uri == "/health" {
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::ok("fine")
            } else {
                Reply::status(500, "sick")
            }
        } else {
            Reply::ok("app").header("cache-control", "no-store")
        }
    }
}

/// A probe every 100 ms, 2 good of the last 3 to be healthy, sick at first.
pub const PROBE: &str =
    "probe = { path = \"/health\", interval = \"100ms\", window = 3, threshold = 2, initial = 0 }";
