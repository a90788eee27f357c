//! `lacquer top --once`, the real binary against a real host's admin API:
//! the snapshot shows the hits and misses counted, a backend forced sick, and
//! the kind of the fetch failure that followed; an admin API that is not
//! there is an error naming its URL.

use std::process::{Command, Output};

use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, lacquer_bin};

/// Run `lacquer top ARGS` off the async runtime (the host under test keeps
/// answering meanwhile); stdout, stderr and success.
async fn top(args: &[&str]) -> (String, String, Output) {
    let args: Vec<String> = std::iter::once("top")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(lacquer_bin())
            .args(&args)
            .env_remove("LACQUER_LOG")
            .output()
            .expect("run lacquer top")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout, stderr, out)
}

/// The cells of the first line of `text` whose first cells are `first`.
fn row<'a>(text: &'a str, first: &[&str]) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.starts_with(first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn once_shows_hits_misses_a_sick_backend_and_the_failure_kind() {
    let o = Origin::start(|_| Reply::ok("page").header("cache-control", "max-age=600")).await;
    let l = Lacquer::with_origin(&o.url(), "[server]\ndebug_headers = true\n").await;
    for path in ["/a", "/a", "/a", "/b", "/b"] {
        assert_eq!(l.get(path).await.status, 200, "GET {path}");
    }
    assert_eq!(o.hits(), 2, "two misses went to the origin");
    l.force_health("app", "sick").await;
    let r = l.get("/c").await;
    assert_eq!(r.status, 503);
    assert_eq!(l.fetch_failures("app", "backend-unhealthy").await, 1.0);
    let hits = l.metric("lacquer_requests_total{state=\"hit\"}").await;
    let misses = l.metric("lacquer_requests_total{state=\"miss\"}").await;
    assert_eq!(hits, 3.0);
    // Each answered request is timed, in its state's histogram.
    let timed = "lacquer_request_duration_seconds_bucket{le=\"+Inf\",state=\"hit\"}";
    assert_eq!(l.metric(timed).await, hits);
    assert!(misses >= 2.0, "{misses} misses");

    let admin = format!("http://{}", l.server.admin_addr().unwrap());
    let (out, err, status) = top(&["--once", "--admin", &admin, "--interval", "100ms"]).await;
    assert!(status.status.success(), "top failed: {err}\n{out}");
    println!("{out}");
    assert!(out.contains(&format!("at {admin}:")), "{out}");
    // Totals, then rates: nothing moved during the interval.
    assert_eq!(row(&out, &["hit"]), ["hit", "3", "0.0"], "{out}");
    assert_eq!(row(&out, &["miss"])[1], misses.to_string(), "{out}");
    assert_eq!(
        row(&out, &["hit", "ratio"])[2],
        format!("{:.1}%", hits * 100.0 / (hits + misses))
    );
    // name, health, circuit, forced, requests, /s, failures, /s
    let app = row(&out, &["app"]);
    assert_eq!(app[..4], ["app", "sick", "closed", "sick"], "{out}");
    assert_eq!(app[6], "1", "one failed fetch: {out}");
    assert_eq!(row(&out, &["app", "backend-unhealthy"])[2], "1", "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_admin_api_is_an_error_naming_its_url() {
    let parked = ParkedPort::new();
    let url = parked.url();
    let (out, err, status) = top(&["--once", "--admin", &url, "--interval", "10ms"]).await;
    assert!(!status.status.success(), "top succeeded: {out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("cannot reach the admin API at"), "{err}");
    assert!(err.contains(&url), "{err}");
}

/// An admin API whose counters grow by a known amount between the two
/// polls: the rates are that growth over the interval, and the token is sent.
#[tokio::test(flavor = "multi_thread")]
async fn once_takes_rates_over_one_interval() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let polls = AtomicU32::new(0);
    let admin = Origin::start(move |seen| match seen.uri.as_str() {
        "/metrics" => {
            let n = f64::from(polls.fetch_add(1, Ordering::SeqCst));
            Reply::ok(&format!(
                "lacquer_requests_total{{state=\"hit\"}} {}\n\
                 lacquer_requests_total{{state=\"miss\"}} {}\n\
                 lacquer_responses_total{{status=\"200\"}} {}\n",
                10.0 + 20.0 * n,
                10.0 + 5.0 * n,
                20.0 + 25.0 * n
            ))
        }
        "/status" => Reply::ok(
            r#"{"version":"x","uptime_s":1,"generation":4,"cache":{"objects":1,"bytes":1,"budget":2},"plugins":[]}"#,
        ),
        "/backends" => Reply::ok(
            r#"{"backends":[{"name":"app","healthy":true,"forced":"auto","circuit_open":true}]}"#,
        ),
        _ => Reply::status(404, ""),
    })
    .await;
    let (out, err, status) = top(&[
        "--once",
        "--admin",
        &admin.url(),
        "--token",
        "t0k",
        "--interval",
        "1500ms",
    ])
    .await;
    assert!(status.status.success(), "top failed: {err}\n{out}");
    assert_eq!(admin.hits(), 6, "two polls of three endpoints");
    assert!(
        admin.seen().iter().all(|s| s
            .headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer t0k")),
        "every poll carries the token"
    );
    let hit = row(&out, &["hit"]);
    assert_eq!(hit[1], "30", "{out}");
    // 20 more over at least 1.5 s: some, and at most 13.3/s.
    let per_s: f64 = hit[2].parse().unwrap();
    assert!(per_s > 0.0 && per_s <= 13.4, "{per_s}/s\n{out}");
    // Lifetime (30 of 45) and over the interval (20 of 25).
    assert_eq!(
        row(&out, &["hit", "ratio"])[2..],
        ["66.7%", "80.0%"],
        "{out}"
    );
    assert_eq!(row(&out, &["2xx"])[1], "45", "{out}");
    assert_eq!(
        row(&out, &["app"])[..4],
        ["app", "healthy", "open", "auto"],
        "{out}"
    );
}
