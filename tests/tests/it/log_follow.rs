//! `GET /log` and `lacquer log`: the access log followed live from the
//! admin API, filtered on the host, with the access log itself off.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lacquer_tests::{Lacquer, Origin, ParkedPort, Reply, lacquer_bin};
use tokio::sync::mpsc;

/// How long any one awaited line may take.
const WAIT: Duration = Duration::from_secs(20);

/// An origin as `app` and a port nobody listens on as `dead` (requests
/// under `/dead` go there), no access log, and `extra` TOML.
async fn host(extra: &str) -> (Lacquer, Origin, ParkedPort) {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let dead = ParkedPort::new();
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{extra}\n[server]\ndefault_backend = \"app\"\n\
         [[backends]]\nname = \"app\"\nurl = \"{}\"\n\
         [[backends]]\nname = \"dead\"\nurl = \"{}\"\n\
         [[plugins]]\nname = \"router\"\nbuiltin = \"router\"\nconfig = {{ rules = [{{ path_prefix = \"/dead\", backend = \"dead\" }}] }}\n\
         [log]\naccess = \"off\"\n",
        origin.url(),
        dead.url()
    );
    (Lacquer::start(&toml).await.unwrap(), origin, dead)
}

/// An open `GET /log...` stream, read a line at a time.
struct Stream {
    body: Incoming,
    buf: Vec<u8>,
}

impl Stream {
    async fn open(l: &Lacquer, path: &str, token: Option<&str>) -> (u16, String, Stream) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let addr = l.server.admin_addr().unwrap();
        let mut req = Request::get(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = tokio::time::timeout(WAIT, client.request(req.body(Empty::new()).unwrap()))
            .await
            .expect("GET /log answers")
            .expect("GET /log succeeds");
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let body = resp.into_body();
        (
            status,
            ct,
            Stream {
                body,
                buf: Vec::new(),
            },
        )
    }

    /// The next line, `None` at the end of the stream.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(line).unwrap().trim_end().to_owned());
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("a line within the wait")?
                .expect("the stream does not break");
            if let Ok(d) = frame.into_data() {
                self.buf.extend_from_slice(&d);
            }
        }
    }

    /// Records, in order, up to and including the one with request id `id`.
    async fn until(&mut self, id: &str) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await.expect("the stream goes on");
            let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
            let done = v["id"] == id;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_only_streams_the_failed_request_and_not_the_good_one() {
    let (l, _origin, _dead) = host("").await;
    let (status, ct, mut all) = Stream::open(&l, "/log", None).await;
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
    let (status, _, mut errors) = Stream::open(&l, "/log?errors=1", None).await;
    assert_eq!(status, 200);

    let good = l.get("/page").await;
    let failed = l.get("/dead/x").await;
    assert_eq!((good.status, failed.status), (200, 503));
    let (good_id, failed_id) = (good.header("x-request-id"), failed.header("x-request-id"));
    // The unfiltered follower sees both, the good one first.
    let ids: Vec<_> = all
        .until(failed_id)
        .await
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [good_id, failed_id], "with [log] access = \"off\"");

    // One more failure marks the end: every record sent before it has
    // reached each follower in the same order.
    let marker = l.get("/dead/y").await;
    let seen = errors.until(marker.header("x-request-id")).await;
    assert_eq!(seen.len(), 2, "only the failures: {seen:#?}");
    assert_eq!(seen[0]["id"], failed_id);
    assert_eq!(seen[0]["url"], "/dead/x");
    assert_eq!(seen[0]["status"], 503);
    assert_eq!(seen[0]["backend"], "dead");
    assert_eq!(seen[0]["fetch_error"], "connect-refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_combine_and_a_closing_host_ends_the_stream() {
    let (l, _origin, _dead) = host("").await;
    let (status, ct, mut s) =
        Stream::open(&l, "/log?url=%5E%2Fdead%2Fb&format=combined", None).await;
    assert_eq!((status, ct.as_str()), (200, "text/plain; charset=utf-8"));
    for path in ["/dead/a", "/page", "/dead/b"] {
        l.get(path).await;
    }
    let line = s.line().await.unwrap();
    assert!(
        line.contains("\"GET /dead/b HTTP/1.1\" 503 ")
            && line.contains(" backend=dead fetch_error=connect-refused "),
        "{line}"
    );
    let bad = l.admin("GET", "/log?url=(", "").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("url"), "{}", bad.text());

    l.server.shared().access.get().unwrap().close_followers();
    assert_eq!(s.line().await, None, "the stream ends at shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_log_needs_it() {
    let (l, _origin, _dead) = host("token = \"s3cret\"").await;
    // Opened as a stream: a host that wrongly let it through would not end it.
    let (status, _, mut refused) = Stream::open(&l, "/log", None).await;
    assert_eq!(status, 401);
    let mut why = String::new();
    while let Some(l) = refused.line().await {
        why.push_str(&l);
    }
    assert!(why.contains("Authorization: Bearer"), "{why}");
    let (status, _, _s) = Stream::open(&l, "/log", Some("s3cret")).await;
    assert_eq!(status, 200);
}

/// Each line `r` gives, on a channel, from a thread of its own.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Kills the child however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lacquer_log_prints_failures_in_combined_format_until_killed() {
    let (l, _origin, _dead) = host("").await;
    let admin = format!("http://{}", l.server.admin_addr().unwrap());
    let bin = tokio::task::spawn_blocking(lacquer_bin).await.unwrap();
    let mut child = Killed(
        Command::new(bin)
            .args(["log", "--errors", "--admin", &admin])
            .env_remove("LACQUER_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run lacquer log"),
    );
    let mut out = lines(child.0.stdout.take().unwrap());
    let mut err = lines(child.0.stderr.take().unwrap());
    // Connected (and so subscribed) before the requests are sent.
    let note = tokio::time::timeout(WAIT, err.recv())
        .await
        .expect("lacquer log connects");
    assert_eq!(
        note.as_deref(),
        Some(format!("following {admin}/log?format=combined&errors=1").as_str())
    );

    assert_eq!(l.get("/page").await.status, 200);
    let failed = l.get("/dead/x").await;
    assert_eq!(failed.status, 503);
    let line = tokio::time::timeout(WAIT, out.recv())
        .await
        .expect("a line within the wait")
        .expect("lacquer log keeps running");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("\"GET /dead/x HTTP/1.1\" 503 "),
        "the good request is filtered out: {line}"
    );
    assert!(
        line.contains(&format!(" id={} ", failed.header("x-request-id")))
            && line.contains(" backend=dead fetch_error=connect-refused "),
        "{line}"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "still following");
}
