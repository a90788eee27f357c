//! Bindings generated from `wit/plugin.wit`, kept apart from hand-written code.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Hook calls are async so WASI stdio (and anything else that may wait)
    // never blocks a tokio worker; the host functions themselves are sync.
    exports: { default: async },
    with: {
        "lacquer:plugin/types.request": super::host_api::RequestHandle,
        "lacquer:plugin/types.response": super::host_api::ResponseHandle,
    },
});

pub use self::lacquer::plugin::types;
