//! Backend health: an active probe window, a passive circuit breaker, and an
//! operator override. Lives by backend name in the server, so it survives reloads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

/// Consecutive failures that open the circuit.
pub const BREAKER_FAILURES: u32 = 5;
/// First open period; doubles while trials fail, up to [`BREAKER_MAX_BACKOFF`].
pub const BREAKER_BACKOFF: Duration = Duration::from_secs(1);
/// Longest open period.
pub const BREAKER_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Probe results kept for `GET /backends`.
const HISTORY: usize = 16;

/// Operator override of health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forced {
    /// Probes and the breaker decide.
    Auto = 0,
    /// Always healthy.
    Healthy = 1,
    /// Always sick.
    Sick = 2,
}

/// One probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    /// When (seconds since the Unix epoch).
    pub at: u64,
    /// Good or not.
    pub ok: bool,
    /// Status or error.
    pub detail: String,
}

/// How a request was let through to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The usual way.
    Normal,
    /// As the one half-open trial of an open circuit. Its outcome must be
    /// reported ([`Health::success`] / [`Health::failure`]), or the slot given
    /// back with [`Health::abandon_trial`], or the circuit stays open.
    Trial,
}

/// Why a backend may not be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Probes (or the operator) say sick.
    Sick,
    /// The circuit breaker is open.
    CircuitOpen,
}

/// The health of one backend.
pub struct Health {
    /// The backend's name, for log lines.
    name: String,
    probed: AtomicBool,
    /// Bumped whenever the probe is (re)configured or removed: results from a
    /// probe loop of an older config generation are ignored.
    probe_epoch: AtomicU64,
    window: AtomicU64,
    window_len: AtomicU32,
    threshold: AtomicU32,
    probe_healthy: AtomicBool,
    forced: AtomicU8,
    history: Mutex<VecDeque<ProbeRecord>>,
    breaker: Mutex<Breaker>,
    breaker_open: AtomicBool,
}

struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    backoff: Duration,
    trial: bool,
    /// Consecutive failures that open it (0: never).
    threshold: u32,
    first_backoff: Duration,
    max_backoff: Duration,
    /// The last failure: what, and when (seconds since the Unix epoch).
    last_failure: Option<(String, u64)>,
}

