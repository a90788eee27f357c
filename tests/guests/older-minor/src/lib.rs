//! `older-minor`: a plugin built against `lacquer:plugin@0.1.0` (the copy in
//! this crate's `wit/`, as it was before `skip-recv-for`), to test that a
//! host speaking a later 0.1.x still loads it, calls its hooks and links its
//! imports. Its `on-recv` answers every request itself, naming the method
//! and host it read through the request handle.

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "plugin" });
}

use bindings::exports::lacquer::plugin::hooks::{
    BackendResponseAction, CacheProposal, DeliverAction, DeliverInfo, FetchError, FetchErrorAction,
    Guest, HookSet, RecvAction, Request, Response,
};
use bindings::lacquer::plugin::host;
use bindings::lacquer::plugin::types::{Level, SynthResponse};

struct OlderMinor;

impl Guest for OlderMinor {
    fn contract_version() -> String {
        "0.1.0".to_owned()
    }

    fn implemented() -> HookSet {
        HookSet::RECV
    }

    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn on_recv(req: &Request) -> RecvAction {
        host::log(Level::Info, "older-minor on-recv");
        RecvAction::Synth(SynthResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("0.1.0 plugin saw {} {}\n", req.method(), req.host()).into_bytes(),
        })
    }

    fn on_backend_response(
        _req: &Request,
        _resp: &Response,
        proposal: CacheProposal,
    ) -> BackendResponseAction {
        BackendResponseAction::Continue(proposal)
    }

    fn on_fetch_error(_req: &Request, _error: FetchError, _stale: bool) -> FetchErrorAction {
        FetchErrorAction::Continue
    }

    fn on_deliver(_req: &Request, _resp: &Response, _info: DeliverInfo) -> DeliverAction {
        DeliverAction::Continue
    }
}

bindings::export!(OlderMinor with_types_in bindings);
