//! Invalidation: purge, soft purge and bans. Every invalidation (admin API,
//! the `PURGE` method through a plugin, the `invalidate` import) goes
//! through these methods, so a cluster fan-out plugs in here: what is
//! applied here is also handed to the [`InvalidationSink`], if one is set;
//! what arrives from other nodes goes through [`Cache::apply`], which
//! hands nothing on.

use std::sync::atomic::Ordering;

use super::{Ban, Cache, Key, Object};

/// One invalidation, as other nodes apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Remove every variant of a key.
    Purge(Key),
    /// Mark every variant of a key stale.
    SoftPurge(Key),
    /// A ban for one host (or all, `None`) on URLs matching a pattern.
    Ban {
        /// Host, lower case.
        host: Option<String>,
        /// The URL pattern as given.
        pattern: String,
    },
    /// Drop everything stored.
    Clear,
}

/// Where the invalidations made on this node are handed on (the cluster).
pub trait InvalidationSink: Send + Sync {
    /// Hand one on; must not block.
    fn publish(&self, inv: Invalidation);
}

impl Cache {
    /// Hand invalidations made on this node to `sink` (once; later calls
    /// are ignored).
    pub fn set_sink(&self, sink: std::sync::Arc<dyn InvalidationSink>) {
        let _ = self.sink.set(sink);
    }

    fn hand_on(&self, inv: Invalidation) {
        if let Some(s) = self.sink.get() {
            s.publish(inv);
        }
    }

    /// Remove every variant of a key. Returns how many.
    pub fn purge(&self, key: Key) -> usize {
        let n = self.purge_here(key);
        self.hand_on(Invalidation::Purge(key));
        n
    }

    fn purge_here(&self, key: Key) -> usize {
        let Some(mut s) = self.map.get_mut(&key) else {
            return 0;
        };
        let gone: Vec<_> = s.variants.drain(..).collect();
        drop(s);
        self.map
            .remove_if(&key, |_, s| s.variants.is_empty() && s.busy.is_none());
        let n = gone.iter().filter(|o| !o.hfm).count();
        for o in gone {
            self.forget(&o);
        }
        n
    }

    /// Mark every variant of a key stale: served in grace while refreshed, or
    /// revalidated. Returns how many.
    pub fn soft_purge(&self, key: Key) -> usize {
        let n = self.soft_purge_here(key);
        self.hand_on(Invalidation::SoftPurge(key));
        n
    }

    fn soft_purge_here(&self, key: Key) -> usize {
        let Some(s) = self.map.get(&key) else {
            return 0;
        };
        let live: Vec<_> = s.variants.iter().filter(|o| !o.hfm).collect();
        for o in &live {
            o.expired.store(true, Ordering::Relaxed);
        }
        live.len()
    }

    /// Add a ban (evaluated lazily at lookup, and by the periodic sweep);
    /// the number active, or why it was refused (`[cache] max_bans`).
    pub fn ban(&self, ban: Ban) -> Result<usize, String> {
        let inv = Invalidation::Ban {
            host: ban.host().map(str::to_owned),
            pattern: ban.pattern.clone(),
        };
        let n = self.bans.add(ban)?;
        self.hand_on(inv);
        Ok(n)
    }

    /// Drop every object stored (a node that may have missed invalidations).
    /// Returns how many.
    pub fn clear(&self) -> usize {
        let keys: Vec<Key> = self.map.iter().map(|s| *s.key()).collect();
        keys.into_iter().map(|k| self.purge_here(k)).sum()
    }

    /// Apply an invalidation made on another node (handed on to no sink).
    /// Returns how many objects (or, for a ban, bans active) it touched.
    pub fn apply(&self, inv: &Invalidation) -> Result<usize, String> {
        match inv {
            Invalidation::Purge(k) => Ok(self.purge_here(*k)),
            Invalidation::SoftPurge(k) => Ok(self.soft_purge_here(*k)),
            Invalidation::Ban { host, pattern } => {
                self.bans.add(Ban::new(host.as_deref(), pattern)?)
            }
            Invalidation::Clear => Ok(self.clear()),
        }
    }

    /// Active bans: (host, pattern, seconds old).
    pub fn bans(&self) -> Vec<(Option<String>, String, u64)> {
        self.bans.list()
    }

    pub(super) fn banned(&self, o: &Object) -> bool {
        !o.hfm && self.bans.banned(&o.ban_checked, &o.host, &o.url, o.created)
    }
}
