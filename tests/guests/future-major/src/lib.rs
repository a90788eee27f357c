//! `future-major`: a plugin built against `lacquer:plugin@1.0.0` (the copy in
//! this crate's `wit/`), to test that the host refuses a contract major
//! version it doesn't know, with a message naming both versions.

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "plugin" });
}

use bindings::exports::lacquer::plugin::hooks::{Guest, HookSet};

struct FutureMajor;

impl Guest for FutureMajor {
    fn contract_version() -> String {
        "1.0.0".to_owned()
    }

    fn implemented() -> HookSet {
        HookSet::RECV
    }

    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }
}

bindings::export!(FutureMajor with_types_in bindings);
