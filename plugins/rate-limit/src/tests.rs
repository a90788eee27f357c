use std::time::Duration;

use lacquer_plugin_sdk::{Plugin, RecvAction, Request, instantiate, testing};

use super::RateLimit;

fn limiter(config: &str) -> RateLimit {
    testing::set_now_ms(1_000_000);
    instantiate(config).unwrap()
}

fn status(plugin: &RateLimit, req: &Request<'_>) -> Option<u16> {
    match plugin.on_recv(req) {
        RecvAction::Continue => None,
        RecvAction::Synth(resp) => Some(resp.status),
        other => panic!("unexpected {other:?}"),
    }
}

fn from(addr: &str) -> Request<'static> {
    Request::builder().client_addr(addr).build()
}

#[test]
fn burst_then_429_with_retry_after() {
    let p = limiter(r#"{"requests_per_second": 0.5, "burst": 2}"#);
    assert_eq!(status(&p, &from("10.0.0.1:1000")), None);
    assert_eq!(
        status(&p, &from("10.0.0.1:1001")),
        None,
        "same IP, other port: same bucket"
    );
    let RecvAction::Synth(resp) = p.on_recv(&from("10.0.0.1:1002")) else {
        panic!("expected 429")
    };
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header_value("retry-after"), Some("2"));
    assert_eq!(
        resp.header_value("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(status(&p, &from("10.0.0.2:1000")), None, "another client");
    testing::advance(Duration::from_secs(2));
    assert_eq!(status(&p, &from("10.0.0.1:1003")), None, "refilled");
}

#[test]
fn retry_after_is_at_least_one_second() {
    let p = limiter(r#"{"requests_per_second": 100}"#);
    for _ in 0..100 {
        assert_eq!(status(&p, &from("[::1]:1")), None);
    }
    let RecvAction::Synth(resp) = p.on_recv(&from("[::1]:1")) else {
        panic!("expected 429")
    };
    assert_eq!(resp.header_value("retry-after"), Some("1"));
}

#[test]
fn burst_defaults_to_the_rate_rounded_up() {
    let p = limiter(r#"{"requests_per_second": 2.5}"#);
    for _ in 0..3 {
        assert_eq!(status(&p, &from("10.0.0.1:1")), None);
    }
    assert_eq!(status(&p, &from("10.0.0.1:1")), Some(429));
    let p = limiter(r#"{"requests_per_second": 0.1}"#);
    assert_eq!(status(&p, &from("10.0.0.9:1")), None);
    assert_eq!(status(&p, &from("10.0.0.9:1")), Some(429));
}

#[test]
fn header_keys_fall_back_to_the_client_ip() {
    let p = limiter(r#"{"requests_per_second": 1, "key": "header:X-Api-Key"}"#);
    let keyed = |key: &str, addr: &str| {
        Request::builder()
            .header("x-api-key", key)
            .client_addr(addr)
            .build()
    };
    assert_eq!(status(&p, &keyed("alice", "10.0.0.1:1")), None);
    assert_eq!(
        status(&p, &keyed("alice", "10.0.0.2:1")),
        Some(429),
        "same key, other IP"
    );
    assert_eq!(status(&p, &keyed("bob", "10.0.0.1:1")), None);
    assert_eq!(
        status(&p, &from("10.0.0.1:1")),
        None,
        "no header: IP bucket"
    );
    assert_eq!(status(&p, &from("10.0.0.1:2")), Some(429));
}

#[test]
fn bad_config_is_refused() {
    let err = |config: &str| instantiate::<RateLimit>(config).err().unwrap();
    assert!(err("{}").contains("missing field `requests_per_second`"));
    assert!(err(r#"{"requests_per_second": 0}"#).starts_with("requests_per_second:"));
    assert!(err(r#"{"requests_per_second": -1}"#).starts_with("requests_per_second:"));
    assert!(err(r#"{"requests_per_second": 1, "burst": 0}"#).starts_with("burst:"));
    assert!(err(r#"{"requests_per_second": 1, "key": "cookie:a"}"#).starts_with("key:"));
    assert!(err(r#"{"requests_per_second": 1, "key": "header:"}"#).starts_with("key:"));
    assert!(err(r#"{"requests_per_second": 1, "brust": 3}"#).contains("unknown field"));
}
