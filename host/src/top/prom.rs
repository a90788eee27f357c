//! A reader for the Prometheus text exposition format, as far as `top`
//! needs it: every sample's name, labels and value. Comment lines (`# HELP`,
//! `# TYPE`, `# EOF`) are skipped, and whatever follows a value (a timestamp,
//! an exemplar) is ignored.

use std::collections::BTreeMap;

use thiserror::Error;

/// One sample line: `name{label="value",...} 1.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as exported, suffix included (`lacquer_requests_total`).
    pub name: String,
    /// Label pairs in the order written, values unescaped.
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample in the text format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("metrics line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Every sample of one exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parse a whole exposition; the first malformed line is an error.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let samples = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.trim_start();
                !l.is_empty() && !l.starts_with('#')
            })
            .map(|(i, l)| {
                sample(l.trim_start()).map_err(|reason| ParseError {
                    line: i + 1,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Metrics { samples })
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The samples named `name` summed by the values of `labels` (a sample
    /// lacking one counts under ""); with no labels, one key: the total.
    pub fn group(&self, name: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let key = labels
                .iter()
                .map(|l| s.label(l).unwrap_or_default().to_owned())
                .collect();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    /// The sum of every sample named `name` (0 when there is none).
    pub fn total(&self, name: &str) -> f64 {
        self.group(name, &[]).into_values().sum()
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// Split a name off the front of `s`.
fn name(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with(is_name_start) {
        return None;
    }
    let end = s.find(|c| !is_name_char(c)).unwrap_or(s.len());
    Some(s.split_at(end))
}

/// Split a quoted, escaped label value off the front of `s` (which starts
/// after the opening quote).
fn quoted(s: &str) -> Result<(String, &str), &'static str> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, e @ ('\\' | '"'))) => out.push(e),
                _ => return Err("bad escape in a label value"),
            },
            c => out.push(c),
        }
    }
    Err("unterminated label value")
}

/// Label pairs in the order written.
type Labels = Vec<(String, String)>;

fn labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let (key, rest) = name(s).ok_or("expected a label name")?;
        let rest = rest
            .trim_start()
            .strip_prefix('=')
            .ok_or("expected = after a label name")?;
        let rest = rest
            .trim_start()
            .strip_prefix('"')
            .ok_or("expected a quoted label value")?;
        let (value, rest) = quoted(rest)?;
        out.push((key.to_owned(), value));
        let rest = rest.trim_start();
        s = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.starts_with('}') => rest,
            None => return Err("expected , or } after a label"),
        };
    }
}

fn sample(line: &str) -> Result<Sample, &'static str> {
    let (metric, rest) = name(line).ok_or("expected a metric name")?;
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(r) => labels(r)?,
        None => (Vec::new(), rest),
    };
    if !rest.starts_with([' ', '\t']) {
        return Err("expected a space before the value");
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("missing value")?
        .parse::<f64>()
        .map_err(|_| "value is not a number")?;
    Ok(Sample {
        name: metric.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP lacquer_requests Client requests.
# TYPE lacquer_requests counter
lacquer_requests_total{state="hit"} 3
lacquer_requests_total{state="miss"} 2
lacquer_requests_total{state="pass"} 0
# TYPE lacquer_cache_objects gauge
lacquer_cache_objects 7
lacquer_fetch_failures_total{backend="app",kind="connect-refused"} 4
lacquer_fetch_failures_total{backend="app",kind="backend-unhealthy"} 1
lacquer_fetch_failures_total{backend="b",kind="connect-refused"} 2
lacquer_odd{path="a \"q\" b\\c\nd" , x="y",} 1.5e3 1700000000000
lacquer_inf +Inf
# EOF
"#;

    #[test]
    fn reads_names_labels_and_values() {
        let m = Metrics::parse(TEXT).unwrap();
        let hit = &m.samples[0];
        assert_eq!(hit.name, "lacquer_requests_total");
        assert_eq!(hit.label("state"), Some("hit"));
        assert_eq!(hit.value, 3.0);
        assert_eq!(m.total("lacquer_cache_objects"), 7.0);
        assert!(m.has("lacquer_inf"));
        assert!(m.total("lacquer_inf").is_infinite());
        assert!(!m.has("lacquer_requests"));
    }

    #[test]
    fn unescapes_label_values_and_ignores_timestamps() {
        let m = Metrics::parse(TEXT).unwrap();
        let odd = m.samples.iter().find(|s| s.name == "lacquer_odd").unwrap();
        assert_eq!(odd.label("path"), Some("a \"q\" b\\c\nd"));
        assert_eq!(odd.label("x"), Some("y"));
        assert_eq!(odd.value, 1500.0);
    }

    #[test]
    fn groups_by_labels() {
        let m = Metrics::parse(TEXT).unwrap();
        let by_kind = m.group("lacquer_fetch_failures_total", &["kind"]);
        assert_eq!(by_kind[&vec!["connect-refused".to_owned()]], 6.0);
        assert_eq!(by_kind[&vec!["backend-unhealthy".to_owned()]], 1.0);
        let by_both = m.group("lacquer_fetch_failures_total", &["backend", "kind"]);
        assert_eq!(by_both.len(), 3);
        assert_eq!(m.total("lacquer_fetch_failures_total"), 7.0);
        assert_eq!(m.total("lacquer_absent_total"), 0.0);
        // A label a sample lacks groups under "".
        assert_eq!(
            m.group("lacquer_cache_objects", &["x"])[&vec![String::new()]],
            7.0
        );
    }

    #[test]
    fn names_the_first_bad_line() {
        for (text, reason) in [
            ("ok 1\n{x=\"y\"} 1", "expected a metric name"),
            ("ok 1\nm{x=\"y} 1", "unterminated label value"),
            ("ok 1\nm{x=y} 1", "expected a quoted label value"),
            (
                "ok 1\nm{x=\"y\" z=\"w\"} 1",
                "expected , or } after a label",
            ),
            ("ok 1\nm{x=\"\\t\"} 1", "bad escape in a label value"),
            ("ok 1\nm one", "value is not a number"),
            ("ok 1\nm", "expected a space before the value"),
        ] {
            assert_eq!(
                Metrics::parse(text).unwrap_err(),
                ParseError { line: 2, reason },
                "{text:?}"
            );
        }
    }
}
