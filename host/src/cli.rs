//! The command line: `lacquer serve`, `check`, `top`, `log`, `plugin new`,
//! and its own shell completions and man page.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::plugin::chain::hook_names;
use crate::server::{ConfigSource, Server, Shared};

/// Lacquer: a caching HTTP reverse proxy whose request logic is WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "lacquer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Parse a command line (`args[0]` is the program name) as `lacquer`
/// would, without running it: for checking command lines written elsewhere
/// (a service unit, a container's command).
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

impl Cli {
    /// The config file a `serve` or `check` command line names (`None`
    /// for other commands, and for `serve` on the embedded default).
    pub fn config(&self) -> Option<&std::path::Path> {
        match &self.command {
            Command::Serve { config, .. } => config.as_deref(),
            Command::Check { config } => Some(config),
            _ => None,
        }
    }

    /// The subcommand's name, as typed (`serve`, `check`, ...).
    pub fn subcommand(&self) -> &'static str {
        match &self.command {
            Command::Serve { .. } => "serve",
            Command::Check { .. } => "check",
            Command::Top(_) => "top",
            Command::Log(_) => "log",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
            Command::Plugin { .. } => "plugin",
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (without --config: the embedded default config and plugin bundle).
    Serve {
        /// Config file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Client listener, overriding [server] listen.
        #[arg(long)]
        listen: Option<String>,
        /// Backend URL, replacing the configured backends with one named "default".
        #[arg(long)]
        backend: Option<String>,
    },
    /// Validate a config: parse it, then load and init every plugin.
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// A live view of a running host, read from its admin API.
    Top(crate::top::Options),
    /// Follow a running host's access log, live, from its admin API (GET /log).
    Log(crate::follow::Options),
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Plugin authoring helpers.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Create a new plugin crate in directory NAME.
    New {
        /// Crate name (and directory).
        name: String,
        /// Path to the lacquer-plugin-sdk crate (default: this source tree's, else the published crate).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

/// Run the command line; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `[log] format` of the config about to be served (a config that does
    // not load is reported by `serve` itself, in text).
    let format = match &cli.command {
        Command::Serve {
            config,
            listen,
            backend,
        } => ConfigSource {
            path: config.clone(),
            listen: listen.clone(),
            backend: backend.clone(),
        }
        .load()
        .map_or(crate::config::LogFormat::Combined, |c| c.log.format),
        _ => crate::config::LogFormat::Combined,
    };
    crate::logging::init(format);
    match cli.command {
        Command::Serve {
            config,
            listen,
            backend,
        } => serve(ConfigSource {
            path: config,
            listen,
            backend,
        }),
        Command::Check { config } => check(config),
        Command::Top(opts) => crate::top::main(opts),
        Command::Log(opts) => crate::follow::main(opts),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let name = cmd.get_name().to_owned();
            clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => man(),
        Command::Plugin {
            command: PluginCommand::New { name, sdk_path },
        } => match crate::plugin::scaffold::new_plugin(&name, sdk_path.as_deref()) {
            Ok(dir) => {
                println!(
                    "created {}; build it with: cd {} && cargo build --target wasm32-wasip2 --release",
                    dir.display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// lacquer(1): synopsis, options, and the subcommands with what each does
/// (each one's flags are in `lacquer <command> --help`).
fn man() -> ExitCode {
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn serve(source: ConfigSource) -> ExitCode {
    runtime().block_on(async move {
        let server = match Server::start(source).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shared = server.shared().clone();
        #[cfg(unix)]
        {
            let shared = shared.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let _ = shared.reload().await;
                }
            });
        }
        wait_for_stop().await;
        tracing::info!("shutting down");
        drop(shared);
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn check(path: PathBuf) -> ExitCode {
    let source = ConfigSource {
        path: Some(path.clone()),
        ..Default::default()
    };
    let cfg = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = runtime().block_on(async move { Shared::new(source, &cfg).build(cfg, 1).await });
    match r {
        Ok(g) => {
            println!("{}: ok", path.display());
            if let Some(tls) = &g.tls {
                for (i, (chain, names)) in tls.loaded.iter().enumerate() {
                    let default = if i == 0 { " (default)" } else { "" };
                    println!(
                        "  certificate {}{default}: {}",
                        chain.display(),
                        names.join(", ")
                    );
                }
            }
            for p in g.chain.plugins() {
                println!(
                    "  plugin {}: init ok, hooks: {}",
                    p.name,
                    hook_names(p.hooks).join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `packaging/`, as shipped.
    fn packaging(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The value of the one `key=` line of a unit file.
    fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
        let mut found = unit
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='));
        let v = found
            .next()
            .unwrap_or_else(|| panic!("no {key}= in the unit"));
        assert!(found.next().is_none(), "{key}= twice in the unit");
        v
    }

    #[test]
    fn the_unit_serves_the_packaged_config_and_reloads_on_sighup() {
        let unit = packaging("lacquer.service");
        let start = unit_value(&unit, "ExecStart");
        let argv: Vec<&str> = start.split_whitespace().collect();
        assert_eq!(argv[0], "/usr/bin/lacquer", "{start}");
        let cli = parse_args(argv).unwrap_or_else(|e| panic!("{start}: {e}"));
        assert_eq!(cli.subcommand(), "serve");
        assert_eq!(
            cli.config(),
            Some(std::path::Path::new("/etc/lacquer/lacquer.toml"))
        );
        assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
        assert_eq!(unit_value(&unit, "Type"), "simple");
        assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
        // The capability stays commented out unless a low port is configured.
        assert!(!unit.lines().any(|l| l.starts_with("AmbientCapabilities")));
    }

    #[test]
    fn the_image_runs_the_packaged_config() {
        let docker = packaging("Dockerfile");
        let json = |key: &str| -> Vec<String> {
            let line = docker
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {key} in the Dockerfile"));
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{key} {line}: {e}"))
        };
        let argv: Vec<String> = json("ENTRYPOINT").into_iter().chain(json("CMD")).collect();
        let cli = parse_args(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert_eq!(cli.subcommand(), "serve");
        let config = cli.config().unwrap().to_str().unwrap().to_owned();
        assert!(
            docker.contains(&format!("COPY packaging/lacquer.toml {config}\n")),
            "the image installs the packaged config where CMD reads it"
        );
    }

    #[test]
    fn the_packaged_config_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/lacquer.toml");
        let cfg = ConfigSource {
            path: Some(path),
            ..Default::default()
        }
        .load()
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.listen.ip().is_unspecified(), "{}", cfg.listen);
        assert!(cfg.admin_listen.is_some_and(|a| a.ip().is_loopback()));
    }

    #[test]
    fn every_subcommand_is_in_completions_and_the_man_page() {
        let cmd = Cli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        assert!(
            names.contains(&"log") && names.contains(&"man"),
            "{names:?}"
        );
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lacquer", &mut out);
            let text = String::from_utf8(out).unwrap();
            for n in &names {
                assert!(text.contains(n), "{shell}: no {n}");
            }
        }
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .unwrap();
        let roff = String::from_utf8(out).unwrap();
        assert!(
            roff.starts_with(".ie") || roff.contains(".TH lacquer"),
            "{roff}"
        );
        for n in &names {
            assert!(roff.contains(n), "man page: no {n}");
        }
    }
}
