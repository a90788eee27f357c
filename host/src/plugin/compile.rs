//! Compiling a plugin: once per content (kept in memory, and with
//! `[runtime] cache_dir` on disk as precompiled code), and checking the
//! contract version it was built against.

use std::path::Path;

use dashmap::DashMap;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;
use super::runtime::CONTRACT;

/// Compile (or fetch the already compiled) component and check its contract
/// version. With a cache directory, compiled code is stored there (keyed by
/// the component's content hash and the engine's compatibility hash) and
/// loaded from there on the next start or reload instead of recompiling.
pub(super) fn compile(
    engine: &Engine,
    compiled: &DashMap<u128, Component>,
    name: &str,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Component, PluginError> {
    let key = xxhash_rust::xxh3::xxh3_128(bytes);
    let file = cache_dir.map(|d| d.join(format!("{key:032x}-{:016x}.cwasm", engine_hash(engine))));
    let cached = compiled.get(&key).map(|c| c.clone());
    let c = match (cached, &file) {
        (Some(c), _) => c,
        (None, Some(f)) if f.exists() => match load_precompiled(engine, f) {
            Ok(c) => {
                tracing::info!(plugin = name, "loaded precompiled {}", f.display());
                c
            }
            Err(e) => {
                tracing::warn!(
                    plugin = name,
                    "ignoring unusable precompiled {}: {e}",
                    f.display()
                );
                compile_fresh(engine, name, bytes)?
            }
        },
        (None, _) => compile_fresh(engine, name, bytes)?,
    };
    check_contract(engine, &c).map_err(|cause| PluginError::Contract {
        plugin: name.into(),
        cause,
    })?;
    if let Some(f) = file.filter(|f| !f.exists()) {
        store_precompiled(name, &c, &f);
    }
    compiled.insert(key, c.clone());
    Ok(c)
}

fn compile_fresh(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(|e| PluginError::Compile {
        plugin: name.into(),
        cause: format!("{e:#}"),
    })
}

fn engine_hash(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires a trusted artifact made by `Component::serialize`
    // for a compatible engine. Lacquer writes these files itself, named by the
    // source's content hash and this engine's compatibility hash, into
    // `[runtime] cache_dir`, which must be writable only by the operator.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Write atomically (temp file, then rename); a failure only costs a recompile later.
fn store_precompiled(name: &str, c: &Component, path: &Path) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = c
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|bytes| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(
            plugin = name,
            "cannot store precompiled plugin in {}: {e}",
            path.display()
        );
    }
}

fn check_contract(engine: &Engine, c: &Component) -> Result<(), String> {
    for (name, _) in c.component_type().exports(engine) {
        let Some(v) = name.strip_prefix("lacquer:plugin/hooks@") else {
            continue;
        };
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let (major, minor) = (parts.next().flatten(), parts.next().flatten());
        return if (major, minor) == (Some(CONTRACT.0), Some(CONTRACT.1)) {
            Ok(())
        } else {
            Err(format!(
                "built against lacquer:plugin@{v}, but this host speaks lacquer:plugin@{}.{}.x; rebuild it with a matching lacquer-plugin-sdk",
                CONTRACT.0, CONTRACT.1
            ))
        };
    }
    Err("not a Lacquer plugin: it exports no lacquer:plugin/hooks interface".into())
}
