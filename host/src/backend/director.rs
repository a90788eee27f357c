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
use crate::config::{DirectorConfig, DirectorKind, HashKey};

/// What a hash director hashes.
pub struct PickKey<'a> {
    /// Path and query.
    pub url: &'a str,
    /// Client address.
    pub client_ip: IpAddr,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// A director.
pub struct Director {
    /// Name.
    pub name: String,
    kind: DirectorKind,
    /// Name, target and weight (1 unless random).
    members: Vec<(String, Target, u32)>,
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
        match &self.kind {
            DirectorKind::Fallback => self
                .members
                .iter()
                .filter(|m| usable(&m.1))
                .find_map(|m| resolve(&m.1)),
            DirectorKind::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.members[(start + i) % n].1)
                    .filter(|t| usable(t))
                    .find_map(resolve)
            }
            DirectorKind::Random { .. } => {
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
            DirectorKind::Hash(hash_key) => {
                let k = key_bytes(hash_key, key);
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
}

fn key_bytes(hash_key: &HashKey, key: &PickKey<'_>) -> Vec<u8> {
    match hash_key {
        HashKey::ClientIp => key.client_ip.to_string().into_bytes(),
        HashKey::Header(h) => key
            .headers
            .get(h)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
        HashKey::Url => key.url.as_bytes().to_vec(),
    }
}

/// Build every director into `targets` (members first; config checked there are no cycles).
pub fn build_all(configs: &[DirectorConfig], targets: &mut HashMap<String, Target>) {
    let mut pending: Vec<&DirectorConfig> = configs.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|d| {
            if !d.members.iter().all(|m| targets.contains_key(m)) {
                return true;
            }
            let weight = |i: usize| match &d.kind {
                DirectorKind::Random { weights } => weights.get(i).copied().unwrap_or(1),
                _ => 1,
            };
            let members = d
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), targets[m].clone(), weight(i)))
                .collect();
            let dir = Director {
                name: d.name.clone(),
                kind: d.kind.clone(),
                members,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::backend::health::{Forced, Health};
    use crate::config::{BackendConfig, Timeouts};

    fn targets(names: &[&str]) -> HashMap<String, Target> {
        names
            .iter()
            .map(|n| {
                let url = "http://127.0.0.1:9";
                let second = std::time::Duration::from_secs(1);
                let cfg = BackendConfig {
                    name: (*n).to_owned(),
                    url: url.into(),
                    uri: url.parse().unwrap(),
                    socket: None,
                    timeouts: Timeouts {
                        connect: second,
                        first_byte: second,
                        between_bytes: second,
                    },
                    max_connections: 0,
                    max_connections_wait: std::time::Duration::ZERO,
                    host_header: None,
                    probe: None,
                    circuit: Default::default(),
                    protocol: Default::default(),
                    tls: None,
                };
                let b = Backend::new(&cfg, Arc::new(Health::default()));
                ((*n).to_owned(), Target::Backend(Arc::new(b)))
            })
            .collect()
    }

    fn section(name: &str, kind: &str, members: &[&str], weights: &[u32]) -> DirectorConfig {
        let kind = match kind {
            "round-robin" => DirectorKind::RoundRobin,
            "fallback" => DirectorKind::Fallback,
            "hash" => DirectorKind::Hash(HashKey::Url),
            _ => DirectorKind::Random {
                weights: if weights.is_empty() {
                    vec![1; members.len()]
                } else {
                    weights.to_vec()
                },
            },
        };
        DirectorConfig {
            name: name.into(),
            kind,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn director(t: &HashMap<String, Target>, name: &str) -> Arc<Director> {
        match &t[name] {
            Target::Director(d) => d.clone(),
            Target::Backend(_) => panic!("{name} is a backend"),
        }
    }

    fn force(t: &HashMap<String, Target>, name: &str, f: Forced) {
        match &t[name] {
            Target::Backend(b) => b.health.force(f),
            Target::Director(_) => panic!("{name} is a director"),
        }
    }

    fn pick(d: &Director, url: &str, tried: &[Arc<str>]) -> Option<String> {
        let headers = HeaderMap::new();
        let key = PickKey {
            url,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            headers: &headers,
        };
        d.pick(&key, tried).map(|b| b.name.to_string())
    }

    #[test]
    fn hash_removing_a_member_moves_only_its_share() {
        let mut t = targets(&["a", "b", "c"]);
        build_all(
            &[
                section("three", "hash", &["a", "b", "c"], &[]),
                section("two", "hash", &["a", "b"], &[]),
            ],
            &mut t,
        );
        let (three, two) = (director(&t, "three"), director(&t, "two"));
        let mut per = HashMap::<String, usize>::new();
        let mut moved_to = HashMap::<String, usize>::new();
        for i in 0..3000 {
            let url = format!("/object/{i}");
            let before = pick(&three, &url, &[]).unwrap();
            let after = pick(&two, &url, &[]).unwrap();
            *per.entry(before.clone()).or_default() += 1;
            if before == "c" {
                *moved_to.entry(after).or_default() += 1;
            } else {
                assert_eq!(before, after, "{url} was on {before}, which is still there");
            }
        }
        for n in ["a", "b", "c"] {
            let share = per[n] as f64 / 3000.0;
            assert!((0.25..0.42).contains(&share), "{n} has {share} of the keys");
        }
        assert!(
            moved_to["a"] > 300 && moved_to["b"] > 300,
            "c's share spreads over the others: {moved_to:?}"
        );
    }

    #[test]
    fn hash_skips_a_sick_member_and_comes_back() {
        let mut t = targets(&["a", "b", "c"]);
        build_all(&[section("h", "hash", &["a", "b", "c"], &[])], &mut t);
        let h = director(&t, "h");
        let urls: Vec<String> = (0..300).map(|i| format!("/u/{i}")).collect();
        let first: Vec<String> = urls.iter().map(|u| pick(&h, u, &[]).unwrap()).collect();
        force(&t, "b", Forced::Sick);
        for (u, was) in urls.iter().zip(&first) {
            let now = pick(&h, u, &[]).unwrap();
            assert_ne!(now, "b");
            if was != "b" {
                assert_eq!(&now, was, "{u} moved although its member is healthy");
            }
        }
        force(&t, "b", Forced::Auto);
        let again: Vec<String> = urls.iter().map(|u| pick(&h, u, &[]).unwrap()).collect();
        assert_eq!(first, again, "back where they were");
    }

    #[test]
    fn round_robin_skips_sick_and_tried_members() {
        let mut t = targets(&["a", "b", "c"]);
        build_all(
            &[section("rr", "round-robin", &["a", "b", "c"], &[])],
            &mut t,
        );
        let rr = director(&t, "rr");
        let seq: Vec<String> = (0..6).map(|_| pick(&rr, "/", &[]).unwrap()).collect();
        assert_eq!(seq, ["a", "b", "c", "a", "b", "c"]);
        force(&t, "b", Forced::Sick);
        let seq: Vec<String> = (0..4).map(|_| pick(&rr, "/", &[]).unwrap()).collect();
        assert!(seq.iter().all(|n| n != "b"), "{seq:?}");
        let tried: Vec<Arc<str>> = vec!["a".into(), "c".into()];
        assert_eq!(pick(&rr, "/", &tried), None, "a and c tried, b sick");
        assert_eq!(pick(&rr, "/", &tried[..1]).as_deref(), Some("c"));
    }

    #[test]
    fn random_follows_the_weights() {
        let mut t = targets(&["a", "b", "z"]);
        build_all(
            &[
                section("r", "random", &["a", "b"], &[3, 1]),
                section("rz", "random", &["a", "z"], &[1, 0]),
            ],
            &mut t,
        );
        let (r, rz) = (director(&t, "r"), director(&t, "rz"));
        let a = (0..4000)
            .filter(|_| pick(&r, "/", &[]).unwrap() == "a")
            .count();
        let share = a as f64 / 4000.0;
        assert!((0.65..0.85).contains(&share), "weight 3 of 4 got {share}");
        assert!(
            (0..500).all(|_| pick(&rz, "/", &[]).unwrap() == "a"),
            "weight 0 is never picked"
        );
        force(&t, "a", Forced::Sick);
        assert_eq!(pick(&rz, "/", &[]), None, "a weight of 0 is not a fallback");
    }

    #[test]
    fn nested_directors_fall_back() {
        let mut t = targets(&["a", "b", "c"]);
        build_all(
            &[
                // Declared before its member director: build order follows dependencies.
                section("outer", "fallback", &["pool", "c"], &[]),
                section("pool", "round-robin", &["a", "b"], &[]),
            ],
            &mut t,
        );
        let outer = director(&t, "outer");
        let seq: Vec<String> = (0..4).map(|_| pick(&outer, "/", &[]).unwrap()).collect();
        assert_eq!(seq, ["a", "b", "a", "b"]);
        let tried: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        assert_eq!(
            pick(&outer, "/", &tried).as_deref(),
            Some("c"),
            "pool exhausted by retries"
        );
        force(&t, "a", Forced::Sick);
        force(&t, "b", Forced::Sick);
        assert_eq!(pick(&outer, "/", &[]).as_deref(), Some("c"));
        assert!(outer.healthy());
        force(&t, "c", Forced::Sick);
        assert!(!outer.healthy());
        assert_eq!(pick(&outer, "/", &[]), None);
    }
}
