//! The admin listener: metrics, status, backends, purge, reload, recent
//! fetch errors, the live access log. Mutations and `GET /log` (it shows
//! client addresses and full URLs) need `Authorization: Bearer <token>` when
//! a token is configured; on a listener bound to a non-loopback address they
//! always need it (the rule follows the socket, not a reloaded config). HEAD
//! is answered wherever GET is, with the same headers and no body.

mod log;
mod page;
mod query;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use subtle::ConstantTimeEq;

use self::query::Query;
use crate::backend::Target;
use crate::backend::health::Forced;
use crate::body::{ProxyBody, empty, full};
use crate::plugin::chain::hook_names;
use crate::state::Shared;

/// Largest admin request body read.
const MAX_BODY: usize = 64 * 1024;

/// The exposition format `Metrics::encode` writes: prometheus-client's text
/// encoder emits OpenMetrics (`_total` samples, `# EOF`), not Prometheus 0.0.4.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let body: Bytes = body.into();
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The host frames what it sends, so HEAD can repeat the length exactly.
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Response<ProxyBody> {
    reply(status, "application/json", format!("{v:#}\n"))
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response<ProxyBody> {
    json_reply(status, json!({ "error": msg.to_string() }))
}

/// Whether a mutation may go ahead: with a token configured it must be
/// presented (compared in constant time); without one only a loopback
/// socket accepts mutations.
fn authorized(token: Option<&str>, local: Option<SocketAddr>, headers: &http::HeaderMap) -> bool {
    match token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes()))),
        None => local.is_some_and(|a| a.ip().is_loopback()),
    }
}

/// Serve one admin request arriving on the socket bound to `local`.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    local: Option<SocketAddr>,
) -> Response<ProxyBody> {
    let head = req.method() == Method::HEAD;
    let resp = route(shared, req, local).await;
    if head { without_body(resp) } else { resp }
}

/// A HEAD answer: the GET answer's status and headers, no body. Every
/// admin reply but the `/log` stream carries its `Content-Length` (see
/// [`reply`]), so the length a GET would send is still announced.
fn without_body(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, empty())
}

/// Route one request (HEAD as GET) to its endpoint.
async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    local: Option<SocketAddr>,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let g = shared.generation.load_full();
    let query = match Query::parse(parts.uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mutation = !matches!(parts.method, Method::GET | Method::HEAD);
    let guarded = mutation || path.trim_end_matches('/') == "/log";
    if guarded && !authorized(g.config.admin_token.as_deref(), local, &parts.headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "mutations and /log need Authorization: Bearer <admin.token>",
        );
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let body = String::from_utf8_lossy(&body).trim().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = if parts.method == Method::HEAD {
        Method::GET
    } else {
        parts.method.clone()
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => {
            shared.publish_gauges();
            reply(
                StatusCode::OK,
                METRICS_CONTENT_TYPE,
                shared.metrics.encode(),
            )
        }
        (&Method::GET, ["log"]) => log::reply(&shared, &query),
        (&Method::GET, ["status"]) => json_reply(StatusCode::OK, status(&shared)),
        (&Method::GET, [""]) => page::reply(),
        (&Method::GET, ["backends"]) => json_reply(StatusCode::OK, backends(&shared)),
        (&Method::GET, ["fetch-errors"]) => {
            let r: Vec<_> = shared.recent.lock().iter().rev().cloned().collect();
            json_reply(StatusCode::OK, json!(r))
        }
        (&Method::POST, ["backends", name, "health"]) => {
            let want = if body.is_empty() {
                query.get("state").unwrap_or_default().to_owned()
            } else {
                body.clone()
            };
            let forced = match want.as_str() {
                "auto" => Forced::Auto,
                "healthy" => Forced::Healthy,
                "sick" => Forced::Sick,
                other => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("state {other:?}: expected auto, healthy or sick"),
                    );
                }
            };
            match g.backends.targets.get(*name) {
                Some(Target::Backend(b)) => {
                    b.health.force(forced);
                    shared.metrics.backend_health(name, b.health.healthy());
                    tracing::info!(backend = *name, "health forced to {want}");
                    json_reply(
                        StatusCode::OK,
                        json!({ "backend": name, "forced": forced, "healthy": b.health.healthy() }),
                    )
                }
                _ => error(StatusCode::NOT_FOUND, format!("no backend named {name:?}")),
            }
        }
        (&Method::POST, ["purge"]) => {
            let (Some(url), Some(host)) = (query.get("url"), query.get("host")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "purge needs ?url=/path&host=name (objects are keyed by host)",
                );
            };
            let host = crate::http_util::normalize_host(host);
            let key = crate::cache::key(&host, url, &[]);
            if query.flag("soft") {
                json_reply(
                    StatusCode::OK,
                    json!({ "soft_purged": shared.cache.soft_purge(key) }),
                )
            } else {
                json_reply(StatusCode::OK, json!({ "purged": shared.cache.purge(key) }))
            }
        }
        (&Method::POST, ["ban"]) => {
            let Some(pattern) = query.get("url") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "ban needs ?url=<regex on path and query> (and &host=name)",
                );
            };
            let host = query.get("host").map(crate::http_util::normalize_host);
            match crate::cache::Ban::new(host.as_deref(), pattern) {
                Ok(b) => match shared.cache.ban(b) {
                    Ok(n) => json_reply(StatusCode::OK, json!({ "bans": n })),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
                },
                Err(e) => error(StatusCode::BAD_REQUEST, format!("url: {e}")),
            }
        }
        (&Method::GET, ["bans"]) => {
            let list: Vec<_> = shared
                .cache
                .bans()
                .into_iter()
                .map(|(host, url, age)| json!({ "host": host, "url": url, "age_s": age }))
                .collect();
            json_reply(StatusCode::OK, json!(list))
        }
        (&Method::POST, ["reload"]) => match shared.reload().await {
            Ok(n) => json_reply(StatusCode::OK, json!({ "reloaded": true, "generation": n })),
            Err(e) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload refused, the current config keeps serving: {e}"),
            ),
        },
        (
            _,
            [
                "metrics" | "status" | "backends" | "fetch-errors" | "purge" | "ban" | "bans"
                | "reload" | "log" | "",
            ],
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} not allowed on {path}", parts.method),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no admin endpoint {path}")),
    }
}

