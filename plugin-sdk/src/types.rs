//! Plain Rust versions of the values the host passes to hooks.

use std::fmt;
use std::time::Duration;

/// Log levels for [`host::log`](crate::host::log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// What the host will do with a backend response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// Store the object for `ttl` + `grace` + `keep`.
    Cache,
    /// Don't store it, and remember for `ttl` that this URL is uncacheable,
    /// so later requests for it don't wait on each other.
    HitForMiss,
    /// Don't store it.
    Uncacheable,
}

/// The host's caching proposal for a backend response, computed from the
/// RFC 9111 headers and the `[cache]` defaults. A plugin may change any field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// What to do with the response.
    pub storage: Storage,
    /// Freshness lifetime remaining.
    pub ttl: Duration,
    /// How long past `ttl` a stale copy may be served while it is refreshed.
    pub grace: Duration,
    /// How long past grace the object is kept for conditional revalidation.
    pub keep: Duration,
    /// Why this was proposed (e.g. "max-age=60"), for logs.
    pub reason: String,
}

impl Proposal {
    /// A proposal to cache for `ttl`, with no grace, no keep and an empty reason.
    pub fn cache(ttl: Duration) -> Self {
        Proposal {
            storage: Storage::Cache,
            ttl,
            grace: Duration::ZERO,
            keep: Duration::ZERO,
            reason: String::new(),
        }
    }
}

/// Why a fetch from a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchErrorKind {
    /// The backend refused the connection.
    ConnectRefused,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// The response headers took longer than `first_byte_timeout`.
    FirstByteTimeout,
    /// The body stalled for longer than `between_bytes_timeout`.
    BetweenBytesTimeout,
    /// The backend's health probe says it is sick.
    BackendUnhealthy,
    /// The backend is at `max_connections`.
    BackendBusy,
    /// No backend could be chosen.
    NoBackend,
    /// The circuit breaker has ejected the backend.
    CircuitOpen,
    /// The response exceeded the host's size limit.
    ResponseTooLarge,
    /// The backend spoke invalid HTTP.
    ProtocolError,
    /// The connection was reset mid-response.
    ConnectionReset,
}

impl FetchErrorKind {
    /// Every kind, in contract order.
    pub const ALL: [FetchErrorKind; 11] = [
        FetchErrorKind::ConnectRefused,
        FetchErrorKind::ConnectTimeout,
        FetchErrorKind::FirstByteTimeout,
        FetchErrorKind::BetweenBytesTimeout,
        FetchErrorKind::BackendUnhealthy,
        FetchErrorKind::BackendBusy,
        FetchErrorKind::NoBackend,
        FetchErrorKind::CircuitOpen,
        FetchErrorKind::ResponseTooLarge,
        FetchErrorKind::ProtocolError,
        FetchErrorKind::ConnectionReset,
    ];

    /// The kind's name as in the contract and in `x-lacquer-error`, e.g. "connect-refused".
    pub fn as_str(self) -> &'static str {
        match self {
            FetchErrorKind::ConnectRefused => "connect-refused",
            FetchErrorKind::ConnectTimeout => "connect-timeout",
            FetchErrorKind::FirstByteTimeout => "first-byte-timeout",
            FetchErrorKind::BetweenBytesTimeout => "between-bytes-timeout",
            FetchErrorKind::BackendUnhealthy => "backend-unhealthy",
            FetchErrorKind::BackendBusy => "backend-busy",
            FetchErrorKind::NoBackend => "no-backend",
            FetchErrorKind::CircuitOpen => "circuit-open",
            FetchErrorKind::ResponseTooLarge => "response-too-large",
            FetchErrorKind::ProtocolError => "protocol-error",
            FetchErrorKind::ConnectionReset => "connection-reset",
        }
    }
}

impl fmt::Display for FetchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed fetch, as passed to [`Plugin::on_fetch_error`](crate::Plugin::on_fetch_error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// Why it failed.
    pub kind: FetchErrorKind,
    /// The backend tried ("" if none could be chosen).
    pub backend: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Time spent on this attempt.
    pub elapsed: Duration,
    /// Human-readable detail, e.g. the OS error.
    pub detail: String,
}

impl FetchError {
    /// A first-attempt error of `kind` at `backend`, with no elapsed time and no detail.
    pub fn new(kind: FetchErrorKind, backend: impl Into<String>) -> Self {
        FetchError {
            kind,
            backend: backend.into(),
            attempt: 1,
            elapsed: Duration::ZERO,
            detail: String::new(),
        }
    }
}

/// Where a delivered response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheState {
    /// A fresh object from the cache.
    Hit,
    /// Fetched from the backend after a cache miss.
    Miss,
    /// Fetched from the backend without using the cache.
    Pass,
    /// A stale object from the cache (in grace, or instead of an error).
    Stale,
    /// Made by a plugin or the host.
    Synth,
}

impl CacheState {
    /// The state's name as in the contract, e.g. "hit".
    pub fn as_str(self) -> &'static str {
        match self {
            CacheState::Hit => "hit",
            CacheState::Miss => "miss",
            CacheState::Pass => "pass",
            CacheState::Stale => "stale",
            CacheState::Synth => "synth",
        }
    }
}

impl fmt::Display for CacheState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about a response being delivered, as passed to
/// [`Plugin::on_deliver`](crate::Plugin::on_deliver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverInfo {
    /// Where the response came from.
    pub state: CacheState,
    /// Times the object was served from cache before this one.
    pub hits: u64,
    /// Age of the object (zero for a fresh fetch), whole seconds.
    pub age: Duration,
    /// Whether the host runs with debug headers on.
    pub debug: bool,
}

impl DeliverInfo {
    /// Info for a response in `state`, with no hits, no age and debug off.
    pub fn new(state: CacheState) -> Self {
        DeliverInfo {
            state,
            hits: 0,
            age: Duration::ZERO,
            debug: false,
        }
    }
}

/// Converts a duration to whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
