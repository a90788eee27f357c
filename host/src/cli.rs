//! The command line: `lacquer serve`, `lacquer check`, `lacquer top`, `lacquer plugin new`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::plugin::chain::hook_names;
use crate::server::{ConfigSource, Server, Shared};

/// Lacquer: a caching HTTP reverse proxy whose request logic is WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
