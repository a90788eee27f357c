//! The in-memory host used off wasm: one state per thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::Level;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) debug_headers: bool,
    pub(crate) backends: HashMap<String, bool>,
    pub(crate) logs: Vec<(Level, String)>,
    /// A fixed clock set by a test; `None` follows the system clock.
    pub(crate) clock_ms: Option<u64>,
    counters: HashMap<String, (i64, u64)>,
    kv: HashMap<String, (Vec<u8>, u64)>,
    buckets: HashMap<String, (f64, u64)>,
    pub(crate) invalidations: Vec<(crate::host::Invalidation, String, String)>,
    /// What `skip_recv_for` was last given: (methods, header names).
    pub(crate) recv_skip: Option<(Vec<String>, Vec<String>)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on this thread's in-memory host state.
pub(crate) fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(crate::types::millis)
        .unwrap_or(0)
}

pub(crate) fn log(level: Level, message: &str) {
    with(|s| s.logs.push((level, message.to_owned())))
}

pub(crate) fn debug_headers() -> bool {
    with(|s| s.debug_headers)
}

pub(crate) fn now_ms() -> u64 {
    with(|s| s.clock_ms).unwrap_or_else(system_ms)
}

pub(crate) fn backend_healthy(name: &str) -> Option<bool> {
    with(|s| s.backends.get(name).copied())
}

pub(crate) fn counter_add(key: &str, delta: i64, ttl_ms: u64) -> i64 {
    let now = now_ms();
    with(|s| {
        let entry = s.counters.entry(key.to_owned()).or_insert((0, 0));
        if entry.1 <= now {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(delta);
        entry.1 = now.saturating_add(ttl_ms);
        entry.0
    })
}

pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    let now = now_ms();
    with(|s| match s.kv.get(key) {
        Some((value, expires)) if *expires > now => Some(value.clone()),
        _ => None,
    })
}

pub(crate) fn kv_set(key: &str, value: &[u8], ttl_ms: u64) -> Result<(), String> {
    let expires = now_ms().saturating_add(ttl_ms);
    with(|s| s.kv.insert(key.to_owned(), (value.to_vec(), expires)));
    Ok(())
}

pub(crate) fn invalidate(
    how: crate::host::Invalidation,
    host: &str,
    url: &str,
) -> Result<u32, String> {
    with(|s| s.invalidations.push((how, host.to_owned(), url.to_owned())));
    Ok(0)
}

pub(crate) fn take_token(key: &str, rate: f64, burst: u32) -> Result<(), u64> {
    let now = now_ms();
    let burst = f64::from(burst.max(1));
    with(|s| {
        let (tokens, last) = s.buckets.entry(key.to_owned()).or_insert((burst, now));
        let elapsed_s = now.saturating_sub(*last) as f64 / 1000.0;
        *tokens = (*tokens + elapsed_s * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if rate > 0.0 {
            Err(((1.0 - *tokens) / rate * 1000.0).ceil() as u64)
        } else {
            Err(u64::MAX)
        }
    })
}

/// Checked as the host checks it: methods are tokens, names valid field
/// names, within the same counts.
pub(crate) fn skip_recv_for(methods: &[&str], unless_headers: &[&str]) -> Result<(), String> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if methods.len() > 16 || unless_headers.len() > 32 {
        return Err("at most 16 methods and 32 header names".into());
    }
    if let Some(bad) = methods.iter().chain(unless_headers).find(|s| !token(s)) {
        return Err(format!("{bad:?} is not a valid method or header name"));
    }
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    with(|s| s.recv_skip = Some((own(methods), own(unless_headers))));
    Ok(())
}
