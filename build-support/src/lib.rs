//! Builds a cargo workspace of Lacquer plugins for `wasm32-wasip2` from a
//! build script, and tells the caller where each component landed.
//!
//! ```no_run
//! // build.rs
//! let plugins = lacquer_build_support::build("../plugins");
//! for (package, wasm) in &plugins {
//!     println!("{package} -> {}", wasm.display());
//! }
//! ```
//!
//! The nested build runs `cargo build --release --target wasm32-wasip2` in
//! its own target dir, `<target dir>/wasm`, so it never waits on the outer
//! build's lock, and it is shared by every build script that uses this crate.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Environment variables of the outer build that must not reach the nested
/// one: flags meant for the host target, the outer target dir and target,
/// and wrappers such as clippy's.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Why a plugin workspace could not be built.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Package name → path of its `.wasm` component.
pub type Components = BTreeMap<String, PathBuf>;

/// Builds the plugin workspace at `workspace` (a directory holding a
/// `Cargo.toml`, relative to the calling package's manifest dir) and returns
/// its components; on failure prints the reason, including the compiler's
/// output, and exits the build script with status 1.
pub fn build(workspace: impl AsRef<Path>) -> Components {
    match try_build(workspace.as_ref()) {
        Ok(components) => components,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}

/// Like [`build`], but returns the error instead of exiting.
///
/// Also emits `cargo:rerun-if-changed` lines for the workspace's manifests
/// and sources, the repository's `wit/` and `plugin-sdk/`.
pub fn try_build(workspace: &Path) -> Result<Components, Error> {
    let workspace = canonical(workspace)?;
    let manifest = workspace.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Error(format!(
            "no plugin workspace at {}",
            workspace.display()
        )));
    }
    check_target_installed()?;
    let members = members(&manifest)?;
    rerun_if_changed(&workspace, &members);

    let output = cargo()
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir()?)
        .output()
        .map_err(|err| Error(format!("cannot run cargo: {err}")))?;
    if !output.status.success() {
        return Err(Error(format!(
            "building the plugins in {} for {TARGET} failed:\n{}",
            workspace.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }

    let mut components = Components::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(member) = message["manifest_path"]
            .as_str()
            .and_then(|path| members.iter().find(|m| m.manifest == Path::new(path)))
        else {
            continue;
        };
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|file| file.ends_with(".wasm"));
        if let Some(wasm) = wasm {
            components.insert(member.name.clone(), PathBuf::from(wasm));
        }
    }
    if let Some(missing) = members
        .iter()
        .find(|m| m.cdylib && !components.contains_key(&m.name))
    {
        return Err(Error(format!(
            "the build produced no .wasm for package {}",
            missing.name
        )));
    }
    Ok(components)
}

/// Writes `contents` to `$OUT_DIR/<name>` (for `include!`), or prints why
/// it could not and exits the build script with status 1.
pub fn write_out_file(name: &str, contents: &str) {
    let result = env::var_os("OUT_DIR")
        .ok_or_else(|| "OUT_DIR is not set: call this from a build script".to_owned())
        .and_then(|dir| {
            let path = Path::new(&dir).join(name);
            std::fs::write(&path, contents)
                .map_err(|err| format!("cannot write {}: {err}", path.display()))
        });
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// A workspace member, from `cargo metadata`.
struct Member {
    name: String,
    manifest: PathBuf,
    cdylib: bool,
}

fn members(manifest: &Path) -> Result<Vec<Member>, Error> {
    let output = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|err| Error(format!("cannot run cargo metadata: {err}")))?;
    if !output.status.success() {
        return Err(Error(format!(
            "cargo metadata failed for {}:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| Error(format!("cannot parse cargo metadata: {err}")))?;
    let packages = metadata["packages"].as_array().into_iter().flatten();
    Ok(packages
        .map(|package| Member {
            name: package["name"].as_str().unwrap_or_default().to_owned(),
            manifest: PathBuf::from(package["manifest_path"].as_str().unwrap_or_default()),
            cdylib: package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|target| {
                    target["kind"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|kind| kind == "cdylib")
                }),
        })
        .collect())
}

fn rerun_if_changed(workspace: &Path, members: &[Member]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let mut paths = vec![
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        repo.join("wit"),
        repo.join("plugin-sdk/Cargo.toml"),
        repo.join("plugin-sdk/src"),
    ];
    for member in members {
        let dir = member.manifest.parent().unwrap_or(workspace);
        paths.push(member.manifest.clone());
        paths.extend(["src", "wit", "build.rs"].map(|entry| dir.join(entry)));
    }
    for path in paths.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    command
}

fn check_target_installed() -> Result<(), Error> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|err| Error(format!("cannot run {}: {err}", rustc.to_string_lossy())))?;
    let sysroot = String::from_utf8_lossy(&output.stdout);
    let target = Path::new(sysroot.trim()).join("lib/rustlib").join(TARGET);
    if !output.status.success() || !target.is_dir() {
        return Err(Error(format!(
            "the {TARGET} target is missing: run 'rustup target add {TARGET}'"
        )));
    }
    Ok(())
}

/// `<cargo target dir>/wasm`: OUT_DIR is `<target>/<profile>/build/<pkg>-<hash>/out`.
fn target_dir() -> Result<PathBuf, Error> {
    let out_dir = env::var_os("OUT_DIR")
        .ok_or_else(|| Error("OUT_DIR is not set: call this from a build script".into()))?;
    let target = Path::new(&out_dir)
        .ancestors()
        .nth(4)
        .ok_or_else(|| Error(format!("unexpected OUT_DIR {}", out_dir.to_string_lossy())))?;
    Ok(target.join("wasm"))
}

fn canonical(path: &Path) -> Result<PathBuf, Error> {
    let base = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = base.join(path);
    path.canonicalize()
        .map_err(|err| Error(format!("no plugin workspace at {}: {err}", path.display())))
}
