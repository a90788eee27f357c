//! Where the config comes from: a file or the embedded default, with
//! `LACQUER_<SECTION>__<KEY>` environment overrides (the `config` crate) and
//! the command line's `--listen` / `--backend`. Reloads read it the same way.

use std::path::PathBuf;

use super::{BackendSection, Config, ConfigError, FileConfig};

/// Where the config comes from, with command-line overrides, so reloads re-read it the same way.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file; none means the embedded default.
    pub path: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--backend`: replaces the backends with one named "default".
    pub backend: Option<String>,
}

impl ConfigSource {
    /// Read and check the config.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let (text, file, base) = match &self.path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| ConfigError::Parse {
                    file: p.display().to_string(),
                    cause: format!("cannot read: {e}"),
                })?,
                p.display().to_string(),
                p.parent().map(|b| b.to_path_buf()),
            ),
            None => (
                super::EMBEDDED_DEFAULT.to_string(),
                "embedded default".to_string(),
                None,
            ),
        };
        let mut fc = FileConfig::parse(&text, &file)?;
        if let Some(l) = &self.listen {
            fc.server.listen = l.clone();
        }
        if let Some(b) = &self.backend {
            let mut first = fc
                .backends
                .first()
                .cloned()
                .unwrap_or_else(|| BackendSection::new("default", ""));
            first.name = "default".into();
            first.url = b.clone();
            fc.backends = vec![first];
            fc.directors.clear();
            fc.server.default_backend = Some("default".into());
        }
        // What a flag set is the flag's fault, not the file's.
        fc.check(&file, base.as_deref()).map_err(|e| match e {
            ConfigError::Invalid { key, cause, .. }
                if self.backend.is_some() && key.starts_with("backends[0]") =>
            {
                ConfigError::Invalid {
                    file: "--backend".into(),
                    key: key.trim_start_matches("backends[0].").into(),
                    cause,
                }
            }
            ConfigError::Invalid { key, cause, .. }
                if self.listen.is_some() && key == "server.listen" =>
            {
                ConfigError::Invalid {
                    file: "--listen".into(),
                    key,
                    cause,
                }
            }
            e => e,
        })
    }
}

impl FileConfig {
    /// Parse TOML text, with `LACQUER_*` environment overrides (e.g.
    /// `LACQUER_SERVER__LISTEN`). Unknown keys are errors.
    pub fn parse(text: &str, file: &str) -> Result<FileConfig, ConfigError> {
        // The file alone first, so a mistake in it is reported with its
        // line and key path; then the environment, blamed for what it adds.
        let from_file = parse_file(text, file)?;
        let env = env_overrides();
        if env.is_empty() {
            return Ok(from_file);
        }
        let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
        names.sort_unstable();
        let blamed = format!("environment ({})", names.join(", "));
        let parse_err = |e: config::ConfigError| ConfigError::Parse {
            file: blamed.clone(),
            cause: hint(&e.to_string(), ""),
        };
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("LACQUER")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()
            .map_err(parse_err)?;
        raw.try_deserialize().map_err(parse_err)
    }
}

/// Deserialize the file, naming `file:line`, the key path (e.g.
/// `backends[0].first_byte_timeout`) and the expected form on error.
fn parse_file(text: &str, file: &str) -> Result<FileConfig, ConfigError> {
    let located = |e: &toml::de::Error, key: Option<String>| {
        let file = match e.span() {
            Some(s) => format!(
                "{file}:{}",
                text[..s.start.min(text.len())].matches('\n').count() + 1
            ),
            None => file.to_string(),
        };
        let cause = hint(e.message().trim(), key.as_deref().unwrap_or(""));
        match key.filter(|k| !k.is_empty() && k != "?" && k != ".") {
            Some(key) => ConfigError::Invalid { file, key, cause },
            None => ConfigError::Parse { file, cause },
        }
    };
    let de = toml::Deserializer::parse(text).map_err(|e| located(&e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        located(e.inner(), Some(key))
    })
}

/// Add the expected form to a serde message about a duration or a size
/// (told by the message, or by the key: sizes are `memory` and
/// `max_object_size`).
fn hint(message: &str, key: &str) -> String {
    let m = message.to_ascii_lowercase();
    let last = key.rsplit('.').next().unwrap_or("");
    if matches!(last, "memory" | "max_object_size") {
        format!("{message}; expected a size like \"256MiB\" or \"64KiB\"")
    } else if m.contains("duration") {
        format!("{message}; expected a duration string like \"250ms\", \"5s\" or \"1h\"")
    } else if m.contains("bytesize") || m.contains("byte size") || m.contains("unit") {
        format!("{message}; expected a size like \"256MiB\" or \"64KiB\"")
    } else {
        message.to_string()
    }
}

/// The `LACQUER_<SECTION>__<KEY>` variables: only names with the `__`
/// separator are overrides (`LACQUER_LOG`, the log filter, is not).
fn env_overrides() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("LACQUER_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect()
}
