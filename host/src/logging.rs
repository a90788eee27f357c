//! Process logs (tracing): text, or one JSON object per line with
//! `[log] format = "json"`. `LACQUER_LOG` sets the filter (default `info`).

use crate::config::LogFormat;

/// Install the process-wide subscriber, writing to stderr.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LACQUER_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Combined => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
