//! Drive the in-memory host in unit tests (off wasm only).
//!
//! State is per thread, and `cargo test` runs each test on its own thread, so
//! tests don't see each other's backends, logs or counters.
//!
//! ```
//! use lacquer_plugin_sdk::{host, testing, Level, Request};
//!
//! testing::add_backend("api", true);
//! testing::add_backend("old", false);
//! assert_eq!(host::backend_healthy("old"), Some(false));
//! assert_eq!(host::backend_healthy("nope"), None);
//!
//! let req = Request::builder().build();
//! req.set_backend("api").unwrap();
//! assert!(req.set_backend("nope").is_err());
//!
//! host::log(Level::Info, "hello");
//! assert_eq!(testing::logs(), [(Level::Info, "hello".to_string())]);
//! ```

use std::time::Duration;

use crate::host::memory;
use crate::types::{Level, millis};

/// Sets what [`host::debug_headers`](crate::host::debug_headers) returns. Default is false.
pub fn set_debug_headers(on: bool) {
    memory::with(|s| s.debug_headers = on)
}

/// Declares a backend (or director) and its health, so
/// [`Request::set_backend`](crate::Request::set_backend) accepts the name and
/// [`host::backend_healthy`](crate::host::backend_healthy) reports it.
/// Declaring it again changes its health. No backend is declared by default.
pub fn add_backend(name: &str, healthy: bool) {
    memory::with(|s| s.backends.insert(name.to_owned(), healthy));
}

/// The calls made to [`host::invalidate`](crate::host::invalidate) so far: (how, host, url).
pub fn invalidations() -> Vec<(crate::host::Invalidation, String, String)> {
    memory::with(|s| s.invalidations.clone())
}

/// What [`host::skip_recv_for`](crate::host::skip_recv_for) was last given:
/// (methods, header names), or `None` if it was not called.
pub fn recv_skip() -> Option<(Vec<String>, Vec<String>)> {
    memory::with(|s| s.recv_skip.clone())
}

/// The lines logged through [`host::log`](crate::host::log) so far.
pub fn logs() -> Vec<(Level, String)> {
    memory::with(|s| s.logs.clone())
}

/// Stops the clock at `ms` since the Unix epoch. By default the clock follows
/// the system's.
pub fn set_now_ms(ms: u64) {
    memory::with(|s| s.clock_ms = Some(ms))
}

/// Moves the clock forward by `by` (stopping it first if it was running).
pub fn advance(by: Duration) {
    let now = crate::host::now_ms();
    set_now_ms(now.saturating_add(millis(by)))
}

/// Forgets everything: backends, logs, counters, key-values, token buckets,
/// the clock, the debug flag and the `skip_recv_for` filter.
pub fn reset() {
    memory::with(|s| *s = memory::State::default())
}
