//! A call's bounds: its `timeout` is CPU time it spent, not wall-clock time
//! (a call whose thread is descheduled on a loaded machine is not failed
//! for it), and a generous `wall_timeout` bounds it in real time.
//!
//! The epoch ticker advances every millisecond; each store's deadline is one
//! tick ahead, so a call that runs longer than a tick enters
//! [`CpuBudget::on_tick`]. That reads the thread's CPU clock (only then, so
//! short calls pay nothing), charges what the call used since the last
//! tick, and traps once the budget or the wall-clock bound is spent. A call
//! runs start to end on one thread (calls are synchronous), so that clock
//! counts the call's own work and nothing it waited for. From its second
//! tick (it has then run for at least a tick) a call hands its tokio worker
//! over ([`hand_off_worker`]), so that only it waits for itself.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

use super::wait::{WallTimeout, hand_off_worker};

fn cpu_now() -> Duration {
    ThreadTime::try_now().map_or(Duration::ZERO, |t| t.as_duration())
}

/// The bounds of the call in progress on one store.
#[derive(Debug)]
pub struct CpuBudget {
    budget: Duration,
    wall: Duration,
    tick: Duration,
    used: Duration,
    /// The thread's CPU clock at the call's last tick (none before the first).
    mark: Option<Duration>,
    started: Instant,
    /// Whether the call no longer holds a tokio worker.
    handed_off: bool,
}

/// The call spent its CPU budget (`timeout`).
#[derive(Debug, thiserror::Error)]
#[error("CPU time limit of {0:?} spent")]
pub struct CpuTimeout(pub Duration);

impl CpuBudget {
    /// A budget of `budget` CPU time and `wall` real time per call, checked
    /// every `tick`.
    pub fn new(budget: Duration, wall: Duration, tick: Duration) -> Self {
        Self {
            budget,
            wall,
            tick,
            used: Duration::ZERO,
            mark: None,
            started: Instant::now(),
            handed_off: false,
        }
    }

    /// A call starting at `started` gets the whole budget.
    pub fn reset(&mut self, started: Instant) {
        self.used = Duration::ZERO;
        self.mark = None;
        self.started = started;
        self.handed_off = false;
    }

    /// When the call's wall-clock bound ends, and that bound.
    pub fn deadline(&self) -> (Instant, Duration) {
        (self.started + self.wall, self.wall)
    }

    /// Charge the time since the last tick; `Err` once the CPU budget or
    /// the wall-clock bound is spent.
    pub fn on_tick(&mut self) -> wasmtime::Result<()> {
        let now = cpu_now();
        match self.mark.replace(now) {
            Some(then) => {
                self.used += now.saturating_sub(then);
                // Running for a tick at least: let the worker go.
                if !self.handed_off {
                    self.handed_off = hand_off_worker();
                }
            }
            // The first tick of a call: at most one tick ran unmeasured.
            None => self.used += self.tick,
        }
        if self.used > self.budget {
            return Err(wasmtime::Error::new(CpuTimeout(self.budget)));
        }
        if self.started.elapsed() > self.wall {
            return Err(wasmtime::Error::new(WallTimeout(self.wall)));
        }
        Ok(())
    }

    /// CPU time charged to the call so far.
    #[cfg(test)]
    pub fn used(&self) -> Duration {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let t = ThreadTime::now();
        while t.elapsed() < d {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn spinning_spends_the_budget_and_sleeping_does_not() {
        let tick = Duration::from_millis(1);
        let mut b = CpuBudget::new(Duration::from_millis(30), Duration::from_secs(60), tick);
        b.reset(Instant::now());
        b.on_tick().unwrap();
        // Descheduled (sleeping) for longer than the budget: barely charged.
        std::thread::sleep(Duration::from_millis(60));
        b.on_tick().unwrap();
        assert!(b.used() < Duration::from_millis(30), "{:?}", b.used());
        // Spinning spends it.
        spin(Duration::from_millis(40));
        let e = b.on_tick().unwrap_err();
        assert!(e.downcast_ref::<CpuTimeout>().is_some(), "{e}");
        b.reset(Instant::now());
        assert!(b.on_tick().is_ok());
    }

    #[test]
    fn the_wall_clock_bound_ends_a_call_that_waits() {
        let tick = Duration::from_millis(1);
        let wall = Duration::from_millis(20);
        let mut b = CpuBudget::new(Duration::from_secs(1), wall, tick);
        b.reset(Instant::now());
        b.on_tick().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let e = b.on_tick().unwrap_err();
        assert!(e.downcast_ref::<WallTimeout>().is_some(), "{e}");
        assert!(
            b.used() < Duration::from_millis(20),
            "waiting is not charged"
        );
    }
}
