//! `faulty`: a plugin that misbehaves on purpose, so integration tests can
//! check that the host contains it.
//!
//! Config: `mode` (required) picks the misbehaviour, `hook` (default
//! `"recv"`: also `"backend-response"`, `"fetch-error"`, `"deliver"`) the hook
//! it happens in, and `path_prefix` (default `"/boom"`) the requests it
//! happens for: other requests are left alone, proving the proxy still serves.
//!
//! Modes: `trap` (wasm `unreachable`), `panic` (message "faulty plugin
//! panicked on purpose"), `loop` (never returns), `oom` (allocates 1 MiB
//! chunks until memory runs out), `bad-init` (init fails with "faulty:
//! bad-init requested"), `crlf` (a synthetic response with "\r\n" in a header
//! value), `huge-body` (a synthetic response with a 64 MiB body), `ok`
//! (sets `x-faulty: ok` on every delivered response, nothing else).

use std::hint::black_box;

use lacquer_plugin_sdk::{
    BackendResponseAction, DeliverAction, DeliverInfo, FetchError, FetchErrorAction, Plugin,
    Proposal, RecvAction, Request, Response, SynthResponse,
};
use serde::Deserialize;

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
}

fn default_prefix() -> String {
    "/boom".to_owned()
}

/// The faulty plugin.
pub struct Faulty {
    mode: Mode,
    hook: Hook,
    path_prefix: String,
}

impl Faulty {
    /// Misbehaves if `hook` and the request are the configured ones; returns
    /// the bad response to answer with, for the modes that make one.
    fn misbehave(&self, hook: Hook, req: &Request<'_>) -> Option<SynthResponse> {
        if hook != self.hook || !req.url().starts_with(&self.path_prefix) {
            return None;
        }
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
            Mode::Crlf => Some(
                SynthResponse::text(200, "crlf\n")
                    .header("x-injected", "a\r\nset-cookie: injected=1"),
            ),
            Mode::HugeBody => Some(SynthResponse::new(200).body(vec![b'x'; 64 << 20])),
            Mode::BadInit | Mode::Ok => None,
        }
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
        if config.mode == Mode::BadInit {
            return Err("faulty: bad-init requested".to_owned());
        }
        Ok(Faulty {
            mode: config.mode,
            hook: config.hook,
            path_prefix: config.path_prefix,
        })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        match self.misbehave(Hook::Recv, req) {
            Some(resp) => RecvAction::Synth(resp),
            None => RecvAction::Continue,
        }
    }

    fn on_backend_response(
        &self,
        req: &Request<'_>,
        _resp: &Response<'_>,
        proposal: Proposal,
    ) -> BackendResponseAction {
        match self.misbehave(Hook::BackendResponse, req) {
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
        match self.misbehave(Hook::FetchError, req) {
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
        match self.misbehave(Hook::Deliver, req) {
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
mod tests {
    use lacquer_plugin_sdk::{CacheState, instantiate};

    use super::*;

    #[test]
    fn config_selects_mode_hook_and_prefix() {
        let f: Faulty =
            instantiate(r#"{"mode": "crlf", "hook": "deliver", "path_prefix": "/x"}"#).unwrap();
        assert_eq!(
            (f.mode, f.hook, f.path_prefix.as_str()),
            (Mode::Crlf, Hook::Deliver, "/x")
        );
        let f: Faulty = instantiate(r#"{"mode": "huge-body"}"#).unwrap();
        assert_eq!((f.hook, f.path_prefix.as_str()), (Hook::Recv, "/boom"));
        assert_eq!(
            instantiate::<Faulty>(r#"{"mode": "bad-init"}"#)
                .err()
                .unwrap(),
            "faulty: bad-init requested"
        );
        assert!(instantiate::<Faulty>(r#"{"mode": "nope"}"#).is_err());
    }

    #[test]
    fn misbehaves_only_under_the_prefix_and_in_its_hook() {
        let f: Faulty = instantiate(r#"{"mode": "crlf"}"#).unwrap();
        let fine = Request::builder().url("/fine").build();
        assert_eq!(f.on_recv(&fine), RecvAction::Continue);
        let boom = Request::builder().url("/boom/x").build();
        let RecvAction::Synth(bad) = f.on_recv(&boom) else {
            panic!("expected a synth")
        };
        assert!(bad.header_value("x-injected").unwrap().contains("\r\n"));
        let resp = Response::builder().build();
        assert_eq!(
            f.on_deliver(&boom, &resp, &DeliverInfo::new(CacheState::Miss)),
            DeliverAction::Continue
        );
    }

    #[test]
    fn ok_mode_marks_every_response() {
        let f: Faulty = instantiate(r#"{"mode": "ok"}"#).unwrap();
        let resp = Response::builder().build();
        f.on_deliver(
            &Request::builder().build(),
            &resp,
            &DeliverInfo::new(CacheState::Hit),
        );
        assert_eq!(resp.header("x-faulty").as_deref(), Some("ok"));
    }
}
