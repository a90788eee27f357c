//! Directors: choose a healthy backend among members (backends or other
//! directors). Round-robin, weighted random, consistent hash (rendezvous, so
//! removing a member moves only its share) and fallback (first healthy).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderMap;
use rand::Rng;

use super::{Backend, Target};
use crate::config::DirectorSection;

/// What a hash director hashes.
pub struct PickKey<'a> {
    /// Path and query.
    pub url: &'a str,
    /// Client address.
    pub client_ip: IpAddr,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RoundRobin,
    Random,
    Hash,
    Fallback,
}

/// A director.
pub struct Director {
    /// Name.
    pub name: String,
    kind: Kind,
    members: Vec<(String, Target, u32)>,
    hash_key: String,
    next: AtomicUsize,
}

impl Director {
    /// Whether any member is healthy.
    pub fn healthy(&self) -> bool {
        self.members.iter().any(|(_, t, _)| t.healthy())
    }

    /// Member names, in order.
    pub fn member_names(&self) -> Vec<&str> {
        self.members.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    /// Pick a healthy backend not in `tried`.
    pub fn pick(&self, key: &PickKey<'_>, tried: &[Arc<str>]) -> Option<Arc<Backend>> {
        let usable = |t: &Target| match t {
            Target::Backend(b) => b.health.healthy() && !tried.iter().any(|n| *n == b.name),
            Target::Director(d) => d.healthy(),
        };
        let resolve = |t: &Target| match t {
            Target::Backend(b) => Some(b.clone()),
            Target::Director(d) => d.pick(key, tried),
        };
        let n = self.members.len();
        match self.kind {
            Kind::Fallback => self
                .members
                .iter()
                .filter(|m| usable(&m.1))
                .find_map(|m| resolve(&m.1)),
            Kind::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.members[(start + i) % n].1)
                    .filter(|t| usable(t))
                    .find_map(resolve)
            }
            Kind::Random => {
                let mut live: Vec<_> = self
                    .members
                    .iter()
                    .filter(|m| usable(&m.1) && m.2 > 0)
                    .collect();
                while !live.is_empty() {
                    let total: u64 = live.iter().map(|m| u64::from(m.2)).sum();
                    let mut r = rand::rng().random_range(0..total);
                    let i = live
                        .iter()
                        .position(|m| {
                            let w = u64::from(m.2);
                            if r < w {
                                true
                            } else {
                                r -= w;
                                false
                            }
                        })
                        .unwrap_or(0);
                    if let Some(b) = resolve(&live[i].1) {
                        return Some(b);
                    }
                    live.remove(i);
                }
                None
            }
            Kind::Hash => {
                let k = self.key_bytes(key);
                let mut ranked: Vec<_> = self
                    .members
                    .iter()
                    .map(|m| {
                        let mut h = xxhash_rust::xxh3::Xxh3::new();
                        h.update(m.0.as_bytes());
                        h.update(&[0]);
                        h.update(&k);
                        (h.digest(), m)
                    })
                    .collect();
                ranked.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
                ranked
                    .into_iter()
                    .filter(|(_, m)| usable(&m.1))
                    .find_map(|(_, m)| resolve(&m.1))
            }
        }
    }

    fn key_bytes(&self, key: &PickKey<'_>) -> Vec<u8> {
        match self.hash_key.as_str() {
            "client-ip" => key.client_ip.to_string().into_bytes(),
            h if h.starts_with("header:") => key
                .headers
                .get(&h["header:".len()..])
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            _ => key.url.as_bytes().to_vec(),
        }
    }
}

/// Build every director into `targets` (members first; config checked there are no cycles).
pub fn build_all(sections: &[DirectorSection], targets: &mut HashMap<String, Target>) {
    let mut pending: Vec<&DirectorSection> = sections.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|d| {
            if !d.backends.iter().all(|m| targets.contains_key(m)) {
                return true;
            }
            let members = d
                .backends
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    (
                        m.clone(),
                        targets[m].clone(),
                        d.weights.get(i).copied().unwrap_or(1),
                    )
                })
                .collect();
            let kind = match d.kind.as_str() {
                "random" => Kind::Random,
                "hash" => Kind::Hash,
                "fallback" => Kind::Fallback,
                _ => Kind::RoundRobin,
            };
            let dir = Director {
                name: d.name.clone(),
                kind,
                members,
                hash_key: d.key.clone().unwrap_or_else(|| "url".into()),
                next: AtomicUsize::new(0),
            };
            targets.insert(d.name.clone(), Target::Director(Arc::new(dir)));
            false
        });
        if pending.len() == before {
            break; // unreachable after config checks
        }
    }
}
