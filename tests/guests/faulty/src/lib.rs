//! `faulty`: a plugin that misbehaves on purpose, so integration tests can
//! check that the host contains it.
//!
//! Config: `mode` (required) picks the misbehaviour, `hook` (default
//! `"recv"`: also `"backend-response"`, `"fetch-error"`, `"deliver"`) the hook
//! it happens in, and `path_prefix` (default `"/boom"`) the requests it
//! happens for: other requests are left alone, proving the proxy still serves.
//! Some modes also read `count`, `size` (bytes), `sleep_ms` or `status`, with
//! per-mode defaults (in parentheses below); giving one of these to a mode
//! that does not read it fails init. Unknown keys fail init too.
//!
//! Modes: `trap` (wasm `unreachable`), `panic` (message "faulty plugin
//! panicked on purpose"), `loop` (never returns), `oom` (allocates 1 MiB
//! chunks until memory runs out), `bad-init` (init fails with "faulty:
//! bad-init requested"), `crlf` (a synthetic response with "\r\n" in a header
//! value), `huge-body` (a synthetic response with a 64 MiB body), `ok`
//! (sets `x-faulty: ok` on every delivered response, nothing else).
//!
//! Modes that attack HTTP framing:
//! - `framing`: a synthetic 200 with `content-length: 3`, `transfer-encoding:
//!   chunked`, `connection: keep-alive, x-evil` and `upgrade: websocket`, and
//!   a 60-byte body that reads as a second response (header `x-smuggled: 1`,
//!   body `evil!`) if those headers are obeyed.
//! - `framing-edit`: sets `content-length: 3`, `transfer-encoding: chunked`,
//!   `connection: close` and `upgrade: h2c` on the real response (results
//!   ignored), then continues.
//! - `status-101`: a synthetic response with status `status` (101) and body
//!   "switch\n".
//! - `set-status-101`: sets the real response's status to `status` (101),
//!   result ignored, then continues.
//!
//! Modes that flood the host, then continue (results and errors ignored):
//! - `header-flood`: appends `count` (40000) `x-flood` headers of `size` (16)
//!   bytes to the response, or to the request in `recv` and `fetch-error`.
//! - `synth-header-flood`: a synthetic 200 with `count` (40000) `x-flood`
//!   headers of `size` (16) bytes.
//! - `log-flood`: `count` (20000) `host::log` info lines of `size` (1024)
//!   bytes, numbered ("faulty flood <i> xxx..."); `print-flood`: the same
//!   lines on stdout with `println!`.
//! - `ban-flood`: `count` (100000) `host::invalidate` bans `^/banned/<i>$` on
//!   the request's host.
//! - `cache-key-flood`: `count` (1000) `add_cache_key` inputs of `size`
//!   (1048576) bytes.
//! - `url-flood`: `set_url` with a URL of `size` (1048576) bytes, "/" then `a`s.
//! - `sleep`: sleeps `sleep_ms` (600000, ten minutes), then continues.
//! - `sockets`: binds a UDP and a TCP socket on 127.0.0.1 (results
//!   ignored), then continues.
//! - `refused-growth`: the first time, asks for 1 GiB more memory, which
//!   the host's limit refuses, gets over the refusal and continues; every
//!   later time, traps.
//!
//! The response edits (`framing-edit`, `set-status-101`) need a hook with a
//! response, `backend-response` or `deliver`: in the others they do nothing.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lacquer_plugin_sdk::{
    BackendResponseAction, DeliverAction, DeliverInfo, FetchError, FetchErrorAction, Plugin,
    Proposal, RecvAction, Request, Response, SynthResponse,
};
use serde::Deserialize;

mod flood;
mod framing;

