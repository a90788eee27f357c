//! Bindings generated from `wit/plugin.wit`, kept apart from hand-written code.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Hook calls and host functions are synchronous (see `wait.rs`). The
    // host functions that may wait on the cluster's Redis can also trap:
    // when the call's wall-clock bound ends during the wait.
    imports: {
        "lacquer:plugin/host.counter-add": trappable,
        "lacquer:plugin/host.take-token": trappable,
        "lacquer:plugin/host.kv-get": trappable,
        "lacquer:plugin/host.kv-set": trappable,
    },
    with: {
        "lacquer:plugin/types.request": super::host_api::RequestHandle,
        "lacquer:plugin/types.response": super::host_api::ResponseHandle,
    },
});

pub use self::lacquer::plugin::types;

/// The same world with its hooks called on a fiber (`call_async`), for the
/// plugins whose calls may wait on the network (see `runtime::Pre`).
/// The imports are the synchronous ones above: the fiber linker shadows the
/// few that wait with asynchronous versions.
pub mod fiber {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        exports: { default: async },
        with: {
            "lacquer:plugin/types": super::lacquer::plugin::types,
            "lacquer:plugin/host": super::lacquer::plugin::host,
        },
    });
}

// ---- Conversions between the generated types and the host's kinds ----

use std::time::Duration;

use crate::kinds::{FetchKind, Proposal, State, Storage};

impl From<FetchKind> for types::FetchErrorKind {
    fn from(k: FetchKind) -> Self {
        use types::FetchErrorKind as W;
        match k {
            FetchKind::ConnectRefused => W::ConnectRefused,
            FetchKind::ConnectTimeout => W::ConnectTimeout,
            FetchKind::FirstByteTimeout => W::FirstByteTimeout,
            FetchKind::BetweenBytesTimeout => W::BetweenBytesTimeout,
            FetchKind::BackendUnhealthy => W::BackendUnhealthy,
            FetchKind::BackendBusy => W::BackendBusy,
            FetchKind::NoBackend => W::NoBackend,
            FetchKind::CircuitOpen => W::CircuitOpen,
            FetchKind::ResponseTooLarge => W::ResponseTooLarge,
            FetchKind::ProtocolError => W::ProtocolError,
            FetchKind::ConnectionReset => W::ConnectionReset,
            // The contract's kinds predate backend TLS: a connection that
            // could not be opened securely is one that could not be opened.
            FetchKind::TlsHandshake | FetchKind::TlsCertificate => W::ConnectRefused,
        }
    }
}

impl From<State> for types::CacheState {
    fn from(s: State) -> Self {
        match s {
            State::Hit => types::CacheState::Hit,
            State::Miss => types::CacheState::Miss,
            State::Pass => types::CacheState::Pass,
            State::Stale => types::CacheState::Stale,
            State::Synth => types::CacheState::Synth,
        }
    }
}

impl From<Storage> for types::Storage {
    fn from(s: Storage) -> Self {
        match s {
            Storage::Cache => types::Storage::Cache,
            Storage::HitForMiss => types::Storage::HitForMiss,
            Storage::Uncacheable => types::Storage::Uncacheable,
        }
    }
}

impl From<types::Storage> for Storage {
    fn from(s: types::Storage) -> Self {
        match s {
            types::Storage::Cache => Storage::Cache,
            types::Storage::HitForMiss => Storage::HitForMiss,
            types::Storage::Uncacheable => Storage::Uncacheable,
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl From<&Proposal> for types::CacheProposal {
    fn from(p: &Proposal) -> Self {
        types::CacheProposal {
            storage: p.storage.into(),
            ttl_ms: ms(p.ttl),
            grace_ms: ms(p.grace),
            keep_ms: ms(p.keep),
            reason: p.reason.clone(),
        }
    }
}

impl From<types::CacheProposal> for Proposal {
    fn from(p: types::CacheProposal) -> Self {
        Proposal {
            storage: p.storage.into(),
            ttl: Duration::from_millis(p.ttl_ms),
            grace: Duration::from_millis(p.grace_ms),
            keep: Duration::from_millis(p.keep_ms),
            reason: p.reason,
        }
    }
}
