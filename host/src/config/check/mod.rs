//! Checking the file once into the runtime [`Config`]: one function per
//! section, each error naming the key (`backends[0].url`) and the cause.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;

use super::file::*;
use super::runtime::*;
use super::{ConfigError, DEFAULT_BUNDLE};

mod backend;

use backend::{check_backends, check_directors};

/// Builds errors for one file.
struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn bad(&self, key: impl Into<String>, cause: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            cause: cause.into(),
        }
    }

    fn addr(&self, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.parse::<SocketAddr>().map_err(|e| {
            self.bad(
                key,
                format!("{v:?} is not an address like 127.0.0.1:6081 ({e})"),
            )
        })
    }

    fn positive(&self, key: impl Into<String>, d: Duration) -> Result<(), ConfigError> {
        if d.is_zero() {
            return Err(self.bad(key, "must be more than 0s"));
        }
        Ok(())
    }
}

impl FileConfig {
    /// Check every value and resolve names and paths. `base` is the
    /// directory relative paths resolve against.
    pub fn check(self, file: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let c = Checker { file };
        let listen = c.addr("server.listen", &self.server.listen)?;
        let (admin_listen, admin_token) = check_admin(&c, &self.admin)?;
        let trusted_proxies = check_server(&c, &self.server)?;
        let tls = check_tls(&c, self.server.tls.as_ref(), listen, base)?;
        check_log(&c, &self.log)?;
        let mut names = HashSet::new();
        let backends = check_backends(&c, self.backends, &mut names, base)?;
        let directors = check_directors(&c, self.directors, &mut names)?;
        let default_backend = match self.server.default_backend {
            Some(n) if names.contains(&n) => n,
            Some(n) => {
                return Err(c.bad(
                    "server.default_backend",
                    format!("unknown backend or director {n:?}"),
                ));
            }
            None if backends.len() == 1 && directors.is_empty() => backends[0].name.clone(),
            None => {
                return Err(c.bad(
                    "server.default_backend",
                    "required when more than one backend or director is declared",
                ));
            }
        };
        check_cache(&c, &self.cache)?;
        let plugins = check_plugins(&c, self.plugins, base)?;
        let cluster = match self.cluster {
            Some(s) => Some(s.check(|k, e| c.bad(k, e))?),
            None => None,
        };
        let mut runtime = self.runtime;
        if let (Some(dir), Some(b)) = (&runtime.cache_dir, base)
            && dir.is_relative()
        {
            runtime.cache_dir = Some(b.join(dir));
        }
        let mut log = self.log;
        if let Some(b) = base
            && !matches!(log.access.as_str(), "off" | "stdout")
            && Path::new(&log.access).is_relative()
        {
            log.access = b.join(&log.access).to_string_lossy().into_owned();
        }
        Ok(Config {
            source: file.to_string(),
            listen,
            admin_listen,
            admin_token,
            default_backend,
            debug_headers: self.server.debug_headers,
            max_retries: self.server.max_retries,
            drain_timeout: self.server.drain_timeout,
            header_read_timeout: self.server.header_read_timeout,
            idle_timeout: self.server.idle_timeout,
            max_connections: self.server.max_connections,
            x_cache: self.server.x_cache,
            trusted_proxies,
            forwarded: self.server.forwarded,
            proxy_protocol: self.server.proxy_protocol,
            tls,
            log,
            cache: self.cache,
            runtime,
            backends,
            directors,
            plugins,
            cluster,
        })
    }
}

fn check_server(c: &Checker<'_>, s: &ServerSection) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    c.positive("server.header_read_timeout", s.header_read_timeout)?;
    c.positive("server.idle_timeout", s.idle_timeout)?;
    if s.max_connections == 0 {
        return Err(c.bad("server.max_connections", "must be at least 1"));
    }
    s.trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.parse::<ipnet::IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    c.bad(
                        format!("server.trusted_proxies[{i}]"),
                        format!("{v:?} is not an address or network like 10.0.0.0/8"),
                    )
                })
        })
        .collect()
}

