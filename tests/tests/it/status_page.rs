//! The admin status page, rendered by a real headless browser (Debian's
//! `chromium`) against a real host: healthy, circuit-open and probe-sick
//! backends are shown as what they are, a fetch error is shown with its
//! cause, names are plain text, and the page's script raises no error.
//! Also: HEAD on the admin endpoints, and the metrics content type.

use std::process::Command;
use std::time::Duration;

use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, TempDir, raw, wait_until};

/// How long the browser lets the page run (virtual time: it pauses while a
/// fetch is in flight), enough for several two-second refreshes.
const BUDGET_MS: u32 = 7000;
/// Wall-clock bound on one browser run, past which the test fails.
const BROWSER_LIMIT_S: u32 = 120;

/// What the browser saw.
struct Rendered {
    /// The DOM after the virtual time budget, serialised.
    dom: String,
    /// Console messages the browser logged (the page logs none of its own).
    console: Vec<String>,
}

/// Fail with the way out when the browser is missing.
fn require_chromium() {
    match Command::new("chromium").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`chromium --version` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "chromium is not installed: this test renders the admin status page in a \
             headless browser. Install it with `apt-get install chromium`"
        ),
        Err(e) => panic!("running chromium: {e}"),
    }
}

/// Load `url` in headless chromium (a fresh profile), let its scripts run
/// for [`BUDGET_MS`] of virtual time, and return the DOM and the console.
async fn render(url: String) -> Rendered {
    require_chromium();
    tokio::task::spawn_blocking(move || {
        let profile = TempDir::new();
        let out = Command::new("timeout")
            .args(["--kill-after=10", &BROWSER_LIMIT_S.to_string(), "chromium"])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path.display()))
            .arg(format!("--virtual-time-budget={BUDGET_MS}"))
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .expect("run chromium under timeout");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(
            out.status.code(),
            Some(124),
            "chromium did not finish within {BROWSER_LIMIT_S} s:\n{stderr}"
        );
        assert!(
            out.status.success(),
            "chromium failed ({}):\n{stderr}",
            out.status
        );
        Rendered {
            dom: String::from_utf8_lossy(&out.stdout).into_owned(),
            console: stderr
                .lines()
                .filter(|l| l.contains(":CONSOLE"))
                .map(str::to_owned)
                .collect(),
        }
    })
    .await
    .expect("the browser thread finishes")
}

/// Text as it appears in serialised HTML.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// The serialised element opened by `open` (e.g. `<tr data-backend="app"`),
/// up to its `close` tag.
fn element<'a>(dom: &'a str, open: &str, close: &str) -> &'a str {
    let start = dom
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in the rendered page:\n{dom}"));
    let end = dom[start..]
        .find(close)
        .unwrap_or_else(|| panic!("{open} is not closed:\n{dom}"));
    &dom[start..start + end]
}

