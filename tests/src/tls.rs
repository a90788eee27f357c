//! TLS for test origins: a certificate authority made in the test (rcgen),
//! the certificates it issues (written as PEM files for the host's config),
//! and [`TlsOrigin`], a real HTTPS origin (HTTP/1.1 or h2 as ALPN decides)
//! that can require a client certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::origin::Recorder;
use crate::{Reply, Seen, TempDir};

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
pub struct Issued {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub key: Vec<u8>,
    /// The certificate as a PEM file.
    pub chain: PathBuf,
    /// The key as a PEM file.
    pub key_file: PathBuf,
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
        let key_file = self.dir.path.join(format!("{stem}.key"));
        std::fs::write(&chain, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Issued {
            cert: cert.der().clone(),
            key: key.serialize_der(),
            chain,
            key_file,
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        Arc::new(roots)
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
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls.cert.key.clone()));
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
