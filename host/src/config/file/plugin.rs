//! `[[plugins]]` as written: the component, its limits and what a fault
//! does to the request.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::*;

/// `[[plugins]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Name used in logs and metrics.
    pub name: String,
    /// Path to a `.wasm` component (relative to the config file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Name of a plugin of the embedded bundle.
    #[serde(default)]
    pub builtin: Option<String>,
    /// "fail-closed" (default: answer 500 naming the plugin) or "skip"; or a
    /// table per hook: `{ default = "skip", on_recv = "fail-closed" }`.
    #[serde(default)]
    pub on_error: OnErrorSpec,
    /// CPU time a hook call may spend (checked every 1 ms tick, with a yield
    /// to other requests in between). Default 100 ms.
    #[serde(default = "d_plugin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Wall-clock bound per hook call, waits and yields included (a guest
    /// sleeping through WASI spends no CPU, so `timeout` alone can't see it).
    /// Default: ten times `timeout`, at least 1 s.
    #[serde(default, with = "humantime_serde")]
    pub wall_timeout: Option<Duration>,
    /// Instances of this plugin alive at once (each serves one call at a
    /// time); a call that finds none free within `timeout` is a `busy`
    /// fault. Default 32.
    #[serde(default = "d_plugin_instances")]
    pub max_instances: u32,
    /// Memory limit per instance. Default 32 MiB.
    #[serde(default = "d_plugin_memory")]
    pub memory: ByteSize,
    /// Faults within `quarantine_window` that quarantine the plugin. Default 0 (never).
    #[serde(default)]
    pub quarantine_after: u32,
    /// Window for counting faults. Default 10 s.
    #[serde(default = "d_qwindow", with = "humantime_serde")]
    pub quarantine_window: Duration,
    /// First quarantine period; doubles on each new quarantine, up to 5 min. Default 5 s.
    #[serde(default = "d_qbackoff", with = "humantime_serde")]
    pub quarantine_backoff: Duration,
    /// The plugin's own settings, handed to its `init` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// With `[cluster]`, keep this plugin's `kv-get`/`kv-set` values in
    /// Redis, shared by every node. Default false (counters and token
    /// buckets are always shared).
    #[serde(default)]
    pub shared_kv: bool,
}

fn d_plugin_timeout() -> Duration {
    DEFAULT_PLUGIN_TIMEOUT
}
fn d_plugin_memory() -> ByteSize {
    ByteSize(DEFAULT_PLUGIN_MEMORY)
}
fn d_plugin_instances() -> u32 {
    DEFAULT_PLUGIN_INSTANCES
}
fn d_qwindow() -> Duration {
    DEFAULT_QUARANTINE_WINDOW
}
fn d_qbackoff() -> Duration {
    DEFAULT_QUARANTINE_BACKOFF
}

/// What happens to a request when a plugin faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Answer 500 naming the plugin.
    #[default]
    FailClosed,
    /// Continue as if the plugin had said "continue".
    Skip,
}

/// `on_error` as written: one policy, or one per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OnErrorSpec {
    /// The same policy for every hook.
    All(OnError),
    /// Per hook, with a default for the others.
    PerHook(PerHookOnError),
}

impl Default for OnErrorSpec {
    fn default() -> Self {
        OnErrorSpec::All(OnError::FailClosed)
    }
}

/// `on_error` per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PerHookOnError {
    /// For hooks not named. Default "fail-closed".
    #[serde(default)]
    pub default: OnError,
    /// For `on-recv`.
    pub on_recv: Option<OnError>,
    /// For `on-backend-response`.
    pub on_backend_response: Option<OnError>,
    /// For `on-fetch-error`.
    pub on_fetch_error: Option<OnError>,
    /// For `on-deliver`.
    pub on_deliver: Option<OnError>,
}

impl OnErrorSpec {
    /// The policy of each hook, by hook index (recv, backend-response, fetch-error, deliver).
    pub fn per_hook(self) -> [OnError; 4] {
        match self {
            OnErrorSpec::All(p) => [p; 4],
            OnErrorSpec::PerHook(h) => [
                h.on_recv,
                h.on_backend_response,
                h.on_fetch_error,
                h.on_deliver,
            ]
            .map(|x| x.unwrap_or(h.default)),
        }
    }
}
