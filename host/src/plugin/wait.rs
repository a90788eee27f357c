//! Hook calls are synchronous (but for plugins whose calls may wait on the
//! network, see `runtime::Pre`): a guest runs on the tokio worker that
//! polls the request, on that thread's stack, with no fiber. Two things
//! would otherwise let a plugin hold a worker, and every request queued on
//! it:
//!
//! - **Running long.** A call still running at its second epoch tick (1 ms
//!   or more: healthy calls take microseconds) hands the worker over
//!   ([`hand_off_worker`]): tokio moves the worker's queue and I/O to
//!   another thread (`block_in_place`), and this thread goes on with the
//!   call alone, until it ends or spends its CPU budget. Other requests
//!   never wait for it. A call on a fiber does the same.
//! - **Waiting.** A synchronous host function that waits (a guest sleeping
//!   through WASI) is polled once ([`block`]): what is ready at once (a
//!   guest's output, nearly everything) costs nothing more; only a real
//!   wait hands the worker over and blocks this thread, bounded by the
//!   call's wall-clock deadline.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

/// The call ran past its `wall_timeout`: waiting (through WASI or a host
/// function) or running, it was stopped.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock bound of {0:?} exceeded")]
pub struct WallTimeout(pub Duration);

/// A wait that cannot be made: outside a multi-thread tokio runtime a call
/// has no worker to hand over, so it may not block.
#[derive(Debug, thiserror::Error)]
#[error("a plugin call cannot wait outside a multi-thread runtime")]
pub struct CannotWait;

/// How long [`hand_off_worker`] waits for the worker's queue to be taken
/// up by another thread before it gives up (to try again at the next tick).
const HANDOFF_WAIT: Duration = Duration::from_millis(20);

/// Whether this thread is in a multi-thread tokio runtime, where a worker
/// can be handed over.
fn multi_thread() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Run `f` to completion from a synchronous host function of a call whose
/// wall-clock bound `wall` ends at `deadline` (as [`super::cpu::CpuBudget::deadline`]
/// gives them), the worker handed over if it must
/// wait; the trap that ends the call ([`WallTimeout`], [`CannotWait`]) if
/// it cannot.
pub fn block<F: Future>(
    f: F,
    (deadline, wall): (Instant, Duration),
) -> wasmtime::Result<F::Output> {
    let mut f = std::pin::pin!(f);
    if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return Ok(v);
    }
    if !multi_thread() {
        return Err(wasmtime::Error::new(CannotWait));
    }
    tokio::task::block_in_place(|| {
        Handle::current().block_on(async {
            tokio::time::timeout_at(deadline.into(), f)
                .await
                .map_err(|_| wasmtime::Error::new(WallTimeout(wall)))
        })
    })
}

/// The call running on this thread is long: hand this tokio worker's
/// queue and I/O to another thread, so that only this call waits for it.
/// True once handed over (or when there is no worker to hand over); false
/// if the other thread did not take over in time, to try again later.
///
/// `block_in_place` moves the worker to a new thread but takes it back if
/// that thread has not started by the time the closure returns; so the
/// closure waits until a task spawned here (into this worker's LIFO slot,
/// which only the worker itself runs) has run on the new thread. That is
/// likely, not certain: `block_in_place` moves the task to the worker's
/// run queue, where an idle worker may steal it first; so a long call
/// checks again later (see `cpu.rs`). Where this thread no longer holds
/// a worker, a check is the task's round trip through another worker.
pub fn hand_off_worker() -> bool {
    if !multi_thread() {
        return true;
    }
    let ran = Arc::new(AtomicBool::new(false));
    let (flag, here) = (ran.clone(), std::thread::current());
    tokio::spawn(async move {
        flag.store(true, Ordering::Release);
        here.unpark();
    });
    tokio::task::block_in_place(|| {
        let until = Instant::now() + HANDOFF_WAIT;
        while !ran.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::park_timeout(left);
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_needs_no_runtime() {
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            block(async { 7 }, (far, Duration::from_secs(60))).ok(),
            Some(7)
        );
    }

    #[test]
    fn a_wait_outside_a_multi_thread_runtime_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let r = rt.block_on(async {
            block(
                tokio::time::sleep(Duration::from_millis(1)),
                (far, Duration::ZERO),
            )
        });
        assert!(r.is_err_and(|e| e.downcast_ref::<CannotWait>().is_some()));
    }

    #[test]
    fn a_wait_past_the_deadline_ends_at_it() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            tokio::spawn(async {
                let wall = Duration::from_millis(20);
                let t = Instant::now();
                let r = block(std::future::pending::<()>(), (t + wall, wall));
                (r, t.elapsed())
            })
            .await
            .unwrap()
        });
        assert!(r.0.is_err_and(|e| e.downcast_ref::<WallTimeout>().is_some()));
        assert!(r.1 >= Duration::from_millis(20));
    }

    #[test]
    fn a_handed_off_worker_runs_other_tasks_while_this_one_spins() {
        // One worker: without the hand-off, the spinning task would keep
        // the other from ever running.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = rt.block_on(async {
            let spinning = Arc::new(AtomicBool::new(false));
            let released = Arc::new(AtomicBool::new(false));
            let (s, r) = (spinning.clone(), released.clone());
            let spinner = tokio::spawn(async move {
                assert!(hand_off_worker(), "handed over");
                s.store(true, Ordering::Release);
                let t = Instant::now();
                while !r.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(10) {
                    std::hint::spin_loop();
                }
                r.load(Ordering::Acquire)
            });
            while !spinning.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
            }
            let r = released.clone();
            tokio::spawn(async move { r.store(true, Ordering::Release) });
            spinner.await.unwrap()
        });
        assert!(seen, "the other task ran while the first one spun");
    }
}
