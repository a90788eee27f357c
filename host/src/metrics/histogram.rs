//! A duration histogram that records with two relaxed atomic additions.
//!
//! prometheus-client's `Histogram` keeps its buckets behind a mutex, and
//! every request (`request_duration_seconds`) and every plugin call
//! (`plugin_duration_seconds`) records one observation: under load, the
//! workers took turns on that lock. Here each bucket is its own counter and
//! the sum is kept in whole nanoseconds, so recording never waits. A scrape
//! reads the counters one by one: it may see an observation in a bucket and
//! not yet in the sum, which Prometheus tolerates (client_golang's
//! histogram makes the same trade).
//!
//! The text it encodes is prometheus-client's: `_bucket{le}` (cumulative,
//! ending with `+Inf`), `_sum` in seconds, `_count`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A histogram of durations, cheap to clone (a shared handle).
#[derive(Clone, Debug)]
pub struct DurationHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, ascending; the last is `+Inf`.
    bounds: Box<[f64]>,
    /// Observations per bucket (not cumulative), one per bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// A histogram with these upper bounds in seconds (ascending), and
    /// `+Inf` after them.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Box<[f64]> = bounds
            .into_iter()
            .chain(std::iter::once(f64::INFINITY))
            .collect();
        let counts = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(Inner {
            bounds,
            counts,
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Record one duration: in the first bucket whose bound is at least it.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // The last bound is +Inf, so only NaN (never a duration) would pass
        // it; `min` keeps the index in range regardless.
        let i = self.0.bounds.partition_point(|b| *b < secs);
        self.0.counts[i.min(self.0.counts.len() - 1)].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Sum of the observations so far.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.0.sum_nanos.load(Relaxed))
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .zip(self.0.counts.iter())
            .map(|(b, c)| (*b, c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<NoLabelSet>(
            self.sum().as_secs_f64(),
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn text(name: &str, m: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static) -> String {
        let mut r = Registry::default();
        r.register(name, "help", m);
        let mut out = String::new();
        encode(&mut out, &r).expect("encodes");
        out
    }

    #[test]
    fn buckets_hold_each_value_at_its_first_bound_at_least_it() {
        let h = DurationHistogram::new([0.001, 0.01]);
        for ms in [0, 1, 2, 10, 11, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum(), Duration::from_millis(5024));
        let t = text("d", h);
        assert!(t.contains("d_bucket{le=\"0.001\"} 2\n"), "{t}");
        assert!(t.contains("d_bucket{le=\"0.01\"} 4\n"), "{t}");
        assert!(t.contains("d_bucket{le=\"+Inf\"} 6\n"), "{t}");
        assert!(t.contains("d_count 6\n"), "{t}");
    }

    #[test]
    fn observations_from_every_thread_are_counted() {
        let h = DurationHistogram::new([0.001]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        h.observe(Duration::from_micros(10));
                    }
                });
            }
        });
        assert_eq!(h.count(), 400);
        assert_eq!(h.sum(), Duration::from_millis(4));
        assert!(text("t", h).contains("t_bucket{le=\"0.001\"} 400\n"));
    }

    #[test]
    fn encodes_as_prometheus_clients_histogram_does() {
        let bounds = [1e-5, 4e-5, 1.6e-4];
        let ours = DurationHistogram::new(bounds);
        let theirs = Histogram::new(bounds);
        for us in [3, 20, 20, 100, 900] {
            ours.observe(Duration::from_micros(us));
            theirs.observe(Duration::from_micros(us).as_secs_f64());
        }
        // Sums differ only in float rounding: compare everything else.
        let strip = |t: String| -> String {
            t.lines()
                .filter(|l| !l.starts_with("h_sum"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(text("h", ours)), strip(text("h", theirs)));
    }
}
