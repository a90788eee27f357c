//! A plugin's `timeout` is CPU time it spent, not wall-clock time: a call
//! whose thread is descheduled on a loaded machine is not failed for it.
//!
//! The epoch ticker advances every millisecond; each store's deadline is one
//! tick ahead, so a call that runs longer than a tick enters
//! [`CpuBudget::on_tick`]. That reads the thread's CPU clock (only then, so
//! short calls pay nothing), charges what the call used since it last
//! resumed, and either traps (budget spent) or yields to tokio before going
//! on, so a looping plugin never pins a worker: other requests run between
//! its slices. The yield notes the thread's CPU clock when the call resumes,
//! so what others ran in between is not charged to it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use cpu_time::ThreadTime;
use parking_lot::Mutex;

/// Where (thread) and when (that thread's CPU clock) a call last resumed.
type Mark = Arc<Mutex<Option<(ThreadId, Duration)>>>;

fn cpu_now() -> Duration {
    ThreadTime::try_now().map_or(Duration::ZERO, |t| t.as_duration())
}

/// The CPU budget of the call in progress on one store.
#[derive(Debug)]
pub struct CpuBudget {
    budget: Duration,
    tick: Duration,
    used: Duration,
    resumed: Mark,
}

/// The call spent its CPU budget (`timeout`).
#[derive(Debug, thiserror::Error)]
#[error("CPU time limit of {0:?} spent")]
pub struct CpuTimeout(pub Duration);

impl CpuBudget {
    /// A budget of `budget` per call, checked every `tick`.
    pub fn new(budget: Duration, tick: Duration) -> Self {
        Self {
            budget,
            tick,
            used: Duration::ZERO,
            resumed: Mark::default(),
        }
    }

    /// A new call starts with the whole budget.
    pub fn reset(&mut self) {
        self.used = Duration::ZERO;
        // No yield of the last call is alive (the usual case): no lock.
        match Arc::get_mut(&mut self.resumed) {
            Some(m) => *m.get_mut() = None,
            None => *self.resumed.lock() = None,
        }
    }

    /// Charge the time since the call last resumed; `Err` once the budget
    /// is spent, else the yield to perform before going on.
    pub fn on_tick(&mut self) -> Result<Pin<Box<dyn Future<Output = ()> + Send>>, CpuTimeout> {
        let here = std::thread::current().id();
        let now = cpu_now();
        self.used += match self.resumed.lock().take() {
            Some((thread, then)) if thread == here => now.saturating_sub(then),
            // The first tick of a call: at most one tick ran unmeasured.
            _ => self.tick,
        };
        if self.used > self.budget {
            return Err(CpuTimeout(self.budget));
        }
        let mark = self.resumed.clone();
        Ok(Box::pin(async move {
            tokio::task::yield_now().await;
            // Resuming: the fiber goes on on this thread, from now.
            *mark.lock() = Some((std::thread::current().id(), cpu_now()));
        }))
    }

    /// The call is about to await something (a host call that waits on the
    /// network): charge what it ran since it last resumed, so a guest that
    /// calls such a host function in a loop still spends its budget (the
    /// next tick traps once it is spent).
    pub fn pause(&mut self) {
        let here = std::thread::current().id();
        if let Some((thread, then)) = self.resumed.lock().take()
            && thread == here
        {
            self.used += cpu_now().saturating_sub(then);
        }
    }

    /// The call goes on here after awaiting something (a host call that
    /// waited on the network): what the thread ran meanwhile is not the
    /// call's.
    pub fn resume_here(&mut self) {
        *self.resumed.lock() = Some((std::thread::current().id(), cpu_now()));
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

    #[test]
    fn spinning_spends_the_budget_and_sleeping_does_not() {
        let tick = Duration::from_millis(1);
        let mut b = CpuBudget::new(Duration::from_millis(30), tick);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(b.on_tick().unwrap());
        // Descheduled (sleeping) for longer than the budget: barely charged.
        std::thread::sleep(Duration::from_millis(60));
        rt.block_on(b.on_tick().unwrap());
        assert!(b.used() < Duration::from_millis(30), "{:?}", b.used());
        // Spinning spends it.
        let spin = |d: Duration| {
            let t = ThreadTime::now();
            while t.elapsed() < d {
                std::hint::black_box(0u64);
            }
        };
        rt.block_on(b.on_tick().unwrap());
        spin(Duration::from_millis(40));
        assert!(b.on_tick().is_err());
        b.reset();
        assert!(b.on_tick().is_ok());
    }

    #[test]
    fn a_host_wait_is_not_charged_and_what_ran_between_waits_is() {
        let tick = Duration::from_millis(1);
        let mut b = CpuBudget::new(Duration::from_millis(30), tick);
        let spin = |d: Duration| {
            let t = ThreadTime::now();
            while t.elapsed() < d {
                std::hint::black_box(0u64);
            }
        };
        // A guest that spins between host calls that wait: every stretch
        // between two waits is charged, the waits are not.
        for _ in 0..4 {
            b.resume_here();
            spin(Duration::from_millis(10));
            b.pause();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(b.used() >= Duration::from_millis(40), "{:?}", b.used());
        assert!(b.used() < Duration::from_millis(70), "{:?}", b.used());
        b.resume_here();
        assert!(
            b.on_tick().is_err(),
            "the budget is spent: the next tick traps"
        );
    }
}
