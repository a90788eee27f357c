//! Services the host offers to plugins.
//!
//! On wasm each function calls the host. Off wasm they work on thread-local,
//! in-memory state that tests drive through [`testing`](crate::testing)
//! (each test thread starts from a clean slate).

use std::time::Duration;

use crate::types::{Level, millis};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod memory;
#[cfg(not(target_arch = "wasm32"))]
use memory as imp;

#[cfg(target_arch = "wasm32")]
mod imp {
    pub(super) use crate::wit::lacquer::plugin::host::*;
    use crate::wit::lacquer::plugin::types::Level as WitLevel;

    pub(super) fn to_wit(level: crate::Level) -> WitLevel {
        match level {
            crate::Level::Trace => WitLevel::Trace,
            crate::Level::Debug => WitLevel::Debug,
            crate::Level::Info => WitLevel::Info,
            crate::Level::Warn => WitLevel::Warn,
            crate::Level::Error => WitLevel::Error,
        }
    }
}

/// Writes a log line, tagged by the host with the plugin name and request id.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    let level = imp::to_wit(level);
    imp::log(level, message)
}

/// Whether debug headers are on (`[server] debug_headers`): plugins may then
/// show causes and timings to clients.
pub fn debug_headers() -> bool {
    imp::debug_headers()
}

/// Wall-clock time, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

/// Whether a backend or director is healthy; `None` for an unknown name.
pub fn backend_healthy(name: &str) -> Option<bool> {
    imp::backend_healthy(name)
}

/// Adds `delta` to a counter in this plugin's namespace and returns the new
/// value. A counter that is not touched for `ttl` disappears (starts again at 0).
pub fn counter_add(key: &str, delta: i64, ttl: Duration) -> i64 {
    imp::counter_add(key, delta, millis(ttl))
}

/// Reads a value from this plugin's key-value namespace.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    imp::kv_get(key)
}

/// Stores a value for `ttl` in this plugin's key-value namespace. Fails when
/// the namespace is full.
pub fn kv_set(key: &str, value: &[u8], ttl: Duration) -> Result<(), String> {
    imp::kv_set(key, value, millis(ttl))
}

/// How [`invalidate`] removes cached objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Remove every variant of the URL on the host.
    Purge,
    /// Mark every variant stale: served in grace while refreshed, or revalidated.
    SoftPurge,
    /// The URL is a regular expression over path and query: objects stored
    /// before now that match, on the host (every host when empty), are invalid.
    Ban,
}

/// Invalidates cached objects (e.g. from a webhook request a plugin
/// recognises). Returns how many objects were purged, or for a ban how many
/// bans are active; an invalid ban pattern is an error.
pub fn invalidate(how: Invalidation, host: &str, url: &str) -> Result<u32, String> {
    #[cfg(target_arch = "wasm32")]
    let how = match how {
        Invalidation::Purge => imp::Invalidation::Purge,
        Invalidation::SoftPurge => imp::Invalidation::SoftPurge,
        Invalidation::Ban => imp::Invalidation::Ban,
    };
    imp::invalidate(how, host, url)
}

/// Token bucket: takes one token from bucket `key`, which refills at `rate`
/// tokens per second up to `burst` (a new bucket starts full). `Ok` if a token
/// was taken; otherwise `Err` with the time until one will be available.
pub fn take_token(key: &str, rate: f64, burst: u32) -> Result<(), Duration> {
    imp::take_token(key, rate, burst).map_err(Duration::from_millis)
}

/// Call from [`Plugin::new`](crate::Plugin::new) (it runs in `init`): the host
/// then skips this plugin's `on_recv`, as if it had returned
/// [`RecvAction::Continue`](crate::RecvAction::Continue), for every request
/// whose method is one of `methods` and that carries none of the headers
/// named in `unless_headers` (case-insensitive). Every other request is passed
/// as before. State here the requests the policy never acts on, so that they
/// cost nothing to call:
///
/// ```
/// use lacquer_plugin_sdk::{host, testing};
///
/// // A plain GET or HEAD without cookies goes on without calling on_recv.
/// host::skip_recv_for(&["GET", "HEAD"], &["cookie"]).unwrap();
/// assert_eq!(
///     testing::recv_skip(),
///     Some((vec!["GET".into(), "HEAD".into()], vec!["cookie".into()]))
/// );
/// ```
///
/// At most 16 methods and 32 names; an invalid one is an error and changes
/// nothing. Hosts older than contract 0.1.1 do not offer it: a plugin that
/// calls it needs a host of 0.1.1 or later.
pub fn skip_recv_for(methods: &[&str], unless_headers: &[&str]) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        imp::skip_recv_for(&own(methods), &own(unless_headers))
    }
    #[cfg(not(target_arch = "wasm32"))]
    imp::skip_recv_for(methods, unless_headers)
}
