//! `[[backends]]` and `[[directors]]`: URLs, timeouts, TLS files, probes,
//! the circuit breaker, and directors whose members exist and form no cycle.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue, Uri};

use super::super::ConfigError;
use super::super::file::*;
use super::super::runtime::*;
use super::{Checker, check_name};

pub(super) fn check_backends(
    c: &Checker<'_>,
    sections: Vec<BackendSection>,
    names: &mut HashSet<String>,
    base: Option<&Path>,
) -> Result<Vec<BackendConfig>, ConfigError> {
    if sections.is_empty() {
        return Err(c.bad("backends", "at least one [[backends]] is required"));
    }
    let mut out = Vec::new();
    for (i, b) in sections.into_iter().enumerate() {
        let key = |k: &str| format!("backends[{i}].{k}");
        check_name(&b.name).map_err(|e| c.bad(key("name"), e))?;
        if !names.insert(b.name.clone()) {
            return Err(c.bad(key("name"), format!("duplicate name {:?}", b.name)));
        }
        let (uri, socket) = backend_url(&b.url).map_err(|e| c.bad(key("url"), e))?;
        for (k, d) in [
            ("connect_timeout", b.connect_timeout),
            ("first_byte_timeout", b.first_byte_timeout),
            ("between_bytes_timeout", b.between_bytes_timeout),
        ] {
            c.positive(key(k), d)?;
        }
        let probe = match &b.probe {
            Some(p) => Some(check_probe(c, p, &key)?),
            None => None,
        };
        let host_header = match &b.host_header {
            Some(h) => Some(
                HeaderValue::from_str(h)
                    .map_err(|_| c.bad(key("host_header"), format!("{h:?} is not a valid Host")))?,
            ),
            None => None,
        };
        let tls = check_backend_tls(c, &b, &uri, base, &key)?;
        out.push(BackendConfig {
            name: b.name,
            url: b.url,
            uri,
            socket,
            timeouts: Timeouts {
                connect: b.connect_timeout,
                first_byte: b.first_byte_timeout,
                between_bytes: b.between_bytes_timeout,
            },
            max_connections: b.max_connections,
            max_connections_wait: b.max_connections_wait,
            host_header,
            probe,
            circuit: check_circuit(c, b.circuit, &key)?,
            protocol: b.protocol,
            tls,
        });
    }
    Ok(out)
}

/// The TLS keys of a backend: only for `https://`, files read now so that
/// a missing or bad PEM file is a config error naming its key.
fn check_backend_tls(
    c: &Checker<'_>,
    b: &BackendSection,
    uri: &Uri,
    base: Option<&Path>,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<crate::backend::tls::BackendTls>, ConfigError> {
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    if !https {
        for (k, set) in [
            ("ca", b.ca.is_some()),
            ("sni", b.sni.is_some()),
            ("client_cert", b.client_cert.is_some()),
            ("tls_verify", !b.tls_verify),
        ] {
            if set {
                return Err(c.bad(key(k), "only for an https:// url"));
            }
        }
        return Ok(None);
    }
    if b.protocol == BackendProtocol::H2c {
        return Err(c.bad(
            key("protocol"),
            "h2c is HTTP/2 over plain TCP: for an https:// url, \"auto\" negotiates h2 by ALPN",
        ));
    }
    if !b.tls_verify && b.ca.is_some() {
        return Err(c.bad(
            key("tls_verify"),
            "false verifies nothing, so ca would have no effect",
        ));
    }
    let resolve = |p: &Path| match base {
        Some(d) if p.is_relative() => d.join(p),
        _ => p.to_path_buf(),
    };
    let ca = b.ca.as_deref().map(resolve);
    let cc = b
        .client_cert
        .as_ref()
        .map(|cc| (resolve(&cc.chain), resolve(&cc.key)));
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = b.sni.as_deref().unwrap_or(host);
    let opts = crate::backend::tls::TlsOptions {
        ca: ca.as_deref(),
        client_cert: cc.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        verify: b.tls_verify,
        server_name,
        offer_h2: b.protocol == BackendProtocol::Auto,
    };
    crate::backend::tls::build(&opts)
        .map(Some)
        .map_err(|e| c.bad(key(e.key), e.cause))
}

/// `http://host:port`, `https://host:port` (no path prefix) or `unix:/absolute/path`.
fn backend_url(url: &str) -> Result<(Uri, Option<PathBuf>), String> {
    if let Some(path) = url.strip_prefix("unix:") {
        // One spelling: `unix:` then an absolute path (not `unix://`).
        if !Path::new(path).is_absolute() || path.starts_with("//") {
            return Err(format!("{url:?}: expected unix:/absolute/path/to.sock"));
        }
        if !cfg!(unix) {
            return Err(format!(
                "{url:?}: Unix domain sockets are not supported here"
            ));
        }
        return Ok((
            Uri::from_static("http://localhost"),
            Some(PathBuf::from(path)),
        ));
    }
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!(
            "{url:?}: expected http://host:port, https://host:port or unix:/path"
        ));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(format!("{url:?}: a path prefix is not supported"));
    }
    Ok((uri, None))
}

