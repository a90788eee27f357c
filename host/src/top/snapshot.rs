//! What `top` shows, computed from two polls: totals from the later one,
//! rates from the counters' growth between them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::api::Poll;
use super::prom::Metrics;

/// Client requests by state (`hit`, `miss`, `pass`, `stale`, `synth`).
pub const REQUESTS: &str = "lacquer_requests_total";
/// Client responses by status; not every host exports it.
pub const RESPONSES: &str = "lacquer_responses_total";
/// Backend responses by backend and status.
pub const BACKEND_REQUESTS: &str = "lacquer_backend_requests_total";
/// Failed fetches by backend and kind.
pub const FETCH_FAILURES: &str = "lacquer_fetch_failures_total";
/// Hook calls by plugin and hook.
pub const PLUGIN_CALLS: &str = "lacquer_plugin_calls_total";
/// Hook faults by plugin, hook and kind.
pub const PLUGIN_FAULTS: &str = "lacquer_plugin_faults_total";
/// Objects evicted for memory.
pub const EVICTIONS: &str = "lacquer_cache_evictions_total";

/// A counter's value now and its growth per second over the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Value in the later poll.
    pub total: f64,
    /// Growth per second (0 over an empty interval).
    pub per_s: f64,
}

impl Rate {
    /// From the earlier and later values over `secs`. A counter that went
    /// down was reset (the host restarted): all of its value is growth.
    pub fn new(before: f64, now: f64, secs: f64) -> Rate {
        let grown = if now >= before { now - before } else { now };
        Rate {
            total: now,
            per_s: if secs > 0.0 { grown / secs } else { 0.0 },
        }
    }
}

/// One labelled row of counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Label value(s) naming the row.
    pub name: String,
    /// The counter.
    pub rate: Rate,
}

/// One backend.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRow {
    /// Backend name.
    pub name: String,
    /// Whether requests may go to it.
    pub healthy: bool,
    /// Operator override (`auto`, `healthy`, `sick`).
    pub forced: String,
    /// Whether the breaker is refusing fetches.
    pub circuit_open: bool,
    /// Responses it gave.
    pub requests: Rate,
    /// Fetches to it that failed, any kind.
    pub failures: Rate,
}

/// One plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRow {
    /// Plugin name.
    pub name: String,
    /// Whether its hooks are being skipped.
    pub quarantined: bool,
    /// Hook calls, every hook.
    pub calls: Rate,
    /// Hook faults, every hook and kind.
    pub faults: Rate,
}

/// Cache occupancy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheRow {
    /// Objects stored.
    pub objects: u64,
    /// Bytes counted against the budget.
    pub bytes: u64,
    /// The budget, in bytes.
    pub budget: u64,
    /// Objects evicted for memory.
    pub evictions: Rate,
}

/// Hits (`hit` and `stale`: answered from the cache) over hits and misses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HitRatio {
    /// Since the host started; `None` before any hit or miss.
    pub lifetime: Option<f64>,
    /// Over the interval; `None` when it had no hit or miss.
    pub interval: Option<f64>,
}

/// Everything one screen (or one `--once` print) shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Host version.
    pub version: String,
    /// Config generation.
    pub generation: u64,
    /// Host uptime.
    pub uptime: Duration,
    /// Time between the two polls the rates are over.
    pub interval: Duration,
    /// Client requests by state.
    pub requests: Vec<Row>,
    /// Hit ratio.
    pub hit_ratio: HitRatio,
    /// Client responses by status class (`2xx`...); `None` when the host
    /// does not export them.
    pub responses: Option<Vec<Row>>,
    /// Backends in config order.
    pub backends: Vec<BackendRow>,
    /// Failed fetches, by "backend kind".
    pub failures: Vec<Row>,
    /// Plugins in chain order.
    pub plugins: Vec<PluginRow>,
    /// Cache occupancy and evictions.
    pub cache: CacheRow,
}

/// Rates of `name` grouped by `labels`, the row named by the label values
/// joined with a space; every row present in `now`.
fn rows(before: &Metrics, now: &Metrics, name: &str, labels: &[&str], secs: f64) -> Vec<Row> {
    let was = before.group(name, labels);
    now.group(name, labels)
        .into_iter()
        .map(|(k, v)| Row {
            rate: Rate::new(was.get(&k).copied().unwrap_or(0.0), v, secs),
            name: k.join(" "),
        })
        .collect()
}

/// Rates of `name` summed by one label, keyed by its value.
fn by(
    before: &Metrics,
    now: &Metrics,
    name: &str,
    label: &str,
    secs: f64,
) -> BTreeMap<String, Rate> {
    rows(before, now, name, &[label], secs)
        .into_iter()
        .map(|r| (r.name, r.rate))
        .collect()
}

