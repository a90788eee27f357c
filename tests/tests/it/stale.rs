//! `[cache] stale_if_error` (default 1 h): a stored copy past its freshness,
//! with no `stale-if-error` of its own, is served when the backend cannot be
//! reached (RFC 9111 §4.2.4) — with the default bundle and with no plugins —
//! or answers a server error (RFC 5861 §4, `[cache] stale_on_status`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, Reply, wait_until};

/// An origin serving a copy fresh for 1 s (no stale-if-error, no
/// validators) until `up` is cleared, then closing every connection unanswered.
async fn failing_origin(up: &Arc<AtomicBool>) -> Origin {
    let up = up.clone();
    Origin::start(move |_| {
        if up.load(Ordering::SeqCst) {
            Reply::ok("stored copy").header("cache-control", "max-age=1")
        } else {
            Reply::reset()
        }
    })
    .await
}

/// Store `/p`, take the backend down, and poll until a request found the
/// copy stale and failed to fetch it; that request's answer.
async fn answer_once_stale(top: &str) -> (Lacquer, lacquer_tests::Got) {
    let up = Arc::new(AtomicBool::new(true));
    let origin = failing_origin(&up).await;
    let l = Lacquer::start(&format!(
        "{top}[admin]\nlisten = \"127.0.0.1:0\"\n[server]\ndebug_headers = true\n\
[[backends]]\nname = \"app\"\nurl = \"{}\"\n",
        origin.url()
    ))
    .await
    .expect("lacquer starts");
    let first = l.get("/p").await;
    assert_eq!((first.status, first.text().as_str()), (200, "stored copy"));
    up.store(false, Ordering::SeqCst);
    let last = std::cell::RefCell::new(None);
    wait_until(Duration::from_secs(10), "the copy goes stale", || async {
        let r = l.get("/p").await;
        let failed = l.fetch_failures("app", "connection-reset").await >= 1.0;
        *last.borrow_mut() = Some(r);
        failed
    })
    .await;
    assert_eq!(origin.hits(), 2, "one fetch, and it failed");
    (l, last.into_inner().unwrap())
}

#[tokio::test]
async fn the_default_bundle_serves_a_stale_copy_when_the_backend_fails() {
    let (l, r) = answer_once_stale("").await;
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-cache")),
        (200, "stored copy", "STALE"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("x-lacquer-error"),
        "connection-reset backend=app",
        "the cause is shown"
    );
    assert_eq!(
        l.metric("lacquer_requests_total{state=\"stale\"}").await,
        1.0
    );
}

#[tokio::test]
async fn without_plugins_a_stale_copy_is_served_when_the_backend_fails() {
    let (l, r) = answer_once_stale("plugins = []\n").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "stored copy"),
        "{:?} {}",
        r.headers,
        r.text()
    );
    assert_eq!(
        l.metric("lacquer_requests_total{state=\"stale\"}").await,
        1.0
    );
}

/// Store `/p` (fresh 1 s), then have the origin answer `status` (top: config
/// before the backend); poll until a request found the copy stale and got
/// the origin's error answer; that request's response.
async fn answer_once_errored(top: &str, status: u16) -> (Lacquer, lacquer_tests::Got) {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let origin = Origin::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("stored copy").header("cache-control", "max-age=1")
        } else {
            Reply::status(status, "origin error page")
        }
    })
    .await;
    let l = Lacquer::start(&format!(
        "{top}[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"access.log\"\nformat = \"json\"\n\
[[backends]]\nname = \"app\"\nurl = \"{}\"\n",
        origin.url()
    ))
    .await
    .expect("lacquer starts");
    assert_eq!(l.get("/p").await.text(), "stored copy");
    up.store(false, Ordering::SeqCst);
    let series = format!("lacquer_backend_requests_total{{backend=\"app\",status=\"{status}\"}}");
    let last = std::cell::RefCell::new(None);
    wait_until(Duration::from_secs(10), "the copy goes stale", || async {
        let r = l.get("/p").await;
        *last.borrow_mut() = Some(r);
        l.metric(&series).await >= 1.0
    })
    .await;
    (l, last.into_inner().unwrap())
}

#[tokio::test]
async fn a_backend_server_error_is_answered_with_the_stored_copy() {
    for (top, status) in [("", 503), ("plugins = []\n", 500)] {
        let (l, r) = answer_once_errored(top, status).await;
        assert_eq!(
            (r.status, r.text().as_str(), r.header("x-cache")),
            (200, "stored copy", "STALE"),
            "{top}{status}: {:?}",
            r.headers
        );
        // The backend's own answer stays visible: in metrics and the access log.
        let path = l.dir.join("access.log");
        wait_until(Duration::from_secs(10), "the access record", || async {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains(&format!("\"backend_status\":{status}"))
        })
        .await;
        let log = std::fs::read_to_string(&path).unwrap();
        let rec: serde_json::Value = serde_json::from_str(
            log.lines()
                .find(|x| x.contains(&format!("\"backend_status\":{status}")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (rec["status"].as_u64(), rec["state"].as_str()),
            (Some(200), Some("stale"))
        );
    }
}

#[tokio::test]
async fn stale_on_status_empty_passes_the_error_through() {
    let (_l, r) = answer_once_errored("[cache]\nstale_on_status = []\n", 503).await;
    assert_eq!((r.status, r.text().as_str()), (503, "origin error page"));
}
