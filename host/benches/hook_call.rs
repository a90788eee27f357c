//! What one hook call costs inside the host, without sockets: the default
//! bundle's `on-recv` for a plain GET (which `cache-policy` skips, see
//! `skip-recv-for`) and for a GET with a cookie (which calls it), and, with
//! `PROBE=path.wasm`, the bench probe plugin with no host calls, each called
//! in a loop through the real chain.
//!
//!   cargo bench -p lacquer --bench hook_call
//!   PROBE=target/bench-probe/wasm32-wasip2/release/lacquer_bench_probe.wasm cargo bench -p lacquer --bench hook_call
//!
//! `ROUNDS=N` sets the rounds (15); `ONLY_PROBE=1` measures only the probe,
//! e.g. under `perf record`.
//!
//! Prints the median over rounds of ns per call; `bench/hook-cost.sh` measures
//! the same through a running server.

use std::sync::Arc;
use std::time::Instant;

use http::Method;
use lacquer::backend::{Backends, HealthRegistry};
use lacquer::cache::Cache;
use lacquer::config::{Config, PluginSource};
use lacquer::metrics::Metrics;
use lacquer::plugin::host_api::PluginEnv;
use lacquer::plugin::kv::KvStore;
use lacquer::plugin::runtime::LoadedPlugin;
use lacquer::plugin::{Chain, LogBudget, ReqState};

const CALLS: u32 = 10_000;

/// Rounds per chain: `ROUNDS` from the environment, else 15.
fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(15)
}

async fn chain(plugins: &str) -> Chain {
    let cfg = Config::from_toml(
        &format!("[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n{plugins}"),
        "bench",
        None,
    )
    .expect("bench config");
    let metrics = Arc::new(Metrics::new());
    let cache = Cache::new(1 << 20, 4, 100, metrics.clone());
    let backends = Backends::build(&cfg, &HealthRegistry::default());
    let kv = KvStore::default();
    let mut loaded = Vec::new();
    for p in &cfg.plugins {
        let bytes = match &p.source {
            PluginSource::Builtin(b) => lacquer::bundle::bytes(b).expect("bundled").to_vec(),
            PluginSource::Path(path) => std::fs::read(path).expect("plugin file"),
        };
        let pm = metrics.plugin(&p.section.name);
        let env = Arc::new(PluginEnv {
            name: p.section.name.as_str().into(),
            debug_headers: false,
            kv: kv.namespace(&p.section.name),
            backends: backends.clone(),
            cache: cache.clone(),
            log: LogBudget::new(pm.log_dropped.clone()),
            cluster: None,
            shared_kv: false,
        });
        loaded.push(Arc::new(
            LoadedPlugin::load(p, &bytes, env, u64::MAX, None, pm)
                .await
                .expect("plugin loads"),
        ));
    }
    Chain::new(loaded)
}

/// Mean ns per `on-recv` call of `CALLS` calls.
async fn round(chain: &Chain, req: &mut Box<ReqState>) -> f64 {
    let t = Instant::now();
    for _ in 0..CALLS {
        chain.on_recv(req).await.expect("call");
    }
    t.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// Rounds of every chain interleaved (so noise hits all alike), then the
/// median of each.
async fn measure(chains: &mut [(&str, Chain, Box<ReqState>)]) {
    let n = rounds();
    let mut rounds = vec![Vec::new(); chains.len()];
    for (_, c, req) in chains.iter_mut() {
        round(c, req).await;
    }
    for _ in 0..n {
        for (i, (_, c, req)) in chains.iter_mut().enumerate() {
            rounds[i].push(round(c, req).await);
        }
    }
    for ((label, _, _), mut r) in chains.iter().zip(rounds) {
        r.sort_by(f64::total_cmp);
        println!(
            "{label:<34} on-recv median {:>6.0} ns/call (min {:.0}, max {:.0})",
            r[n / 2],
            r[0],
            r[n - 1]
        );
    }
}

/// A GET for example.com, with these header fields.
fn get(headers: &[(&'static str, &'static str)]) -> Box<ReqState> {
    let mut req = ReqState {
        method: Method::GET,
        host: "example.com".into(),
        ..ReqState::default()
    };
    for (n, v) in headers {
        req.headers.append(*n, http::HeaderValue::from_static(v));
    }
    Box::new(req)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut chains = vec![
            (
                "default bundle, plain GET (skipped)",
                chain("").await,
                get(&[]),
            ),
            (
                "default bundle, GET with a cookie",
                chain("").await,
                get(&[("cookie", "a=1")]),
            ),
        ];
        if let Ok(probe) = std::env::var("PROBE") {
            let empty = format!("[[plugins]]\nname = \"probe\"\npath = \"{probe}\"\n");
            chains.push(("probe, no host calls", chain(&empty).await, get(&[])));
            // `ONLY_PROBE=1`: just the probe (to profile one call path).
            if std::env::var_os("ONLY_PROBE").is_some() {
                chains.drain(..2);
            }
        }
        measure(&mut chains).await;
    });
}
