//! Plugin log output (the `log` import and guest stdout/stderr) is bounded:
//! a line is cut at [`MAX_LINE_BYTES`], a call may write [`PER_CALL_BYTES`],
//! and a plugin (all its instances together) [`PER_SECOND_BYTES`] a second
//! with a burst of as much. Lines past a bound are dropped and counted in
//! `lacquer_plugin_log_dropped_total{plugin}`.

use std::time::Instant;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use super::bindings::lacquer::plugin::types::Level;

/// Longest line written; the rest is cut (and said so).
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// Bytes one hook call may log.
pub const PER_CALL_BYTES: usize = 64 * 1024;
/// Bytes a plugin may log per second, across its instances.
pub const PER_SECOND_BYTES: f64 = 256.0 * 1024.0;

/// A plugin's shared log allowance: a token bucket of bytes.
pub struct LogBudget {
    bucket: Mutex<(f64, Instant)>,
    dropped: Counter,
}

impl LogBudget {
    /// A full allowance; `dropped` counts lines refused.
    pub fn new(dropped: Counter) -> Self {
        Self {
            bucket: Mutex::new((PER_SECOND_BYTES, Instant::now())),
            dropped,
        }
    }

    /// Take `n` bytes from the per-second allowance; false (and a dropped
    /// line counted) when there are not enough.
    fn take(&self, n: usize) -> bool {
        let now = Instant::now();
        let mut b = self.bucket.lock();
        let refill = now.duration_since(b.1).as_secs_f64() * PER_SECOND_BYTES;
        b.0 = (b.0 + refill).min(PER_SECOND_BYTES);
        b.1 = now;
        if b.0 >= n as f64 {
            b.0 -= n as f64;
            true
        } else {
            drop(b);
            self.dropped.inc();
            false
        }
    }

    /// Count output a guest wrote past its stdout/stderr buffer (16 KiB
    /// between two drains) as one dropped line.
    pub fn dropped_output(&self) {
        self.dropped.inc();
    }

    /// Write one line for `plugin` within the bounds; `used` is what the
    /// current call has written so far.
    pub fn line(&self, used: &mut usize, plugin: &str, req: &str, level: Level, message: &str) {
        let text = cut(message);
        let n = text.len().max(1);
        if *used + n > PER_CALL_BYTES {
            self.dropped.inc();
            if *used <= PER_CALL_BYTES {
                // Say once per call that lines are being dropped.
                *used = PER_CALL_BYTES + 1;
                tracing::warn!(
                    plugin,
                    req,
                    "plugin log bound reached ({PER_CALL_BYTES} bytes in one call): dropping lines"
                );
            }
            return;
        }
        if !self.take(n) {
            return;
        }
        *used += n;
        let suffix = if text.len() < message.len() {
            " [cut]"
        } else {
            ""
        };
        match level {
            Level::Trace => tracing::trace!(plugin, req, "{text}{suffix}"),
            Level::Debug => tracing::debug!(plugin, req, "{text}{suffix}"),
            Level::Info => tracing::info!(plugin, req, "{text}{suffix}"),
            Level::Warn => tracing::warn!(plugin, req, "{text}{suffix}"),
            Level::Error => tracing::error!(plugin, req, "{text}{suffix}"),
        }
    }
}

/// At most [`MAX_LINE_BYTES`] of `s`, cut at a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_LINE_BYTES {
        return s;
    }
    let mut end = MAX_LINE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_bounded_and_drops_are_counted() {
        let dropped = Counter::default();
        let b = LogBudget::new(dropped.clone());
        let mut used = 0;
        let line = "x".repeat(1024);
        for _ in 0..200 {
            b.line(&mut used, "p", "r", Level::Info, &line);
        }
        assert!(used <= PER_CALL_BYTES + 1, "{used}");
        assert_eq!(dropped.get(), 200 - (PER_CALL_BYTES / 1024) as u64);
    }

    #[test]
    fn the_plugin_is_bounded_per_second_across_calls() {
        let dropped = Counter::default();
        let b = LogBudget::new(dropped.clone());
        let line = "y".repeat(1024);
        let mut written = 0;
        for _ in 0..20 {
            let mut used = 0;
            for _ in 0..64 {
                let before = dropped.get();
                b.line(&mut used, "p", "r", Level::Info, &line);
                written += u64::from(dropped.get() == before);
            }
        }
        // 20 calls of 64 KiB within far less than a second: about 256 KiB pass.
        assert!((256..=300).contains(&written), "{written}");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_LINE_BYTES);
        let c = cut(&s);
        assert!(c.len() <= MAX_LINE_BYTES && c.is_char_boundary(c.len()));
    }
}
