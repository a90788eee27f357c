//! A plugin's warm instances, kept near the worker thread that last ran them.
//!
//! One shared list made every call's instance change cores: on a two-worker
//! host the instance one worker had just given back was often taken next
//! by the other, so a call began with its store, its linear memory and its
//! fiber stack in the other core's cache, and both workers wrote the list's
//! lock. Here each thread gives back to, and takes from, its own shard first
//! (a shard is one cache line apart from the next); a thread whose shard is
//! empty takes from another before anyone instantiates, so the number of
//! instances still never exceeds the calls in progress.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

/// Idle values in per-thread shards.
pub(super) struct Pool<T> {
    shards: Box<[CachePadded<Mutex<Vec<T>>>]>,
    /// Most values one shard keeps.
    per_shard: usize,
}

/// This thread's shard among `n`: threads are numbered in the order they
/// first take or give back, so the tokio workers spread over the shards.
fn home(n: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|t| *t) % n.max(1)
}

impl<T> Pool<T> {
    /// A pool keeping at most about `max_idle` values, in one shard per core
    /// (and no more shards than values).
    pub(super) fn new(max_idle: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = cores.min(max_idle).max(1);
        Self {
            shards: (0..n)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            per_shard: max_idle.div_ceil(n).max(1),
        }
    }

    fn home(&self) -> usize {
        home(self.shards.len())
    }

    /// The value this thread gave back last, else any idle one.
    pub(super) fn take(&self) -> Option<T> {
        let home = self.home();
        let n = self.shards.len();
        (0..n).find_map(|i| self.shards[(home + i) % n].lock().pop())
    }

    /// Keep a value for this thread's next `take`: in its own shard, else
    /// in another with room; dropped if every shard is full.
    pub(super) fn give_back(&self, v: T) {
        let home = self.home();
        let n = self.shards.len();
        for i in 0..n {
            let mut shard = self.shards[(home + i) % n].lock();
            if shard.len() < self.per_shard {
                shard.push(v);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_back_what_it_gave_and_takes_from_others_when_empty() {
        let pool = Pool::new(4);
        pool.give_back(1);
        pool.give_back(2);
        // Last in, first out on this thread.
        assert_eq!(pool.take(), Some(2));
        // Another thread finds this thread's value when its own shard is empty.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(pool.take(), Some(1));
                assert_eq!(pool.take(), None);
            });
        });
    }

    #[test]
    fn a_full_pool_drops_what_is_given_back() {
        let pool = Pool::new(1);
        pool.give_back(1);
        pool.give_back(2);
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }

    #[test]
    fn a_full_shard_gives_room_in_another() {
        let pool = Pool::new(2);
        if pool.shards.len() < 2 {
            return; // one core: one shard, nothing to spill to
        }
        pool.give_back(1);
        pool.give_back(2);
        let mut got = [pool.take(), pool.take(), pool.take()];
        got.sort();
        assert_eq!(got, [None, Some(1), Some(2)]);
    }
}
