//! The time seam: the cache measures ages, lifetimes and ban ages with a
//! [`Clock`], so tests can move time instead of waiting for it.

use std::time::Instant;

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real, monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (for tests).
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    now: parking_lot::Mutex<Instant>,
}

#[cfg(test)]
impl ManualClock {
    /// A clock standing at the real now.
    pub fn new() -> Self {
        Self {
            now: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// Move time forward.
    pub fn advance(&self, by: std::time::Duration) {
        *self.now.lock() += by;
    }
}

#[cfg(test)]
impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock()
    }
}
