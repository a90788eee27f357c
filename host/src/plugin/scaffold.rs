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

/// Create `NAME/` in the current directory: see [`new_plugin_in`].
pub fn new_plugin(name: &str, sdk_path: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let cwd = std::env::current_dir().map_err(|cause| ScaffoldError::Io {
        path: PathBuf::from("."),
        cause,
    })?;
    new_plugin_in(&cwd, name, sdk_path)?;
    Ok(PathBuf::from(name))
}

/// How the new crate depends on the SDK: `sdk_path` when given (a relative
/// one is relative to `cwd`); else, inside the Lacquer source tree (a
/// directory above `cwd` holds a Cargo.toml whose workspace has
/// `plugin-sdk`), that tree's SDK by a relative path; else the published
/// `lacquer-plugin-sdk` of this host's version. Never an absolute path the
/// operator did not give, so the crate builds on any machine.
pub fn sdk_dependency(cwd: &Path, sdk_path: Option<&Path>) -> String {
    let path = match sdk_path {
        Some(p) if p.is_absolute() => Some(p.display().to_string()),
        // The crate is one level below `cwd`.
        Some(p) => Some(format!("../{}", p.display())),
        None => source_tree(cwd).map(|root| {
            let depth = cwd
                .strip_prefix(&root)
                .map_or(0, |r| r.components().count());
            format!("{}plugin-sdk", "../".repeat(depth + 1))
        }),
    };
    match path {
        Some(p) => format!("{{ path = {p:?} }}"),
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    }
}

/// The Lacquer source tree `cwd` is in: the nearest directory at or above
/// it whose Cargo.toml declares a workspace with the `plugin-sdk` member.
fn source_tree(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|dir| {
            let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
                return false;
            };
            let Ok(manifest) = text.parse::<toml::Table>() else {
                return false;
            };
            manifest
                .get("workspace")
                .and_then(|w| w.get("members"))
                .and_then(|m| m.as_array())
                .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("plugin-sdk")))
                && dir.join("plugin-sdk/Cargo.toml").is_file()
        })
        .map(Path::to_path_buf)
}

