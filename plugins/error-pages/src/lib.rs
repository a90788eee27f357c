//! `error-pages`: branded error pages for failed fetches.
//!
//! Hook: `fetch_error`. When a stale copy of the object exists and
//! `serve_stale` is on, it is served instead of an error. Otherwise the
//! client gets an error response (`status`; by default 502 when the backend
//! answered something unusable — `protocol-error`, `response-too-large` —
//! and 503 for every other failure) with `Retry-After`, `Cache-Control:
//! no-store`, and a small self-contained HTML page naming the site (`brand`),
//! a message for the kind of failure ("The application server is not
//! answering.", "...timed out.", "...is overloaded."...) and the request id.
//! Clients whose `Accept` takes JSON but not HTML get
//! `{"status":503,"error":"<kind>","message":"...","request_id":"..."}`
//! instead. With debug headers on (`[server] debug_headers`), the page, the
//! JSON (`backend`, `detail`) and an `x-lacquer-error: <kind> backend=<name>`
//! header also show the cause.
//!
//! # Config
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `brand` | string | `"Lacquer"` | the site name shown on the page |
//! | `status` | 400..=599 | 502 for `protocol-error` and `response-too-large`, else 503 | the status code of the error page, for every kind |
//! | `retry_after` | duration: `"5s"` or whole seconds | `"5s"` | `Retry-After`, rounded up to whole seconds; `0` leaves the header out |
//! | `serve_stale` | bool | `true` | serve a stale copy when one exists |
//! | `message` | string | per error kind | replaces the message for every kind |
//! | `per_host` | table: host → `{ brand, message }` | `{}` | overrides for a host (exact name, or `"*.example.com"`), each key optional |
//!
//! ```toml
//! [[plugins]]
//! name = "error-pages"
//! builtin = "error-pages"
//! config = { brand = "Example Shop", retry_after = "30s", per_host = { "api.example.com" = { brand = "Example API" } } }
//! ```
//!
//! Unknown keys are errors.

use std::collections::BTreeMap;
use std::time::Duration;

use lacquer_plugin_sdk::util::host_matches;
use lacquer_plugin_sdk::{
    FetchError, FetchErrorAction, FetchErrorKind, Plugin, Request, SynthResponse, host,
};
use serde::Deserialize;

mod page;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    brand: String,
    status: Option<u16>,
    #[serde(deserialize_with = "lacquer_plugin_sdk::config::duration")]
    retry_after: Duration,
    serve_stale: bool,
    message: Option<String>,
    per_host: BTreeMap<String, HostConfig>,
}

/// Overrides for one host.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HostConfig {
    brand: Option<String>,
    message: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brand: "Lacquer".into(),
            status: None,
            retry_after: Duration::from_secs(5),
            serve_stale: true,
            message: None,
            per_host: BTreeMap::new(),
        }
    }
}

/// The error-pages plugin.
pub struct ErrorPages {
    config: Config,
}

impl Plugin for ErrorPages {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if let Some(s) = config.status
            && !(400..=599).contains(&s)
        {
            return Err(format!("status: {s} is not an error status (400..=599)"));
        }
        Ok(ErrorPages { config })
    }

    fn on_fetch_error(
        &self,
        req: &Request<'_>,
        error: &FetchError,
        stale_available: bool,
    ) -> FetchErrorAction {
        if stale_available && self.config.serve_stale {
            return FetchErrorAction::ServeStale;
        }
        FetchErrorAction::Synth(self.error_response(req, error))
    }
}

impl ErrorPages {
    fn error_response(&self, req: &Request<'_>, error: &FetchError) -> SynthResponse {
        let host = req.host();
        let site = self
            .config
            .per_host
            .iter()
            .find(|(pattern, _)| host_matches(pattern, &host))
            .map(|(_, site)| site.clone())
            .unwrap_or_default();
        let message = site
            .message
            .or_else(|| self.config.message.clone())
            .unwrap_or_else(|| page::message(error.kind).to_owned());
        let retry_after = self.config.retry_after.as_millis().div_ceil(1000);
        let details = page::Details {
            status: self.config.status.unwrap_or(match error.kind {
                FetchErrorKind::ProtocolError | FetchErrorKind::ResponseTooLarge => 502,
                _ => 503,
            }),
            brand: site.brand.as_deref().unwrap_or(&self.config.brand),
            message: &message,
            request_id: &req.id(),
            retry_after_s: retry_after,
            error,
            debug: host::debug_headers(),
        };
        let mut resp = if page::wants_json(&req.header_all("accept")) {
            SynthResponse::json(details.status, &page::json(&details))
        } else {
            SynthResponse::html(details.status, page::html(&details))
        };
        if retry_after > 0 {
            resp = resp.header("retry-after", retry_after.to_string());
        }
        resp = resp.header("cache-control", "no-store");
        if details.debug {
            resp = resp.header(
                "x-lacquer-error",
                format!("{} backend={}", error.kind, error.backend),
            );
        }
        resp
    }
}

lacquer_plugin_sdk::export!(ErrorPages, hooks = [fetch_error]);

#[cfg(test)]
mod tests;
