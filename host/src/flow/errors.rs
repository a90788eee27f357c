//! The one place a failure becomes a status: 400 for a request refused
//! before any plugin, 500 for a fail-closed plugin fault, 502 when the
//! backend answered something unusable, 503 when it could not be reached or
//! used, 504 for `only-if-cached` with nothing usable.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

use super::{Answer, Cx};
use crate::body::{ProxyBody, empty, full};
use crate::http_util::VIA;
use crate::kinds::{FetchKind, State};
use crate::plugin::{PluginFailure, Synth};

/// The status of the host's own answer to a failed fetch.
pub fn failure_status(kind: FetchKind) -> StatusCode {
    match kind {
        FetchKind::ProtocolError | FetchKind::ResponseTooLarge => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl Cx {
    /// The host's own error, when no plugin made a page: 502 when the
    /// backend answered something unusable, else 503.
    pub async fn default_error(&mut self) -> Answer {
        let status = self
            .failure
            .as_ref()
            .map_or(StatusCode::SERVICE_UNAVAILABLE, |f| failure_status(f.kind));
        let mut body = format!(
            "{status}\nbackend fetch failed\nrequest id: {}\n",
            self.rs.id
        );
        if self.generation.config.debug_headers
            && let Some(f) = &self.failure
        {
            body.push_str(&format!(
                "cause: {} backend={} ({})\n",
                f.kind.as_str(),
                f.backend,
                f.detail
            ));
        }
        self.deliver_synth(Synth {
            status,
            headers: text_headers(),
            body: Bytes::from(body),
        })
        .await
    }

    /// `only-if-cached` with nothing usable: 504 (RFC 9111 §5.2.1.7).
    pub(super) async fn gateway_timeout(&mut self) -> Answer {
        self.deliver_synth(Synth {
            status: StatusCode::GATEWAY_TIMEOUT,
            headers: text_headers(),
            body: Bytes::from_static(b"504 Gateway Timeout\nonly-if-cached: not in cache\n"),
        })
        .await
    }

    /// A fail-closed plugin fault: 500 naming the plugin. on-deliver does not run.
    pub fn plugin_failed(&mut self, f: PluginFailure) -> Answer {
        tracing::error!(
            req = &*self.rs.id,
            plugin = &*f.plugin,
            hook = f.hook.as_str(),
            kind = f.fault.kind.as_str(),
            "plugin failed, answering 500: {}",
            f.fault.message
        );
        self.fault = Some(format!(
            "{}/{}/{}",
            f.plugin,
            f.hook.as_str(),
            f.fault.kind.as_str()
        ));
        let mut headers = text_headers();
        if self.generation.config.debug_headers
            && let Ok(v) = HeaderValue::from_str(&format!(
                "plugin-{} plugin={}",
                f.fault.kind.as_str(),
                f.plugin
            ))
        {
            headers.insert("x-lacquer-error", v);
        }
        headers.insert(header::VIA, VIA);
        let body = format!(
            "500 Internal Server Error\nplugin {} failed in {} ({})\nrequest id: {}\n",
            f.plugin,
            f.hook.as_str(),
            f.fault.kind.as_str(),
            self.rs.id
        );
        let mut r = Response::new(if self.rs.method == Method::HEAD {
            empty()
        } else {
            full(body)
        });
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        *r.headers_mut() = headers;
        Answer::new(r, State::Synth)
    }
}

/// A 400 for a request the host refuses before any plugin sees it.
pub(super) fn bad_request(message: &str) -> Response<ProxyBody> {
    let mut r = Response::new(full(format!("400 Bad Request\n{message}\n")));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    *r.headers_mut() = text_headers();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `Content-Type: text/plain` and `Cache-Control: no-store`.
pub fn text_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}
