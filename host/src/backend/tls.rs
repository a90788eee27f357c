//! TLS to `https://` backends: the rustls client config (CA roots, an
//! optional client certificate, ALPN), the name verified, and how a failed
//! handshake is told apart: a certificate the host refuses is
//! `tls-certificate`, anything else in the handshake `tls-handshake`.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::kinds::FetchKind;

/// The checked TLS settings of one backend.
#[derive(Debug, Clone)]
pub struct BackendTls {
    /// Roots (or no verification), client certificate and ALPN.
    pub config: Arc<ClientConfig>,
    /// Sent in SNI (unless an IP address) and verified in the certificate.
    pub server_name: ServerName<'static>,
    /// False when `tls_verify = false`: any certificate is accepted.
    pub verify: bool,
}

/// What the config asks of a backend's TLS.
pub struct TlsOptions<'a> {
    /// `ca`: PEM roots replacing the system ones.
    pub ca: Option<&'a Path>,
    /// `client_cert`: chain and key PEM files.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// `tls_verify`.
    pub verify: bool,
    /// `sni`, else the URL's host.
    pub server_name: &'a str,
    /// Offer h2 before http/1.1 in ALPN.
    pub offer_h2: bool,
}

/// A TLS setting the host can't use: the config key at fault and why.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct TlsSetupError {
    /// The key within the backend's section (`ca`, `sni`, `client_cert`).
    pub key: &'static str,
    /// What is wrong, naming the file.
    pub cause: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's CA roots, read once per process.
fn system_roots() -> &'static Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none installed".to_owned(), ToString::to_string);
            return Err(format!(
                "no system CA certificates could be loaded ({why}); set ca = \"file.pem\""
            ));
        }
        Ok(Arc::new(roots))
    })
}

fn file_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let bad = |cause: String| TlsSetupError { key: "ca", cause };
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    for c in certs {
        let c = c.map_err(|e| bad(format!("{}: {e}", path.display())))?;
        roots
            .add(c)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "{}: no CERTIFICATE in the file",
            path.display()
        )));
    }
    Ok(Arc::new(roots))
}

/// Build a backend's TLS settings, reading its PEM files.
pub fn build(o: &TlsOptions<'_>) -> Result<BackendTls, TlsSetupError> {
    let server_name =
        ServerName::try_from(o.server_name.to_owned()).map_err(|e| TlsSetupError {
            key: "sni",
            cause: format!("{:?} is not a DNS name or IP address ({e})", o.server_name),
        })?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError {
            key: "url",
            cause: e.to_string(),
        })?;
    let builder = if o.verify {
        let roots = match o.ca {
            Some(p) => file_roots(p)?,
            None => system_roots()
                .clone()
                .map_err(|cause| TlsSetupError { key: "ca", cause })?,
        };
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    };
    let mut config = match o.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let bad = |cause: String| TlsSetupError {
                key: "client_cert",
                cause,
            };
            let certs = CertificateDer::pem_file_iter(chain)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("chain {}: {e}", chain.display())))?;
            if certs.is_empty() {
                return Err(bad(format!(
                    "chain {}: no CERTIFICATE in the file",
                    chain.display()
                )));
            }
            let pk = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, pk)
                .map_err(|e| bad(format!("{} with {}: {e}", chain.display(), key.display())))?
        }
    };
    config.alpn_protocols = if o.offer_h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(BackendTls {
        config: Arc::new(config),
        server_name,
        verify: o.verify,
    })
}

/// The kind of a TLS error: a refused certificate, or the handshake.
pub fn kind_of(e: &rustls::Error) -> FetchKind {
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::InvalidCertRevocationList(_) => FetchKind::TlsCertificate,
        _ => FetchKind::TlsHandshake,
    }
}

/// The TLS error inside an I/O error from a TLS stream, if it is one. (With
/// TLS 1.3 the server judges a client certificate after the client's side
/// of the handshake is done: its refusal arrives as an alert on the first read.)
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Kind and detail of a failed handshake with `name`.
pub fn classify_handshake(e: &io::Error, name: &ServerName<'_>) -> (FetchKind, String) {
    let name = name.to_str();
    match rustls_error(e) {
        Some(r) if kind_of(r) == FetchKind::TlsCertificate => (
            FetchKind::TlsCertificate,
            format!("TLS: certificate of {name} refused: {r}"),
        ),
        Some(r) => (
            FetchKind::TlsHandshake,
            format!("TLS handshake with {name} failed: {r}"),
        ),
        None => (
            FetchKind::TlsHandshake,
            format!("TLS handshake with {name} failed: {e}"),
        ),
    }
}

/// `tls_verify = false`: any certificate passes; handshake signatures are
/// still checked, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
