//! A plugin's `max_instances` bound on its calls in progress.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The plugin's `max_instances` bound on calls in progress. Taking and
/// giving back a slot is one atomic operation each; only a call that finds
/// every slot taken waits (on `freed`), and only then does giving one back
/// notify.
pub(super) struct Slots {
    busy: AtomicUsize,
    max: usize,
    /// Calls waiting for a slot.
    waiting: AtomicUsize,
    freed: Notify,
}

impl Slots {
    /// At most `max` calls at once.
    pub(super) fn new(max: usize) -> Self {
        Self {
            busy: AtomicUsize::new(0),
            max,
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    // Sequentially consistent with `waiting`: a waiter counts itself before
    // its last try, a slot given back is counted before `waiting` is read,
    // so either the try succeeds or the giver sees the waiter and notifies.
    fn try_take_count(&self) -> bool {
        self.busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// A slot if one is free now.
    pub(super) fn try_take(&self) -> Option<Slot<'_>> {
        // Made only once taken: a `Slot` dropped gives one back.
        self.try_take_count().then(|| Slot(self))
    }

    /// Take a slot, waiting at most `wait` for one to be given back.
    pub(super) async fn take(&self, wait: Duration) -> Option<Slot<'_>> {
        if let Some(s) = self.try_take() {
            return Some(s);
        }
        let _waiting = Waiting::new(&self.waiting);
        tokio::time::timeout(wait, async {
            loop {
                let freed = self.freed.notified();
                let mut freed = std::pin::pin!(freed);
                freed.as_mut().enable();
                if self.try_take_count() {
                    return;
                }
                freed.await;
            }
        })
        .await
        .ok()
        .map(|()| Slot(self))
    }
}

/// One call counted in [`Slots::waiting`] while it waits (also when the
/// wait is dropped midway).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A taken slot, given back on drop (also when a call is dropped midway).
pub(super) struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_waiting_call_gets_the_slot_given_back() {
        let slots = Slots::new(1);
        let first = slots.take(Duration::ZERO).await.expect("a free slot");
        assert!(slots.take(Duration::ZERO).await.is_none(), "only one slot");
        let waiter = slots.take(Duration::from_secs(30));
        let mut waiter = std::pin::pin!(waiter);
        // The waiter is counted and parked before the slot comes back.
        assert!(waiter.as_mut().now_or_never().is_none());
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 1);
        drop(first);
        let second = waiter.await.expect("the slot given back");
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
        drop(second);
        assert_eq!(slots.busy.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_wait_dropped_midway_is_no_longer_counted() {
        let slots = Slots::new(1);
        let _first = slots.take(Duration::ZERO).await.expect("a free slot");
        {
            let waiter = slots.take(Duration::from_secs(30));
            let mut waiter = std::pin::pin!(waiter);
            assert!(waiter.as_mut().now_or_never().is_none());
            assert_eq!(slots.waiting.load(Ordering::SeqCst), 1);
        }
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
    }
}
