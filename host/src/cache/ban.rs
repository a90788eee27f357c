//! Bans: "every object stored before now whose host and URL match is
//! invalid", evaluated lazily like Varnish's ban list.
//!
//! Each ban gets a sequence number; each object remembers the newest ban it
//! has been checked against (at first, the newest when it was stored, since
//! later bans are the only ones that can apply). A lookup checks an object
//! only against newer bans, once: a hit with no new ban costs one atomic
//! load. The periodic sweep (the "lurker") checks every object, and a ban
//! that every object has been checked against is retired. At most
//! `[cache] max_bans` are active; more are refused.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::clock::Clock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Longest ban pattern accepted: 1 KiB.
pub const MAX_BAN_PATTERN: usize = 1024;
/// Compiled size bound for a ban's regex.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A ban: objects stored before it whose host and URL match are invalid.
pub struct Ban {
    seq: u64,
    at: Instant,
    host: Option<String>,
    url: regex_lite::Regex,
    /// The pattern as given.
    pub pattern: String,
}

impl Ban {
    /// A ban on URLs (path and query) matching `pattern`, for one host or all.
    pub fn new(host: Option<&str>, pattern: &str) -> Result<Ban, String> {
        if pattern.len() > MAX_BAN_PATTERN {
            return Err(format!(
                "url pattern of {} bytes: at most {MAX_BAN_PATTERN}",
                pattern.len()
            ));
        }
        let url = regex_lite::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map_err(|e| format!("invalid url pattern {pattern:?}: {e}"))?;
        Ok(Ban {
            seq: 0,
            at: Instant::now(),
            host: host.filter(|h| !h.is_empty()).map(str::to_ascii_lowercase),
            url,
            pattern: pattern.into(),
        })
    }

    /// The host it applies to (lower case), or none for every host.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn hits(&self, host: &str, url: &str, created: Instant) -> bool {
        created <= self.at
            && self.host.as_deref().is_none_or(|h| h == host)
            && self.url.is_match(url)
    }
}

/// The active bans, oldest first.
pub struct Bans {
    list: RwLock<VecDeque<Arc<Ban>>>,
    /// Sequence number of the newest ban (0: none yet).
    newest: AtomicU64,
    max: usize,
    active: Gauge,
    refused: Counter,
    clock: Arc<dyn Clock>,
}

impl Bans {
    /// An empty list holding at most `max` bans, aged by `clock`.
    pub fn new(max: usize, active: Gauge, refused: Counter, clock: Arc<dyn Clock>) -> Self {
        Self {
            list: RwLock::new(VecDeque::new()),
            newest: AtomicU64::new(0),
            max,
            active,
            refused,
            clock,
        }
    }

    /// The sequence number an object stored now starts from: it has
    /// nothing to fear from the bans that exist already.
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::Acquire)
    }

    /// Add a ban; the number active, or why it was refused.
    pub fn add(&self, mut ban: Ban) -> Result<usize, String> {
        let mut list = self.list.write();
        if list.len() >= self.max {
            drop(list);
            self.refused.inc();
            return Err(format!(
                "{} bans are active, the most [cache] max_bans allows; they retire once every object has been checked against them",
                self.max
            ));
        }
        ban.seq = self.newest.load(Ordering::Acquire) + 1;
        ban.at = self.clock.now();
        list.push_back(Arc::new(ban));
        self.newest
            .store(list.back().map_or(0, |b| b.seq), Ordering::Release);
        self.active.set(list.len() as i64);
        Ok(list.len())
    }

    /// Whether an object (`host`, `url`, stored at `created`) is banned by a
    /// ban newer than `checked`; when not, `checked` moves to the newest.
    pub fn banned(&self, checked: &AtomicU64, host: &str, url: &str, created: Instant) -> bool {
        let seen = checked.load(Ordering::Acquire);
        if seen >= self.newest() {
            return false;
        }
        let list = self.list.read();
        let from = list.partition_point(|b| b.seq <= seen);
        if list.range(from..).any(|b| b.hits(host, url, created)) {
            return true;
        }
        let newest = list.back().map_or(seen, |b| b.seq);
        checked.fetch_max(newest, Ordering::AcqRel);
        false
    }

    /// Retire the bans every object has been checked against (`oldest` is
    /// the least `checked` of any stored object; none stored: the newest),
    /// and those older than any object's whole life.
    pub fn retire(&self, oldest: u64, max_life: Duration) {
        let mut list = self.list.write();
        while list.front().is_some_and(|b| {
            b.seq <= oldest || self.clock.now().saturating_duration_since(b.at) > max_life
        }) {
            list.pop_front();
        }
        self.active.set(list.len() as i64);
    }

    /// Active bans: (host, pattern, seconds old).
    pub fn list(&self) -> Vec<(Option<String>, String, u64)> {
        self.list
            .read()
            .iter()
            .map(|b| {
                let age = self.clock.now().saturating_duration_since(b.at);
                (b.host.clone(), b.pattern.clone(), age.as_secs())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bans(max: usize) -> Bans {
        Bans::new(
            max,
            Gauge::default(),
            Counter::default(),
            Arc::new(super::super::clock::SystemClock),
        )
    }

    #[test]
    fn only_newer_bans_are_checked_and_only_once() {
        let b = bans(10);
        let before = Instant::now();
        let checked = AtomicU64::new(b.newest());
        b.add(Ban::new(Some("h"), "^/a").unwrap()).unwrap();
        assert!(b.banned(&checked, "h", "/a/1", before));
        assert!(!b.banned(&checked, "other", "/a/1", before));
        assert_eq!(
            checked.load(Ordering::Relaxed),
            1,
            "checked up to the newest"
        );
        // An object stored after the ban starts past it.
        let later = AtomicU64::new(b.newest());
        assert!(!b.banned(&later, "h", "/a/1", Instant::now()));
    }

    #[test]
    fn the_list_is_bounded_and_retires() {
        let b = bans(2);
        b.add(Ban::new(None, "x").unwrap()).unwrap();
        b.add(Ban::new(None, "y").unwrap()).unwrap();
        let e = b.add(Ban::new(None, "z").unwrap()).unwrap_err();
        assert!(e.contains("max_bans"), "{e}");
        assert_eq!(b.refused.get(), 1);
        b.retire(1, Duration::from_secs(3600));
        assert_eq!(b.list().len(), 1);
        assert_eq!(b.active.get(), 1);
        b.add(Ban::new(None, "z").unwrap()).unwrap();
        b.retire(b.newest(), Duration::from_secs(3600));
        assert!(b.list().is_empty());
    }

    #[test]
    fn patterns_are_bounded() {
        assert!(Ban::new(None, &"a".repeat(MAX_BAN_PATTERN + 1)).is_err());
        assert!(Ban::new(None, "(").is_err());
        assert!(
            Ban::new(None, "a{1000}{1000}").is_err(),
            "compiled size bound"
        );
    }
}
