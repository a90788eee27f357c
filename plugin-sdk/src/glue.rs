//! The WIT `hooks` export, on wasm: converts between the generated bindings
//! and the SDK's types and keeps the instance's plugin in a global.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

use crate::export::Export;
use crate::wit::exports::lacquer::plugin::hooks::Guest;
use crate::wit::lacquer::plugin::types as wit;
use crate::{
    BackendResponseAction, CacheState, DeliverAction, DeliverInfo, FetchError, FetchErrorAction,
    FetchErrorKind, Plugin, Proposal, RecvAction, Request, Response, Storage, SynthResponse,
};

thread_local! {
    /// The plugin made by `init` (wasm is single-threaded: one per instance).
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with_plugin<P: Plugin, R>(f: impl FnOnce(&P) -> R) -> R {
    INSTANCE.with(|slot| {
        let slot = slot.borrow();
        let plugin = slot
            .as_ref()
            .and_then(|p| p.downcast_ref::<P>())
            .expect("lacquer plugin: a hook was called before a successful init");
        f(plugin)
    })
}

/// Implements the generated `Guest` trait for the plugin named by `E`.
pub struct Adapter<E>(PhantomData<E>);

impl<E: Export> Guest for Adapter<E> {
    fn contract_version() -> String {
        crate::CONTRACT_VERSION.to_owned()
    }

    fn implemented() -> wit::HookSet {
        wit::HookSet::from_bits_truncate(E::HOOKS.bits())
    }

    fn init(config: String) -> Result<(), String> {
        let plugin = crate::instantiate::<E::Plugin>(&config)?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    fn on_recv(req: &wit::Request) -> wit::RecvAction {
        let req = Request::from_impl(req);
        match with_plugin(|p: &E::Plugin| p.on_recv(&req)) {
            RecvAction::Continue => wit::RecvAction::Continue,
            RecvAction::Lookup => wit::RecvAction::Lookup,
            RecvAction::Pass => wit::RecvAction::Pass,
            RecvAction::Synth(synth) => wit::RecvAction::Synth(synth.into()),
            RecvAction::Purge => wit::RecvAction::Purge,
        }
    }

    fn on_backend_response(
        req: &wit::Request,
        resp: &wit::Response,
        proposal: wit::CacheProposal,
    ) -> wit::BackendResponseAction {
        let (req, resp) = (Request::from_impl(req), Response::from_impl(resp));
        let proposal = proposal.into();
        match with_plugin(|p: &E::Plugin| p.on_backend_response(&req, &resp, proposal)) {
            BackendResponseAction::Continue(p) => wit::BackendResponseAction::Continue(p.into()),
            BackendResponseAction::Retry => wit::BackendResponseAction::Retry,
            BackendResponseAction::Synth(s) => wit::BackendResponseAction::Synth(s.into()),
        }
    }

    fn on_fetch_error(
        req: &wit::Request,
        error: wit::FetchError,
        stale_available: bool,
    ) -> wit::FetchErrorAction {
        let req = Request::from_impl(req);
        let error = error.into();
        match with_plugin(|p: &E::Plugin| p.on_fetch_error(&req, &error, stale_available)) {
            FetchErrorAction::Continue => wit::FetchErrorAction::Continue,
            FetchErrorAction::Retry => wit::FetchErrorAction::Retry,
            FetchErrorAction::ServeStale => wit::FetchErrorAction::ServeStale,
            FetchErrorAction::Synth(s) => wit::FetchErrorAction::Synth(s.into()),
        }
    }

    fn on_deliver(
        req: &wit::Request,
        resp: &wit::Response,
        info: wit::DeliverInfo,
    ) -> wit::DeliverAction {
        let (req, resp) = (Request::from_impl(req), Response::from_impl(resp));
        let info = info.into();
        match with_plugin(|p: &E::Plugin| p.on_deliver(&req, &resp, &info)) {
            DeliverAction::Continue => wit::DeliverAction::Continue,
            DeliverAction::Synth(s) => wit::DeliverAction::Synth(s.into()),
        }
    }
}

impl From<SynthResponse> for wit::SynthResponse {
    fn from(s: SynthResponse) -> Self {
        wit::SynthResponse {
            status: s.status,
            headers: s.headers,
            body: s.body,
        }
    }
}

impl From<wit::CacheProposal> for Proposal {
    fn from(p: wit::CacheProposal) -> Self {
        Proposal {
            storage: match p.storage {
                wit::Storage::Cache => Storage::Cache,
                wit::Storage::HitForMiss => Storage::HitForMiss,
                wit::Storage::Uncacheable => Storage::Uncacheable,
            },
            ttl: Duration::from_millis(p.ttl_ms),
            grace: Duration::from_millis(p.grace_ms),
            keep: Duration::from_millis(p.keep_ms),
            reason: p.reason,
        }
    }
}

impl From<Proposal> for wit::CacheProposal {
    fn from(p: Proposal) -> Self {
        wit::CacheProposal {
            storage: match p.storage {
                Storage::Cache => wit::Storage::Cache,
                Storage::HitForMiss => wit::Storage::HitForMiss,
                Storage::Uncacheable => wit::Storage::Uncacheable,
            },
            ttl_ms: crate::types::millis(p.ttl),
            grace_ms: crate::types::millis(p.grace),
            keep_ms: crate::types::millis(p.keep),
            reason: p.reason,
        }
    }
}

impl From<wit::FetchError> for FetchError {
    fn from(e: wit::FetchError) -> Self {
        use wit::FetchErrorKind as W;
        let kind = match e.kind {
            W::ConnectRefused => FetchErrorKind::ConnectRefused,
            W::ConnectTimeout => FetchErrorKind::ConnectTimeout,
            W::FirstByteTimeout => FetchErrorKind::FirstByteTimeout,
            W::BetweenBytesTimeout => FetchErrorKind::BetweenBytesTimeout,
            W::BackendUnhealthy => FetchErrorKind::BackendUnhealthy,
            W::BackendBusy => FetchErrorKind::BackendBusy,
            W::NoBackend => FetchErrorKind::NoBackend,
            W::CircuitOpen => FetchErrorKind::CircuitOpen,
            W::ResponseTooLarge => FetchErrorKind::ResponseTooLarge,
            W::ProtocolError => FetchErrorKind::ProtocolError,
            W::ConnectionReset => FetchErrorKind::ConnectionReset,
        };
        FetchError {
            kind,
            backend: e.backend,
            attempt: e.attempt,
            elapsed: Duration::from_millis(e.elapsed_ms),
            detail: e.detail,
        }
    }
}

impl From<wit::DeliverInfo> for DeliverInfo {
    fn from(i: wit::DeliverInfo) -> Self {
        DeliverInfo {
            state: match i.state {
                wit::CacheState::Hit => CacheState::Hit,
                wit::CacheState::Miss => CacheState::Miss,
                wit::CacheState::Pass => CacheState::Pass,
                wit::CacheState::Stale => CacheState::Stale,
                wit::CacheState::Synth => CacheState::Synth,
            },
            hits: i.hits,
            age: Duration::from_secs(i.age_s),
            debug: i.debug,
        }
    }
}
