//! Invalidation: purge, soft purge and bans. Every invalidation (admin API,
//! the `PURGE` method through a plugin, the `invalidate` import) goes
//! through these methods, so a cluster fan-out plugs in here.

use std::sync::atomic::Ordering;

use super::{Ban, Cache, Key, Object};

impl Cache {
    /// Remove every variant of a key. Returns how many.
    pub fn purge(&self, key: Key) -> usize {
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
        self.bans.add(ban)
    }

    /// Active bans: (host, pattern, seconds old).
    pub fn bans(&self) -> Vec<(Option<String>, String, u64)> {
        self.bans.list()
    }

    pub(super) fn banned(&self, o: &Object) -> bool {
        !o.hfm && self.bans.banned(&o.ban_checked, &o.host, &o.url, o.created)
    }
}