/// `2xx` for `200`; a label already a class (or anything else) stays.
fn status_class(status: &str) -> String {
    match status.as_bytes() {
        [c @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => format!("{}xx", *c as char),
        _ => status.to_owned(),
    }
}

fn ratio(hits: f64, misses: f64) -> Option<f64> {
    (hits + misses > 0.0).then(|| hits / (hits + misses))
}

impl Snapshot {
    /// What changed from `before` to `now` (`before` may be `now` itself:
    /// every rate is then 0).
    pub fn between(before: &Poll, now: &Poll) -> Snapshot {
        let interval = now.at.saturating_duration_since(before.at);
        let secs = interval.as_secs_f64();
        let (b, n) = (&before.metrics, &now.metrics);

        let requests = rows(b, n, REQUESTS, &["state"], secs);
        let count = |m: &Metrics, states: &[&str]| -> f64 {
            m.group(REQUESTS, &["state"])
                .into_iter()
                .filter(|(k, _)| states.contains(&k[0].as_str()))
                .map(|(_, v)| v)
                .sum()
        };
        let (hits, misses) = (count(n, &["hit", "stale"]), count(n, &["miss"]));
        let (hits_was, misses_was) = (count(b, &["hit", "stale"]), count(b, &["miss"]));
        let hit_ratio = HitRatio {
            lifetime: ratio(hits, misses),
            interval: ratio(
                Rate::new(hits_was, hits, 1.0).per_s,
                Rate::new(misses_was, misses, 1.0).per_s,
            ),
        };

        let responses = n.has(RESPONSES).then(|| {
            let mut classes: BTreeMap<String, Rate> = BTreeMap::new();
            for r in rows(b, n, RESPONSES, &["status"], secs) {
                let c = classes.entry(status_class(&r.name)).or_default();
                c.total += r.rate.total;
                c.per_s += r.rate.per_s;
            }
            classes
                .into_iter()
                .map(|(name, rate)| Row { name, rate })
                .collect()
        });

        let backend_requests = by(b, n, BACKEND_REQUESTS, "backend", secs);
        let backend_failures = by(b, n, FETCH_FAILURES, "backend", secs);
        let backends = now
            .backends
            .backends
            .iter()
            .map(|s| BackendRow {
                name: s.name.clone(),
                healthy: s.healthy,
                forced: s.forced.clone(),
                circuit_open: s.circuit_open,
                requests: backend_requests.get(&s.name).copied().unwrap_or_default(),
                failures: backend_failures.get(&s.name).copied().unwrap_or_default(),
            })
            .collect();

        let calls = by(b, n, PLUGIN_CALLS, "plugin", secs);
        let faults = by(b, n, PLUGIN_FAULTS, "plugin", secs);
        let plugins = now
            .status
            .plugins
            .iter()
            .map(|p| PluginRow {
                name: p.name.clone(),
                quarantined: p.quarantined,
                calls: calls.get(&p.name).copied().unwrap_or_default(),
                faults: faults.get(&p.name).copied().unwrap_or_default(),
            })
            .collect();

        let cache = &now.status.cache;
        Snapshot {
            version: now.status.version.clone(),
            generation: now.status.generation,
            uptime: Duration::from_secs(now.status.uptime_s),
            interval,
            requests,
            hit_ratio,
            responses,
            backends,
            failures: rows(b, n, FETCH_FAILURES, &["backend", "kind"], secs),
            plugins,
            cache: CacheRow {
                objects: cache.objects,
                bytes: cache.bytes,
                budget: cache.budget,
                evictions: Rate::new(b.total(EVICTIONS), n.total(EVICTIONS), secs),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::api::{BackendStatus, Backends, PluginStatus, Status};
    use super::*;

    fn poll(at: Instant, metrics: &str) -> Poll {
        Poll {
            at,
            metrics: Metrics::parse(metrics).unwrap(),
            status: Status {
                version: "9.9.9".into(),
                generation: 3,
                uptime_s: 61,
                plugins: vec![PluginStatus {
                    name: "policy".into(),
                    quarantined: false,
                }],
                ..Default::default()
            },
            backends: Backends {
                backends: vec![BackendStatus {
                    name: "app".into(),
                    healthy: false,
                    forced: "sick".into(),
                    circuit_open: true,
                }],
            },
        }
    }

    fn rate(rows: &[Row], name: &str) -> Rate {
        rows.iter().find(|r| r.name == name).unwrap().rate
    }

    #[test]
    fn a_rate_is_growth_per_second_and_survives_a_reset() {
        assert_eq!(
            Rate::new(10.0, 30.0, 2.0),
            Rate {
                total: 30.0,
                per_s: 10.0
            }
        );
        // Went down: the host restarted and counted 4 since.
        assert_eq!(
            Rate::new(10.0, 4.0, 2.0),
            Rate {
                total: 4.0,
                per_s: 2.0
            }
        );
        assert_eq!(Rate::new(1.0, 5.0, 0.0).per_s, 0.0);
    }

    #[test]
    fn rates_come_from_counter_deltas_over_the_interval() {
        let t0 = Instant::now();
        let before = poll(
            t0,
            "lacquer_requests_total{state=\"hit\"} 10\n\
             lacquer_requests_total{state=\"miss\"} 10\n\
             lacquer_backend_requests_total{backend=\"app\",status=\"200\"} 10\n\
             lacquer_plugin_calls_total{plugin=\"policy\",hook=\"on-recv\"} 5\n\
             lacquer_cache_evictions_total 1\n",
        );
        let now = poll(
            t0 + Duration::from_secs(2),
            "lacquer_requests_total{state=\"hit\"} 16\n\
             lacquer_requests_total{state=\"miss\"} 12\n\
             lacquer_requests_total{state=\"stale\"} 2\n\
             lacquer_backend_requests_total{backend=\"app\",status=\"200\"} 12\n\
             lacquer_backend_requests_total{backend=\"app\",status=\"503\"} 2\n\
             lacquer_fetch_failures_total{backend=\"app\",kind=\"backend-unhealthy\"} 6\n\
             lacquer_plugin_calls_total{plugin=\"policy\",hook=\"on-recv\"} 9\n\
             lacquer_plugin_calls_total{plugin=\"policy\",hook=\"on-deliver\"} 4\n\
             lacquer_plugin_faults_total{plugin=\"policy\",hook=\"on-recv\",kind=\"trap\"} 1\n\
             lacquer_cache_evictions_total 5\n",
        );
        let s = Snapshot::between(&before, &now);
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(
            rate(&s.requests, "hit"),
            Rate {
                total: 16.0,
                per_s: 3.0
            }
        );
        assert_eq!(
            rate(&s.requests, "miss"),
            Rate {
                total: 12.0,
                per_s: 1.0
            }
        );
        assert_eq!(
            rate(&s.requests, "stale"),
            Rate {
                total: 2.0,
                per_s: 1.0
            }
        );
        // (16 + 2) / (16 + 2 + 12) overall; (6 + 2) / (6 + 2 + 2) in the interval.
        assert_eq!(s.hit_ratio.lifetime, Some(0.6));
        assert_eq!(s.hit_ratio.interval, Some(0.8));
        assert_eq!(s.responses, None);
        let app = &s.backends[0];
        assert!(!app.healthy && app.circuit_open && app.forced == "sick");
        assert_eq!(
            app.requests,
            Rate {
                total: 14.0,
                per_s: 2.0
            }
        );
        assert_eq!(
            app.failures,
            Rate {
                total: 6.0,
                per_s: 3.0
            }
        );
        assert_eq!(
            rate(&s.failures, "app backend-unhealthy"),
            Rate {
                total: 6.0,
                per_s: 3.0
            }
        );
        let p = &s.plugins[0];
        assert_eq!(
            p.calls,
            Rate {
                total: 13.0,
                per_s: 4.0
            }
        );
        assert_eq!(
            p.faults,
            Rate {
                total: 1.0,
                per_s: 0.5
            }
        );
        assert_eq!(
            s.cache.evictions,
            Rate {
                total: 5.0,
                per_s: 2.0
            }
        );
    }

    #[test]
    fn responses_are_grouped_by_status_class_when_exported() {
        let t0 = Instant::now();
        let before = poll(t0, "lacquer_responses_total{status=\"200\"} 1\n");
        let now = poll(
            t0 + Duration::from_secs(1),
            "lacquer_responses_total{status=\"200\"} 3\n\
             lacquer_responses_total{status=\"204\"} 1\n\
             lacquer_responses_total{status=\"503\"} 2\n",
        );
        let s = Snapshot::between(&before, &now);
        let r = s.responses.unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            rate(&r, "2xx"),
            Rate {
                total: 4.0,
                per_s: 3.0
            }
        );
        assert_eq!(
            rate(&r, "5xx"),
            Rate {
                total: 2.0,
                per_s: 2.0
            }
        );
    }

    #[test]
    fn a_poll_against_itself_has_zero_rates_and_no_interval_ratio() {
        let p = poll(Instant::now(), "lacquer_requests_total{state=\"hit\"} 4\n");
        let s = Snapshot::between(&p, &p);
        assert_eq!(
            rate(&s.requests, "hit"),
            Rate {
                total: 4.0,
                per_s: 0.0
            }
        );
        assert_eq!(
            s.hit_ratio,
            HitRatio {
                lifetime: Some(1.0),
                interval: None
            }
        );
    }
}
