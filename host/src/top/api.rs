//! The admin API as `top` reads it: `GET /metrics`, `/status` and
//! `/backends`, taken together as one [`Poll`]; and the response bodies
//! `lacquer log` streams ([`Admin::open`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::TopError;
use super::prom::Metrics;

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /status`, the fields `top` shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// Host version.
    pub version: String,
    /// Seconds since the host started.
    pub uptime_s: u64,
    /// Config generation serving now.
    pub generation: u64,
    /// Cache occupancy.
    pub cache: CacheStatus,
    /// Plugins of the current generation, in chain order.
    pub plugins: Vec<PluginStatus>,
}

/// The `cache` object of `GET /status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CacheStatus {
    /// Objects stored.
    pub objects: u64,
    /// Bytes counted against the budget.
    pub bytes: u64,
    /// `[cache] memory`, in bytes.
    pub budget: u64,
}

/// One plugin in `GET /status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PluginStatus {
    /// Plugin name.
    pub name: String,
    /// Whether it is quarantined now (its hooks skipped).
    pub quarantined: bool,
}

/// `GET /backends`, the fields `top` shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Backends {
    /// Backends in config order.
    pub backends: Vec<BackendStatus>,
}

/// One backend in `GET /backends`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BackendStatus {
    /// Backend name.
    pub name: String,
    /// Whether requests may go to it now.
    pub healthy: bool,
    /// Operator override: `auto`, `healthy` or `sick`.
    pub forced: String,
    /// Whether the circuit breaker is refusing fetches.
    pub circuit_open: bool,
}

/// Everything read from the admin API at one moment.
#[derive(Debug, Clone)]
pub struct Poll {
    /// When the answers were complete.
    pub at: Instant,
    /// `GET /metrics`.
    pub metrics: Metrics,
    /// `GET /status`.
    pub status: Status,
    /// `GET /backends`.
    pub backends: Backends,
}

/// A client for one admin listener.
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Admin {
    /// A client for the admin API at `url` (`http://host:port`, or just
    /// `host:port`), sending `token` as a bearer token when given. Needs a
    /// tokio runtime when requests are made, not here.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, TopError> {
        let bad = |reason: &str| TopError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// admin URLs are supported"));
        }
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query has no place in the admin URL"));
        }
        Ok(Admin {
            base: full.trim_end_matches('/').to_owned(),
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The admin URL requests go to (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Read metrics, status and backends, concurrently.
    pub async fn poll(&self) -> Result<Poll, TopError> {
        let (metrics, status, backends) = tokio::try_join!(
            self.get("/metrics"),
            self.get("/status"),
            self.get("/backends")
        )?;
        let url = |p: &str| format!("{}{p}", self.base);
        let text = String::from_utf8_lossy(&metrics);
        Ok(Poll {
            at: Instant::now(),
            metrics: Metrics::parse(&text).map_err(|source| TopError::Metrics {
                url: url("/metrics"),
                source,
            })?,
            status: serde_json::from_slice(&status).map_err(|source| TopError::Json {
                url: url("/status"),
                source,
            })?,
            backends: serde_json::from_slice(&backends).map_err(|source| TopError::Json {
                url: url("/backends"),
                source,
            })?,
        })
    }

    async fn get(&self, path: &str) -> Result<Bytes, TopError> {
        let url = format!("{}{path}", self.base);
        let exchange = async {
            let body = self.open(path).await?;
            body.collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| TopError::Unreachable {
                    url: url.clone(),
                    cause: causes(&e),
                })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| TopError::Timeout {
                url: url.clone(),
                after: TIMEOUT,
            })?
    }

    /// `GET path` (with its query): the body of a 200 answer, unread, for
    /// the caller to stream. The answer's head must come within the
    /// request timeout; the body has no time limit. Any other status is an
    /// error carrying the start of its body.
    pub async fn open(&self, path: &str) -> Result<Incoming, TopError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::get(&url);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Empty::new()).map_err(|e| TopError::BadUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let unreachable = |e: &(dyn std::error::Error + 'static)| TopError::Unreachable {
            url: url.clone(),
            cause: causes(e),
        };
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| TopError::Timeout {
                url: url.clone(),
                after: TIMEOUT,
            })?
            .map_err(|e| unreachable(&e))?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(resp.into_body());
        }
        let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(TopError::Status {
            url,
            status,
            body: String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        })
    }
}

/// An error and its sources, joined with ": " (hyper's own message alone,
/// e.g. "client error (Connect)", does not say what happened).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_gain_a_scheme_and_lose_a_trailing_slash() {
        assert_eq!(
            Admin::new("127.0.0.1:6082", None).unwrap().base(),
            "http://127.0.0.1:6082"
        );
        assert_eq!(
            Admin::new("http://localhost:6082/", None).unwrap().base(),
            "http://localhost:6082"
        );
        for bad in [
            "https://127.0.0.1:6082",
            "http://",
            "ht tp://x",
            "http://x/?a=1",
        ] {
            let e = Admin::new(bad, None).unwrap_err();
            assert!(matches!(e, TopError::BadUrl { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
