//! TLS termination on the `[server.tls]` listener. The certificates are read
//! from their PEM files each time a generation is built, so a reload re-reads
//! them and a missing or bad file (or a key that does not belong to its
//! certificate) refuses the reload, naming the file and the key; the old
//! generation, with its certificates, keeps serving. The client's SNI name
//! picks the certificate whose subject alternative names match it (a
//! wildcard covers one label); the first is the default. TLS 1.2 and 1.3
//! only, ALPN `h2` and `http/1.1`, rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertificateFiles, Config, ConfigError};

/// ALPN protocols offered, in the server's order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Every reason `lacquer_tls_handshake_failures_total` counts.
pub const FAILURE_REASONS: [&str; 7] = [
    "no-shared-cipher",
    "protocol-version",
    "bad-certificate",
    "not-tls",
    "timeout",
    "closed",
    "other",
];

/// One certificate and the DNS names it is valid for.
#[derive(Debug)]
struct Named {
    /// Subject alternative DNS names, lowercase (`*.example.com` included).
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// A generation's TLS: the rustls config the listener hands each
/// connection, and what was loaded (for `lacquer check`).
#[derive(Debug)]
pub struct Tls {
    /// The server config: certificates, protocol versions, ALPN.
    pub config: Arc<ServerConfig>,
    /// Each certificate's chain file and subject alternative DNS names, in
    /// config order (the first is the default).
    pub loaded: Vec<(std::path::PathBuf, Vec<String>)>,
}

/// Picks a certificate by the client's SNI name; the first when none matches.
#[derive(Debug)]
pub struct SniResolver {
    certs: Vec<Named>,
}

/// Whether a certificate name (`www.example.com` or `*.example.com`)
/// covers `sni`: names compare case-insensitively, and a wildcard stands
/// for exactly one non-empty leftmost label.
fn covers(name: &str, sni: &str) -> bool {
    if let Some(suffix) = name.strip_prefix("*.") {
        return match sni.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    name.eq_ignore_ascii_case(sni)
}

impl SniResolver {
    /// The certificate for `sni`: an exact name first, then a wildcard,
    /// then the default (the first certificate).
    fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let sni = sni.map(|s| s.trim_end_matches('.'));
        if let Some(sni) = sni {
            let exact = self
                .certs
                .iter()
                .find(|c| c.names.iter().any(|n| n.eq_ignore_ascii_case(sni)));
            let wild = || {
                self.certs
                    .iter()
                    .find(|c| c.names.iter().any(|n| covers(n, sni)))
            };
            if let Some(c) = exact.or_else(wild) {
                return &c.key;
            }
        }
        &self.certs[0].key
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

fn load(
    config: &Config,
    i: usize,
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<Named, ConfigError> {
    let bad = |field: &str, path: &Path, cause: String| ConfigError::Invalid {
        file: config.source.clone(),
        key: format!("server.tls.certificates[{i}].{field}"),
        cause: format!("{}: {cause}", path.display()),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.chain)
        .and_then(Iterator::collect)
        .map_err(|e| bad("chain", &files.chain, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(
            "chain",
            &files.chain,
            "no CERTIFICATE block in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad("key", &files.key, e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad("key", &files.key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(bad(
                "key",
                &files.key,
                format!(
                    "this key does not belong to the certificate in {}",
                    files.chain.display()
                ),
            ));
        }
        Err(e) => {
            return Err(bad(
                "chain",
                &files.chain,
                format!("not a usable certificate: {e}"),
            ));
        }
    }
    let leaf = webpki::EndEntityCert::try_from(&certified.cert[0]).map_err(|e| {
        bad(
            "chain",
            &files.chain,
            format!("not a usable certificate: {e}"),
        )
    })?;
    let names = leaf
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    Ok(Named {
        names,
        key: Arc::new(certified),
    })
}

/// The TLS listener's rustls config for a generation, every certificate
/// read now (`None` without `[server.tls]`).
pub fn server_config(config: &Config) -> Result<Option<Tls>, ConfigError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = tls
        .certificates
        .iter()
        .enumerate()
        .map(|(i, f)| load(config, i, f, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let loaded = tls
        .certificates
        .iter()
        .zip(&certs)
        .map(|(f, c)| (f.chain.clone(), c.names.clone()))
        .collect();
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::Invalid {
            file: config.source.clone(),
            key: "server.tls".into(),
            cause: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs }));
    sc.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Some(Tls {
        config: Arc::new(sc),
        loaded,
    }))
}

/// Sort a failed handshake (as tokio-rustls reports it) into one of
/// [`FAILURE_REASONS`].
pub fn failure_reason(e: &std::io::Error) -> &'static str {
    use rustls::{AlertDescription as A, Error as E, InvalidMessage as M, PeerIncompatible as P};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "closed",
            _ => "other",
        };
    };
    match err {
        E::PeerIncompatible(
            P::NoCipherSuitesInCommon
            | P::NoKxGroupsInCommon
            | P::NoSignatureSchemesInCommon
            | P::NoEcPointFormatsInCommon,
        ) => "no-shared-cipher",
        // Only a client older than TLS 1.2 leaves out signature_algorithms.
        E::PeerIncompatible(
            P::SignatureAlgorithmsExtensionRequired
            | P::SupportedVersionsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::ServerDoesNotSupportTls12Or13,
        ) => "protocol-version",
        E::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion) => "not-tls",
        E::AlertReceived(A::HandshakeFailure | A::InsufficientSecurity) => "no-shared-cipher",
        E::AlertReceived(A::ProtocolVersion) => "protocol-version",
        E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied,
        ) => "bad-certificate",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(covers("*.example.com", "www.example.com"));
        assert!(covers("*.example.com", "WWW.Example.COM"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(covers("example.com", "EXAMPLE.com"));
        assert!(!covers("example.com", "www.example.com"));
    }

    #[test]
    fn handshake_errors_map_to_the_fixed_reasons() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cases = [
            (
                rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
                "no-shared-cipher",
            ),
            (
                rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered),
                "protocol-version",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "not-tls",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
                "bad-certificate",
            ),
            (rustls::Error::DecryptError, "other"),
        ];
        for (e, want) in cases {
            let r = failure_reason(&wrap(e));
            assert_eq!(r, want);
            assert!(FAILURE_REASONS.contains(&r));
        }
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(failure_reason(&eof), "closed");
    }
}
