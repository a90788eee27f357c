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
