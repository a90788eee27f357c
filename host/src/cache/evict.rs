//! Staying within the byte budget: CLOCK eviction (a second chance for
//! objects used since the last pass, no lock on hits), and the periodic
//! sweep of dead and banned objects, which also retires bans.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Cache, Object};

impl Cache {
    /// Evict until within budget: CLOCK (second chance for recently used objects).
    pub(super) fn evict(&self) {
        if self.bytes.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let mut ring = self.ring.lock();
        let mut budget_steps = ring.len() * 2 + 1;
        while self.bytes.load(Ordering::Relaxed) > self.budget && budget_steps > 0 {
            budget_steps -= 1;
            let Some(w) = ring.pop_front() else { break };
            let Some(o) = w.upgrade() else { continue };
            if !o.in_cache.load(Ordering::Relaxed) {
                continue;
            }
            if o.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back(w);
                continue;
            }
            if let Some(mut s) = self.map.get_mut(&o.key) {
                s.variants.retain(|x| !Arc::ptr_eq(x, &o));
            }
            self.forget(&o);
            self.metrics.cache_evictions.inc();
        }
    }

    /// Drop dead and banned objects and empty slots, then retire the bans
    /// every object has been checked against (called periodically).
    pub fn sweep(&self) {
        let max_life = *self.max_life.lock();
        let mut oldest = self.bans.newest();
        // Snapshot under each shard's read lock in turn, then check without
        // any lock: ban checks (regexes) must not hold up lookups.
        let objects: Vec<Arc<Object>> = self.map.iter().flat_map(|s| s.variants.clone()).collect();
        for o in objects {
            if o.dead() || self.banned(&o) {
                self.remove(&o);
            } else if !o.hfm {
                oldest = oldest.min(o.ban_checked.load(Ordering::Acquire));
            }
        }
        self.map
            .retain(|_, s| !(s.variants.is_empty() && s.busy.is_none()));
        // Bans every object has been checked against, or older than any
        // object's whole life, can match nothing any more.
        self.bans.retire(oldest, max_life);
        self.ring.lock().retain(|w| w.strong_count() > 0);
    }
}
