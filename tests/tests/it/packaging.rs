//! The files of `packaging/` against the real binary: the packaged config
//! passes `lacquer check` (plugins loaded and initialised), and the
//! completions and man page name every subcommand.

use std::process::{Command, Output};

use lacquer_tests::lacquer_bin;

/// Run `lacquer ARGS` with no `LACQUER_*` override from the shell.
fn lacquer(args: &[&str]) -> (String, String, Output) {
    let mut cmd = Command::new(lacquer_bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LACQUER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run lacquer");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout, stderr, out)
}

const SUBCOMMANDS: [&str; 7] = [
    "serve",
    "check",
    "top",
    "log",
    "plugin",
    "completions",
    "man",
];

#[test]
fn the_packaged_config_passes_check() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/lacquer.toml");
    let (out, err, o) = lacquer(&["check", "--config", config]);
    assert!(o.status.success(), "check failed: {err}\n{out}");
    assert!(out.contains(": ok"), "{out}");
    assert!(out.contains("plugin cache-policy: init ok"), "{out}");
}

#[test]
fn completions_for_each_shell_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let (out, err, o) = lacquer(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {err}");
        for sub in SUBCOMMANDS {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let (_, err, o) = lacquer(&["completions", "tcsh"]);
    assert!(!o.status.success() && err.contains("tcsh"), "{err}");
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let (out, err, o) = lacquer(&["man"]);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(".TH lacquer 1"), "{out}");
    for sub in SUBCOMMANDS {
        assert!(
            out.contains(&format!("lacquer\\-{sub}")) || out.contains(sub),
            "man page lacks {sub}"
        );
    }
}
