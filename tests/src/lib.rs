//! Test harness: a real Lacquer host and real origin servers on `127.0.0.1:0`
//! (or Unix domain sockets), talking real HTTP. Everything shuts down when
//! its guard is dropped.
//!
//! The host reads `LACQUER_<SECTION>__<KEY>` overrides from the environment
//! whenever it parses a config; [`Lacquer::start`] removes every `LACQUER_*`
//! variable first, so what a test configures is what it gets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;

mod origin;
pub mod poll;
pub mod raw;
pub mod tls;
pub mod transport;

pub use origin::{Gate, Handler, Origin, ParkedPort, Progress, Reply, Seen, TempDir, UnixOrigin};
pub use poll::wait_until;
pub use transport::{AnyOrigin, Parked, Transport};

/// Paths of the test guest plugins and the example plugin, built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Remove every `LACQUER_*` variable from this process's environment, so
/// that no override from the shell running the tests reaches a config.
/// Called by [`Lacquer::start`] before each config is parsed.
pub fn clear_lacquer_env() {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LACQUER_") {
            // SAFETY: std's own environment accesses take its env lock, and
            // the host reads the environment only through std; nothing in
            // these tests reads it through libc while this runs.
            #[allow(unsafe_code)]
            unsafe {
                std::env::remove_var(&k)
            };
        }
    }
}

/// A response as the client got it.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Got {
    /// A header as text ("" if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A running Lacquer with its config written to a temp dir.
pub struct Lacquer {
    /// The server.
    pub server: lacquer::Server,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    /// Directory holding the config file.
    pub dir: std::path::PathBuf,
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(l) = LOGS.get() {
            l.lock().unwrap().extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture the host's log lines (once per test binary).
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
        Arc::new(Mutex::new(Vec::new()))
    });
}

/// Every log line captured so far that contains `needle`.
pub fn log_lines(needle: &str) -> Vec<String> {
    let l = LOGS
        .get()
        .map(|l| l.lock().unwrap().clone())
        .unwrap_or_default();
    String::from_utf8_lossy(&l)
        .lines()
        .filter(|x| x.contains(needle))
        .map(str::to_owned)
        .collect()
}