/// The misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Executes `unreachable`.
    Trap,
    /// Panics.
    Panic,
    /// Spins forever.
    Loop,
    /// Allocates until memory runs out.
    Oom,
    /// Fails `init`.
    BadInit,
    /// Answers with a header value containing CR LF.
    Crlf,
    /// Answers with a 64 MiB body.
    HugeBody,
    /// Behaves, and marks delivered responses with `x-faulty: ok`.
    Ok,
    /// Answers with contradictory framing headers and a body that looks like
    /// a second response.
    Framing,
    /// Sets contradictory framing headers on the real response.
    FramingEdit,
    /// Answers with status `status` (default 101) and a body.
    #[serde(rename = "status-101")]
    Status101,
    /// Sets the real response's status to `status` (default 101).
    #[serde(rename = "set-status-101")]
    SetStatus101,
    /// Appends `count` headers of `size` bytes to the response (or request).
    HeaderFlood,
    /// Answers with `count` headers of `size` bytes.
    SynthHeaderFlood,
    /// Logs `count` lines of `size` bytes through the host.
    LogFlood,
    /// Prints `count` lines of `size` bytes on stdout.
    PrintFlood,
    /// Adds `count` bans.
    BanFlood,
    /// Sleeps `sleep_ms`.
    Sleep,
    /// Adds `count` cache-key inputs of `size` bytes.
    CacheKeyFlood,
    /// Replaces the URL with one of `size` bytes.
    UrlFlood,
    /// Binds a UDP and a TCP socket (results ignored), then continues.
    Sockets,
    /// Gets over a refused memory growth once, then traps.
    RefusedGrowth,
}

const MIB: u32 = 1 << 20;

impl Mode {
    /// The default `count`, for the modes that read it.
    fn default_count(self) -> Option<u32> {
        match self {
            Mode::HeaderFlood | Mode::SynthHeaderFlood => Some(40_000),
            Mode::LogFlood | Mode::PrintFlood => Some(20_000),
            Mode::BanFlood => Some(100_000),
            Mode::CacheKeyFlood => Some(1_000),
            _ => None,
        }
    }

    /// The default `size`, for the modes that read it.
    fn default_size(self) -> Option<u32> {
        match self {
            Mode::HeaderFlood | Mode::SynthHeaderFlood => Some(16),
            Mode::LogFlood | Mode::PrintFlood => Some(1024),
            Mode::CacheKeyFlood | Mode::UrlFlood => Some(MIB),
            _ => None,
        }
    }

    /// The default `sleep_ms`, for the modes that read it.
    fn default_sleep_ms(self) -> Option<u64> {
        (self == Mode::Sleep).then_some(600_000)
    }

    /// The default `status`, for the modes that read it.
    fn default_status(self) -> Option<u16> {
        matches!(self, Mode::Status101 | Mode::SetStatus101).then_some(101)
    }
}

/// The hook to misbehave in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// `on-recv`.
    #[default]
    Recv,
    /// `on-backend-response`.
    BackendResponse,
    /// `on-fetch-error`.
    FetchError,
    /// `on-deliver`.
    Deliver,
}

/// The plugin's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    mode: Mode,
    #[serde(default)]
    hook: Hook,
    #[serde(default = "default_prefix")]
    path_prefix: String,
    count: Option<u32>,
    size: Option<u32>,
    sleep_ms: Option<u64>,
    status: Option<u16>,
}

fn default_prefix() -> String {
    "/boom".to_owned()
}

/// The value of setting `key`: the one given or the mode's default; 0 when
/// the mode doesn't read it, and an error if it was given anyway.
fn setting<T: Default>(
    mode: Mode,
    key: &str,
    given: Option<T>,
    default: Option<T>,
) -> Result<T, String> {
    match (given, default) {
        (Some(_), None) => Err(format!("faulty: mode {mode:?} does not read `{key}`")),
        (given, default) => Ok(given.or(default).unwrap_or_default()),
    }
}

/// The faulty plugin.
pub struct Faulty {
    mode: Mode,
    hook: Hook,
    path_prefix: String,
    count: u32,
    size: u32,
    sleep: Duration,
    status: u16,
}

