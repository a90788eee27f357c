//! `lacquer log`: a running host's access log, live, like varnishncsa,
//! read from its admin API (`GET /log`) until interrupted. Records go to
//! stdout, one a line (combined format, or JSON with `--json`); notices
//! (connected, records missed by a slow reader) go to stderr, so stdout
//! holds records only.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use serde::Deserialize;
use thiserror::Error;
use tokio::io::AsyncBufReadExt;

use crate::top::TopError;
use crate::top::api::Admin;

/// Flags of `lacquer log`.
#[derive(Debug, Args)]
pub struct Options {
    /// Admin API URL (the embedded default config's admin listener).
    #[arg(long, default_value = "http://127.0.0.1:6082")]
    admin: String,
    /// Bearer token; `/log` needs it whenever the host has `[admin] token`.
    #[arg(long)]
    token: Option<String>,
    /// Only failed requests: a 5xx, a fetch failure or a plugin fault.
    #[arg(long)]
    errors: bool,
    /// Only requests whose path and query match this regex.
    #[arg(long, value_name = "REGEX")]
    url: Option<String>,
    /// Only this status (`503`) or class (`5xx`).
    #[arg(long, value_name = "CODE")]
    status: Option<String>,
    /// Print records as JSON objects, one a line, instead of combined format.
    #[arg(long)]
    json: bool,
}

impl Options {
    /// `/log` with the query these flags ask for.
    fn path(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("format", if self.json { "json" } else { "combined" });
        if self.errors {
            q.append_pair("errors", "1");
        }
        if let Some(u) = &self.url {
            q.append_pair("url", u);
        }
        if let Some(s) = &self.status {
            q.append_pair("status", s);
        }
        format!("/log?{}", q.finish())
    }
}

/// Why `lacquer log` stopped other than by an interrupt.
#[derive(Debug, Error)]
pub enum FollowError {
    /// The stream could not be opened (bad URL, no answer, refused filter).
    #[error(transparent)]
    Admin(#[from] TopError),
    /// The async runtime for the admin client would not start.
    #[error("async runtime: {0}")]
    Runtime(std::io::Error),
    /// The connection broke mid-stream.
    #[error("reading {url}: {cause}")]
    Read {
        /// The stream's URL.
        url: String,
        /// What broke.
        cause: std::io::Error,
    },
    /// The host ended the stream (it is shutting down).
    #[error("{url}: the host ended the stream")]
    Ended {
        /// The stream's URL.
        url: String,
    },
}

/// The line a follower gets in place of records it was too slow to take.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Skipped {
    skipped: u64,
}

/// Run `lacquer log`; errors go to stderr and a failure exit code.
pub fn main(opts: Options) -> ExitCode {
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Options) -> Result<(), FollowError> {
    let path = opts.path();
    let admin = Admin::new(&opts.admin, opts.token)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FollowError::Runtime)?;
    rt.block_on(async {
        tokio::select! {
            r = follow(&admin, &path) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// Copy the stream's lines to stdout until it ends, or stdout closes (a
/// pager quit, `head` had enough): that is a normal end.
async fn follow(admin: &Admin, path: &str) -> Result<(), FollowError> {
    let url = format!("{}{path}", admin.base());
    let body = admin.open(path).await?;
    eprintln!("following {url}");
    let data = body.into_data_stream().map_err(std::io::Error::other);
    let mut lines = tokio_util::io::StreamReader::new(data).lines();
    let mut out = std::io::stdout().lock();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(FollowError::Ended { url }),
            Err(cause) => return Err(FollowError::Read { url, cause }),
        };
        if line.starts_with("{\"skipped\"")
            && let Ok(s) = serde_json::from_str::<Skipped>(&line)
        {
            eprintln!(
                "skipped {} records: this reader fell behind the host",
                s.skipped
            );
            continue;
        }
        // Stdout is line-buffered: each record is out as soon as it is read.
        if writeln!(out, "{line}").is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Options,
    }

    fn path(args: &[&str]) -> String {
        let args = std::iter::once("log").chain(args.iter().copied());
        Cli::try_parse_from(args).unwrap().opts.path()
    }

    #[test]
    fn flags_become_the_query_of_log() {
        assert_eq!(path(&[]), "/log?format=combined");
        assert_eq!(
            path(&[
                "--json",
                "--errors",
                "--url",
                "^/api/a b",
                "--status",
                "5xx"
            ]),
            "/log?format=json&errors=1&url=%5E%2Fapi%2Fa+b&status=5xx"
        );
    }
}
