//! Every example config parses and checks, and runs: a real host starts on
//! it (its listeners on port 0, its backends pointed at a real origin, its
//! plugin paths at the components `build.rs` built), loads and initialises
//! every plugin it names, and serves a request that succeeds and one whose
//! fetch fails, so that every plugin's hooks are called.

use std::path::{Path, PathBuf};

use lacquer_tests::{Lacquer, Origin, Reply, guests};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no example configs found in {}",
        dir.display()
    );
    found
}

/// `key = "value"` → `value`.
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line
        .trim()
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?;
    rest.trim().strip_prefix('"')?.strip_suffix('"')
}

/// The plugin component for `path` as an example names it: the file
/// itself when it exists (relative to the example's directory), else the
/// component of the same file name that `build.rs` built.
fn component(path: &str, base: &Path) -> String {
    let p = base.join(path);
    if p.is_file() {
        return p.display().to_string();
    }
    let file = Path::new(path).file_name().unwrap();
    guests::ALL
        .iter()
        .map(|(_, built)| *built)
        .find(|built| Path::new(built).file_name() == Some(file))
        .unwrap_or_else(|| panic!("{path}: no such file, and build.rs built no {file:?}"))
        .to_owned()
}

/// The example rewritten to run here, and the names of its plugins.
fn runnable(example: &Path, origin: &str) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(example).unwrap();
    let base = example.parent().unwrap();
    let mut out = String::new();
    let mut table = String::new();
    let mut plugins = Vec::new();
    let mut admin = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.to_owned();
            admin |= t == "[admin]";
        }
        let line = if value(line, "listen").is_some() {
            // No fixed ports in tests.
            "listen = \"127.0.0.1:0\"".to_owned()
        } else if table == "[[backends]]" && value(line, "url").is_some() {
            format!("url = \"{origin}\"")
        } else if table == "[[plugins]]" && value(line, "path").is_some() {
            let path = value(line, "path").unwrap();
            format!("path = {:?}", component(path, base))
        } else {
            line.to_owned()
        };
        if table == "[[plugins]]"
            && let Some(name) = value(&line, "name")
        {
            plugins.push(name.to_owned());
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !admin {
        out.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
    }
    (out, plugins)
}

#[test]
fn every_example_config_is_valid() {
    for p in examples() {
        let text = std::fs::read_to_string(&p).unwrap();
        lacquer::Config::from_toml(&text, &p.display().to_string(), p.parent())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[tokio::test]
async fn every_example_runs_with_all_its_plugins() {
    let origin = Origin::start(|s| {
        if s.uri.starts_with("/example-fails") {
            Reply::reset()
        } else {
            Reply::ok(&format!("origin saw {}", s.uri)).header("cache-control", "max-age=60")
        }
    })
    .await;
    for example in examples() {
        let name = example.display().to_string();
        let (toml, plugins) = runnable(&example, &origin.url());
        let l = Lacquer::start(&toml)
            .await
            .unwrap_or_else(|e| panic!("{name}: does not start: {e:#}\n{toml}"));
        // Every plugin it names is loaded and initialised.
        let status: serde_json::Value =
            serde_json::from_slice(&l.admin("GET", "/status", "").await.body).unwrap();
        let loaded: Vec<String> = status["plugins"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: /status lists plugins: {status}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        if !plugins.is_empty() {
            assert_eq!(loaded, plugins, "{name}: plugins loaded in order");
        }
        let ok = l.get("/page").await;
        assert_eq!(ok.status, 200, "{name}: {:?} {}", ok.headers, ok.text());
        assert!(
            ok.text().starts_with("origin saw /"),
            "{name}: {}",
            ok.text()
        );
        // A plugin's visible effect, where the example configures one.
        if let Some(greeting) = toml.lines().find_map(|x| {
            let (_, rest) = x.split_once("greeting = \"")?;
            rest.split_once('"').map(|(g, _)| g.to_owned())
        }) {
            assert_eq!(ok.header("x-hello"), greeting, "{name}: {:?}", ok.headers);
        }
        let failed = l.get("/example-fails").await;
        assert!(failed.status >= 500, "{name}: {}", failed.status);
        // Every plugin ran at least once.
        let m = l.admin("GET", "/metrics", "").await.text();
        for p in &loaded {
            let calls: f64 = m
                .lines()
                .filter(|x| x.starts_with(&format!("lacquer_plugin_calls_total{{plugin=\"{p}\",")))
                .filter_map(|x| x.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert!(calls >= 1.0, "{name}: plugin {p} was never called:\n{m}");
        }
        let faults: Vec<_> = m
            .lines()
            .filter(|x| x.starts_with("lacquer_plugin_faults_total{") && !x.ends_with(" 0"))
            .collect();
        assert!(faults.is_empty(), "{name}: no plugin faulted: {faults:?}");
        println!("MEASURE example {name}: plugins {loaded:?} ran");
    }
}
