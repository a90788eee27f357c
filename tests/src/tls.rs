//! TLS for tests: a throwaway CA (rcgen, ECDSA P-256) that issues leaf
//! certificates written as PEM files, and real TLS clients (tokio-rustls,
//! then hyper's HTTP/1.1 or h2 by the negotiated ALPN) that trust only it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::Got;

/// A certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// The files of an issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM chain (the leaf).
    pub chain: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Lacquer test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issue a leaf valid for `names`, written to `dir/<stem>.pem` and
    /// `dir/<stem>.key`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let issued = Issued {
            chain: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&issued.chain, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// What a TLS request saw.
#[derive(Debug)]
pub struct TlsGot {
    /// The ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// The DNS names of the certificate the server presented.
    pub names: Vec<String>,
    /// The response.
    pub got: Got,
}

/// Connect to `addr` and complete a TLS handshake naming `sni`.
pub async fn connect(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    handshake(TcpStream::connect(addr).await?, client, sni).await
}

/// Complete a TLS handshake naming `sni` on a connected stream (after
/// whatever the test wrote first, e.g. a PROXY header).
pub async fn handshake(
    tcp: TcpStream,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(sni.to_owned()).expect("a DNS name");
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio_rustls::TlsConnector::from(client).connect(name, tcp),
    )
    .await
    .expect("handshake ends within 30 s")
}

/// The DNS names of the server's leaf certificate on `s`.
pub fn peer_names(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<String> {
    let certs = s.get_ref().1.peer_certificates().expect("a certificate");
    webpki::EndEntityCert::try_from(&certs[0])
        .expect("a parsable leaf")
        .valid_dns_names()
        .map(str::to_owned)
        .collect()
}

/// GET `path` from `addr` over TLS naming `sni`, in HTTP/1.1 or h2 as
/// ALPN decided.
pub async fn get(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
    path: &str,
) -> anyhow::Result<TlsGot> {
    get_on(TcpStream::connect(addr).await?, client, sni, path).await
}

/// [`get`] on a connected stream.
pub async fn get_on(
    tcp: TcpStream,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
    path: &str,
) -> anyhow::Result<TlsGot> {
    let s = handshake(tcp, client, sni).await?;
    let alpn = s
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let names = peer_names(&s);
    let io = TokioIo::new(s);
    let response = if alpn.as_deref() == Some("h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let req = Request::get(format!("https://{sni}{path}")).body(Full::new(Bytes::new()))?;
        send.send_request(req).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", sni)
            .body(Full::new(Bytes::new()))?;
        send.send_request(req).await?
    };
    let version = response.version();
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    let want = if alpn.as_deref() == Some("h2") {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    anyhow::ensure!(version == want, "answered in {version:?} over {alpn:?}");
    Ok(TlsGot {
        alpn,
        names,
        got: Got {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        },
    })
}
