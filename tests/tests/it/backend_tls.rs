//! Backends over HTTPS: real TLS origins (certificates from a CA the test
//! makes), caching through them, refused certificates as fetch errors with
//! their cause, `tls_verify = false` and its warning, client certificates,
//! probes over TLS, and the config checks of the TLS keys.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use lacquer_tests::tls::{Issued, TestCa, TlsOrigin, TlsSettings};
use lacquer_tests::{Lacquer, Reply, Seen, log_lines, wait_until};

use crate::backends::{
    PROBE, assert_branded_503, assert_logged, backend, get, health_origin, start, start_with,
};

fn settings<'a>(cert: &'a Issued) -> TlsSettings<'a> {
    TlsSettings {
        cert,
        alpn: &["http/1.1"],
        client_ca: None,
    }
}

fn cacheable(_: &Seen) -> Reply {
    Reply::ok("over tls").header("cache-control", "max-age=60")
}

fn ca_key(ca: &TestCa) -> String {
    format!("ca = \"{}\"", ca.pem.display())
}

/// The `/fetch-errors` entries of `backend`.
async fn fetch_errors(l: &Lacquer, backend: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&l.admin("GET", "/fetch-errors", "").await.body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["backend"] == backend)
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_https_backend_is_verified_and_cached_through() {
    let ca = TestCa::new("tls-cache CA");
    let cert = ca.issue("origin", &["localhost"]);
    let origin = TlsOrigin::start(settings(&cert), cacheable).await;
    let l = start(&[backend("tls-cache", &origin.url(), &ca_key(&ca))]).await;

    let first = get(&l, "/page").await.got;
    assert_eq!(first.status, 200, "{:?} {}", first.headers, first.text());
    assert_eq!(first.text(), "over tls");
    assert_eq!(first.header("x-cache"), "MISS");
    let second = get(&l, "/page").await.got;
    assert_eq!(second.text(), "over tls");
    assert_eq!(second.header("x-cache"), "HIT");
    assert_eq!(origin.hits(), 1, "the hit came from the cache");
    assert_eq!(origin.connections(), 1);
    let seen = origin.seen();
    assert_eq!(
        seen[0].version,
        http::Version::HTTP_11,
        "ALPN offered http/1.1 only"
    );
    assert_eq!(
        l.metric("lacquer_backend_requests_total{backend=\"tls-cache\",status=\"200\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_tls_certificate_failure() {
    let ca = TestCa::new("tls-name CA");
    let cert = ca.issue("origin", &["other.example"]);
    let origin = TlsOrigin::start(settings(&cert), cacheable).await;
    let l = start(&[backend("tls-name", &origin.url(), &ca_key(&ca))]).await;

    let r = get(&l, "/x").await;
    assert_branded_503(&r, "tls-certificate", "tls-name");
    assert_eq!(l.fetch_failures("tls-name", "tls-certificate").await, 1.0);
    assert_logged("tls-name", "tls-certificate");
    let errs = fetch_errors(&l, "tls-name").await;
    let detail = errs[0]["detail"].as_str().unwrap();
    assert_eq!(errs[0]["kind"], "tls-certificate");
    assert!(
        detail.contains("localhost") && detail.contains("not valid for name"),
        "{detail}"
    );
    assert_eq!(
        origin.hits(),
        0,
        "no request went over an unverified connection"
    );
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let trusted = TestCa::new("tls-ca trusted");
    let other = TestCa::new("tls-ca other");
    let cert = other.issue("origin", &["localhost"]);
    let origin = TlsOrigin::start(settings(&cert), cacheable).await;
    let l = start(&[backend("tls-ca", &origin.url(), &ca_key(&trusted))]).await;

    let r = get(&l, "/x").await;
    assert_branded_503(&r, "tls-certificate", "tls-ca");
    assert_eq!(l.fetch_failures("tls-ca", "tls-certificate").await, 1.0);
    let errs = fetch_errors(&l, "tls-ca").await;
    let detail = errs[0]["detail"].as_str().unwrap();
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn tls_verify_false_connects_and_warns_at_start_and_reload() {
    let ca = TestCa::new("tls-noverify CA");
    // Neither the CA nor the name would pass verification.
    let cert = ca.issue("origin", &["nobody.example"]);
    let origin = TlsOrigin::start(settings(&cert), cacheable).await;
    let l = start(&[backend("tls-noverify", &origin.url(), "tls_verify = false")]).await;

    let r = get(&l, "/x").await.got;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    assert_eq!(origin.hits(), 1);
    let warned = || {
        log_lines("backend tls-noverify: tls_verify = false")
            .iter()
            .filter(|l| l.contains("WARN"))
            .count()
    };
    assert_eq!(warned(), 1, "warned once at start");
    let reload = l.admin("POST", "/reload", "").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    assert_eq!(warned(), 2, "and again when the reload took effect");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let server_ca = TestCa::new("tls-client server CA");
    let client_ca = TestCa::new("tls-client client CA");
    let cert = server_ca.issue("origin", &["localhost"]);
    let client = client_ca.issue("lacquer-client", &["lacquer.test"]);
    let origin = TlsOrigin::start(
        TlsSettings {
            cert: &cert,
            alpn: &["http/1.1"],
            client_ca: Some(&client_ca),
        },
        cacheable,
    )
    .await;

    // Without one, the origin refuses the connection with an alert.
    let without = start(&[backend("tls-nocert", &origin.url(), &ca_key(&server_ca))]).await;
    let r = get(&without, "/x").await;
    assert_branded_503(&r, "tls-handshake", "tls-nocert");
    let errs = fetch_errors(&without, "tls-nocert").await;
    let detail = errs[0]["detail"].as_str().unwrap();
    assert!(detail.contains("CertificateRequired"), "{detail}");
    assert_eq!(origin.hits(), 0);
    drop(without);

    let extra = format!(
        "{}\nclient_cert = {{ chain = \"{}\", key = \"{}\" }}",
        ca_key(&server_ca),
        client.chain.display(),
        client.key.display()
    );
    let with = start(&[backend("tls-cert", &origin.url(), &extra)]).await;
    let r = get(&with, "/x").await.got;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    assert_eq!(origin.hits(), 1);
    assert_eq!(
        origin.client_certs().first(),
        Some(&client.cert),
        "the origin saw the configured client certificate"
    );
}

#[tokio::test]
async fn probes_run_over_tls_and_see_certificate_failures() {
    let ca = TestCa::new("tls-probe CA");
    let good = ca.issue("good", &["localhost"]);
    let bad = ca.issue("bad", &["elsewhere.example"]);
    let up = Arc::new(AtomicBool::new(true));
    let good_origin = TlsOrigin::start(settings(&good), health_origin(up.clone())).await;
    let bad_origin = TlsOrigin::start(settings(&bad), health_origin(up)).await;
    let probed = format!("{}\n{PROBE}", ca_key(&ca));
    let l = start_with(
        "debug_headers = true\nmax_retries = 0\ndefault_backend = \"tls-probe-good\"\n",
        &[
            backend("tls-probe-good", &good_origin.url(), &probed),
            backend("tls-probe-bad", &bad_origin.url(), &probed),
        ],
    )
    .await;

    wait_until(
        Duration::from_secs(10),
        "the TLS backend healthy",
        || async { l.backends().await["backends"][0]["healthy"] == true },
    )
    .await;
    let b = l.backends().await;
    let probes = b["backends"][0]["probes"].as_array().unwrap();
    assert!(
        probes
            .iter()
            .any(|p| p["ok"] == true && p["detail"].as_str().unwrap().starts_with("200")),
        "{probes:?}"
    );
    assert!(good_origin.seen().iter().any(|s| s.uri == "/health"));
    assert_eq!(
        l.metric("lacquer_backend_healthy{backend=\"tls-probe-good\"}")
            .await,
        1.0
    );

    wait_until(
        Duration::from_secs(10),
        "failed probes recorded",
        || async {
            l.backends().await["backends"][1]["probes"]
                .as_array()
                .is_some_and(|p| p.len() >= 2)
        },
    )
    .await;
    let b = l.backends().await;
    let bad = &b["backends"][1];
    assert_eq!(bad["healthy"], false);
    let probes = bad["probes"].as_array().unwrap();
    assert!(
        probes
            .iter()
            .all(|p| p["ok"] == false
                && p["detail"].as_str().unwrap().contains("not valid for name")),
        "{probes:?}"
    );
    assert_eq!(bad_origin.hits(), 0);
}

#[tokio::test]
async fn tls_keys_are_checked_and_named() {
    let ca = TestCa::new("tls-check CA");
    let start_err = |extra: String, url: &'static str| async move {
        let toml = format!("[[backends]]\nname = \"app\"\nurl = \"{url}\"\n{extra}\n");
        match Lacquer::start(&toml).await {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => format!("{e:#}"),
        }
    };
    let e = start_err(ca_key(&ca), "http://127.0.0.1:9").await;
    assert!(e.contains("backends[0].ca") && e.contains("https"), "{e}");
    let e = start_err("ca = \"missing.pem\"".into(), "https://localhost:9").await;
    assert!(
        e.contains("backends[0].ca") && e.contains("missing.pem"),
        "{e}"
    );
    let e = start_err("protocol = \"h2c\"".into(), "https://localhost:9").await;
    assert!(e.contains("backends[0].protocol"), "{e}");
    let e = start_err(
        format!(
            "{}\nclient_cert = {{ chain = \"nope.pem\", key = \"nope.key\" }}",
            ca_key(&ca)
        ),
        "https://localhost:9",
    )
    .await;
    assert!(e.contains("backends[0].client_cert"), "{e}");
    let e = start_err("protocol = \"h3\"".into(), "https://localhost:9").await;
    assert!(e.contains("protocol"), "{e}");
}
