//! `lacquer plugin new NAME`: a plugin crate that builds for wasm32-wasip2 as it is.

use std::path::{Path, PathBuf};

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Bad crate name.
    #[error("{0:?} is not a valid crate name (use lower-case letters, digits, '-' and '_')")]
    Name(String),
    /// The directory exists.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {cause}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        cause: std::io::Error,
    },
}

/// Create `NAME/` with Cargo.toml, rust-toolchain.toml and src/lib.rs.
pub fn new_plugin(name: &str, sdk_path: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        return Err(ScaffoldError::Name(name.into()));
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    // Default: the SDK beside this binary's sources when present, else the published crate.
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let sdk_path =
        sdk_path.or_else(|| local.join("Cargo.toml").exists().then_some(local.as_path()));
    let sdk = match sdk_path {
        Some(p) => {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            format!("{{ path = {:?} }}", p.display().to_string())
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let ty = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>();
    let files = [
        (
            "Cargo.toml",
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nlacquer-plugin-sdk = {sdk}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n\n[workspace]\n"
            ),
        ),
        (
            "rust-toolchain.toml",
            "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n".to_string(),
        ),
        (
            "src/lib.rs",
            format!(
                r#"//! A Lacquer plugin. Build: `cargo build --target wasm32-wasip2 --release`,
//! then name `target/wasm32-wasip2/release/{lib}.wasm` in a `[[plugins]]` entry.
//! Test natively: `cargo test`.

use lacquer_plugin_sdk::{{DeliverAction, DeliverInfo, Plugin, Request, Response}};
use serde::Deserialize;

/// Settings from the plugin's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {{
    /// Value of the `x-plugin` response header.
    pub greeting: Option<String>,
}}

/// The plugin.
pub struct {ty} {{
    greeting: String,
}}

impl Plugin for {ty} {{
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {{
        Ok(Self {{ greeting: config.greeting.unwrap_or_else(|| "{name}".into()) }})
    }}

    fn on_deliver(&self, _req: &Request, resp: &Response, _info: &DeliverInfo) -> DeliverAction {{
        let _ = resp.set_header("x-plugin", &self.greeting);
        DeliverAction::Continue
    }}
}}

lacquer_plugin_sdk::export!({ty}, hooks = [deliver]);
"#,
                lib = name.replace('-', "_")
            ),
        ),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        let io = |cause| ScaffoldError::Io {
            path: path.clone(),
            cause,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(dir)
}