/// Create `cwd/NAME/`: Cargo.toml, rust-toolchain.toml, .gitignore, a
/// README.md, a `lacquer.toml` that loads the plugin, and src/lib.rs with a
/// unit test that runs natively (`cargo test`). Returns the new directory.
pub fn new_plugin_in(
    cwd: &Path,
    name: &str,
    sdk_path: Option<&Path>,
) -> Result<PathBuf, ScaffoldError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        return Err(ScaffoldError::Name(name.into()));
    }
    let dir = cwd.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(PathBuf::from(name)));
    }
    let sdk = sdk_dependency(cwd, sdk_path);
    let lib = name.replace('-', "_");
    let ty: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("@NAME@", name)
            .replace("@LIB@", &lib)
            .replace("@TYPE@", &ty)
            .replace("@SDK@", &sdk)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("rust-toolchain.toml", fill(TOOLCHAIN)),
        (".gitignore", "target/\n".to_owned()),
        ("README.md", fill(README)),
        ("lacquer.toml", fill(LACQUER_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
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

const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm component; rlib: the native build `cargo test` uses.
crate-type = ["cdylib", "rlib"]

[dependencies]
lacquer-plugin-sdk = @SDK@
serde = { version = "1", features = ["derive"] }

[profile.release]
opt-level = "s"
lto = true
strip = true

# Its own workspace, wherever it is created.
[workspace]
"#;

const TOOLCHAIN: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["wasm32-wasip2"]
"#;

const README: &str = r#"# @NAME@

A Lacquer plugin: it sets `x-plugin: <greeting>` on every response.

```sh
cargo test                                     # its unit tests, natively
cargo build --target wasm32-wasip2 --release   # the plugin
lacquer serve --config lacquer.toml            # Lacquer with it, in front of 127.0.0.1:8080
```

`lacquer.toml` loads it between the bundled `cache-policy` and
`error-pages`. To add it to another config (a relative `path` resolves
against that config file's directory):

```toml
[[plugins]]
name = "@NAME@"
path = "@NAME@/target/wasm32-wasip2/release/@LIB@.wasm"
config = { greeting = "hello" }
```

`lacquer check --config lacquer.toml` loads and initialises every plugin
without serving.
"#;

const LACQUER_TOML: &str = r#"# Lacquer in front of http://127.0.0.1:8080 with this plugin between two
# bundled ones. Build the plugin first, then:
#
#     lacquer serve --config lacquer.toml
#
# Relative plugin paths resolve against this file's directory.
[server]
listen = "127.0.0.1:6081"

[admin]
listen = "127.0.0.1:6082"

[[backends]]
name = "app"
url = "http://127.0.0.1:8080"

[[plugins]]
name = "cache-policy"
builtin = "cache-policy"

[[plugins]]
name = "@NAME@"
path = "target/wasm32-wasip2/release/@LIB@.wasm"
config = { greeting = "hello from @NAME@" }

[[plugins]]
name = "error-pages"
builtin = "error-pages"
"#;

const LIB_RS: &str = r##"//! `@NAME@`: a Lacquer plugin that sets `x-plugin: <greeting>` on every
//! response.
//!
//! Build: `cargo build --target wasm32-wasip2 --release`, then name
//! `target/wasm32-wasip2/release/@LIB@.wasm` in a `[[plugins]]` entry (see
//! `lacquer.toml`). Test natively: `cargo test`.
//!
//! Config (every key optional, unknown keys are errors):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `greeting` | `"@NAME@"` | value of the `x-plugin` response header |

use lacquer_plugin_sdk::{DeliverAction, DeliverInfo, Plugin, Request, Response};
use serde::Deserialize;

/// Settings from the plugin's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Value of the `x-plugin` response header.
    pub greeting: Option<String>,
}

/// The plugin: its config, checked.
pub struct @TYPE@ {
    greeting: String,
}

impl Plugin for @TYPE@ {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let greeting = config.greeting.unwrap_or_else(|| "@NAME@".into());
        if greeting.contains(['\r', '\n', '\0']) {
            return Err("greeting: must not contain CR, LF or NUL".into());
        }
        Ok(Self { greeting })
    }

    fn on_deliver(
        &self,
        _req: &Request<'_>,
        resp: &Response<'_>,
        _info: &DeliverInfo,
    ) -> DeliverAction {
        // `new` checked the value, so this cannot fail.
        let _ = resp.set_header("x-plugin", &self.greeting);
        DeliverAction::Continue
    }
}

lacquer_plugin_sdk::export!(@TYPE@, hooks = [deliver]);

// Off wasm the SDK runs in memory: these run with a plain `cargo test`.
#[cfg(test)]
mod tests {
    use lacquer_plugin_sdk::{CacheState, instantiate};

    use super::*;

    /// The `x-plugin` header `plugin` sets on a response.
    fn delivered(plugin: &@TYPE@) -> Option<String> {
        let resp = Response::builder().build();
        let action = plugin.on_deliver(
            &Request::builder().build(),
            &resp,
            &DeliverInfo::new(CacheState::Miss),
        );
        assert_eq!(action, DeliverAction::Continue);
        resp.header("x-plugin")
    }

    #[test]
    fn sets_the_configured_greeting() {
        let plugin: @TYPE@ = instantiate(r#"{"greeting": "hello"}"#).unwrap();
        assert_eq!(delivered(&plugin).as_deref(), Some("hello"));
    }

    #[test]
    fn greets_with_its_name_by_default() {
        let plugin: @TYPE@ = instantiate("{}").unwrap();
        assert_eq!(delivered(&plugin).as_deref(), Some("@NAME@"));
    }

    #[test]
    fn refuses_bad_config() {
        assert!(instantiate::<@TYPE@>(r#"{"greting": "typo"}"#).is_err());
        assert!(instantiate::<@TYPE@>(r#"{"greeting": "a\nb"}"#).is_err());
    }
}
"##;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under `parent`.
    fn fresh(parent: &Path, tag: &str) -> PathBuf {
        let dir = parent.join(format!("lacquer-scaffold-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn source_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn outside_the_source_tree_it_depends_on_the_published_sdk() {
        let cwd = fresh(&std::env::temp_dir(), "outside");
        let dir = new_plugin_in(&cwd, "my-plugin", None).unwrap();
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains(&format!(
                "lacquer-plugin-sdk = \"{}\"\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{cargo}"
        );
        for f in [
            "Cargo.toml",
            "rust-toolchain.toml",
            ".gitignore",
            "README.md",
            "lacquer.toml",
            "src/lib.rs",
        ] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            let root = source_root().display().to_string();
            assert!(
                !text.contains(&root) && !text.contains(&cwd.display().to_string()),
                "{f} names a path of this machine:\n{text}"
            );
        }
        let _ = std::fs::remove_dir_all(&cwd);
    }

    #[test]
    fn inside_the_source_tree_it_uses_the_tree_sdk_by_a_relative_path() {
        let root = source_root();
        let cwd = fresh(&root.join("target"), "inside").join("deeper");
        std::fs::create_dir_all(&cwd).unwrap();
        assert_eq!(source_tree(&cwd).as_deref(), Some(root.as_path()));
        let dir = new_plugin_in(&cwd, "in_tree", None).unwrap();
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains("lacquer-plugin-sdk = { path = \"../../../../plugin-sdk\" }\n"),
            "{cargo}"
        );
        assert!(dir.join("../../../../plugin-sdk/Cargo.toml").is_file());
        assert!(!cargo.contains(&root.display().to_string()), "{cargo}");
        let _ = std::fs::remove_dir_all(cwd.parent().unwrap());
    }

    #[test]
    fn a_given_sdk_path_is_relative_to_the_current_directory() {
        let cwd = Path::new("/nowhere");
        assert_eq!(
            sdk_dependency(cwd, Some(Path::new("vendor/sdk"))),
            "{ path = \"../vendor/sdk\" }"
        );
        assert_eq!(
            sdk_dependency(cwd, Some(Path::new("/opt/sdk"))),
            "{ path = \"/opt/sdk\" }"
        );
    }

    #[test]
    fn the_crate_has_gitignore_readme_config_and_a_native_test() {
        let cwd = fresh(&std::env::temp_dir(), "files");
        let dir = new_plugin_in(&cwd, "hdr-2", None).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read(".gitignore"), "target/\n");
        let lib = read("src/lib.rs");
        assert!(lib.contains("export!(Hdr2, hooks = [deliver])"), "{lib}");
        assert!(lib.contains("#[cfg(test)]") && lib.contains("instantiate::<Hdr2>"));
        assert!(!lib.contains('@'), "every placeholder filled:\n{lib}");
        let config = read("lacquer.toml");
        assert!(
            config.contains("path = \"target/wasm32-wasip2/release/hdr_2.wasm\""),
            "{config}"
        );
        crate::config::Config::from_toml(&config, "lacquer.toml", Some(&dir))
            .map(|_| ())
            .or_else(|e| {
                // The .wasm does not exist until it is built: only that may be wrong.
                if e.to_string().contains("hdr_2.wasm") {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .unwrap();
        assert!(read("README.md").contains("[[plugins]]"));
        assert!(matches!(
            new_plugin_in(&cwd, "hdr-2", None),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(matches!(
            new_plugin_in(&cwd, "Bad", None),
            Err(ScaffoldError::Name(_))
        ));
        let _ = std::fs::remove_dir_all(&cwd);
    }
}
