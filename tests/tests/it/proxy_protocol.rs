//! PROXY protocol v1 and v2 on the plain and the TLS listener: the address
//! the header carries is the client everywhere (the origin's
//! `X-Forwarded-For`, the access log); a connection without a valid header
//! is closed and counted.

use std::net::SocketAddr;
use std::time::Duration;

use lacquer_tests::tls::{self, TestCa};
use lacquer_tests::{Lacquer, Origin, Reply, TempDir, raw, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn v2_header(client: &str, to: SocketAddr) -> Vec<u8> {
    let from: SocketAddr = client.parse().unwrap();
    let to = match from {
        SocketAddr::V6(_) => SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), to.port()),
        SocketAddr::V4(_) => to,
    };
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (from, to),
    )
    .build()
    .unwrap()
}

fn xff(o: &Origin, uri: &str) -> String {
    let seen = o.seen();
    let s = seen
        .iter()
        .find(|s| s.uri == uri)
        .expect("the origin saw it");
    s.headers["x-forwarded-for"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn v1_and_v2_headers_name_the_client_in_xff_and_the_access_log() {
    let dir = TempDir::new();
    let log = dir.path.join("access.log");
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let extra = format!(
        "[server]\nproxy_protocol = true\n[log]\naccess = \"{}\"\n",
        log.display()
    );
    let l = Lacquer::with_origin(&o.url(), &extra).await;
    let addr = l.server.addr();

    let mut v1 = format!("PROXY TCP4 203.0.113.7 127.0.0.1 40000 {}\r\n", addr.port()).into_bytes();
    v1.extend_from_slice(b"GET /v1 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    let reply = raw::exchange(addr, &v1).await;
    assert_eq!(raw::status_of(&reply), 200, "{reply}");
    assert_eq!(xff(&o, "/v1"), "203.0.113.7");

    let mut v2 = v2_header("[2001:db8::9]:4000", addr);
    v2.extend_from_slice(b"GET /v2 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    let reply = raw::exchange(addr, &v2).await;
    assert_eq!(raw::status_of(&reply), 200, "{reply}");
    assert_eq!(xff(&o, "/v2"), "2001:db8::9");

    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(10), "both requests logged", || async {
        lines().lines().count() >= 2
    })
    .await;
    let text = lines();
    assert!(
        text.lines()
            .any(|l| l.starts_with("203.0.113.7 ") && l.contains("GET /v1 ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("2001:db8::9 ") && l.contains("GET /v2 ")),
        "{text}"
    );
    assert!(text.contains("scheme=http"), "{text}");
}

#[tokio::test]
async fn a_missing_or_garbage_header_is_refused_and_counted() {
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let l = Lacquer::with_origin(&o.url(), "[server]\nproxy_protocol = true\n").await;
    let addr = l.server.addr();

    let reply = raw::exchange(addr, b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n").await;
    assert_eq!(reply, "", "closed without an answer");
    let reply = raw::exchange(
        addr,
        b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!(reply, "");
    let invalid = "lacquer_proxy_protocol_rejected_total{reason=\"invalid\"}";
    assert_eq!(l.metric(invalid).await, 2.0);

    // A header cut short by the peer closing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.1").await.unwrap();
    s.shutdown().await.unwrap();
    let closed = "lacquer_proxy_protocol_rejected_total{reason=\"closed\"}";
    wait_until(
        Duration::from_secs(10),
        "the cut header counted",
        || async { l.metric(closed).await == 1.0 },
    )
    .await;
    assert_eq!(o.hits(), 0);
}

#[tokio::test]
async fn a_proxy_header_comes_before_the_tls_handshake() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let extra = format!(
        "[server.tls]\nlisten = \"127.0.0.1:0\"\nproxy_protocol = true\ncertificates = [{{ chain = \"{}\", key = \"{}\" }}]\n",
        site.chain.display(),
        site.key.display()
    );
    let l = Lacquer::with_origin(&o.url(), &extra).await;
    let addr = l.server.tls_addr().unwrap();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&v2_header("198.51.100.4:5000", addr))
        .await
        .unwrap();
    let got = tls::get_on(tcp, ca.client(&[b"h2"]), "site.test", "/tls")
        .await
        .unwrap();
    assert_eq!((got.alpn.as_deref(), got.got.status), (Some("h2"), 200));
    assert_eq!(xff(&o, "/tls"), "198.51.100.4");
    assert_eq!(o.seen()[0].headers["x-forwarded-proto"], "https");

    // Straight to the handshake, no header: refused before TLS.
    assert!(
        tls::connect(addr, ca.client(&[b"h2"]), "site.test")
            .await
            .is_err()
    );
    let invalid = "lacquer_proxy_protocol_rejected_total{reason=\"invalid\"}";
    assert_eq!(l.metric(invalid).await, 1.0);
    let failed = "lacquer_tls_handshake_failures_total{reason=\"not-tls\"}";
    assert_eq!(l.metric(failed).await, 0.0, "no handshake was tried");

    // The plain listener takes no header here.
    assert_eq!(l.get("/plain").await.status, 200);
    assert_eq!(xff(&o, "/plain"), "127.0.0.1");
}

#[tokio::test]
async fn a_stalled_header_or_handshake_is_closed_at_header_read_timeout() {
    let ca = TestCa::new("site CA");
    let site = ca.issue("site", &["site.test"]);
    let o = Origin::start(|_| Reply::ok("ok")).await;
    let extra = format!(
        "[server]\nproxy_protocol = true\nheader_read_timeout = \"200ms\"\n[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ chain = \"{}\", key = \"{}\" }}]\n",
        site.chain.display(),
        site.key.display()
    );
    let l = Lacquer::with_origin(&o.url(), &extra).await;

    let mut plain = TcpStream::connect(l.server.addr()).await.unwrap();
    plain.write_all(b"PROXY TCP4 192.0.2.1 ").await.unwrap();
    assert!(raw::closed_within(&mut plain, Duration::from_secs(30)).await);
    let series = "lacquer_proxy_protocol_rejected_total{reason=\"timeout\"}";
    assert_eq!(l.metric(series).await, 1.0);

    let mut tls = TcpStream::connect(l.server.tls_addr().unwrap())
        .await
        .unwrap();
    tls.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(raw::closed_within(&mut tls, Duration::from_secs(30)).await);
    let series = "lacquer_tls_handshake_failures_total{reason=\"timeout\"}";
    assert_eq!(l.metric(series).await, 1.0);
    assert_eq!(o.hits(), 0);
}
