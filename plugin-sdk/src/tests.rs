use std::time::Duration;

use serde::Deserialize;

use crate::__private::{Export, Hooks};
use crate::*;

#[test]
fn contract_version_matches_the_wit_package() {
    let wit = include_str!("../../wit/plugin.wit");
    let package = format!("package lacquer:plugin@{CONTRACT_VERSION};");
    assert!(
        wit.lines().any(|line| line.trim() == package),
        "wit/plugin.wit does not declare {package}"
    );
}

#[test]
fn request_reads_and_edits() {
    let req = Request::builder()
        .method("GET")
        .url("/a/b?x=1")
        .header("Host", "Example.COM:8080")
        .header("cookie", "a=1")
        .header("Accept", "text/html")
        .header("accept", "application/json")
        .client_addr("1.2.3.4:5")
        .id("req-1")
        .build();
    assert_eq!(req.method(), "GET");
    assert_eq!(req.url(), "/a/b?x=1");
    assert_eq!(req.path(), "/a/b");
    assert_eq!(req.host(), "example.com");
    assert_eq!(req.header("COOKIE").as_deref(), Some("a=1"));
    assert_eq!(req.header_all("accept"), ["text/html", "application/json"]);
    assert_eq!(req.header_names(), ["host", "cookie", "accept"]);
    assert_eq!(req.client_addr(), "1.2.3.4:5");
    assert_eq!(req.client_ip(), Some("1.2.3.4".parse().unwrap()));
    assert_eq!(req.id(), "req-1");

    req.set_method("PURGE").unwrap();
    req.set_url("/new").unwrap();
    req.set_header("Cookie", "b=2").unwrap();
    req.append_header("x-tag", "1").unwrap();
    req.append_header("x-tag", "2").unwrap();
    req.remove_header("accept");
    req.add_cache_key("mobile");
    assert_eq!(req.method(), "PURGE");
    assert_eq!(req.url(), "/new");
    assert_eq!(req.header_all("cookie"), ["b=2"]);
    assert_eq!(req.header_all("x-tag"), ["1", "2"]);
    assert_eq!(req.header("accept"), None);
    assert_eq!(req.cache_key_inputs(), ["mobile"]);
}

#[test]
fn request_edits_are_validated_like_the_host() {
    let req = Request::builder().build();
    assert!(req.set_header("x-a", "one\r\ntwo").is_err());
    assert!(req.set_header("bad name", "v").is_err());
    assert!(req.append_header("", "v").is_err());
    assert!(req.set_url("no-slash").is_err());
    assert!(req.set_method("GE T").is_err());
    assert!(req.set_backend("api").is_err(), "undeclared backend");
    testing::add_backend("api", false);
    req.set_backend("api").unwrap();
    assert_eq!(req.backend().as_deref(), Some("api"));
}

#[test]
fn client_ip_forms() {
    let ip = |addr: &str| Request::builder().client_addr(addr).build().client_ip();
    assert_eq!(ip("[::1]:80"), Some("::1".parse().unwrap()));
    assert_eq!(ip("::1"), Some("::1".parse().unwrap()));
    assert_eq!(
        ip("[::ffff:10.0.0.1]:80"),
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(ip("10.0.0.2"), Some("10.0.0.2".parse().unwrap()));
    assert_eq!(ip("unix:/tmp/sock"), None);
}

#[test]
fn response_reads_and_edits() {
    let resp = Response::builder()
        .status(200)
        .header("Set-Cookie", "a=1")
        .header("set-cookie", "b=2")
        .build();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header_all("set-cookie"), ["a=1", "b=2"]);
    resp.set_status(404).unwrap();
    assert!(resp.set_status(42).is_err());
    resp.set_header("x-cache", "HIT").unwrap();
    resp.remove_header("set-cookie");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.header_names(), ["x-cache"]);
    assert!(resp.set_header("x-a", "nul\0").is_err());
}

