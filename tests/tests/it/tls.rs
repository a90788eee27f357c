//! TLS termination on `[server.tls]`: real TLS clients trusting a test CA,
//! HTTP/1.1 and h2 chosen by ALPN, the certificate chosen by SNI, old
//! protocols and plaintext refused and counted, certificates re-read on
//! reload (a bad one refused), the plain listener serving beside it.

use std::time::Duration;

use lacquer_tests::tls::{self, Issued, TestCa};
use lacquer_tests::{Lacquer, Origin, Reply, TempDir, lacquer_bin, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn certs(list: &[&Issued]) -> String {
    let entries: Vec<String> = list
        .iter()
        .map(|c| {
            format!(
                "{{ chain = \"{}\", key = \"{}\" }}",
                c.chain.display(),
                c.key.display()
            )
        })
        .collect();
    format!(
        "[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{}]\n",
        entries.join(", ")
    )
}

fn config(origin: &str, tls: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[backends]]\nname = \"app\"\nurl = \"{origin}\"\n{tls}"
    )
}

async fn cached_origin() -> Origin {
    Origin::start(|_| Reply::ok("cached body").header("cache-control", "max-age=600")).await
}

#[tokio::test]
async fn h2_and_http11_are_served_by_alpn_beside_the_plain_listener() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let o = cached_origin().await;
    let l = Lacquer::start(&config(&o.url(), &certs(&[&site])))
        .await
        .unwrap();
    let addr = l.server.tls_addr().expect("a TLS listener");

    let h2 = tls::get(addr, ca.client(&[b"h2", b"http/1.1"]), "site.test", "/c")
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some("h2"));
    assert_eq!((h2.got.status, h2.got.header("x-cache")), (200, "MISS"));
    assert_eq!(h2.got.text(), "cached body");

    let h1 = tls::get(addr, ca.client(&[b"http/1.1"]), "site.test", "/c")
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some("http/1.1"));
    assert_eq!((h1.got.status, h1.got.header("x-cache")), (200, "HIT"));

    // The plain listener serves at the same time, from the same cache.
    let plain = l.request("GET", "/c", &[("host", "site.test")], "").await;
    assert_eq!(plain.header("x-cache"), "HIT");
    assert_eq!(l.get("/p").await.status, 200);
    let seen = o.seen();
    assert_eq!(seen.len(), 2, "one fetch per URL: {seen:?}");
    let proto = |uri: &str| {
        let s = seen.iter().find(|s| s.uri == uri).expect("fetched");
        s.headers["x-forwarded-proto"].to_str().unwrap().to_owned()
    };
    assert_eq!(proto("/c"), "https", "the request came over TLS");
    assert_eq!(proto("/p"), "http");
}

#[tokio::test]
async fn sni_picks_the_certificate_and_the_first_is_the_default() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let other = ca.issue("other", &["other.test", "*.other.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let l = Lacquer::start(&config(&o.url(), &certs(&[&site, &other])))
        .await
        .unwrap();
    let addr = l.server.tls_addr().unwrap();
    let c = ca.client(&[b"h2"]);

    let wild = tls::get(addr, c.clone(), "www.other.test", "/")
        .await
        .unwrap();
    assert_eq!(wild.names, ["other.test", "*.other.test"]);
    assert_eq!(wild.got.status, 200);
    let exact = tls::get(addr, c.clone(), "other.test", "/").await.unwrap();
    assert_eq!(exact.names, ["other.test", "*.other.test"]);
    let first = tls::get(addr, c.clone(), "site.test", "/").await.unwrap();
    assert_eq!(first.names, ["site.test"]);

    // No SNI at all: the first certificate.
    let mut no_sni = (*c).clone();
    no_sni.enable_sni = false;
    let s = tls::connect(addr, no_sni.into(), "site.test")
        .await
        .unwrap();
    assert_eq!(tls::peer_names(&s), ["site.test"]);
}

/// A ClientHello offering TLS 1.1 at most (no supported_versions), one suite.
const TLS11_HELLO: [u8; 50] = {
    let mut h = [0u8; 50];
    let head = [
        0x16, 0x03, 0x01, 0x00, 0x2d, // record: handshake, 45 bytes
        0x01, 0x00, 0x00, 0x29, // ClientHello, 41 bytes
        0x03, 0x02, // client_version TLS 1.1
    ];
    let mut i = 0;
    while i < head.len() {
        h[i] = head[i];
        i += 1;
    }
    // 32 bytes of random (zeros), then: no session id, one cipher suite
    // (TLS_RSA_WITH_AES_128_CBC_SHA), null compression, no extensions.
    let tail = [0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00];
    let mut j = 0;
    while j < tail.len() {
        h[11 + 32 + j] = tail[j];
        j += 1;
    }
    h
};

#[tokio::test]
async fn an_old_protocol_and_plaintext_are_refused_and_counted() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let l = Lacquer::start(&config(&o.url(), &certs(&[&site])))
        .await
        .unwrap();
    let addr = l.server.tls_addr().unwrap();

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&TLS11_HELLO).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer))
        .await
        .expect("the server closes")
        .ok();
    assert_eq!(answer.first(), Some(&0x15), "an alert: {answer:?}");
    let series = "lacquer_tls_handshake_failures_total{reason=\"protocol-version\"}";
    assert_eq!(l.metric(series).await, 1.0);

    let reply = raw::exchange(addr, b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n").await;
    assert!(
        !reply.contains("HTTP/1.1"),
        "no plaintext answer: {reply:?}"
    );
    let series = "lacquer_tls_handshake_failures_total{reason=\"not-tls\"}";
    assert_eq!(l.metric(series).await, 1.0);
    assert_eq!(o.hits(), 0);

    // The TLS listener still serves a real client afterwards.
    let ok = tls::get(addr, ca.client(&[b"h2"]), "site.test", "/")
        .await
        .unwrap();
    assert_eq!(ok.got.status, 200);
}