fn backends(shared: &Shared) -> serde_json::Value {
    let g = shared.generation.load();
    let list: Vec<_> = g
        .backends
        .list
        .iter()
        .map(|b| {
            json!({
                "name": &*b.name,
                "url": b.cfg.url,
                "healthy": b.health.healthy(),
                "forced": b.health.forced(),
                "circuit_open": b.health.circuit_open(),
                "last_failure": b.health.last_failure().map(|(what, at)| json!({"what": what, "at": at})),
                "probe": b.cfg.probe.as_ref().map(|p| json!({"path": p.path, "interval_ms": p.interval.as_millis() as u64})),
                "probes": b.health.history(),
            })
        })
        .collect();
    let directors: Vec<_> = g
        .backends
        .targets
        .values()
        .filter_map(|t| match t {
            Target::Director(d) => {
                Some(json!({"name": d.name, "healthy": d.healthy(), "members": d.member_names()}))
            }
            Target::Backend(_) => None,
        })
        .collect();
    json!({ "backends": list, "directors": directors, "default": g.backends.default })
}

fn status(shared: &Shared) -> serde_json::Value {
    let g = shared.generation.load();
    let plugins: Vec<_> = g
        .chain
        .plugins()
        .iter()
        .map(|p| {
            json!({
                "name": &*p.name,
                "hooks": hook_names(p.hooks),
                "calls": p.call_mode(),
                "quarantined": p.quarantined(),
            })
        })
        .collect();
    let mut b = backends(shared);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": shared.started.elapsed().as_secs(),
        "generation": g.number,
        "config": g.config.source,
        "cache": { "objects": shared.cache.objects(), "bytes": shared.cache.bytes(), "budget": g.config.cache.memory.0 },
        "plugins": plugins,
        "backends": b["backends"].take(),
        "directors": b["directors"].take(),
        "default_backend": b["default"].take(),
        "cluster": shared.cluster.get().map(|c| c.status()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn the_token_rule_follows_the_bound_socket() {
        let public: SocketAddr = "0.0.0.0:6082".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:6082".parse().unwrap();
        let none = http::HeaderMap::new();
        // Without a token only a loopback socket takes mutations.
        assert!(authorized(None, Some(local), &none));
        assert!(!authorized(None, Some(public), &none));
        assert!(!authorized(None, None, &none));
        // With one, it must be presented, exactly, wherever the socket is.
        assert!(authorized(Some("s3cret"), Some(public), &bearer("s3cret")));
        assert!(!authorized(Some("s3cret"), Some(local), &none));
        assert!(!authorized(Some("s3cret"), Some(local), &bearer("s3cre")));
        assert!(!authorized(Some("s3cret"), Some(local), &bearer("s3cret2")));
    }
}