#[tokio::test]
async fn the_status_page_shows_health_and_causes_in_a_real_browser() {
    let app = Origin::start(|s| match s.uri.as_str() {
        "/health" => Reply::ok("ok"),
        "/down" => Reply::status(500, "down"),
        _ => Reply::ok("page").header("cache-control", "max-age=60"),
    })
    .await;
    let legacy = ParkedPort::new();
    let l = Lacquer::start(&format!(
        r#"[admin]
listen = "127.0.0.1:0"
[server]
default_backend = "legacy"
[[backends]]
name = "app"
url = "{app}"
probe = {{ path = "/health", interval = "100ms", timeout = "1s" }}
[[backends]]
name = "legacy"
url = "{legacy}"
[[backends]]
name = "spare"
url = "{app}"
probe = {{ path = "/down", interval = "100ms", timeout = "1s" }}
[[directors]]
name = "pool"
kind = "fallback"
backends = ["legacy", "spare", "app"]
"#,
        app = app.url(),
        legacy = legacy.url(),
    ))
    .await
    .expect("lacquer starts");

    // Refused connections (five in a row, by default) open legacy's
    // circuit, and leave their causes in /fetch-errors.
    let backend = |b: &serde_json::Value, name: &str| {
        b["backends"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
            .unwrap_or_default()
    };
    wait_until(
        Duration::from_secs(10),
        "refused fetches open legacy's circuit",
        || async {
            assert_eq!(l.get("/").await.status, 503);
            backend(&l.backends().await, "legacy")["circuit_open"] == true
        },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "probes judge app and spare",
        || async {
            let b = l.backends().await;
            let (a, s) = (backend(&b, "app"), backend(&b, "spare"));
            a["healthy"] == true
                && s["healthy"] == false
                && s["probes"].as_array().is_some_and(|p| !p.is_empty())
        },
    )
    .await;
    let errors: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/fetch-errors", "").await.body).unwrap();
    let newest = &errors[0];
    assert_eq!(newest["kind"], "connect-refused", "{errors:#}");
    assert_eq!(newest["backend"], "legacy", "{errors:#}");
    let detail = newest["detail"].as_str().expect("a detail").to_owned();

    let admin = l.server.admin_addr().expect("admin listener");
    let page = render(format!("http://{admin}/")).await;
    let dom = &page.dom;

    // The script ran without error, and refreshed in place more than once.
    assert!(
        page.console.is_empty(),
        "console messages while rendering the status page:\n{}\n{dom}",
        page.console.join("\n")
    );
    let errors_el = element(dom, "<ul id=\"errors\"", "</ul>");
    assert!(
        !errors_el.contains("<li"),
        "the page reported errors: {errors_el}"
    );
    let refreshes: u32 = element(dom, "data-refreshes=\"", ">")["data-refreshes=\"".len()..]
        .trim_end_matches('"')
        .parse()
        .expect("a refresh count");
    assert!(
        refreshes >= 2,
        "the page refreshed {refreshes} times:\n{dom}"
    );

    // Each backend's health is what the host says, an open circuit first.
    let row = |name: &str| element(dom, &format!("<tr data-backend=\"{name}\""), "</tr>");
    let app_row = row("app");
    assert!(
        app_row.contains("class=\"health ok\">healthy<"),
        "{app_row}"
    );
    let legacy_row = row("legacy");
    assert!(
        legacy_row.contains("class=\"health bad\">circuit open<"),
        "{legacy_row}"
    );
    let spare_row = row("spare");
    assert!(
        spare_row.contains("class=\"health bad\">sick<"),
        "{spare_row}"
    );
    assert!(
        spare_row.contains("class=\"probe bad\""),
        "probe history: {spare_row}"
    );
    assert!(
        spare_row.contains("failed: "),
        "last probe's detail: {spare_row}"
    );
    for r in [legacy_row, spare_row] {
        assert!(!r.contains(">healthy"), "a sick backend shown healthy: {r}");
    }
    let director = element(dom, "<tr data-director=\"pool\"", "</tr>");
    assert!(
        director.contains("class=\"health ok\">healthy<"),
        "{director}"
    );
    assert!(director.contains(">legacy (circuit open)<"), "{director}");
    assert!(director.contains(">spare (sick)<"), "{director}");
    assert!(director.contains(">app (healthy)<"), "{director}");

    // The fetch error with its cause.
    let failure = element(dom, "<tr data-kind=\"connect-refused\"", "</tr>");
    assert!(failure.contains(">connect-refused<"), "{failure}");
    assert!(failure.contains("class=\"backend\">legacy<"), "{failure}");
    assert!(failure.contains(">GET "), "the request: {failure}");
    assert!(
        failure.contains(&format!("class=\"detail\">{}<", html_text(&detail))),
        "detail {detail:?}: {failure}"
    );

    // Plugins of the default bundle, with their hooks.
    for plugin in ["cache-policy", "error-pages"] {
        let r = element(dom, &format!("<tr data-plugin=\"{plugin}\""), "</tr>");
        assert!(r.contains(&format!("class=\"name\">{plugin}<")), "{r}");
        assert!(r.contains(">running<"), "{r}");
        assert!(r.contains("on-"), "hooks: {r}");
    }

    // Traffic by state, and the 5xx rate or word that it is not exported.
    assert!(dom.contains("<tr data-state=\"miss\""), "{dom}");
    let err_rate = element(dom, "id=\"err-rate\"", "</div>");
    assert!(
        !err_rate.contains('\u{2014}'),
        "no 5xx rate after two samples: {err_rate}"
    );

    // Names as plain text, never as JSON strings.
    for name in ["app", "legacy", "spare", "pool", "cache-policy"] {
        for quoted in [format!(">\"{name}\""), format!("&quot;{name}&quot;")] {
            assert!(!dom.contains(&quoted), "{quoted} in the page:\n{dom}");
        }
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = Origin::start(|_| Reply::ok("page")).await;
    let l = Lacquer::with_origin(&app.url(), "").await;

    let get = l.admin("GET", "/metrics", "").await;
    assert_eq!(get.status, 200);
    // prometheus-client writes OpenMetrics text, and the type says so.
    assert_eq!(
        get.header("content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(get.text().ends_with("# EOF\n"), "{}", get.text());
    let head = l.admin("HEAD", "/metrics", "").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert!(head.body.is_empty());

    for path in ["/", "/status", "/backends", "/fetch-errors", "/bans"] {
        let get = l.admin("GET", path, "").await;
        let head = l.admin("HEAD", path, "").await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-type"), get.header("content-type"));
        assert!(!head.header("content-length").is_empty(), "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path}");
    }
    let page = l.admin("GET", "/", "").await;
    let head = l.admin("HEAD", "/", "").await;
    assert_eq!(head.header("content-length"), page.body.len().to_string());
    assert_eq!(
        head.header("content-security-policy"),
        page.header("content-security-policy")
    );
    assert_eq!(
        l.admin("HEAD", "/purge", "").await.status,
        405,
        "HEAD is a GET, not a mutation"
    );

    // On the wire: the head and nothing after it.
    let admin = l.server.admin_addr().expect("admin listener");
    let wire = raw::exchange(
        admin,
        b"HEAD /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status_of(&wire), 200, "{wire}");
    assert!(wire.ends_with("\r\n\r\n"), "bytes after the head: {wire:?}");
    assert!(
        wire.to_ascii_lowercase().contains("content-length: "),
        "{wire}"
    );
}
