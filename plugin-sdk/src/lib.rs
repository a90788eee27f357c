//! Write [Lacquer](https://github.com/lacquer-proxy/lacquer) plugins in Rust.
//!
//! A plugin is a WebAssembly component that decides the policy of the proxy:
//! what to cache and for how long, where to route, what to answer when a
//! backend fails. This crate hides the component plumbing: you implement the
//! [`Plugin`] trait on a plain Rust type and name it in [`export!`].
//!
//! # Tutorial
//!
//! 1. Make a library crate that builds a `cdylib`:
//!
//!    ```toml
//!    [package]
//!    name = "my-plugin"
//!    edition = "2024"
//!
//!    [lib]
//!    crate-type = ["cdylib"]
//!    ```
//!
//! 2. Depend on the SDK and on `serde` for the config:
//!
//!    ```toml
//!    [dependencies]
//!    lacquer-plugin-sdk = { path = "../lacquer/plugin-sdk" }
//!    serde = { version = "1", features = ["derive"] }
//!    ```
//!
//! 3. Implement [`Plugin`]: a config type, a constructor, and the hooks you
//!    need (every hook has a default that does nothing):
//!
//!    ```
//!    use lacquer_plugin_sdk::{DeliverAction, DeliverInfo, Plugin, Request, Response};
//!
//!    #[derive(serde::Deserialize)]
//!    #[serde(default, deny_unknown_fields)]
//!    pub struct Config {
//!        /// Value of the `x-greeting` header. Default is "hello".
//!        greeting: String,
//!    }
//!
//!    impl Default for Config {
//!        fn default() -> Self {
//!            Config { greeting: "hello".into() }
//!        }
//!    }
//!
//!    pub struct Greeter {
//!        greeting: String,
//!    }
//!
//!    impl Plugin for Greeter {
//!        type Config = Config;
//!
//!        fn new(config: Config) -> Result<Self, String> {
//!            if config.greeting.is_empty() {
//!                return Err("greeting: must not be empty".into());
//!            }
//!            Ok(Greeter { greeting: config.greeting })
//!        }
//!
//!        fn on_deliver(&self, _req: &Request<'_>, resp: &Response<'_>, _info: &DeliverInfo) -> DeliverAction {
//!            // Fails only for an invalid value, which `new` could check.
//!            let _ = resp.set_header("x-greeting", &self.greeting);
//!            DeliverAction::Continue
//!        }
//!    }
//!
//!    // 4. Export it, naming the hooks it implements.
//!    lacquer_plugin_sdk::export!(Greeter, hooks = [deliver]);
//!
//!    // 7. Unit-test it natively (this would be a `#[test]`).
//!    use lacquer_plugin_sdk::{CacheState, Response as Resp, instantiate};
//!
//!    let plugin: Greeter = instantiate(r#"{"greeting": "hi"}"#).unwrap();
//!    let req = Request::builder().url("/").build();
//!    let resp = Resp::builder().status(200).build();
//!    let action = plugin.on_deliver(&req, &resp, &DeliverInfo::new(CacheState::Miss));
//!    assert_eq!(action, DeliverAction::Continue);
//!    assert_eq!(resp.header("x-greeting").as_deref(), Some("hi"));
//!    assert!(instantiate::<Greeter>(r#"{"greeting": ""}"#).is_err());
//!    ```
//!
//! 4. Export it with `lacquer_plugin_sdk::export!(Greeter, hooks = [deliver]);`
//!    (shown above). The hooks are `recv`, `backend_response`, `fetch_error`
//!    and `deliver`.
//!
//! 5. Build the component (install the target once with
//!    `rustup target add wasm32-wasip2`):
//!
//!    ```sh
//!    cargo build --target wasm32-wasip2 --release
//!    # -> target/wasm32-wasip2/release/my_plugin.wasm
//!    ```
//!
//! 6. Load it from the Lacquer config (a relative path resolves against the
//!    config file's directory); `config` is handed to [`Plugin::new`]:
//!
//!    ```toml
//!    [[plugins]]
//!    name = "greeter"
//!    path = "my-plugin/target/wasm32-wasip2/release/my_plugin.wasm"
//!    config = { greeting = "hi" }
//!    ```
//!
//! 7. Unit-test it natively with `cargo test` (shown above): off wasm,
//!    [`Request`] and [`Response`] are in-memory values made with
//!    [`Request::builder`] and [`Response::builder`], the [`host`] functions
//!    run on in-memory state, and [`testing`] sets that state up (backends,
//!    debug headers, the clock) and reads the log.
//!
//! # How the host runs plugins
//!
//! The host makes an instance, calls `init` once (which runs
//! [`Plugin::new`]), then reuses the instance for many requests, one at a
//! time. Plugins run in config order; for each hook the first terminal
//! decision wins. A plugin that traps (panics, runs out of time or memory)
//! loses its instance and is handled by its `on_error` policy.

#![deny(missing_docs)]

mod action;
pub mod config;
mod export;
mod http;
mod plugin;
mod types;
pub mod util;

pub mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use action::{
    BackendResponseAction, DeliverAction, FetchErrorAction, RecvAction, SynthResponse,
};
pub use config::{NoConfig, instantiate, parse_config};
pub use http::{Request, Response};
#[cfg(not(target_arch = "wasm32"))]
pub use http::{RequestBuilder, ResponseBuilder};
pub use plugin::Plugin;
pub use types::{CacheState, DeliverInfo, FetchError, FetchErrorKind, Level, Proposal, Storage};

/// The version of the WIT contract (`lacquer:plugin`) this SDK builds
/// plugins against; a plugin reports it from `contract-version`.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// Bindings generated from the WIT contract. Not part of the API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "lacquer_plugin_sdk::wit",
    });
}

/// What `export!` expands to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{Export, Hooks};
    #[cfg(target_arch = "wasm32")]
    pub use crate::glue::Adapter;
}

#[cfg(test)]
mod tests;
