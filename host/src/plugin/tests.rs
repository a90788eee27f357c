//! The chain without sockets: the bundled plugins, loaded as the server
//! loads them, run over requests built in the test.

use std::sync::Arc;

use http::{HeaderValue, Method, header};

use super::chain::{Chain, RecvDecision};
use super::host_api::PluginEnv;
use super::kv::KvStore;
use super::runtime::LoadedPlugin;
use super::{LogBudget, ReqState};
use crate::backend::{Backends, HealthRegistry};
use crate::cache::Cache;
use crate::config::{Config, PluginSource};
use crate::metrics::Metrics;

/// A chain of the plugins a config names, as `Shared::build` makes it.
async fn chain(plugins: &str) -> (Chain, Arc<Metrics>) {
    let cfg = Config::from_toml(
        &format!("[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n{plugins}"),
        "t",
        None,
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let cache = Cache::new(1 << 20, 4, 100, metrics.clone());
    let backends = Backends::build(&cfg, &HealthRegistry::default());
    let kv = KvStore::default();
    let mut loaded = Vec::new();
    for p in &cfg.plugins {
        let PluginSource::Builtin(b) = &p.source else {
            panic!("tests use the bundle");
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
        let bytes = crate::bundle::bytes(b).unwrap();
        loaded.push(Arc::new(
            LoadedPlugin::load(p, bytes, env, 100, None, pm)
                .await
                .unwrap(),
        ));
    }
    (Chain::new(loaded), metrics)
}

fn request(method: Method, cookie: Option<&str>) -> Box<ReqState> {
    let mut r = ReqState {
        method,
        host: "example.com".into(),
        ..ReqState::default()
    };
    if let Some(c) = cookie {
        r.headers
            .insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
    }
    Box::new(r)
}

#[tokio::test]
async fn the_default_bundle_decides_on_recv() {
    let (chain, metrics) = chain("").await;
    let mut get = request(Method::GET, None);
    assert!(matches!(
        chain.on_recv(&mut get).await.unwrap(),
        RecvDecision::Default
    ));
    let mut post = request(Method::POST, None);
    assert!(matches!(
        chain.on_recv(&mut post).await.unwrap(),
        RecvDecision::Pass
    ));
    let mut cookie = request(Method::GET, Some("session=1"));
    assert!(matches!(
        chain.on_recv(&mut cookie).await.unwrap(),
        RecvDecision::Pass
    ));
    let calls = metrics.encode();
    // The plain GET is one cache-policy declined with skip-recv-for: it
    // is counted as skipped, not called.
    assert!(
        calls.contains("lacquer_plugin_calls_total{plugin=\"cache-policy\",hook=\"on-recv\"} 2"),
        "{calls}"
    );
    assert!(
        calls.contains("lacquer_plugin_skipped_total{plugin=\"cache-policy\",hook=\"on-recv\"} 1"),
        "{calls}"
    );
    // error-pages implements no on-recv: it is never called for it.
    assert!(
        calls.contains("lacquer_plugin_calls_total{plugin=\"error-pages\",hook=\"on-recv\"} 0"),
        "{calls}"
    );
}

#[tokio::test]
async fn the_first_terminal_decision_wins() {
    // rate-limit with a burst of 1 answers 429 on the second request, before
    // cache-policy (later in the chain) is asked.
    let (chain, metrics) = chain(
        "[[plugins]]\nname = \"rl\"\nbuiltin = \"rate-limit\"\nconfig = { requests_per_second = 0.01, burst = 1 }\n[[plugins]]\nname = \"cp\"\nbuiltin = \"cache-policy\"\n",
    )
    .await;
    let mut first = request(Method::POST, None);
    assert!(matches!(
        chain.on_recv(&mut first).await.unwrap(),
        RecvDecision::Pass
    ));
    let mut second = request(Method::POST, None);
    match chain.on_recv(&mut second).await.unwrap() {
        RecvDecision::Synth(s) => assert_eq!(s.status, 429),
        other => panic!("expected a 429, got {other:?}"),
    }
    let m = metrics.encode();
    assert!(
        m.contains("lacquer_plugin_calls_total{plugin=\"cp\",hook=\"on-recv\"} 1"),
        "{m}"
    );
}
