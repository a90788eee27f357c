//! Configuration: the TOML file as written ([`FileConfig`], `file.rs`),
//! read from a file, the embedded default, flags and `LACQUER_*` variables
//! ([`ConfigSource`], `source.rs`), then checked once (`check.rs`) into the
//! typed runtime [`Config`] (`runtime.rs`) the proxy uses.
//!
//! Every default is a named constant and is stated in the field's docs.

mod check;
mod cluster;
mod file;
mod runtime;
mod source;

pub use cluster::*;
pub use file::*;
pub use runtime::*;
pub use source::ConfigSource;

/// The configuration used when `lacquer serve` is given no file: listen on
/// 6081, admin on 6082, one backend on 127.0.0.1:8080, the default bundle.
pub const EMBEDDED_DEFAULT: &str = r#"
[server]
listen = "127.0.0.1:6081"

[admin]
listen = "127.0.0.1:6082"

[[backends]]
name = "default"
url = "http://127.0.0.1:8080"

[log]
access = "stdout"
"#;

/// The plugins loaded, in this order, when a config has no `[[plugins]]`.
pub const DEFAULT_BUNDLE: &[&str] = &["cache-policy", "error-pages"];

/// A configuration error, naming the file, the key and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or mistyped.
    #[error("{file}: {cause}")]
    Parse {
        /// The file (or "embedded default").
        file: String,
        /// The parser's message (it names the key).
        cause: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{file}: {key}: {cause}")]
    Invalid {
        /// The file (or "embedded default").
        file: String,
        /// The key, e.g. `backends[0].url`.
        key: String,
        /// What is wrong with it.
        cause: String,
    },
}

#[cfg(test)]
mod tests;
