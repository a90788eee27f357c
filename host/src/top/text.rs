//! A [`Snapshot`] as tables of text: the same cells for the live view and
//! for the plain `--once` print.

use std::fmt::Write;
use std::time::Duration;

use bytesize::ByteSize;

use super::snapshot::{Rate, Row, Snapshot};

/// One titled table. The first column is left-aligned, the rest right-aligned.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Heading, also the first column's header.
    pub title: &'static str,
    /// Headers of the other columns.
    pub columns: Vec<&'static str>,
    /// Cells, one `Vec` per row, first column included.
    pub rows: Vec<Vec<String>>,
    /// Shown instead of rows when there are none.
    pub empty: &'static str,
}

/// `12` or `1.5`, no noise for whole numbers.
fn count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn per_s(r: Rate) -> String {
    format!("{:.1}", r.per_s)
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn counters(title: &'static str, rows: &[Row], empty: &'static str) -> Table {
    Table {
        title,
        columns: vec!["total", "/s"],
        rows: rows
            .iter()
            .map(|r| vec![r.name.clone(), count(r.rate.total), per_s(r.rate)])
            .collect(),
        empty,
    }
}

/// The one-line heading: version, generation, uptime, interval.
pub fn heading(s: &Snapshot, admin: &str) -> String {
    format!(
        "lacquer {} at {admin}: generation {}, up {}, rates over {:.2} s",
        s.version,
        s.generation,
        humantime::format_duration(Duration::from_secs(s.uptime.as_secs())),
        s.interval.as_secs_f64()
    )
}

/// The cache line: objects, bytes of budget, evictions.
pub fn cache_line(s: &Snapshot) -> String {
    let c = &s.cache;
    let used = if c.budget > 0 {
        format!(" ({:.1}%)", c.bytes as f64 * 100.0 / c.budget as f64)
    } else {
        String::new()
    };
    format!(
        "{} objects, {} of {}{used}; evictions {} ({}/s)",
        c.objects,
        ByteSize(c.bytes),
        ByteSize(c.budget),
        count(c.evictions.total),
        per_s(c.evictions)
    )
}

/// Every table, in display order.
pub fn tables(s: &Snapshot) -> Vec<Table> {
    let mut requests = counters("requests", &s.requests, "no requests counted");
    requests.rows.push(vec![
        "hit ratio".into(),
        percent(s.hit_ratio.lifetime),
        percent(s.hit_ratio.interval),
    ]);
    let responses = match &s.responses {
        Some(rows) => counters("responses", rows, "no responses counted"),
        None => Table {
            title: "responses",
            columns: vec![],
            rows: vec![],
            empty: "not exported by this host",
        },
    };
    let backends = Table {
        title: "backends",
        columns: vec![
            "health", "circuit", "forced", "requests", "/s", "failures", "/s",
        ],
        rows: s
            .backends
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    if b.healthy { "healthy" } else { "sick" }.into(),
                    if b.circuit_open { "open" } else { "closed" }.into(),
                    b.forced.clone(),
                    count(b.requests.total),
                    per_s(b.requests),
                    count(b.failures.total),
                    per_s(b.failures),
                ]
            })
            .collect(),
        empty: "none configured",
    };
    let plugins = Table {
        title: "plugins",
        columns: vec!["state", "calls", "/s", "faults", "/s"],
        rows: s
            .plugins
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    if p.quarantined { "quarantined" } else { "ok" }.into(),
                    count(p.calls.total),
                    per_s(p.calls),
                    count(p.faults.total),
                    per_s(p.faults),
                ]
            })
            .collect(),
        empty: "none loaded",
    };
    vec![
        requests,
        responses,
        backends,
        counters("fetch failures", &s.failures, "none"),
        plugins,
    ]
}

/// Lay a table out in aligned columns, indented under its title.
fn write_table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "{}", t.title);
    if t.rows.is_empty() {
        let _ = writeln!(out, "  ({})", t.empty);
        return;
    }
    let header: Vec<String> = std::iter::once(String::new())
        .chain(t.columns.iter().map(|c| c.to_string()))
        .collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(&t.rows).collect();
    let cols = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|i| {
            all.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in all {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(line, " {cell:<w$}", w = width[0]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = width[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The whole snapshot as plain text, for `--once`.
pub fn plain(s: &Snapshot, admin: &str) -> String {
    let mut out = heading(s, admin);
    out.push_str("\n\n");
    for t in tables(s) {
        write_table(&mut out, &t);
        out.push('\n');
    }
    let _ = writeln!(out, "cache\n  {}", cache_line(s));
    out
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::{BackendRow, CacheRow, HitRatio};
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            version: "1.2.3".into(),
            generation: 2,
            uptime: Duration::from_secs(75),
            interval: Duration::from_millis(500),
            requests: vec![
                Row {
                    name: "hit".into(),
                    rate: Rate {
                        total: 3.0,
                        per_s: 2.0,
                    },
                },
                Row {
                    name: "miss".into(),
                    rate: Rate {
                        total: 1.0,
                        per_s: 0.0,
                    },
                },
            ],
            hit_ratio: HitRatio {
                lifetime: Some(0.75),
                interval: Some(1.0),
            },
            responses: None,
            backends: vec![BackendRow {
                name: "app".into(),
                healthy: false,
                forced: "sick".into(),
                circuit_open: false,
                requests: Rate::default(),
                failures: Rate {
                    total: 1.0,
                    per_s: 0.0,
                },
            }],
            failures: vec![Row {
                name: "app backend-unhealthy".into(),
                rate: Rate {
                    total: 1.0,
                    per_s: 0.0,
                },
            }],
            plugins: vec![],
            cache: CacheRow {
                objects: 1,
                bytes: 2048,
                budget: 4096,
                evictions: Rate::default(),
            },
        }
    }

    #[test]
    fn the_plain_print_aligns_rows_under_their_headers() {
        let text = plain(&snapshot(), "http://x:1");
        let expected = "\
lacquer 1.2.3 at http://x:1: generation 2, up 1m 15s, rates over 0.50 s

requests
             total      /s
  hit            3     2.0
  miss           1     0.0
  hit ratio  75.0%  100.0%

responses
  (not exported by this host)

backends
       health  circuit  forced  requests   /s  failures   /s
  app    sick   closed    sick         0  0.0         1  0.0

fetch failures
                         total   /s
  app backend-unhealthy      1  0.0

plugins
  (none loaded)

cache
  1 objects, 2.0 KiB of 4.0 KiB (50.0%); evictions 0 (0.0/s)
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn counts_drop_fractions_only_when_whole() {
        assert_eq!(count(3.0), "3");
        assert_eq!(count(2.26), "2.3");
        assert_eq!(percent(None), "-");
    }
}
