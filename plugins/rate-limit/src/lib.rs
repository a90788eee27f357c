//! `rate-limit`: a token bucket per client address (or per header value).
//!
//! Hook: `recv`. Each request takes a token from its bucket; buckets refill
//! at `requests_per_second` up to `burst` tokens and are kept by the host,
//! shared by every instance of the plugin. A request finding its bucket
//! empty gets `429 Too Many Requests` with `Retry-After` (whole seconds until
//! a token is back, at least 1) and a short plain-text body; the others go on
//! to the next plugin.
//!
//! # Config
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `requests_per_second` | number > 0 | required | refill rate, e.g. `0.5` for one request every two seconds |
//! | `burst` | integer ≥ 1 | `requests_per_second` rounded up | bucket size: requests allowed at once |
//! | `key` | `"client-ip"` or `"header:<name>"` | `"client-ip"` | what a bucket belongs to: the client's IP (without the port), or a header's value (the client IP when the header is absent) |
//!
//! ```toml
//! [[plugins]]
//! name = "rate-limit"
//! builtin = "rate-limit"
//! config = { requests_per_second = 10, burst = 20, key = "header:x-api-key" }
//! ```
//!
//! Unknown keys are errors.

use lacquer_plugin_sdk::{Plugin, RecvAction, Request, SynthResponse, host};
use serde::Deserialize;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    requests_per_second: f64,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default = "client_ip")]
    key: String,
}

fn client_ip() -> String {
    "client-ip".to_owned()
}

/// What a bucket belongs to.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    ClientIp,
    Header(String),
}

/// The rate-limit plugin.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: u32,
    key: Key,
}

impl Plugin for RateLimit {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let rate = config.requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "requests_per_second: must be a number above 0, not {rate}"
            ));
        }
        let burst = match config.burst {
            Some(0) => return Err("burst: must be at least 1".to_owned()),
            Some(burst) => burst,
            None => rate.ceil().min(f64::from(u32::MAX)) as u32,
        };
        let key = match config.key.as_str() {
            "client-ip" => Key::ClientIp,
            key => match key.strip_prefix("header:") {
                Some(name) if is_token(name) => Key::Header(name.to_ascii_lowercase()),
                _ => {
                    return Err(format!(
                        "key: {key:?} is neither \"client-ip\" nor \"header:<name>\""
                    ));
                }
            },
        };
        Ok(RateLimit { rate, burst, key })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        let header = match &self.key {
            Key::Header(name) => req.header(name),
            Key::ClientIp => None,
        };
        let bucket = match header {
            Some(value) => format!("header:{value}"),
            None => match req.client_ip() {
                Some(ip) => format!("ip:{ip}"),
                None => format!("ip:{}", req.client_addr()),
            },
        };
        match host::take_token(&bucket, self.rate, self.burst) {
            Ok(()) => RecvAction::Continue,
            Err(wait) => {
                let secs = wait.as_millis().div_ceil(1000).max(1);
                RecvAction::Synth(
                    SynthResponse::text(429, format!("Too many requests: retry in {secs} s.\n"))
                        .header("retry-after", secs.to_string()),
                )
            }
        }
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

lacquer_plugin_sdk::export!(RateLimit, hooks = [recv]);

#[cfg(test)]
mod tests;