#[test]
fn synth_helpers_set_content_type() {
    let html = SynthResponse::html(503, "<p>down</p>");
    assert_eq!(
        html.header_value("content-type"),
        Some("text/html; charset=utf-8")
    );
    let json = SynthResponse::json(429, &serde_json::json!({"a": 1}));
    assert_eq!(json.body_str(), Some(r#"{"a":1}"#));
    assert_eq!(json.header_value("Content-Type"), Some("application/json"));
    let text = SynthResponse::text(200, "ok").header("x-a", "1");
    assert_eq!(text.headers.len(), 2);
    assert_eq!(text.status, 200);
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Config {
    name: String,
    limit: u32,
    #[serde(deserialize_with = "crate::config::duration")]
    ttl: Duration,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Rule {
    backend: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".into(),
            limit: 10,
            ttl: Duration::from_secs(120),
            rules: Vec::new(),
        }
    }
}

#[test]
fn empty_config_uses_defaults() {
    for empty in ["", "  ", "{}", "null"] {
        assert_eq!(
            parse_config::<Config>(empty).unwrap(),
            Config::default(),
            "{empty:?}"
        );
    }
    assert_eq!(parse_config::<NoConfig>("{}").unwrap(), NoConfig {});
}

#[test]
fn config_values_and_durations_parse() {
    let config: Config =
        parse_config(r#"{"name": "x", "ttl": "1m", "rules": [{"backend": "api"}]}"#).unwrap();
    assert_eq!(config.name, "x");
    assert_eq!(config.limit, 10);
    assert_eq!(config.ttl, Duration::from_secs(60));
    assert_eq!(
        config.rules,
        [Rule {
            backend: "api".into()
        }]
    );
    let config: Config = parse_config(r#"{"ttl": 5}"#).unwrap();
    assert_eq!(config.ttl, Duration::from_secs(5));
}

#[test]
fn config_errors_name_the_field() {
    let err = parse_config::<Config>(r#"{"limit": "many"}"#).unwrap_err();
    assert!(
        err.starts_with("invalid config: limit: invalid type"),
        "{err}"
    );
    let err = parse_config::<Config>(r#"{"rules": [{"backend": 1}]}"#).unwrap_err();
    assert!(
        err.starts_with("invalid config: rules[0].backend:"),
        "{err}"
    );
    let err = parse_config::<Config>(r#"{"nmae": "x"}"#).unwrap_err();
    assert!(err.contains("unknown field `nmae`"), "{err}");
    let err = parse_config::<Config>(r#"{"ttl": "soon"}"#).unwrap_err();
    assert!(
        err.starts_with("invalid config: ttl: invalid duration \"soon\""),
        "{err}"
    );
    let err = parse_config::<Config>(r#"{"rules": [{}]}"#).unwrap_err();
    assert!(err.contains("missing field `backend`"), "{err}");
    assert!(parse_config::<NoConfig>(r#"{"a": 1}"#).is_err());
    assert!(parse_config::<Config>("{} x").is_err());
}

struct Counter {
    limit: u32,
}

impl Plugin for Counter {
    type Config = Config;
    fn new(config: Config) -> Result<Self, String> {
        if config.limit == 0 {
            return Err("limit: must be at least 1".into());
        }
        Ok(Counter {
            limit: config.limit,
        })
    }
}

export!(Counter, hooks = [recv, deliver,]);

#[test]
fn instantiate_runs_new_and_defaults_do_nothing() {
    let plugin: Counter = instantiate("{}").unwrap();
    assert_eq!(plugin.limit, 10);
    assert_eq!(
        instantiate::<Counter>(r#"{"limit": 0}"#).err().unwrap(),
        "limit: must be at least 1"
    );
    let req = Request::builder().build();
    let resp = Response::builder().build();
    assert_eq!(plugin.on_recv(&req), RecvAction::Continue);
    let proposal = Proposal::cache(Duration::from_secs(60));
    assert_eq!(
        plugin.on_backend_response(&req, &resp, proposal.clone()),
        BackendResponseAction::Continue(proposal)
    );
    let error = FetchError::new(FetchErrorKind::ConnectRefused, "app");
    assert_eq!(
        plugin.on_fetch_error(&req, &error, true),
        FetchErrorAction::Continue
    );
    let info = DeliverInfo::new(CacheState::Hit);
    assert_eq!(
        plugin.on_deliver(&req, &resp, &info),
        DeliverAction::Continue
    );
}

#[test]
fn hook_sets_follow_the_wit_flag_order() {
    struct Listed;
    impl Export for Listed {
        type Plugin = Counter;
        const HOOKS: Hooks = Hooks::NONE
            .with(crate::__lacquer_hook!(backend_response))
            .with(crate::__lacquer_hook!(fetch_error));
    }
    assert_eq!(Listed::HOOKS.bits(), 0b0110);
    assert_eq!(Hooks::RECV.with(Hooks::DELIVER).bits(), 0b1001);
}

#[test]
fn kinds_and_states_have_contract_names() {
    let names: Vec<_> = FetchErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names[0], "connect-refused");
    assert_eq!(names[10], "connection-reset");
    assert_eq!(
        FetchErrorKind::BetweenBytesTimeout.to_string(),
        "between-bytes-timeout"
    );
    assert_eq!(CacheState::Stale.as_str(), "stale");
}

#[test]
fn in_memory_host_counters_kv_and_buckets() {
    testing::set_now_ms(1_000_000);
    assert_eq!(host::now_ms(), 1_000_000);
    assert_eq!(host::counter_add("hits", 1, Duration::from_secs(1)), 1);
    assert_eq!(host::counter_add("hits", 2, Duration::from_secs(1)), 3);
    testing::advance(Duration::from_secs(2));
    assert_eq!(
        host::counter_add("hits", 1, Duration::from_secs(1)),
        1,
        "expired"
    );

    host::kv_set("k", b"v", Duration::from_secs(1)).unwrap();
    assert_eq!(host::kv_get("k").as_deref(), Some(&b"v"[..]));
    testing::advance(Duration::from_secs(1));
    assert_eq!(host::kv_get("k"), None);

    assert_eq!(host::take_token("ip", 2.0, 2), Ok(()));
    assert_eq!(host::take_token("ip", 2.0, 2), Ok(()));
    assert_eq!(
        host::take_token("ip", 2.0, 2),
        Err(Duration::from_millis(500))
    );
    testing::advance(Duration::from_millis(500));
    assert_eq!(host::take_token("ip", 2.0, 2), Ok(()));

    assert!(!host::debug_headers());
    testing::set_debug_headers(true);
    assert!(host::debug_headers());
    host::log(Level::Warn, "careful");
    assert_eq!(testing::logs(), [(Level::Warn, "careful".to_owned())]);
    testing::reset();
    assert!(testing::logs().is_empty());
    assert!(!host::debug_headers());
}