fn check_circuit(
    c: &Checker<'_>,
    s: CircuitSection,
    key: &impl Fn(&str) -> String,
) -> Result<CircuitSection, ConfigError> {
    if let Some(bad) = s.statuses.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(c.bad(
            key("circuit.statuses"),
            format!("{bad} is not an HTTP status (100..=599)"),
        ));
    }
    c.positive(key("circuit.backoff"), s.backoff)?;
    if s.max_backoff < s.backoff {
        return Err(c.bad(
            key("circuit.max_backoff"),
            "must not be less than circuit.backoff",
        ));
    }
    Ok(s)
}

fn check_probe(
    c: &Checker<'_>,
    p: &ProbeSection,
    key: &dyn Fn(&str) -> String,
) -> Result<ProbeSpec, ConfigError> {
    if !p.path.starts_with('/') {
        return Err(c.bad(key("probe.path"), "must start with /"));
    }
    if p.window == 0 || p.window > 64 {
        return Err(c.bad(key("probe.window"), "must be 1..=64"));
    }
    if p.threshold == 0 || p.threshold > p.window {
        return Err(c.bad(key("probe.threshold"), "must be 1..=window"));
    }
    c.positive(key("probe.interval"), p.interval)?;
    c.positive(key("probe.timeout"), p.timeout)?;
    if !(100..=999).contains(&p.expected_status) {
        return Err(c.bad(key("probe.expected_status"), "must be 100..=999"));
    }
    let initial = p.initial.unwrap_or(p.threshold.saturating_sub(1));
    if initial > p.window {
        return Err(c.bad(key("probe.initial"), "must be 0..=window"));
    }
    Ok(ProbeSpec {
        path: p.path.clone(),
        interval: p.interval,
        timeout: p.timeout,
        window: p.window,
        threshold: p.threshold,
        initial,
        expected_status: p.expected_status,
    })
}

pub(super) fn check_directors(
    c: &Checker<'_>,
    sections: Vec<DirectorSection>,
    names: &mut HashSet<String>,
) -> Result<Vec<DirectorConfig>, ConfigError> {
    let mut out = Vec::new();
    for (i, d) in sections.iter().enumerate() {
        let key = |k: &str| format!("directors[{i}].{k}");
        check_name(&d.name).map_err(|e| c.bad(key("name"), e))?;
        if !names.insert(d.name.clone()) {
            return Err(c.bad(key("name"), format!("duplicate name {:?}", d.name)));
        }
        if d.backends.is_empty() {
            return Err(c.bad(key("backends"), "a director needs at least one member"));
        }
        if !d.weights.is_empty() && d.kind != "random" {
            return Err(c.bad(key("weights"), "only a random director has weights"));
        }
        if d.key.is_some() && d.kind != "hash" {
            return Err(c.bad(key("key"), "only a hash director has a key"));
        }
        let kind = match d.kind.as_str() {
            "round-robin" => DirectorKind::RoundRobin,
            "fallback" => DirectorKind::Fallback,
            "random" => {
                if !d.weights.is_empty() && d.weights.len() != d.backends.len() {
                    return Err(c.bad(key("weights"), "one weight per member"));
                }
                let weights = if d.weights.is_empty() {
                    vec![1; d.backends.len()]
                } else {
                    d.weights.clone()
                };
                DirectorKind::Random { weights }
            }
            "hash" => DirectorKind::Hash(
                hash_key(d.key.as_deref().unwrap_or("url")).map_err(|e| c.bad(key("key"), e))?,
            ),
            other => {
                return Err(c.bad(
                    key("kind"),
                    format!("{other:?}: expected round-robin, random, hash or fallback"),
                ));
            }
        };
        out.push(DirectorConfig {
            name: d.name.clone(),
            kind,
            members: d.backends.clone(),
        });
    }
    // Members must exist, and directors must not contain themselves.
    let members: HashMap<&str, &Vec<String>> =
        out.iter().map(|d| (d.name.as_str(), &d.members)).collect();
    for (i, d) in out.iter().enumerate() {
        if let Some(m) = d.members.iter().find(|m| !names.contains(*m)) {
            return Err(c.bad(
                format!("directors[{i}].backends"),
                format!("unknown backend or director {m:?}"),
            ));
        }
        if reaches(&members, &d.name, &d.name, 0) {
            return Err(c.bad(
                format!("directors[{i}].backends"),
                "a director cannot contain itself",
            ));
        }
    }
    Ok(out)
}

/// `url`, `client-ip` or `header:<name>`.
fn hash_key(k: &str) -> Result<HashKey, String> {
    match k {
        "url" => Ok(HashKey::Url),
        "client-ip" => Ok(HashKey::ClientIp),
        _ => match k.strip_prefix("header:") {
            Some(h) => HeaderName::from_bytes(h.as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("{k:?}: {h:?} is not a header name")),
            None => Err(format!("{k:?}: expected url, client-ip or header:<name>")),
        },
    }
}

fn reaches(m: &HashMap<&str, &Vec<String>>, from: &str, target: &str, depth: usize) -> bool {
    if depth > 16 {
        return true;
    }
    m.get(from).is_some_and(|members| {
        members
            .iter()
            .any(|x| x == target || reaches(m, x, target, depth + 1))
    })
}
