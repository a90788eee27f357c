//! A call's bounds: its `timeout` is CPU time it spent, not wall-clock time
//! (a call whose thread is descheduled on a loaded machine is not failed
//! for it), and a generous `wall_timeout` bounds it in real time.
//!
//! The epoch ticker advances every millisecond; each store's deadline is one
//! tick ahead, so a call that runs longer than a tick enters
//! [`CpuBudget::on_tick`]. That reads the thread's CPU clock (only then, so
//! short calls pay nothing), charges what the call used since the last
//! tick, and traps once the budget or the wall-clock bound is spent. A
//! synchronous call runs start to end on one thread, so that clock counts
//! its own work and nothing it waited for; a call on a fiber may go on on
//! another thread after a wait, so a wait charges what ran before it
//! ([`CpuBudget::pause`]) and measures afresh after it
//! ([`CpuBudget::resume_here`]). From its second tick (it has then run for
//! at least a tick) a call hands its tokio worker over
//! ([`hand_off_worker`]), so that only it waits for itself, and checks
//! again at its 4th, 8th, 16th... tick that it did: the task that confirms
//! a hand-off can be stolen and run by another worker before the new
//! thread took this one's over, which then stays with this thread.

use std::thread::ThreadId;
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
    /// Where (thread) and when (that thread's CPU clock) the call was last
    /// measured: at a tick, or going on after a wait; none before either.
    mark: Option<(ThreadId, Duration)>,
    started: Instant,
    /// Ticks since the call started, or went on after its last wait.
    ticks: u32,
    /// The tick at which to hand the worker over, or check that it was.
    next_handoff: u32,
    /// Hand-offs tried or checked in this call.
    #[cfg(test)]
    handoffs: u32,
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
            ticks: 0,
            next_handoff: FIRST_HANDOFF,
            #[cfg(test)]
            handoffs: 0,
        }
    }

    /// A call starting at `started` gets the whole budget.
    pub fn reset(&mut self, started: Instant) {
        self.used = Duration::ZERO;
        self.mark = None;
        self.started = started;
        self.ticks = 0;
        self.next_handoff = FIRST_HANDOFF;
        #[cfg(test)]
        {
            self.handoffs = 0;
        }
    }

    /// When the call's wall-clock bound ends, and that bound.
    pub fn deadline(&self) -> (Instant, Duration) {
        (self.started + self.wall, self.wall)
    }

    /// Charge the time since the last tick; `Err` once the CPU budget or
    /// the wall-clock bound is spent.
    pub fn on_tick(&mut self) -> wasmtime::Result<()> {
        let (here, now) = (std::thread::current().id(), cpu_now());
        match self.mark.replace((here, now)) {
            Some((thread, then)) if thread == here => self.used += now.saturating_sub(then),
            // The first tick of a call (or on another thread than the
            // last): at most one tick ran unmeasured.
            _ => self.used += self.tick,
        }
        self.ticks += 1;
        // A second tick: the call has run a whole tick. Let the worker go,
        // and make sure later that it went (a thread without a worker
        // finds that out quickly); a hand-off that timed out is tried
        // again at the next tick.
        if self.ticks >= self.next_handoff {
            #[cfg(test)]
            {
                self.handoffs += 1;
            }
            self.next_handoff = if hand_off_worker() {
                self.ticks * 2
            } else {
                self.ticks + 1
            };
        }
        if self.used > self.budget {
            return Err(wasmtime::Error::new(CpuTimeout(self.budget)));
        }
        if self.started.elapsed() > self.wall {
            return Err(wasmtime::Error::new(WallTimeout(self.wall)));
        }
        Ok(())
    }

    /// A call on a fiber is about to wait (on the network): charge what it
    /// ran since it was last measured, so a guest that waits in a loop
    /// still spends its budget.
    pub fn pause(&mut self) {
        let here = std::thread::current().id();
        if let Some((thread, then)) = self.mark.take()
            && thread == here
        {
            self.used += cpu_now().saturating_sub(then);
        }
    }

    /// The call goes on here after a wait: what the thread ran meanwhile is
    /// not the call's, and the thread is a tokio worker again.
    pub fn resume_here(&mut self) {
        self.mark = Some((std::thread::current().id(), cpu_now()));
        self.ticks = 0;
        self.next_handoff = FIRST_HANDOFF;
    }

    /// CPU time charged to the call so far.
    #[cfg(test)]
    pub fn used(&self) -> Duration {
        self.used
    }
}

/// The tick at which a call first hands its worker over: it has then run
/// for at least one whole tick.
const FIRST_HANDOFF: u32 = 2;

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
    fn a_wait_is_not_charged_and_what_ran_between_waits_is() {
        let tick = Duration::from_millis(1);
        let mut b = CpuBudget::new(Duration::from_millis(30), Duration::from_secs(60), tick);
        b.reset(Instant::now());
        // A guest that spins between waits: every stretch between two
        // waits is charged, the waits (the thread running others) are not.
        for _ in 0..4 {
            b.resume_here();
            spin(Duration::from_millis(10));
            b.pause();
            spin(Duration::from_millis(20));
        }
        assert!(b.used() >= Duration::from_millis(40), "{:?}", b.used());
        assert!(b.used() < Duration::from_millis(70), "{:?}", b.used());
        b.resume_here();
        assert!(
            b.on_tick().is_err(),
            "the budget is spent: the next tick traps"
        );
    }

    #[test]
    fn a_long_call_checks_again_and_again_that_its_worker_went() {
        // Outside a runtime every hand-off succeeds at once: what is left
        // to see is when the call tries, or checks, again.
        let tick = Duration::from_millis(1);
        let mut b = CpuBudget::new(Duration::from_secs(60), Duration::from_secs(60), tick);
        b.reset(Instant::now());
        b.on_tick().unwrap();
        assert_eq!(b.handoffs, 0, "one tick: the call may be short");
        b.on_tick().unwrap();
        assert_eq!(b.handoffs, 1, "handed over at the second tick");
        for _ in 2..20 {
            b.on_tick().unwrap();
        }
        assert_eq!(b.handoffs, 4, "checked again at ticks 4, 8 and 16");
        // After a wait the call may go on on a worker again: from scratch.
        b.resume_here();
        b.on_tick().unwrap();
        b.on_tick().unwrap();
        assert_eq!(b.handoffs, 5);
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
