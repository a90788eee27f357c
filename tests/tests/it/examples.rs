//! Every example config parses and checks, and runs: a real host starts on
//! it (its listeners on port 0, its backends pointed at a real origin, its
//! plugin paths at the components `build.rs` built), loads and initialises
//! every plugin it names, and serves a request that succeeds and one whose
//! fetch fails, so that every plugin's hooks are called.
//!
//! Then each example for a common setup does what its comments promise,
//! run from the file's own text with only its addresses (and, where a test
//! would otherwise wait on a clock, one rate) replaced: the director fails
//! over on a failed probe, the router reaches the right origin, the error
//! page is branded and JSON for API clients, the request past the burst is
//! 429 with Retry-After, a stored copy stands in for a backend that is gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lacquer_tests::raw::{exchange_from, responses};
use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, guests, wait_until};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no example configs found in {}",
        dir.display()
    );
    found
}

/// `key = "value"` → `value`.
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line
        .trim()
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?;
    rest.trim().strip_prefix('"')?.strip_suffix('"')
}

/// The plugin component for `path` as an example names it: the file
/// itself when it exists (relative to the example's directory), else the
/// component of the same file name that `build.rs` built.
fn component(path: &str, base: &Path) -> String {
    let p = base.join(path);
    if p.is_file() {
        return p.display().to_string();
    }
    let file = Path::new(path).file_name().unwrap();
    guests::ALL
        .iter()
        .map(|(_, built)| *built)
        .find(|built| Path::new(built).file_name() == Some(file))
        .unwrap_or_else(|| panic!("{path}: no such file, and build.rs built no {file:?}"))
        .to_owned()
}

/// The example rewritten to run here, and the names of its plugins.
fn runnable(example: &Path, origin: &str) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(example).unwrap();
    let base = example.parent().unwrap();
    let mut out = String::new();
    let mut table = String::new();
    let mut plugins = Vec::new();
    let mut admin = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.to_owned();
            admin |= t == "[admin]";
        }
        let line = if value(line, "listen").is_some() {
            // No fixed ports in tests.
            "listen = \"127.0.0.1:0\"".to_owned()
        } else if table == "[[backends]]" && value(line, "url").is_some() {
            format!("url = \"{origin}\"")
        } else if table == "[[plugins]]" && value(line, "path").is_some() {
            let path = value(line, "path").unwrap();
            format!("path = {:?}", component(path, base))
        } else {
            line.to_owned()
        };
        if table == "[[plugins]]"
            && let Some(name) = value(&line, "name")
        {
            plugins.push(name.to_owned());
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !admin {
        out.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
    }
    (out, plugins)
}