fn check_tls(
    c: &Checker<'_>,
    t: Option<&TlsSection>,
    plain: SocketAddr,
    base: Option<&Path>,
) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(t) = t else { return Ok(None) };
    let listen = c.addr("server.tls.listen", &t.listen)?;
    if listen == plain && listen.port() != 0 {
        return Err(c.bad(
            "server.tls.listen",
            format!("{listen} is also server.listen: the TLS listener needs its own address"),
        ));
    }
    if t.certificates.is_empty() {
        return Err(c.bad(
            "server.tls.certificates",
            "at least one certificate is required",
        ));
    }
    let resolve = |p: &PathBuf| match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.clone(),
    };
    let mut certificates = Vec::new();
    for (i, cert) in t.certificates.iter().enumerate() {
        for (name, p) in [("chain", &cert.chain), ("key", &cert.key)] {
            if p.as_os_str().is_empty() {
                return Err(c.bad(
                    format!("server.tls.certificates[{i}].{name}"),
                    "must name a PEM file",
                ));
            }
        }
        certificates.push(CertificateFiles {
            chain: resolve(&cert.chain),
            key: resolve(&cert.key),
        });
    }
    Ok(Some(TlsConfig {
        listen,
        certificates,
        proxy_protocol: t.proxy_protocol,
    }))
}

fn check_log(c: &Checker<'_>, l: &LogSection) -> Result<(), ConfigError> {
    if l.access.trim().is_empty() {
        return Err(c.bad("log.access", "expected \"off\", \"stdout\" or a file path"));
    }
    Ok(())
}

fn check_admin(
    c: &Checker<'_>,
    a: &AdminSection,
) -> Result<(Option<SocketAddr>, Option<String>), ConfigError> {
    let listen = match &a.listen {
        Some(v) => Some(c.addr("admin.listen", v)?),
        None => None,
    };
    if a.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(c.bad(
            "admin.token",
            "must not be empty or blank (leave it out for no token)",
        ));
    }
    if listen.is_some_and(|l| !l.ip().is_loopback()) && a.token.is_none() {
        return Err(c.bad(
            "admin.token",
            "required when admin.listen is not a loopback address",
        ));
    }
    Ok((listen, a.token.clone()))
}

fn check_cache(c: &Checker<'_>, s: &CacheSection) -> Result<(), ConfigError> {
    if s.max_variants == 0 {
        return Err(c.bad("cache.max_variants", "must be at least 1"));
    }
    if s.max_bans == 0 {
        return Err(c.bad("cache.max_bans", "must be at least 1"));
    }
    if let Some(bad) = s.stale_on_status.iter().find(|v| !(500..=599).contains(*v)) {
        return Err(c.bad(
            "cache.stale_on_status",
            format!("{bad} is not a server error status (500..=599)"),
        ));
    }
    if s.max_object() > s.memory.0 {
        return Err(c.bad("cache.max_object_size", "must not exceed cache.memory"));
    }
    if s.partial.max_pieces == 0 {
        return Err(c.bad("cache.partial.max_pieces", "must be at least 1"));
    }
    check_compress(c, &s.compress)
}

/// Most entries in `[cache] compress.types`.
const MAX_COMPRESS_TYPES: usize = 256;

fn check_compress(c: &Checker<'_>, s: &CompressSection) -> Result<(), ConfigError> {
    if !(1..=9).contains(&s.level) {
        return Err(c.bad(
            "cache.compress.level",
            format!("{} is not a gzip level (1..=9)", s.level),
        ));
    }
    if s.types.len() > MAX_COMPRESS_TYPES {
        return Err(c.bad(
            "cache.compress.types",
            format!("{} types: at most {MAX_COMPRESS_TYPES}", s.types.len()),
        ));
    }
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    for t in &s.types {
        let ok = match t.split_once('/') {
            Some((ty, "*")) => token(ty),
            Some((ty, sub)) => token(ty) && token(sub),
            None => false,
        };
        if !ok {
            return Err(c.bad(
                "cache.compress.types",
                format!("{t:?} is not a media type (type/subtype or type/*, no parameters)"),
            ));
        }
    }
    Ok(())
}

