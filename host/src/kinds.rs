//! The kinds and decisions of the contract that every layer of the host
//! shares: hooks, plugin fault kinds, fetch-failure kinds, storage decisions,
//! cache proposals and response states. Defined once here (the WIT and the
//! SDK have their own spelling); conversions to and from the generated WIT
//! types live next to the bindings (`plugin/bindings.rs`). This module
//! imports nothing from the rest of the host.

use std::time::Duration;

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

/// Why a fetch failed (the kinds of the WIT contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// The connection was refused (or failed to open).
    ConnectRefused,
    /// No connection within `connect_timeout`.
    ConnectTimeout,
    /// No response headers within `first_byte_timeout`.
    FirstByteTimeout,
    /// The body stalled longer than `between_bytes_timeout`.
    BetweenBytesTimeout,
    /// Probes say the backend is sick.
    BackendUnhealthy,
    /// `max_connections` reached.
    BackendBusy,
    /// No backend could be chosen (empty or all-sick director).
    NoBackend,
    /// The circuit breaker is open.
    CircuitOpen,
    /// The response exceeded a size limit.
    ResponseTooLarge,
    /// The backend spoke invalid HTTP.
    ProtocolError,
    /// The connection was reset or closed early (for HTTP/2 also a reset
    /// stream or a GOAWAY).
    ConnectionReset,
    /// The TLS handshake with an https backend failed (alert, no common
    /// protocol or ALPN, the peer closed). Plugins see `connect-refused`.
    TlsHandshake,
    /// The https backend's certificate was refused (unknown CA, wrong name,
    /// expired). Plugins see `connect-refused`.
    TlsCertificate,
}

impl FetchKind {
    /// Kebab-case name, as in metrics, logs and `x-lacquer-error`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchKind::ConnectRefused => "connect-refused",
            FetchKind::ConnectTimeout => "connect-timeout",
            FetchKind::FirstByteTimeout => "first-byte-timeout",
            FetchKind::BetweenBytesTimeout => "between-bytes-timeout",
            FetchKind::BackendUnhealthy => "backend-unhealthy",
            FetchKind::BackendBusy => "backend-busy",
            FetchKind::NoBackend => "no-backend",
            FetchKind::CircuitOpen => "circuit-open",
            FetchKind::ResponseTooLarge => "response-too-large",
            FetchKind::ProtocolError => "protocol-error",
            FetchKind::ConnectionReset => "connection-reset",
            FetchKind::TlsHandshake => "tls-handshake",
            FetchKind::TlsCertificate => "tls-certificate",
        }
    }

    /// Safe to retry an idempotent request: nothing reached the backend's application.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FetchKind::ConnectRefused
                | FetchKind::ConnectTimeout
                | FetchKind::ConnectionReset
                | FetchKind::TlsHandshake
                | FetchKind::TlsCertificate
                | FetchKind::BackendUnhealthy
                | FetchKind::CircuitOpen
                | FetchKind::BackendBusy
        )
    }

    /// Counts against the backend's circuit breaker.
    pub fn breaker_failure(self) -> bool {
        matches!(
            self,
            FetchKind::ConnectRefused
                | FetchKind::ConnectTimeout
                | FetchKind::FirstByteTimeout
                | FetchKind::BetweenBytesTimeout
                | FetchKind::ConnectionReset
                | FetchKind::ProtocolError
                | FetchKind::TlsHandshake
                | FetchKind::TlsCertificate
        )
    }
}

/// A failed fetch, with everything an operator needs.
#[derive(Debug, Clone)]
pub struct FetchFailure {
    /// Kind.
    pub kind: FetchKind,
    /// Backend tried ("" if none).
    pub backend: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Time spent on the attempt.
    pub elapsed: Duration,
    /// Detail (OS error, status...).
    pub detail: String,
}

impl FetchFailure {
    /// The fetch was dropped before it finished (its request went away).
    pub fn abandoned() -> Self {
        Self {
            kind: FetchKind::ConnectionReset,
            backend: String::new(),
            attempt: 1,
            elapsed: Duration::ZERO,
            detail: "the fetch was abandoned".into(),
        }
    }
}

/// Whether and how to store a backend response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Store it.
    Cache,
    /// Don't store; remember the URL is uncacheable for `ttl`.
    HitForMiss,
    /// Don't store.
    Uncacheable,
}

/// The cache proposal handed through `on-backend-response`.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// Storage decision.
    pub storage: Storage,
    /// Remaining freshness.
    pub ttl: Duration,
    /// Grace.
    pub grace: Duration,
    /// Keep.
    pub keep: Duration,
    /// Why.
    pub reason: String,
}

impl Proposal {
    /// Not stored: what a pass proposes.
    pub fn pass() -> Self {
        Proposal {
            storage: Storage::Uncacheable,
            ttl: Duration::ZERO,
            grace: Duration::ZERO,
            keep: Duration::ZERO,
            reason: "pass".into(),
        }
    }
}

/// How a client request was answered (the `state` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Fresh object from cache.
    Hit = 0,
    /// Fetched, cacheable.
    Miss = 1,
    /// Fetched, cache not used.
    Pass = 2,
    /// Stale object served (grace or stale-if-error).
    Stale = 3,
    /// Made by a plugin or the host (errors, purge answers).
    Synth = 4,
}

impl State {
    /// Every state, in index order.
    pub const ALL: [State; 5] = [
        State::Hit,
        State::Miss,
        State::Pass,
        State::Stale,
        State::Synth,
    ];

    /// Label value, e.g. "hit".
    pub fn as_str(self) -> &'static str {
        match self {
            State::Hit => "hit",
            State::Miss => "miss",
            State::Pass => "pass",
            State::Stale => "stale",
            State::Synth => "synth",
        }
    }

    /// The `x-cache` value, e.g. "HIT".
    pub fn x_cache(self) -> &'static str {
        match self {
            State::Hit => "HIT",
            State::Miss => "MISS",
            State::Pass => "PASS",
            State::Stale => "STALE",
            State::Synth => "SYNTH",
        }
    }
}
