//! The error page, as HTML or JSON.

use lacquer_plugin_sdk::util::{html_escape, list_items};
use lacquer_plugin_sdk::{FetchError, FetchErrorKind};
use serde_json::{Value, json};

/// What the page shows.
pub(crate) struct Details<'a> {
    pub(crate) status: u16,
    pub(crate) brand: &'a str,
    pub(crate) message: &'a str,
    pub(crate) request_id: &'a str,
    /// Zero when no retry time is announced.
    pub(crate) retry_after_s: u128,
    pub(crate) error: &'a FetchError,
    pub(crate) debug: bool,
}

/// The default message for a kind of failure.
pub(crate) fn message(kind: FetchErrorKind) -> &'static str {
    match kind {
        FetchErrorKind::ConnectRefused => "The application server is not answering.",
        FetchErrorKind::ConnectTimeout => "The application server could not be reached in time.",
        FetchErrorKind::FirstByteTimeout => "The application server timed out.",
        FetchErrorKind::BetweenBytesTimeout => {
            "The application server stopped sending its response."
        }
        FetchErrorKind::BackendUnhealthy => "The application server is unavailable at the moment.",
        FetchErrorKind::BackendBusy => "The application server is overloaded.",
        FetchErrorKind::NoBackend => "No application server is available for this request.",
        FetchErrorKind::CircuitOpen => {
            "The application server is failing; requests are paused for a moment."
        }
        FetchErrorKind::ResponseTooLarge => "The response was too large to deliver.",
        FetchErrorKind::ProtocolError => "The application server sent an invalid response.",
        FetchErrorKind::ConnectionReset => "The connection to the application server was lost.",
    }
}

/// The reason phrase of a status code.
fn title(status: u16) -> &'static str {
    match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        429 => "Too Many Requests",
        400..=499 => "Request Error",
        _ => "Server Error",
    }
}

/// Whether the `Accept` values take JSON but not HTML.
pub(crate) fn wants_json(accept: &[String]) -> bool {
    let mut json = false;
    let mut html = false;
    for range in list_items(accept) {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        json |= matches!(media.as_str(), "application/json" | "application/*" | "*/*")
            || media.ends_with("+json");
        html |= matches!(
            media.as_str(),
            "text/html" | "text/*" | "*/*" | "application/xhtml+xml"
        );
    }
    json && !html
}

/// The JSON document.
pub(crate) fn json(d: &Details<'_>) -> Value {
    let mut doc = json!({
        "status": d.status,
        "error": d.error.kind.as_str(),
        "message": d.message,
        "request_id": d.request_id,
    });
    if d.debug {
        doc["backend"] = json!(d.error.backend);
        doc["detail"] = json!(d.error.detail);
    }
    doc
}

const STYLE: &str = "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1f2933}\
main{max-width:34rem;margin:1.5rem;padding:2rem 2.5rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}\
.brand{font-size:.8rem;font-weight:600;letter-spacing:.08em;text-transform:uppercase;color:#616e7c}\
h1{font-size:1.6rem;margin:.4rem 0 1rem}p{margin:.5rem 0}\
.meta{margin-top:1.5rem;font-size:.85rem;color:#7b8794}\
code{font-family:ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}\
@media (prefers-color-scheme:dark){body{background:#121417;color:#e4e7eb}\
main{background:#1c2025;box-shadow:none}.brand,.meta{color:#9aa5b1}}";

/// The HTML page: everything interpolated is escaped.
pub(crate) fn html(d: &Details<'_>) -> String {
    let brand = html_escape(d.brand);
    let title = title(d.status);
    let retry = match d.retry_after_s {
        0 => String::new(),
        1 => "<p>Please try again in a second.</p>\n".to_owned(),
        s => format!("<p>Please try again in {s} seconds.</p>\n"),
    };
    let cause = if d.debug {
        let mut cause = format!(
            "<p class=\"meta\">Cause: <code>{} backend={}</code>",
            d.error.kind,
            html_escape(&d.error.backend)
        );
        if !d.error.detail.is_empty() {
            cause.push_str(&format!(
                "<br><code>{}</code>",
                html_escape(&d.error.detail)
            ));
        }
        cause.push_str("</p>\n");
        cause
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n\
<title>{status} {title} · {brand}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
<div class=\"brand\">{brand}</div>\n<h1>{title}</h1>\n<p>{message}</p>\n{retry}\
<p class=\"meta\">Error {status} · Request ID <code>{id}</code></p>\n{cause}</main>\n</body>\n</html>\n",
        status = d.status,
        message = html_escape(d.message),
        id = html_escape(d.request_id),
    )
}