#[test]
fn every_example_config_is_valid() {
    for p in examples() {
        let text = std::fs::read_to_string(&p).unwrap();
        lacquer::Config::from_toml(&text, &p.display().to_string(), p.parent())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[tokio::test]
async fn every_example_runs_with_all_its_plugins() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/example-fails") {
            Reply::reset()
        } else {
            Reply::ok(&format!("origin saw {}", s.uri)).header("cache-control", "max-age=60")
        }
    })
    .await;
    for example in examples() {
        let name = example.display().to_string();
        let (toml, plugins) = runnable(&example, &origin.url());
        let l = Lacquer::start(&toml)
            .await
            .unwrap_or_else(|e| panic!("{name}: does not start: {e:#}\n{toml}"));
        // Every plugin it names is loaded and initialised.
        let status: serde_json::Value =
            serde_json::from_slice(&l.admin("GET", "/status", "").await.body).unwrap();
        let loaded: Vec<String> = status["plugins"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: /status lists plugins: {status}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        if !plugins.is_empty() {
            assert_eq!(loaded, plugins, "{name}: plugins loaded in order");
        }
        // No example is a cluster: no call can wait on the network, and
        // every plugin (the rate limit too) is called synchronously.
        for p in status["plugins"].as_array().into_iter().flatten() {
            assert_eq!(p["calls"], "sync", "{name}: {p}");
        }
        // Probed backends take traffic once their first probe succeeds.
        wait_until(LIMIT, &format!("{name}: every backend healthy"), || async {
            l.backends().await["backends"]
                .as_array()
                .is_some_and(|b| b.iter().all(|b| b["healthy"] == true))
        })
        .await;
        let ok = l.get("/page").await;
        assert_eq!(ok.status, 200, "{name}: {:?} {}", ok.headers, ok.text());
        assert!(
            ok.text().starts_with("origin saw /"),
            "{name}: {}",
            ok.text()
        );
        // A plugin's visible effect, where the example configures one.
        if let Some(greeting) = toml.lines().find_map(|x| {
            let (_, rest) = x.split_once("greeting = \"")?;
            rest.split_once('"').map(|(g, _)| g.to_owned())
        }) {
            assert_eq!(ok.header("x-hello"), greeting, "{name}: {:?}", ok.headers);
        }
        let failed = l.get("/example-fails").await;
        assert!(failed.status >= 500, "{name}: {}", failed.status);
        // Every plugin ran at least once, or declined a call it asked the
        // host to skip (skip-recv-for).
        let m = l.admin("GET", "/metrics", "").await.text();
        for p in &loaded {
            let calls: f64 = m
                .lines()
                .filter(|x| {
                    x.starts_with(&format!("lacquer_plugin_calls_total{{plugin=\"{p}\","))
                        || x.starts_with(&format!("lacquer_plugin_skipped_total{{plugin=\"{p}\","))
                })
                .filter_map(|x| x.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert!(calls >= 1.0, "{name}: plugin {p} was never called:\n{m}");
        }
        let faults: Vec<_> = m
            .lines()
            .filter(|x| x.starts_with("lacquer_plugin_faults_total{") && !x.ends_with(" 0"))
            .collect();
        assert!(faults.is_empty(), "{name}: no plugin faulted: {faults:?}");
        println!("MEASURE example {name}: plugins {loaded:?} ran");
    }
}

/// How long a condition may take before the test fails: generous, it only
/// turns a hang into a failure.
const LIMIT: Duration = Duration::from_secs(20);

/// `examples/<file>` as written, with every `listen` on port 0 and each
/// `(from, to)` replaced (each must occur: the test follows the example).
fn example(file: &str, replace: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: String = text
        .lines()
        .map(|line| {
            if value(line, "listen").is_some() {
                "listen = \"127.0.0.1:0\"\n".to_owned()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    for (from, to) in replace {
        assert!(out.contains(from), "{file} no longer says {from:?}");
        out = out.replace(from, to);
    }
    out
}

async fn start(file: &str, replace: &[(&str, &str)]) -> Lacquer {
    let toml = example(file, replace);
    Lacquer::start(&toml)
        .await
        .unwrap_or_else(|e| panic!("{file}: does not start: {e:#}\n{toml}"))
}

/// Whether the admin API reports backend `name` healthy.
async fn healthy(l: &Lacquer, name: &str) -> bool {
    let b = l.backends().await;
    let me = b["backends"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no backend {name}: {b}"))
        .clone();
    me["healthy"] == true
}

/// An origin answering `body` (never cacheable), whose `/health` answers
/// 200 while `up` is set and 500 otherwise.
async fn probed_origin(body: &'static str, up: &Arc<AtomicBool>) -> Origin {
    let up = up.clone();
    Origin::start(move |s| {
        if s.uri == "/health" {
            let status = if up.load(Ordering::SeqCst) { 200 } else { 500 };
            Reply::status(status, "")
        } else {
            Reply::ok(body).header("cache-control", "no-store")
        }
    })
    .await
}

/// The bodies of `n` requests, in order.
async fn bodies(l: &Lacquer, prefix: &str, n: usize) -> String {
    let mut got = String::new();
    for i in 0..n {
        let r = l.get(&format!("{prefix}{i}")).await;
        assert_eq!(r.status, 200, "{prefix}{i}: {:?} {}", r.headers, r.text());
        got.push_str(&r.text());
    }
    got
}

#[tokio::test]
async fn director_with_probes_fails_over_when_a_probe_fails() {
    let (up1, up2) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let app1 = probed_origin("1", &up1).await;
    let app2 = probed_origin("2", &up2).await;
    // The example probes every 2 s; 100 ms makes the same verdicts sooner.
    let l = start(
        "director-with-probes.toml",
        &[
            ("http://127.0.0.1:8080", &app1.url()),
            ("http://127.0.0.1:8081", &app2.url()),
            ("interval = \"2s\"", "interval = \"100ms\""),
        ],
    )
    .await;
    wait_until(LIMIT, "both backends healthy", || async {
        healthy(&l, "app1").await && healthy(&l, "app2").await
    })
    .await;
    let both = bodies(&l, "/rr", 6).await;
    assert!(both == "121212" || both == "212121", "round-robin: {both}");

    // app1 still serves pages, but its probe fails: it leaves the rotation.
    up1.store(false, Ordering::SeqCst);
    wait_until(LIMIT, "app1's failed probes make it sick", || async {
        !healthy(&l, "app1").await
    })
    .await;
    let pages = |o: &Origin| o.seen().iter().filter(|s| s.uri != "/health").count();
    let before = pages(&app1);
    assert_eq!(bodies(&l, "/out", 6).await, "222222", "app2 takes it all");
    assert_eq!(pages(&app1), before, "no request went to the sick backend");

    // Its probe succeeds again: back in the rotation.
    up1.store(true, Ordering::SeqCst);
    wait_until(LIMIT, "app1 healthy again", || async {
        healthy(&l, "app1").await
    })
    .await;
    let back = bodies(&l, "/back", 4).await;
    assert!(back.contains('1') && back.contains('2'), "{back}");
}

#[tokio::test]
async fn routing_sends_hosts_and_path_prefixes_to_their_backends() {
    let app = Origin::start(|s| {
        Reply::ok(&format!("app saw {}", s.uri)).header("cache-control", "no-store")
    })
    .await;
    let api = Origin::start(|s| {
        Reply::ok(&format!("api saw {}", s.uri)).header("cache-control", "no-store")
    })
    .await;
    let l = start(
        "routing.toml",
        &[
            ("http://127.0.0.1:8080", &app.url()),
            ("http://127.0.0.1:8081", &api.url()),
        ],
    )
    .await;
    let cases = [
        ("www.example.com", "/users", "app saw /users"),
        ("www.example.com", "/api/users?x=1", "api saw /users?x=1"),
        ("www.example.com", "/apix", "app saw /apix"),
        ("api.example.com", "/users", "api saw /users"),
        ("API.example.com", "/api/users", "api saw /api/users"),
        ("shop.example.com", "/", "app saw /"),
    ];
    for (host, path, want) in cases {
        let r = l.request("GET", path, &[("host", host)], "").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, want),
            "{host}{path}: {:?}",
            r.headers
        );
    }
    assert_eq!((app.hits(), api.hits()), (3, 3));
}

#[tokio::test]
async fn error_pages_are_branded_and_json_for_api_clients() {
    // A port bound but not listening: every connection is refused.
    let down = ParkedPort::new();
    let l = start(
        "error-pages.toml",
        &[("http://127.0.0.1:8080", &down.url())],
    )
    .await;

    let page = l
        .request("GET", "/", &[("accept", "text/html,*/*;q=0.8")], "")
        .await;
    assert_eq!(page.status, 503, "{:?}", page.headers);
    assert!(page.header("content-type").starts_with("text/html"));
    assert_eq!(page.header("retry-after"), "30");
    assert_eq!(page.header("cache-control"), "no-store");
    assert!(page.text().contains("Example Shop"), "{}", page.text());
    assert!(
        page.text().contains(page.header("x-request-id")),
        "the page names the request id: {}",
        page.text()
    );

    let api = l
        .request("GET", "/v1/orders", &[("accept", "application/json")], "")
        .await;
    assert_eq!(api.status, 503);
    assert!(
        api.header("content-type").starts_with("application/json"),
        "{:?}",
        api.headers
    );
    assert_eq!(api.header("retry-after"), "30");
    let json: serde_json::Value = serde_json::from_slice(&api.body)
        .unwrap_or_else(|e| panic!("JSON for API clients ({e}): {}", api.text()));
    assert_eq!(json["status"], 503, "{json}");
    assert_eq!(json["error"], "connect-refused", "{json}");
    assert_eq!(json["request_id"], api.header("x-request-id"), "{json}");

    // The API's host has a name and a message of its own.
    let other = l
        .request(
            "GET",
            "/v1/orders",
            &[("host", "api.example.com"), ("accept", "application/json")],
            "",
        )
        .await;
    let json: serde_json::Value = serde_json::from_slice(&other.body).unwrap();
    assert_eq!(
        json["message"], "The API is unavailable; retry after the delay in Retry-After.",
        "{json}"
    );
    let html = l
        .request("GET", "/", &[("host", "api.example.com")], "")
        .await;
    assert!(
        html.text().contains("Example API") && !html.text().contains("Example Shop"),
        "{}",
        html.text()
    );
}

/// `key = <integer>` in `toml`.
fn integer(toml: &str, key: &str) -> u64 {
    let (_, rest) = toml
        .split_once(&format!("{key} = "))
        .unwrap_or_else(|| panic!("no {key}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// GET `path` from the client address `from`: status and Retry-After.
async fn get_from(l: &Lacquer, from: &str, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n");
    let raw = exchange_from(from.parse().unwrap(), l.server.addr(), req.as_bytes()).await;
    let (got, _) = responses(raw.as_bytes());
    let r = got.first().unwrap_or_else(|| panic!("no response: {raw}"));
    let retry = r.all("retry-after").first().map(|s| s.to_string());
    (r.status, retry.unwrap_or_default())
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_past_the_burst() {
    let origin = Origin::start(|_| Reply::ok("ok").header("cache-control", "no-store")).await;
    // The example's burst, with a refill so slow (one token per 100 s) that
    // none comes back during the test however slow the machine: the outcome
    // depends on counts only.
    let l = start(
        "rate-limit.toml",
        &[
            ("http://127.0.0.1:8080", &origin.url()),
            ("requests_per_second = 5", "requests_per_second = 0.01"),
        ],
    )
    .await;
    let burst = integer(&example("rate-limit.toml", &[]), "burst");
    for i in 0..burst {
        assert_eq!(get_from(&l, "127.0.0.1", &format!("/a{i}")).await.0, 200);
    }
    let (status, retry) = get_from(&l, "127.0.0.1", "/over").await;
    assert_eq!(status, 429, "request {} is past the burst", burst + 1);
    let retry: u64 = retry.parse().expect("Retry-After is whole seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(
        origin.hits() as u64,
        burst,
        "the limited request never left"
    );
    // Per client address: another one has its own bucket.
    assert_eq!(get_from(&l, "127.0.0.2", "/b").await.0, 200);
    assert_eq!(get_from(&l, "127.0.0.1", "/still").await.0, 429);
}

/// Store `/p` from an origin that then fails, and poll until a request
/// found the copy stale and could not fetch it: that request's answer.
async fn stale_answer(toml: &str) -> (Lacquer, lacquer_tests::Got) {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let origin = Origin::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("stored copy").header("cache-control", "max-age=1")
        } else {
            Reply::reset()
        }
    })
    .await;
    let toml = toml.replace("http://127.0.0.1:8080", &origin.url());
    let l = Lacquer::start(&toml).await.expect("lacquer starts");
    let first = l.get("/p").await;
    assert_eq!((first.status, first.header("x-cache")), (200, "MISS"));
    let second = l.get("/p").await;
    assert_eq!((second.status, second.header("x-cache")), (200, "HIT"));
    up.store(false, Ordering::SeqCst);
    let last = std::cell::RefCell::new(None);
    wait_until(LIMIT, "the copy goes stale", || async {
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
async fn stale_on_error_serves_the_stored_copy_when_the_backend_is_gone() {
    let toml = example("stale-on-error.toml", &[]);
    assert!(toml.contains("stale_if_error = \"6h\"") && toml.contains("serve_stale = true"));
    let (l, r) = stale_answer(&toml).await;
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-cache")),
        (200, "stored copy", "STALE"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        l.metric("lacquer_requests_total{state=\"stale\"}").await,
        1.0
    );

    // As its comments say: the same with `plugins = []` instead of the
    // [[plugins]] entries.
    let (head, _) = toml.split_once("\n[[plugins]]\n").unwrap();
    let (l, r) = stale_answer(&format!("plugins = []\n{head}")).await;
    let status: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/status", "").await.body).unwrap();
    assert_eq!(status["plugins"], serde_json::json!([]), "{status}");
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-cache")),
        (200, "stored copy", "STALE"),
        "{:?}",
        r.headers
    );
}