impl Faulty {
    /// Misbehaves if `hook` and the request are the configured ones; returns
    /// the bad response to answer with, for the modes that make one. `resp`
    /// is the hook's response, if it has one.
    fn misbehave(
        &self,
        hook: Hook,
        req: &Request<'_>,
        resp: Option<&Response<'_>>,
    ) -> Option<SynthResponse> {
        if hook != self.hook || !req.url().starts_with(&self.path_prefix) {
            return None;
        }
        let (count, size) = (self.count, self.size);
        match self.mode {
            Mode::Trap => trap(),
            Mode::Panic => panic!("faulty plugin panicked on purpose"),
            Mode::Loop => {
                let mut spins = 0u64;
                loop {
                    spins = black_box(spins.wrapping_add(1));
                }
            }
            Mode::Oom => loop {
                std::mem::forget(black_box(vec![1u8; 1 << 20]));
            },
            Mode::Crlf => {
                return Some(
                    SynthResponse::text(200, "crlf\n")
                        .header("x-injected", "a\r\nset-cookie: injected=1"),
                );
            }
            Mode::HugeBody => return Some(SynthResponse::new(200).body(vec![b'x'; 64 << 20])),
            Mode::Framing => return Some(framing::takeover()),
            Mode::Status101 => return Some(framing::switching(self.status)),
            Mode::SynthHeaderFlood => return Some(flood::synth_headers(count, size)),
            Mode::FramingEdit => {
                if let Some(resp) = resp {
                    framing::edit(resp);
                }
            }
            Mode::SetStatus101 => {
                if let Some(resp) = resp {
                    let _ = resp.set_status(self.status);
                }
            }
            Mode::HeaderFlood => match resp {
                Some(resp) => flood::headers(count, size, |name, value| {
                    let _ = resp.append_header(name, value);
                }),
                None => flood::headers(count, size, |name, value| {
                    let _ = req.append_header(name, value);
                }),
            },
            Mode::LogFlood => flood::log(count, size),
            Mode::PrintFlood => flood::print(count, size),
            Mode::BanFlood => flood::bans(&req.host(), count),
            Mode::Sleep => std::thread::sleep(self.sleep),
            Mode::CacheKeyFlood => flood::cache_keys(req, count, size),
            Mode::UrlFlood => {
                let _ = req.set_url(&flood::long_url(size));
            }
            Mode::Sockets => {
                let _ = black_box(std::net::UdpSocket::bind("127.0.0.1:0"));
                let _ = black_box(std::net::TcpListener::bind("127.0.0.1:0"));
            }
            Mode::RefusedGrowth => {
                static REFUSED: AtomicBool = AtomicBool::new(false);
                if REFUSED.swap(true, Ordering::Relaxed) {
                    trap();
                }
                let mut v: Vec<u8> = Vec::new();
                assert!(v.try_reserve(1 << 30).is_err(), "faulty: 1 GiB granted");
            }
            Mode::BadInit | Mode::Ok => {}
        }
        None
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

impl Plugin for Faulty {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let mode = config.mode;
        if mode == Mode::BadInit {
            return Err("faulty: bad-init requested".to_owned());
        }
        Ok(Faulty {
            mode,
            hook: config.hook,
            path_prefix: config.path_prefix,
            count: setting(mode, "count", config.count, mode.default_count())?,
            size: setting(mode, "size", config.size, mode.default_size())?,
            sleep: Duration::from_millis(setting(
                mode,
                "sleep_ms",
                config.sleep_ms,
                mode.default_sleep_ms(),
            )?),
            status: setting(mode, "status", config.status, mode.default_status())?,
        })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        match self.misbehave(Hook::Recv, req, None) {
            Some(resp) => RecvAction::Synth(resp),
            None => RecvAction::Continue,
        }
    }

    fn on_backend_response(
        &self,
        req: &Request<'_>,
        resp: &Response<'_>,
        proposal: Proposal,
    ) -> BackendResponseAction {
        match self.misbehave(Hook::BackendResponse, req, Some(resp)) {
            Some(resp) => BackendResponseAction::Synth(resp),
            None => BackendResponseAction::Continue(proposal),
        }
    }

    fn on_fetch_error(
        &self,
        req: &Request<'_>,
        _error: &FetchError,
        _stale: bool,
    ) -> FetchErrorAction {
        match self.misbehave(Hook::FetchError, req, None) {
            Some(resp) => FetchErrorAction::Synth(resp),
            None => FetchErrorAction::Continue,
        }
    }

    fn on_deliver(
        &self,
        req: &Request<'_>,
        resp: &Response<'_>,
        _info: &DeliverInfo,
    ) -> DeliverAction {
        if self.mode == Mode::Ok {
            let _ = resp.set_header("x-faulty", "ok");
        }
        match self.misbehave(Hook::Deliver, req, Some(resp)) {
            Some(resp) => DeliverAction::Synth(resp),
            None => DeliverAction::Continue,
        }
    }
}

lacquer_plugin_sdk::export!(
    Faulty,
    hooks = [recv, backend_response, fetch_error, deliver]
);

#[cfg(test)]
mod tests;
