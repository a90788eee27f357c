//! The `lacquer` binary: `check` accepts good configs and names the key of a bad one.

use std::process::Command;

fn lacquer(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(args)
        .output()
        .expect("run lacquer");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lacquer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_accepts_a_good_config_and_lists_plugin_hooks() {
    let p = write(
        "good.toml",
        "[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n",
    );
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("plugin cache-policy: init ok, hooks: on-recv"),
        "{out}"
    );
}

#[test]
fn check_rejects_an_unknown_key_naming_it() {
    let p = write(
        "bad.toml",
        "[server]\nlisten = \"127.0.0.1:6081\"\ncolour = \"blue\"\n[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n",
    );
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("colour") && out.contains("bad.toml"), "{out}");
}

#[test]
fn check_rejects_a_bad_value_naming_the_key() {
    let p = write(
        "badval.toml",
        "[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\nconnect_timeout = \"fast\"\n",
    );
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("connect_timeout"), "{out}");
}

#[test]
fn check_rejects_a_bad_plugin_config_with_the_plugins_message() {
    let p = write(
        "badplugin.toml",
        "[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n[[plugins]]\nname = \"rl\"\nbuiltin = \"rate-limit\"\nconfig = { requests_per_secnd = 5 }\n",
    );
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("rl") && out.contains("requests_per_secnd"),
        "{out}"
    );
}

#[test]
fn compiled_plugins_are_cached_on_disk_and_reused() {
    let p = write(
        "cached.toml",
        "[runtime]\ncache_dir = \"compiled\"\n[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n",
    );
    let dir = p.parent().unwrap().join("compiled");
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(ok, "{out}");
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 2, "one compiled file per bundled plugin in use");
    let (ok, out) = lacquer(&["check", "--config", p.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("loaded precompiled").count(), 2, "{out}");
}

#[test]
fn plugin_new_scaffolds_a_crate() {
    let dir = std::env::temp_dir().join(format!("lacquer-scaffold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(["plugin", "new", "my-plugin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = std::fs::read_to_string(dir.join("my-plugin/src/lib.rs")).unwrap();
    assert!(
        lib.contains("export!(MyPlugin, hooks = [deliver])"),
        "{lib}"
    );
    let cargo = std::fs::read_to_string(dir.join("my-plugin/Cargo.toml")).unwrap();
    assert!(cargo.contains("cdylib"), "{cargo}");
    // Outside the source tree: the published SDK of this version, and no
    // path of the machine that built the binary (it builds anywhere).
    assert!(
        cargo.contains(&format!(
            "lacquer-plugin-sdk = \"{}\"\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{cargo}"
    );
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    assert!(
        !cargo.contains(&source) && !cargo.contains("path ="),
        "{cargo}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("my-plugin/.gitignore")).unwrap(),
        "target/\n"
    );
    let again = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(["plugin", "new", "my-plugin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success(), "refuses to overwrite");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inside the source tree the crate uses the tree's SDK by a relative path,
/// and its generated unit tests pass with a plain `cargo test`.
#[test]
fn a_scaffolded_crate_in_the_tree_passes_its_own_tests_natively() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = root
        .join("target")
        .join(format!("scaffold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(["plugin", "new", "tree-plugin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = dir.join("tree-plugin");
    let cargo = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("lacquer-plugin-sdk = { path = \"../../../plugin-sdk\" }"),
        "{cargo}"
    );
    let test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--offline"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", root.join("target/plugins-native"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&test.stdout).to_string() + &String::from_utf8_lossy(&test.stderr);
    assert!(test.status.success(), "{text}");
    assert!(text.contains("test result: ok. 3 passed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn environment_overrides_config_keys_but_not_the_log_filter() {
    let p = write(
        "env.toml",
        "[[backends]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(["check", "--config", p.to_str().unwrap()])
        .env("LACQUER_LOG", "warn")
        .env("LACQUER_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("server.listen") && text.contains("not-an-address"),
        "{text}"
    );
}