/// The circuit just opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Consecutive failures counted.
    pub failures: u32,
    /// For how long, before a trial request.
    pub period: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            name: String::new(),
            probed: AtomicBool::new(false),
            probe_epoch: AtomicU64::new(0),
            window: AtomicU64::new(0),
            window_len: AtomicU32::new(8),
            threshold: AtomicU32::new(3),
            probe_healthy: AtomicBool::new(true),
            forced: AtomicU8::new(Forced::Auto as u8),
            history: Mutex::new(VecDeque::new()),
            breaker: Mutex::new(Breaker {
                failures: 0,
                open_until: None,
                backoff: BREAKER_BACKOFF,
                trial: false,
                threshold: BREAKER_FAILURES,
                first_backoff: BREAKER_BACKOFF,
                max_backoff: BREAKER_MAX_BACKOFF,
                last_failure: None,
            }),
            breaker_open: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// The health of the backend called `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Configure the probe window. `initial` good probes are assumed, unless
    /// the backend was already probed (a reload keeps the state).
    pub fn configure_probe(&self, window: u32, threshold: u32, initial: u32) {
        let _h = self.history.lock();
        self.probe_epoch.fetch_add(1, Ordering::AcqRel);
        self.window_len.store(window, Ordering::Relaxed);
        self.threshold.store(threshold, Ordering::Relaxed);
        if !self.probed.swap(true, Ordering::AcqRel) {
            let bits = if initial >= 64 {
                u64::MAX
            } else {
                (1u64 << initial) - 1
            };
            self.window.store(bits, Ordering::Relaxed);
            self.probe_healthy
                .store(initial >= threshold, Ordering::Relaxed);
        } else {
            self.recompute();
        }
    }

    /// The backend has no probe (any more, after a reload): probes no longer
    /// have a say, and a sick verdict from an old probe is forgotten.
    pub fn clear_probe(&self) {
        let mut h = self.history.lock();
        self.probe_epoch.fetch_add(1, Ordering::AcqRel);
        self.probed.store(false, Ordering::Release);
        self.window.store(0, Ordering::Relaxed);
        self.probe_healthy.store(true, Ordering::Relaxed);
        h.clear();
    }

    /// The current probe configuration's epoch (a probe loop records with it).
    pub fn probe_epoch(&self) -> u64 {
        self.probe_epoch.load(Ordering::Acquire)
    }

    fn recompute(&self) {
        let len = self.window_len.load(Ordering::Relaxed);
        let mask = if len >= 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        let good = (self.window.load(Ordering::Relaxed) & mask).count_ones();
        self.probe_healthy.store(
            good >= self.threshold.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Record a probe made under probe configuration `epoch` (ignored if the
    /// probe was reconfigured or removed since). Returns whether probe health changed.
    pub fn probe_result(&self, epoch: u64, ok: bool, detail: String) -> bool {
        let mut h = self.history.lock();
        if epoch != self.probe_epoch.load(Ordering::Acquire) {
            return false;
        }
        let before = self.probe_healthy.load(Ordering::Relaxed);
        // Two probe loops may overlap for a moment across a reload: update atomically.
        let _ = self
            .window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some((w << 1) | u64::from(ok))
            });
        self.recompute();
        if h.len() == HISTORY {
            h.pop_front();
        }
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        h.push_back(ProbeRecord { at, ok, detail });
        drop(h);
        if ok {
            // A good probe closes an open breaker: the backend answers again.
            self.close_breaker();
        }
        before != self.probe_healthy.load(Ordering::Relaxed)
    }

    /// Recent probes, oldest first.
    pub fn history(&self) -> Vec<ProbeRecord> {
        self.history.lock().iter().cloned().collect()
    }

    /// Force a state.
    pub fn force(&self, f: Forced) {
        self.forced.store(f as u8, Ordering::Relaxed);
        if f != Forced::Sick {
            self.close_breaker();
        }
    }

    /// The override.
    pub fn forced(&self) -> Forced {
        match self.forced.load(Ordering::Relaxed) {
            1 => Forced::Healthy,
            2 => Forced::Sick,
            _ => Forced::Auto,
        }
    }

    /// Healthy for routing purposes (probe and override; the breaker counts as sick while open).
    pub fn healthy(&self) -> bool {
        match self.forced() {
            Forced::Healthy => true,
            Forced::Sick => false,
            Forced::Auto => self.probe_healthy.load(Ordering::Relaxed) && !self.breaker_blocks(),
        }
    }

    fn breaker_blocks(&self) -> bool {
        if !self.breaker_open.load(Ordering::Relaxed) {
            return false;
        }
        let b = self.breaker.lock();
        b.open_until.is_some_and(|t| Instant::now() < t) || b.trial
    }

    /// May a request go to this backend now? Takes the half-open trial slot when due.
    pub fn admit(&self) -> Result<Admission, Unavailable> {
        match self.forced() {
            Forced::Healthy => return Ok(Admission::Normal),
            Forced::Sick => return Err(Unavailable::Sick),
            Forced::Auto => {}
        }
        if !self.probe_healthy.load(Ordering::Relaxed) {
            return Err(Unavailable::Sick);
        }
        if !self.breaker_open.load(Ordering::Relaxed) {
            return Ok(Admission::Normal);
        }
        let mut b = self.breaker.lock();
        match b.open_until {
            Some(t) if Instant::now() < t => Err(Unavailable::CircuitOpen),
            _ if b.trial => Err(Unavailable::CircuitOpen),
            _ => {
                b.trial = true;
                Ok(Admission::Trial)
            }
        }
    }

    /// A trial request ended without reaching the backend (it was cancelled,
    /// or no connection slot was free): the next request may be the trial.
    pub fn abandon_trial(&self) {
        self.breaker.lock().trial = false;
    }

    /// A request succeeded (the backend answered with anything but 502, 503 or 504).
    pub fn success(&self) {
        if self.breaker_open.load(Ordering::Relaxed) || self.breaker.lock().failures > 0 {
            self.close_breaker();
        }
    }

    /// Configure the breaker: `failures` in a row open it (0: never), for
    /// `backoff`, doubled after each failed trial up to `max_backoff`.
    pub fn configure_breaker(&self, failures: u32, backoff: Duration, max_backoff: Duration) {
        let mut b = self.breaker.lock();
        b.threshold = failures;
        b.first_backoff = backoff;
        b.max_backoff = max_backoff;
        if b.open_until.is_none() {
            b.backoff = backoff;
        }
        if failures == 0 && self.breaker_open.load(Ordering::Relaxed) {
            drop(b);
            self.close_breaker();
        }
    }

    fn close_breaker(&self) {
        let mut b = self.breaker.lock();
        let was_open = self.breaker_open.swap(false, Ordering::Relaxed);
        b.failures = 0;
        b.open_until = None;
        b.trial = false;
        b.backoff = b.first_backoff;
        if was_open {
            tracing::info!(
                backend = %self.name,
                "circuit closed: the backend answers again (last failure: {})",
                b.last_failure.as_ref().map_or("none", |(w, _)| w.as_str())
            );
        }
    }

    /// A request failed (`reason` says how: a fetch error kind or a status
    /// listed in `circuit.statuses`). Returns how the circuit opened, when
    /// this opened it.
    pub fn failure(&self, reason: &str) -> Option<Opened> {
        let mut b = self.breaker.lock();
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        b.last_failure = Some((reason.to_owned(), at));
        if b.threshold == 0 {
            return None;
        }
        b.failures += 1;
        let reopen = b.trial;
        if reopen || (b.open_until.is_none() && b.failures >= b.threshold) {
            if reopen {
                // The trial failed: stay open twice as long as last time.
                b.backoff = (b.backoff * 2).min(b.max_backoff);
            }
            b.open_until = Some(Instant::now() + b.backoff);
            b.trial = false;
            self.breaker_open.store(true, Ordering::Relaxed);
            return Some(Opened {
                failures: b.failures,
                period: b.backoff,
            });
        }
        None
    }

    /// The last failed request: what, and when (seconds since the Unix epoch).
    pub fn last_failure(&self) -> Option<(String, u64)> {
        self.breaker.lock().last_failure.clone()
    }

    /// Whether the breaker is open now.
    pub fn circuit_open(&self) -> bool {
        self.breaker_open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_threshold() {
        let h = Health::default();
        h.configure_probe(8, 3, 2);
        assert!(!h.healthy(), "initial 2 < threshold 3");
        h.probe_result(h.probe_epoch(), true, "200".into());
        assert!(h.healthy());
        for _ in 0..8 {
            h.probe_result(h.probe_epoch(), false, "refused".into());
        }
        assert!(!h.healthy());
        let history = h.history();
        assert_eq!(history.len(), 9, "every probe is kept, up to {HISTORY}");
        assert!(history[0].ok && !history[8].ok, "oldest first");
        for _ in 0..HISTORY {
            h.probe_result(h.probe_epoch(), true, "200".into());
        }
        assert_eq!(h.history().len(), HISTORY);
        assert!(h.healthy());
    }

    #[test]
    fn breaker_opens_then_half_opens() {
        let h = Health::default();
        for i in 0..BREAKER_FAILURES {
            assert_eq!(h.failure("t").is_some(), i + 1 == BREAKER_FAILURES);
        }
        assert_eq!(h.admit(), Err(Unavailable::CircuitOpen));
        h.breaker.lock().open_until = Some(Instant::now());
        assert_eq!(h.admit(), Ok(Admission::Trial), "one trial");
        assert_eq!(h.admit(), Err(Unavailable::CircuitOpen), "only one trial");
        h.success();
        assert_eq!(h.admit(), Ok(Admission::Normal));
    }

    #[test]
    fn forcing_overrides() {
        let h = Health::default();
        h.force(Forced::Sick);
        assert_eq!(h.admit(), Err(Unavailable::Sick));
        h.force(Forced::Healthy);
        assert!(h.healthy());
    }

    #[test]
    fn failed_trials_double_the_backoff() {
        let h = Health::default();
        for _ in 0..BREAKER_FAILURES {
            h.failure("t");
        }
        let first = h.breaker.lock().open_until.unwrap() - Instant::now();
        assert!(first <= BREAKER_BACKOFF);
        let mut want = BREAKER_BACKOFF;
        for _ in 0..8 {
            h.breaker.lock().open_until = Some(Instant::now());
            assert_eq!(h.admit(), Ok(Admission::Trial));
            assert!(h.failure("t").is_some(), "a failed trial reopens");
            want = (want * 2).min(BREAKER_MAX_BACKOFF);
            let open_for = h.breaker.lock().open_until.unwrap() - Instant::now();
            assert!(
                open_for > want - Duration::from_millis(100) && open_for <= want,
                "{open_for:?} vs {want:?}"
            );
        }
        h.success();
        assert!(!h.circuit_open());
        assert_eq!(
            h.breaker.lock().backoff,
            BREAKER_BACKOFF,
            "a success resets the backoff"
        );
    }

    #[test]
    fn an_abandoned_trial_frees_the_slot() {
        let h = Health::default();
        for _ in 0..BREAKER_FAILURES {
            h.failure("t");
        }
        h.breaker.lock().open_until = Some(Instant::now());
        assert_eq!(h.admit(), Ok(Admission::Trial));
        assert!(!h.healthy(), "a trial is in flight");
        h.abandon_trial();
        assert!(h.healthy(), "due for a trial again");
        assert_eq!(
            h.admit(),
            Ok(Admission::Trial),
            "the next request is the trial"
        );
    }

    #[test]
    fn clearing_the_probe_forgets_a_sick_verdict() {
        let h = Health::default();
        h.configure_probe(3, 2, 0);
        h.probe_result(h.probe_epoch(), false, "500".into());
        assert!(!h.healthy());
        h.clear_probe();
        assert!(h.healthy());
        assert!(h.history().is_empty());
        h.configure_probe(3, 2, 0);
        assert!(
            !h.healthy(),
            "a probe configured again starts from `initial`"
        );
    }
}
