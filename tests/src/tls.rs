//! TLS for tests: a certificate authority made in the test (rcgen), the
//! certificates it issues (written as PEM files for the host's config),
//! [`TlsOrigin`], a real HTTPS origin (HTTP/1.1 or h2 as ALPN decides) that
//! can require a client certificate, and real TLS clients (tokio-rustls,
//! then hyper's HTTP/1.1 or h2 by the negotiated ALPN) that trust only the CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::origin::Recorder;
use crate::{Got, Reply, Seen, TempDir};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority of the test's own, its files in a temp dir.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Where its PEM files go.
    pub dir: TempDir,
    /// `ca.pem`: the CA certificate, for a backend's `ca`.
    pub pem: PathBuf,
}

/// A certificate the CA issued, with its key.
#[derive(Clone)]
pub struct Issued {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
    /// The certificate as a PEM file.
    pub chain: PathBuf,
    /// The key as a PEM file.
    pub key: PathBuf,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = TempDir::new();
        let pem = dir.path.join("ca.pem");
        std::fs::write(&pem, issuer.pem()).unwrap();
        TestCa { issuer, dir, pem }
    }

    /// A certificate for `names` (DNS names or IP addresses), its files
    /// named after `stem`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = self.dir.path.join(format!("{stem}.pem"));
        let key_path = self.dir.path.join(format!("{stem}.key"));
        std::fs::write(&chain, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued {
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
            chain,
            key: key_path,
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        Arc::new(roots)
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut c = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

/// How a [`TlsOrigin`] does TLS.
pub struct TlsSettings<'a> {
    /// Its certificate.
    pub cert: &'a Issued,
    /// ALPN protocols it accepts, in preference order (e.g. `["h2", "http/1.1"]`).
    pub alpn: &'a [&'a str],
    /// Require a client certificate issued by this CA.
    pub client_ca: Option<&'a TestCa>,
}

/// A real HTTPS origin on 127.0.0.1:0 (HTTP/1.1, or h2 when ALPN picks
/// it), counting requests and connections (completed handshakes).
pub struct TlsOrigin {
    /// Address.
    pub addr: SocketAddr,
    recorder: Recorder,
    client_certs: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsOrigin {
    /// Start an origin answering with `f`.
    pub async fn start(
        tls: TlsSettings<'_>,
        f: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> TlsOrigin {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match tls.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(ca.roots(), provider())
                    .build()
                    .unwrap(),
            ),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls.cert.key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![tls.cert.cert.clone()], key)
            .unwrap();
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let recorder = Recorder::new(f);
        let client_certs = Arc::new(Mutex::new(Vec::new()));
        let (r, certs) = (recorder.clone(), client_certs.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, r, certs) = (acceptor.clone(), r.clone(), certs.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Some(c) = stream.get_ref().1.peer_certificates() {
                        certs.lock().unwrap().extend(c.iter().cloned());
                    }
                    r.serve(stream).await;
                });
            }
        });
        TlsOrigin {
            addr,
            recorder,
            client_certs,
            task,
        }
    }

    /// `https://localhost:port` (the name its certificates are issued for).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.recorder.hits()
    }

    /// Connections that completed the handshake so far.
    pub fn connections(&self) -> usize {
        self.recorder.connections()
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.recorder.seen()
    }

    /// Client certificates presented so far (leaf first, per connection).
    pub fn client_certs(&self) -> Vec<CertificateDer<'static>> {
        self.client_certs.lock().unwrap().clone()
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.task.abort();
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
