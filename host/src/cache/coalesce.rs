//! Request coalescing: one fetch per key; the others wait on its guard and
//! learn what became of it.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Cache, Key};
use crate::kinds::FetchFailure;

/// What became of a coalesced fetch.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An object was stored: look up again.
    Stored,
    /// The response was not cacheable: fetch on your own (no waiting).
    Uncacheable,
    /// The fetch failed with this.
    Failed(FetchFailure),
}

/// The right (and duty) to fetch a key: dropping it without `resolve` tells waiters it failed.
pub struct FetchGuard {
    pub(super) cache: Arc<Cache>,
    pub(super) key: Key,
    pub(super) tx: Option<watch::Sender<Option<Outcome>>>,
}

impl FetchGuard {
    /// Tell waiters what happened and release the key.
    pub fn resolve(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            if let Some(mut s) = self.cache.map.get_mut(&self.key)
                && s.busy
                    .as_ref()
                    .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
            {
                s.busy = None;
                // A refresh that ended (above all one that failed) no longer
                // holds the stale copies: the next request in grace starts one.
                for o in &s.variants {
                    o.refreshing
                        .store(false, std::sync::atomic::Ordering::Release);
                }
            }
            tx.send_replace(Some(outcome));
        }
    }

    /// The key this guard holds.
    pub fn key(&self) -> Key {
        self.key
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.release(Outcome::Failed(FetchFailure::abandoned()));
    }
}
