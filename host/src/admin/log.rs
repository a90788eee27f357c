//! `GET /log`: the access log, live, as one JSON record per line
//! (`application/x-ndjson`), or in combined format with `format=combined`.
//!
//! Each follower has its own bounded queue behind the access log's
//! broadcast channel: one that reads too slowly misses records, is told how
//! many in a `{"skipped": n}` line, and never slows a request. The stream
//! ends when the client goes away or the server shuts down
//! ([`crate::access::AccessLog::close_followers`]).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use regex_lite::Regex;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::query::Query;
use crate::access::Record;
use crate::body::{BoxError, ProxyBody};

/// Longest `url=` pattern accepted.
const MAX_PATTERN: usize = 1024;

/// How the records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Record::json`, one object per line.
    Json,
    /// `Record::combined`, as the access log writes it.
    Combined,
}

/// Which records a follower wants; every condition given must hold.
#[derive(Debug)]
struct Filter {
    /// `errors=1`: only [`Record::is_error`].
    errors: bool,
    /// `url=REGEX`, searched in the path and query.
    url: Option<Regex>,
    /// `status=503` (one code) or `status=5xx` (a class): the code divided
    /// by this divisor must equal the wanted value.
    status: Option<(u16, u16)>,
}

impl Filter {
    fn parse(q: &Query) -> Result<Filter, String> {
        let url = match q.get("url") {
            None | Some("") => None,
            Some(p) if p.len() > MAX_PATTERN => {
                return Err(format!("url: pattern longer than {MAX_PATTERN} bytes"));
            }
            Some(p) => Some(Regex::new(p).map_err(|e| format!("url: {e}"))?),
        };
        let status =
            match q.get("status") {
                None | Some("") => None,
                Some(s) => Some(status(s).ok_or_else(|| {
                    format!("status {s:?}: expected a code (503) or a class (5xx)")
                })?),
            };
        Ok(Filter {
            errors: q.flag("errors"),
            url,
            status,
        })
    }

    fn wants(&self, r: &Record) -> bool {
        (!self.errors || r.is_error())
            && self.url.as_ref().is_none_or(|re| re.is_match(&r.url))
            && self.status.is_none_or(|(want, div)| r.status / div == want)
    }
}

/// `503` as (503, 1), `5xx` as (5, 100).
fn status(s: &str) -> Option<(u16, u16)> {
    let lower = s.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let c: u16 = class.parse().ok()?;
        return (1..=5).contains(&c).then_some((c, 100));
    }
    let code: u16 = s.parse().ok()?;
    (100..=599).contains(&code).then_some((code, 1))
}

/// What the stream waits on between lines.
struct Follower {
    rx: broadcast::Receiver<Arc<Record>>,
    _counted: crate::access::Following,
    closing: watch::Receiver<bool>,
    filter: Filter,
    format: Format,
}

impl Follower {
    /// The next line to send, `None` once the stream should end.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let got = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.closing.wait_for(|c| *c) => return None,
            };
            let mut line = match got {
                Ok(r) if !self.filter.wants(&r) => continue,
                Ok(r) => match self.format {
                    Format::Json => r.json().to_string(),
                    Format::Combined => r.combined(),
                },
                Err(broadcast::error::RecvError::Lagged(n)) => json!({ "skipped": n }).to_string(),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            line.push('\n');
            return Some(Bytes::from(line));
        }
    }
}

/// Answer `GET /log`: subscribe now, so every record completed after the
/// response head is sent reaches the client (a filter permitting).
pub(super) fn reply(shared: &crate::state::Shared, q: &Query) -> Response<ProxyBody> {
    let filter = match Filter::parse(q) {
        Ok(f) => f,
        Err(e) => return super::error(StatusCode::BAD_REQUEST, e),
    };
    let (format, content_type) = match q.get("format").unwrap_or("json") {
        "json" => (Format::Json, "application/x-ndjson"),
        "combined" => (Format::Combined, "text/plain; charset=utf-8"),
        other => {
            return super::error(
                StatusCode::BAD_REQUEST,
                format!("format {other:?}: expected json or combined"),
            );
        }
    };
    let Some(log) = shared.access.get() else {
        return super::error(StatusCode::SERVICE_UNAVAILABLE, "no access log yet");
    };
    let (rx, counted) = log.follow();
    let follower = Follower {
        rx,
        _counted: counted,
        closing: log.closing(),
        filter,
        format,
    };
    let lines = futures_util::stream::unfold(follower, |mut f| async move {
        let line = f.next_line().await?;
        Some((Ok::<_, BoxError>(Frame::data(line)), f))
    });
    let mut r = Response::new(StreamBody::new(lines).boxed_unsync());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with these fields (the rest: a sample's).
    fn record(url: &str, status: u16, fetch_error: Option<&'static str>) -> Record {
        let mut r = crate::access::tests::record();
        r.url = url.into();
        r.status = status;
        r.fetch_error = fetch_error;
        r
    }

    fn filter(q: &str) -> Result<Filter, String> {
        Filter::parse(&Query::parse(q).unwrap())
    }

    #[test]
    fn every_condition_given_must_hold() {
        let ok = record("/api/a?x=1", 200, None);
        let failed = record("/api/b", 503, Some("connect-refused"));
        let missing = record("/static/c", 404, None);
        let all = filter("").unwrap();
        assert!(all.wants(&ok) && all.wants(&failed) && all.wants(&missing));
        let errors = filter("errors=1").unwrap();
        assert!(!errors.wants(&ok) && errors.wants(&failed) && !errors.wants(&missing));
        let api = filter("url=%5E%2Fapi%2F").unwrap();
        assert!(api.wants(&ok) && api.wants(&failed) && !api.wants(&missing));
        let class = filter("status=4xx").unwrap();
        assert!(!class.wants(&ok) && class.wants(&missing));
        let code = filter("status=503&url=b").unwrap();
        assert!(code.wants(&failed) && !code.wants(&ok));
    }

    #[test]
    fn bad_filters_are_refused_with_their_key() {
        for (q, key) in [
            ("url=(", "url"),
            ("status=6xx", "status"),
            ("status=42", "status"),
            ("status=abc", "status"),
        ] {
            let e = filter(q).unwrap_err();
            assert!(e.starts_with(key), "{q}: {e}");
        }
    }

    #[tokio::test]
    async fn a_lagging_follower_is_told_how_many_it_missed() {
        let (tx, rx) = broadcast::channel(2);
        let (close, closing) = watch::channel(false);
        let mut f = Follower {
            rx,
            _counted: crate::access::Following(Arc::new(1.into())),
            closing,
            filter: filter("").unwrap(),
            format: Format::Json,
        };
        for i in 0..5 {
            tx.send(Arc::new(record(&format!("/{i}"), 200, None)))
                .unwrap();
        }
        assert_eq!(f.next_line().await.unwrap(), "{\"skipped\":3}\n");
        let line = f.next_line().await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["url"], "/3");
        f.next_line().await.unwrap();
        close.send_replace(true);
        assert_eq!(f.next_line().await, None, "closing ends the stream");
    }
}
