//! Plugins: WebAssembly components behind the `lacquer:plugin` WIT contract.
//!
//! - [`runtime`]: engine, compilation, warm instance pools, deadlines, faults.
//! - [`host_api`]: what plugins can call and the request/response handles.
//! - [`chain`]: the hooks run across plugins in config order.
//! - [`kv`]: shared, bounded plugin state (counters, key-value, token buckets).

mod bindings;
pub mod chain;
mod compile;
mod cpu;
pub mod host_api;
pub mod kv;
pub mod limits;
mod log;
mod pool;
pub mod recv_skip;
pub mod runtime;
pub mod scaffold;
mod shared_state;
mod slots;
mod stdio;
mod ticker;
mod wait;
mod wasi;

pub use crate::kinds::{FaultKind, Hook};
pub use chain::{Chain, PluginFailure, Synth};
pub use host_api::{ReqState, RespState};
pub use log::LogBudget;

/// A failed plugin call.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What kind of failure.
    pub kind: FaultKind,
    /// Detail for the log.
    pub message: String,
}

/// A plugin that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The `.wasm` file could not be read.
    #[error("plugin {plugin}: cannot read {path}: {cause}")]
    Read {
        /// Plugin name.
        plugin: String,
        /// File.
        path: String,
        /// OS error.
        cause: std::io::Error,
    },
    /// Not a valid component.
    #[error("plugin {plugin}: not a valid WebAssembly component: {cause}")]
    Compile {
        /// Plugin name.
        plugin: String,
        /// Compiler message.
        cause: String,
    },
    /// Built for another contract version.
    #[error("plugin {plugin}: {cause}")]
    Contract {
        /// Plugin name.
        plugin: String,
        /// Explanation.
        cause: String,
    },
    /// Imports something the host doesn't provide.
    #[error("plugin {plugin}: cannot link: {cause}")]
    Link {
        /// Plugin name.
        plugin: String,
        /// Linker message.
        cause: String,
    },
    /// `init` refused the config or trapped.
    #[error("plugin {plugin}: {cause}")]
    Init {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        cause: String,
    },
}
#[cfg(test)]
mod tests;