#[tokio::test]
async fn reload_rereads_certificates_and_refuses_a_bad_one() {
    let (ca, dir) = (TestCa::new("site CA"), TempDir::new());
    let site = ca.issue("site", &["site.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let l = Lacquer::start(&config(&o.url(), &certs(&[&site])))
        .await
        .unwrap();
    let addr = l.server.tls_addr().unwrap();
    let c = ca.client(&[b"h2"]);

    // A missing key file.
    let missing = Issued {
        chain: site.chain.clone(),
        key: dir.path.join("missing.key"),
        ..site.clone()
    };
    l.write_config(&config(&o.url(), &certs(&[&missing])));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("server.tls.certificates[0].key") && r.text().contains("missing.key"),
        "names the key and the file: {}",
        r.text()
    );

    // A key that belongs to another certificate.
    let new = ca.issue("new", &["new.test"]);
    let mismatched = Issued {
        chain: new.chain.clone(),
        key: site.key.clone(),
        ..site.clone()
    };
    l.write_config(&config(&o.url(), &certs(&[&mismatched])));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("server.tls.certificates[0].key") && r.text().contains("does not belong"),
        "{}",
        r.text()
    );
    // The old certificate keeps serving.
    let old = tls::get(addr, c.clone(), "site.test", "/").await.unwrap();
    assert_eq!(
        (old.got.status, old.names.as_slice()),
        (200, &["site.test".to_owned()][..])
    );

    // A good new certificate is served once reloaded.
    l.write_config(&config(&o.url(), &certs(&[&new])));
    let r = l.admin("POST", "/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let now = tls::get(addr, c.clone(), "new.test", "/").await.unwrap();
    assert_eq!(now.names, ["new.test"]);
    assert_eq!(now.got.status, 200);
    let m = "lacquer_reloads_total{result=\"refused\"}";
    assert_eq!(l.metric(m).await, 2.0);
}

#[tokio::test]
async fn lacquer_check_reads_the_certificate_files() {
    let (ca, dir) = (TestCa::new("site CA"), TempDir::new());
    let site = ca.issue("site", &["site.test"]);
    let path = dir.path.join("lacquer.toml");
    let check = |toml: String| {
        std::fs::write(&path, toml).unwrap();
        std::process::Command::new(lacquer_bin())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let good = check(config("http://127.0.0.1:1", &certs(&[&site])));
    assert!(good.status.success(), "{good:?}");
    let listed = String::from_utf8_lossy(&good.stdout);
    assert!(
        listed.contains(&format!(
            "certificate {} (default): site.test",
            site.chain.display()
        )),
        "{listed}"
    );
    std::fs::write(dir.path.join("garbage.pem"), "not a certificate\n").unwrap();
    let garbage = Issued {
        chain: dir.path.join("garbage.pem"),
        key: site.key.clone(),
        ..site.clone()
    };
    let bad = check(config("http://127.0.0.1:1", &certs(&[&site, &garbage])));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("server.tls.certificates[1].chain") && stderr.contains("garbage.pem"),
        "{stderr}"
    );
}

#[tokio::test]
async fn curl_gets_h2_and_http11_over_tls() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let ca_file = ca.pem.clone();
    let o = cached_origin().await;
    let l = Lacquer::start(&config(&o.url(), &certs(&[&site])))
        .await
        .unwrap();
    let port = l.server.tls_addr().unwrap().port();
    let curl = |version: &'static str| {
        let (ca_file, resolve) = (ca_file.clone(), format!("site.test:{port}:127.0.0.1"));
        let url = format!("https://site.test:{port}/curl");
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args(["-sS", "-D", "-", "-o", "/dev/null", version, "--cacert"])
                .arg(&ca_file)
                .args(["--resolve", &resolve, &url])
                .output()
                .expect("curl runs");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).to_lowercase()
        })
    };
    let h2 = curl("--http2").await.unwrap();
    assert!(h2.starts_with("http/2 200"), "{h2}");
    assert!(h2.contains("x-cache: miss"), "{h2}");
    let h1 = curl("--http1.1").await.unwrap();
    assert!(h1.starts_with("http/1.1 200"), "{h1}");
    assert!(h1.contains("x-cache: hit"), "{h1}");
}

#[tokio::test]
async fn max_connections_holds_for_both_listeners_together() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let extra = format!("[server]\nmax_connections = 2\n{}", certs(&[&site]));
    let l = Lacquer::start(&config(&o.url(), &extra)).await.unwrap();
    let tls_addr = l.server.tls_addr().unwrap();
    let held = [
        tokio::net::TcpStream::connect(l.server.addr())
            .await
            .unwrap(),
        tokio::net::TcpStream::connect(tls_addr).await.unwrap(),
    ];
    lacquer_tests::wait_until(Duration::from_secs(30), "2 connections open", || async {
        l.metric("lacquer_connections").await == 2.0
    })
    .await;
    let mut third = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    assert!(raw::closed_within(&mut third, Duration::from_secs(30)).await);
    assert_eq!(l.metric("lacquer_connections_refused_total").await, 1.0);
    drop(held);
}