pub(crate) static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Lacquer {
    /// Start with a config (TOML) written to a fresh temp dir; `[server]
    /// listen` is forced to 127.0.0.1:0 (`[admin] listen` is the config's:
    /// tests write `127.0.0.1:0`).
    pub async fn start(toml: &str) -> anyhow::Result<Lacquer> {
        Self::start_at(toml, "127.0.0.1:0").await
    }

    /// Like [`Lacquer::start`], the client listener forced to `listen`
    /// instead (nodes of a cluster must know each other's URLs before
    /// they start).
    pub async fn start_at(toml: &str, listen: &str) -> anyhow::Result<Lacquer> {
        capture_logs();
        clear_lacquer_env();
        let dir = std::env::temp_dir().join(format!(
            "lacquer-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("lacquer.toml");
        std::fs::write(&path, toml)?;
        let started = lacquer::Server::start(lacquer::ConfigSource {
            path: Some(path),
            listen: Some(listen.into()),
            backend: None,
        })
        .await;
        let server = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Ok(Lacquer {
            server,
            client,
            dir,
        })
    }

    /// A config with one backend at `origin` and the given extra TOML.
    pub async fn with_origin(origin: &str, extra: &str) -> Lacquer {
        let toml = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{origin}\"\n{extra}"
        );
        Lacquer::start(&toml).await.expect("lacquer starts")
    }

    /// Rewrite the config file (for reload tests).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.dir.join("lacquer.toml"), toml).unwrap();
    }

    /// Send a request through the proxy.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        self.send(self.server.addr(), method, path, headers, body)
            .await
    }

    /// GET through the proxy, returning as soon as the response head
    /// arrives: the body is read (or dropped) by the caller.
    pub async fn stream(&self, path: &str) -> Response<Incoming> {
        let req = Request::get(format!("http://{}{path}", self.server.addr()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("proxy answers within 30 s")
            .expect("request succeeds")
    }

    /// GET through the proxy.
    pub async fn get(&self, path: &str) -> Got {
        self.request("GET", path, &[], "").await
    }

    /// Send a request to the admin listener.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Got {
        let addr = self.server.admin_addr().expect("admin listener configured");
        self.send(addr, method, path, &[], body).await
    }

    /// Send a request to the admin listener (on 127.0.0.1 when it is bound
    /// to every address) with extra headers, e.g. `authorization`.
    pub async fn admin_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        let mut addr = self.server.admin_addr().expect("admin listener configured");
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        self.send(addr, method, path, headers, body).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("proxy answers within 30 s")
            .expect("request succeeds");
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Got {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl Drop for Lacquer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- Helpers for backend tests (timeouts, failures, health) ----

/// A response whose body may have been cut short, and how long it took.
#[derive(Debug)]
pub struct Tried {
    /// Status, headers and whatever body arrived.
    pub got: Got,
    /// Why the body stopped early, if it did.
    pub body_error: Option<String>,
    /// From sending the request to the end (or failure) of the body.
    pub elapsed: Duration,
}

impl Lacquer {
    /// Send a request through the proxy with a client-side `timeout` for the
    /// whole exchange. Unlike [`Lacquer::request`] it reports failures:
    /// `Err` when no response head arrived (or the timeout hit), and a cut
    /// body as [`Tried::body_error`].
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        timeout: Duration,
    ) -> Result<Tried, String> {
        let start = std::time::Instant::now();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.server.addr()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("request: {e:?}"))?;
            let (parts, mut body) = resp.into_parts();
            let mut data = Vec::new();
            let mut body_error = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(d) = f.into_data() {
                            data.extend_from_slice(&d);
                        }
                    }
                    Err(e) => {
                        body_error = Some(format!("{e:?}"));
                        break;
                    }
                }
            }
            Ok::<_, String>((parts, data, body_error))
        };
        let (parts, data, body_error) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no complete answer within {timeout:?}"))??;
        Ok(Tried {
            got: Got {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: Bytes::from(data),
            },
            body_error,
            elapsed: start.elapsed(),
        })
    }

    /// A series from the admin `/metrics`, written exactly as exported
    /// (name and labels, e.g. `lacquer_fetch_failures_total{backend="app",kind="connect-refused"}`);
    /// 0 when the series is absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin("GET", "/metrics", "").await.text();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// `lacquer_fetch_failures_total{backend,kind}`.
    pub async fn fetch_failures(&self, backend: &str, kind: &str) -> f64 {
        self.metric(&format!(
            "lacquer_fetch_failures_total{{backend=\"{backend}\",kind=\"{kind}\"}}"
        ))
        .await
    }

    /// `lacquer_plugin_faults_total{plugin,hook,kind}` (hook as exported, e.g. `on-recv`).
    pub async fn plugin_faults(&self, plugin: &str, hook: &str, kind: &str) -> f64 {
        self.metric(&format!(
            "lacquer_plugin_faults_total{{plugin=\"{plugin}\",hook=\"{hook}\",kind=\"{kind}\"}}"
        ))
        .await
    }

    /// `lacquer_plugin_calls_total{plugin,hook}`.
    pub async fn plugin_calls(&self, plugin: &str, hook: &str) -> f64 {
        self.metric(&format!(
            "lacquer_plugin_calls_total{{plugin=\"{plugin}\",hook=\"{hook}\"}}"
        ))
        .await
    }

    /// Requests that reached a plugin's hook: the calls made plus those the
    /// plugin declined with `skip-recv-for` (counted, not called).
    pub async fn plugin_reached(&self, plugin: &str, hook: &str) -> f64 {
        let skipped = self
            .metric(&format!(
                "lacquer_plugin_skipped_total{{plugin=\"{plugin}\",hook=\"{hook}\"}}"
            ))
            .await;
        self.plugin_calls(plugin, hook).await + skipped
    }

    /// Admin `GET /backends`, parsed.
    pub async fn backends(&self) -> serde_json::Value {
        let r = self.admin("GET", "/backends", "").await;
        serde_json::from_slice(&r.body).expect("GET /backends answers JSON")
    }

    /// Admin `POST /backends/{name}/health` with `state` (auto, healthy or sick).
    pub async fn force_health(&self, backend: &str, state: &str) {
        let r = self
            .admin("POST", &format!("/backends/{backend}/health"), state)
            .await;
        assert_eq!(r.status, 200, "forcing {backend} {state}: {}", r.text());
    }
}

/// The `lacquer` binary of this build. The tests crate depends on the
/// library only, so Cargo does not build the binary for it: build it here
/// (a no-op when it is fresh), into the target directory this test runs from.
pub fn lacquer_bin() -> &'static std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target>/<profile>/deps/<test>-<hash>
        let exe = std::env::current_exe().expect("test binary path");
        let profile = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary under <target>/<profile>/deps");
        let target = profile.parent().expect("profile under a target directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "lacquer", "--bin", "lacquer"])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .env("CARGO_TARGET_DIR", target);
        if profile.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p lacquer: {status}");
        profile.join(format!("lacquer{}", std::env::consts::EXE_SUFFIX))
    })
}
