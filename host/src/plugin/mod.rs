//! Plugins: WebAssembly components behind the `lacquer:plugin` WIT contract.
//!
//! - [`runtime`]: engine, compilation, warm instance pools, deadlines, faults.
//! - [`host_api`]: what plugins can call and the request/response handles.
//! - [`chain`]: the hooks run across plugins in config order.
//! - [`kv`]: shared, bounded plugin state (counters, key-value, token buckets).

mod bindings;
pub mod chain;
pub mod host_api;
pub mod kv;
pub mod limits;
mod log;
pub mod runtime;
pub mod scaffold;
mod stdio;

pub use chain::{Chain, PluginFailure, Synth};
pub use host_api::{BackendLookup, ReqState, RespState};
pub use log::LogBudget;

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/bundle.rs"));
}

/// Names of the plugins embedded in the binary.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    bundle::BUNDLE.iter().map(|(n, _)| *n)
}

/// The code of an embedded plugin.
pub fn builtin_bytes(name: &str) -> Option<&'static [u8]> {
    bundle::BUNDLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// A hook of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `on-recv`
    Recv = 0,
    /// `on-backend-response`
    BackendResponse = 1,
    /// `on-fetch-error`
    FetchError = 2,
    /// `on-deliver`
    Deliver = 3,
}

impl Hook {
    /// Every hook, in index order.
    pub const ALL: [Hook; 4] = [
        Hook::Recv,
        Hook::BackendResponse,
        Hook::FetchError,
        Hook::Deliver,
    ];

    /// The WIT name, used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Recv => "on-recv",
            Hook::BackendResponse => "on-backend-response",
            Hook::FetchError => "on-fetch-error",
            Hook::Deliver => "on-deliver",
        }
    }
}

/// How a plugin call went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The guest trapped (including a Rust panic).
    Trap = 0,
    /// The call ran past its deadline.
    Timeout = 1,
    /// The instance hit its memory limit.
    Memory = 2,
    /// A fresh instance failed to instantiate or `init`.
    InitFailed = 3,
    /// The plugin returned something the host refuses (e.g. CR/LF in a header).
    InvalidOutput = 4,
    /// The plugin is quarantined and was not called.
    Quarantined = 5,
    /// All of the plugin's `max_instances` were busy for its whole `timeout`.
    Busy = 6,
}

impl FaultKind {
    /// Every kind, in index order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Trap,
        FaultKind::Timeout,
        FaultKind::Memory,
        FaultKind::InitFailed,
        FaultKind::InvalidOutput,
        FaultKind::Quarantined,
        FaultKind::Busy,
    ];

    /// Label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::Memory => "memory",
            FaultKind::InitFailed => "init-failed",
            FaultKind::InvalidOutput => "invalid-output",
            FaultKind::Quarantined => "quarantined",
            FaultKind::Busy => "busy",
        }
    }
}

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
