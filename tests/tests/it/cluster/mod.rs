//! `[cluster]`: several real hosts sharing a real `redis-server` (on a Unix
//! socket in a temp dir, no port to pick). Nodes listen on ports picked
//! free by binding them first: every node must know the others' URLs
//! before it starts.

mod fanout;
mod faults;
mod limits;
mod shard;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lacquer_tests::{Lacquer, TempDir, wait_until};

/// The hop secret every test node shares.
pub const SECRET: &str = "test-secret-0123456789";

/// A real `redis-server` on a Unix socket, without persistence: a restart
/// comes back empty. Killed when dropped.
pub struct Redis {
    child: Option<Child>,
    dir: TempDir,
}

impl Redis {
    /// Start one and wait until it answers.
    pub async fn start() -> Redis {
        let dir = TempDir::new();
        let mut r = Redis { child: None, dir };
        r.spawn().await;
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.path.join("redis.sock")
    }

    /// `redis+unix:///…/redis.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(&self.dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        let sock = self.socket();
        wait_until(Duration::from_secs(10), "redis-server answers", || {
            let sock = sock.clone();
            async move { Self::ping(&sock).await }
        })
        .await;
    }

    async fn ping(sock: &std::path::Path) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::UnixStream::connect(sock).await else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// Kill it (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Start it again on the same socket, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Run one command through `redis-cli` and return its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` free loopback ports, held at once so that they differ, then let go.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A node's config: one backend at `origin`, `[cluster]` over `nodes`.
pub fn node_config(origin: &str, nodes: &[String], me: usize, redis: &str, extra: &str) -> String {
    let list: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
[[backends]]\nname = \"app\"\nurl = \"{origin}\"\n\
{extra}\n\
[cluster]\nnodes = [{}]\nself = \"{}\"\nredis = \"{redis}\"\nsecret = \"{SECRET}\"\n",
        list.join(", "),
        nodes[me],
    )
}

/// Start `n` nodes in front of `origin` on `redis`; `cluster_extra` is
/// added to `[cluster]`, `extra` before it (plugins). Retries with other
/// ports if one was taken meanwhile.
pub async fn start_nodes(
    n: usize,
    origin: &str,
    redis: &str,
    extra: &str,
    cluster_extra: &str,
) -> Vec<Lacquer> {
    'again: for _ in 0..5 {
        let ports = free_ports(n);
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut toml = node_config(origin, &urls, i, redis, extra) + cluster_extra;
            if !cluster_extra.contains("heartbeat") {
                toml += "heartbeat = \"100ms\"\n";
            }
            match Lacquer::start_at(&toml, &format!("127.0.0.1:{port}")).await {
                Ok(l) => nodes.push(l),
                Err(e) if e.to_string().contains("cannot listen") => continue 'again,
                Err(e) => panic!("node {i} starts: {e:#}"),
            }
        }
        return nodes;
    }
    panic!("no free ports for {n} nodes");
}

/// `/status`'s `cluster` section of a node.
pub async fn cluster_status(l: &Lacquer) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&l.admin("GET", "/status", "").await.text()).expect("status is JSON");
    s["cluster"].clone()
}

/// Wait until every node sees `n` nodes alive.
pub async fn wait_formed(nodes: &[Lacquer], n: usize) {
    for (i, l) in nodes.iter().enumerate() {
        wait_until(
            Duration::from_secs(10),
            &format!("node {i} sees {n} nodes"),
            || async {
                l.metric("lacquer_cluster_nodes_up").await == n as f64
                    && cluster_status(l).await["last_stream_id"].is_string()
            },
        )
        .await;
    }
}

/// GET `path` on a node with the Host every test uses (nodes key objects
/// by host: the same host on every node makes the same key).
pub async fn get(l: &Lacquer, path: &str) -> lacquer_tests::Got {
    l.request("GET", path, &[("host", "site.example")], "")
        .await
}

/// `lacquer_cluster_invalidations_total{direction}` of a node.
pub async fn invalidations(l: &Lacquer, direction: &str) -> f64 {
    l.metric(&format!(
        "lacquer_cluster_invalidations_total{{direction=\"{direction}\"}}"
    ))
    .await
}

/// `lacquer_cluster_fallbacks_total{what}` of a node.
pub async fn fallbacks(l: &Lacquer, what: &str) -> f64 {
    l.metric(&format!(
        "lacquer_cluster_fallbacks_total{{what=\"{what}\"}}"
    ))
    .await
}

/// An origin answering `v1`, `v2`… (its request count), fresh for an hour.
pub async fn versioned() -> lacquer_tests::Origin {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    lacquer_tests::Origin::start(move |_| {
        let v = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        lacquer_tests::Reply::ok(&format!("v{v}")).header("cache-control", "max-age=3600")
    })
    .await
}
