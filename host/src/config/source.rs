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
        fc.check(&file, base.as_deref())
    }
}

impl FileConfig {
    /// Parse TOML text, with `LACQUER_*` environment overrides (e.g.
    /// `LACQUER_SERVER__LISTEN`). Unknown keys are errors.
    pub fn parse(text: &str, file: &str) -> Result<FileConfig, ConfigError> {
        let parse_err = |e: config::ConfigError| ConfigError::Parse {
            file: file.to_string(),
            cause: e.to_string(),
        };
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("LACQUER")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_overrides())),
            )
            .build()
            .map_err(parse_err)?;
        raw.try_deserialize().map_err(parse_err)
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
