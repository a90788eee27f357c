//! `lacquer top`: a live view of a running host, like varnishstat, read from
//! its admin API (`/metrics`, `/status`, `/backends`) every interval. With
//! `--once` it prints one plain-text snapshot, its rates taken over one
//! interval, and exits.

pub(crate) mod api;
mod prom;
mod snapshot;
mod text;
mod view;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use thiserror::Error;

use self::api::{Admin, Poll};
use self::snapshot::Snapshot;

/// Flags of `lacquer top`.
#[derive(Debug, Args)]
pub struct Options {
    /// Admin API URL (the embedded default config's admin listener).
    #[arg(long, default_value = "http://127.0.0.1:6082")]
    admin: String,
    /// Bearer token sent with every admin request.
    #[arg(long)]
    token: Option<String>,
    /// Time between polls; rates are over it.
    #[arg(long, default_value = "1s", value_parser = interval)]
    interval: Duration,
    /// Print one snapshot, taken over one interval, to stdout and exit.
    #[arg(long)]
    once: bool,
}

fn interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) {
        return Err("at least 10ms".into());
    }
    Ok(d)
}

/// Why `top` could not show anything.
#[derive(Debug, Error)]
pub enum TopError {
    /// `--admin` is not an http URL.
    #[error("admin URL {url}: {reason}")]
    BadUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection, or it broke before a whole answer.
    #[error("cannot reach the admin API at {url}: {cause}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// The error and its causes.
        cause: String,
    },
    /// The admin listener took too long.
    #[error("no answer from the admin API at {url} within {after:?}")]
    Timeout {
        /// The request's URL.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// An answer other than 200.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The request's URL.
        url: String,
        /// Its status.
        status: http::StatusCode,
        /// The start of its body.
        body: String,
    },
    /// `/status` or `/backends` was not the JSON expected.
    #[error("{url}: not the JSON expected: {source}")]
    Json {
        /// The request's URL.
        url: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `/metrics` was not Prometheus text.
    #[error("{url}: {source}")]
    Metrics {
        /// The request's URL.
        url: String,
        /// The first bad line.
        source: prom::ParseError,
    },
    /// The async runtime for the admin client would not start.
    #[error("async runtime: {0}")]
    Runtime(std::io::Error),
    /// The terminal could not be set up, drawn on or read.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Run `lacquer top`; errors go to stderr and a failure exit code.
pub fn main(opts: Options) -> ExitCode {
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Options) -> Result<(), TopError> {
    let admin = Admin::new(&opts.admin, opts.token)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Runtime)?;
    if opts.once {
        let text = rt.block_on(async {
            let first = admin.poll().await?;
            tokio::time::sleep(opts.interval).await;
            let second = admin.poll().await?;
            Ok::<_, TopError>(text::plain(
                &Snapshot::between(&first, &second),
                admin.base(),
            ))
        })?;
        print!("{text}");
        return Ok(());
    }
    // Fail before taking over the terminal when the admin API is not there.
    let first = rt.block_on(admin.poll())?;
    live(rt, admin, first, opts.interval)
}

/// Restores the terminal when dropped, whichever way `live` ends (a panic
/// is covered by the hook `ratatui::try_init` installs).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn is_quit(ev: &Event) -> bool {
    let Event::Key(k) = ev else { return false };
    k.kind == KeyEventKind::Press
        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

fn live(
    rt: tokio::runtime::Runtime,
    admin: Admin,
    first: Poll,
    every: Duration,
) -> Result<(), TopError> {
    // Polls run on their own thread so keys are answered while one waits.
    let (tx, rx) = mpsc::channel();
    let base = admin.base().to_owned();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if tx.send(admin.poll().await).is_err() {
                    return;
                }
            }
        })
    });
    let _restore = Restore;
    let mut terminal = ratatui::try_init()?;
    let mut last = first;
    let mut shown = Snapshot::between(&last, &last);
    let mut error: Option<String> = None;
    loop {
        terminal.draw(|f| view::draw(f, &shown, &base, error.as_deref()))?;
        if event::poll(Duration::from_millis(100))? && is_quit(&event::read()?) {
            return Ok(());
        }
        while let Ok(polled) = rx.try_recv() {
            match polled {
                Ok(p) => {
                    shown = Snapshot::between(&last, &p);
                    last = p;
                    error = None;
                }
                Err(e) => error = Some(e.to_string()),
            }
        }
    }
}