fn check_plugins(
    c: &Checker<'_>,
    sections: Option<Vec<PluginSection>>,
    base: Option<&Path>,
) -> Result<Vec<PluginConfig>, ConfigError> {
    let sections = sections.unwrap_or_else(|| {
        DEFAULT_BUNDLE
            .iter()
            .map(|n| PluginSection::builtin(n))
            .collect()
    });
    let mut names = HashSet::new();
    let mut plugins = Vec::new();
    let mut instances = 0u64;
    for (i, p) in sections.into_iter().enumerate() {
        let key = |k: &str| format!("plugins[{i}].{k}");
        check_name(&p.name).map_err(|e| c.bad(key("name"), e))?;
        if !names.insert(p.name.clone()) {
            return Err(c.bad(key("name"), format!("duplicate name {:?}", p.name)));
        }
        let source = match (&p.path, &p.builtin) {
            (Some(path), None) => PluginSource::Path(match base {
                Some(b) if path.is_relative() => b.join(path),
                _ => path.clone(),
            }),
            (None, Some(b)) => {
                if !crate::bundle::names().any(|n| n == b) {
                    let known: Vec<_> = crate::bundle::names().collect();
                    return Err(c.bad(
                        key("builtin"),
                        format!("unknown builtin {b:?} (known: {})", known.join(", ")),
                    ));
                }
                PluginSource::Builtin(b.clone())
            }
            _ => return Err(c.bad(key("path"), "set exactly one of `path` and `builtin`")),
        };
        if p.timeout.is_zero() || p.timeout > Duration::from_secs(10) {
            return Err(c.bad(key("timeout"), "must be more than 0s and at most 10s"));
        }
        if p.wall_timeout
            .is_some_and(|w| w < p.timeout || w > Duration::from_secs(60))
        {
            return Err(c.bad(
                key("wall_timeout"),
                "must be at least timeout and at most 60s",
            ));
        }
        if p.max_instances == 0 {
            return Err(c.bad(key("max_instances"), "must be at least 1"));
        }
        instances += u64::from(p.max_instances);
        if p.memory.0 < 1024 * 1024 || p.memory.0 > MAX_PLUGIN_MEMORY {
            return Err(c.bad(key("memory"), "must be between 1MiB and 512MiB"));
        }
        let config_json = p
            .config
            .as_ref()
            .map_or_else(|| "{}".to_string(), |v| v.to_string());
        plugins.push(PluginConfig {
            on_error: p.on_error.per_hook(),
            section: p,
            source,
            config_json,
        });
    }
    if instances > u64::from(TOTAL_PLUGIN_INSTANCES / 2) {
        return Err(c.bad(
            "plugins",
            format!(
                "max_instances add up to {instances}: at most {} across all plugins (half the process's {TOTAL_PLUGIN_INSTANCES}, so a reload always has room)",
                TOTAL_PLUGIN_INSTANCES / 2
            ),
        ));
    }
    Ok(plugins)
}

impl PluginSection {
    /// A bundled plugin with every default.
    pub fn builtin(name: &str) -> Self {
        PluginSection {
            name: name.into(),
            path: None,
            builtin: Some(name.into()),
            on_error: OnErrorSpec::default(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            wall_timeout: None,
            max_instances: DEFAULT_PLUGIN_INSTANCES,
            memory: ByteSize(DEFAULT_PLUGIN_MEMORY),
            quarantine_after: 0,
            quarantine_window: DEFAULT_QUARANTINE_WINDOW,
            quarantine_backoff: DEFAULT_QUARANTINE_BACKOFF,
            config: None,
            shared_kv: false,
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: use 1-64 characters of a-z, 0-9, '-', '_', '.'"
        ))
    }
}
