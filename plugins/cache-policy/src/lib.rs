//! `cache-policy`: Varnish-builtin-like caching safety.
//!
//! Hooks: `recv`, `backend_response`, `deliver`.
//!
//! - **recv**: `PURGE` from an address in `purge_allow` purges the URL (every
//!   variant; with `x-purge: soft` it marks them stale instead), and `BAN` with
//!   `x-ban-url: <regex>` bans matching URLs on the request's host; from
//!   anywhere else they get a 405. Other methods than GET and
//!   HEAD pass (requests with `Authorization` too when
//!   `pass_authorization` is on). Cookies named in
//!   `ignore_cookies` are removed from `Cookie` (the header goes away when
//!   none remain); if any cookie remains, the request passes. Anything else
//!   goes on to the next plugin (and then to a cache lookup).
//! - **backend_response**: a response with `Set-Cookie`, `Cache-Control:
//!   private` or `no-store`, or `Vary: *` becomes hit-for-miss for
//!   `hit_for_miss_ttl` (no grace, no keep), so requests for that URL neither
//!   share it nor wait on each other. Other proposals go through unchanged.
//! - **deliver**: sets `x-cache: HIT|MISS|PASS|STALE|SYNTH`.
//!
//! # Config
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `purge_allow` | list of IPs or CIDR networks | `["127.0.0.1", "::1"]` | clients allowed to `PURGE` |
//! | `ignore_cookies` | list of names | `[]` | cookies removed before deciding; a trailing `*` matches a prefix (`"_ga*"`) |
//! | `hit_for_miss_ttl` | duration: `"120s"`, `"2m"` or whole seconds | `"120s"` | how long an uncacheable URL is remembered |
//! | `x_cache` | bool | `true` | moved to the host: `[server] x_cache` (set from the state the host knows, so a hit costs no `on-deliver` call); `false` here is refused with a pointer there |
//! | `pass_authorization` | bool | `false` | pass every request with `Authorization` (Varnish's builtin). Off, the host's RFC 9111 §3.5 rule applies: a response to such a request is stored only with `public`, `s-maxage` or `must-revalidate` |
//!
//! ```toml
//! [[plugins]]
//! name = "cache-policy"
//! builtin = "cache-policy"
//! config = { ignore_cookies = ["_ga*", "consent"], purge_allow = ["10.0.0.0/8"] }
//! ```
//!
//! Unknown keys are errors.

use std::time::Duration;

use lacquer_plugin_sdk::host::{self, Invalidation};
use lacquer_plugin_sdk::util::list_items;
use lacquer_plugin_sdk::{
    BackendResponseAction, Plugin, Proposal, RecvAction, Request, Response, Storage, SynthResponse,
};
use serde::Deserialize;

mod net;

use net::Network;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    purge_allow: Vec<String>,
    ignore_cookies: Vec<String>,
    #[serde(deserialize_with = "lacquer_plugin_sdk::config::duration")]
    hit_for_miss_ttl: Duration,
    x_cache: bool,
    pass_authorization: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            purge_allow: vec!["127.0.0.1".into(), "::1".into()],
            ignore_cookies: Vec::new(),
            hit_for_miss_ttl: Duration::from_secs(120),
            x_cache: true,
            pass_authorization: false,
        }
    }
}

/// The cache-policy plugin.
pub struct CachePolicy {
    purge_allow: Vec<Network>,
    ignore_cookies: Vec<String>,
    hit_for_miss_ttl: Duration,
    pass_authorization: bool,
}

impl Plugin for CachePolicy {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if !config.x_cache {
            return Err(
                "x_cache: the host sets x-cache now; turn it off with [server] x_cache = false"
                    .into(),
            );
        }
        let purge_allow = config
            .purge_allow
            .iter()
            .enumerate()
            .map(|(i, text)| {
                text.parse()
                    .map_err(|err| format!("purge_allow[{i}]: {err}"))
            })
            .collect::<Result<_, _>>()?;
        if let Some(i) = config
            .ignore_cookies
            .iter()
            .position(|p| p.is_empty() || p == "*")
        {
            return Err(format!(
                "ignore_cookies[{i}]: must name a cookie or a prefix like \"_ga*\""
            ));
        }
        // on_recv answers `continue` for a GET or HEAD that carries neither
        // a cookie nor (when it passes those) credentials: such requests, a
        // plain cache hit among them, go on without calling it.
        let mut unless = vec!["cookie"];
        if config.pass_authorization {
            unless.push("authorization");
        }
        host::skip_recv_for(&["GET", "HEAD"], &unless)?;
        Ok(CachePolicy {
            purge_allow,
            ignore_cookies: config.ignore_cookies,
            hit_for_miss_ttl: config.hit_for_miss_ttl,
            pass_authorization: config.pass_authorization,
        })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        let method = req.method();
        if method == "PURGE" || method == "BAN" {
            let allowed = req
                .client_ip()
                .is_some_and(|ip| self.purge_allow.iter().any(|net| net.contains(ip)));
            if !allowed {
                return RecvAction::Synth(SynthResponse::text(
                    405,
                    format!("{method} is not allowed from this address\n"),
                ));
            }
            return invalidate(req, &method);
        }
        if method != "GET" && method != "HEAD" {
            return RecvAction::Pass;
        }
        if self.pass_authorization && req.header("authorization").is_some() {
            return RecvAction::Pass;
        }
        let cookies = req.header_all("cookie");
        if cookies.is_empty() {
            return RecvAction::Continue;
        }
        let kept: Vec<&str> = cookies
            .iter()
            .flat_map(|value| value.split(';'))
            .map(str::trim)
            .filter(|cookie| !cookie.is_empty() && !self.ignored(cookie_name(cookie)))
            .collect();
        if kept.is_empty() {
            req.remove_header("cookie");
            return RecvAction::Continue;
        }
        if !self.ignore_cookies.is_empty() {
            // Only removes cookies from a header the host already accepted.
            let _ = req.set_header("cookie", &kept.join("; "));
        }
        RecvAction::Pass
    }

    fn on_backend_response(
        &self,
        _req: &Request<'_>,
        resp: &Response<'_>,
        proposal: Proposal,
    ) -> BackendResponseAction {
        // Set-Cookie is never shared. `private`, `no-store` and `Vary: *` only
        // matter when the host agrees they apply: a targeted field such as
        // CDN-Cache-Control (RFC 9213) may have overridden Cache-Control.
        let reason = match uncacheable_because(resp) {
            Some(r) if r.ends_with("set-cookie") || proposal.storage != Storage::Cache => Some(r),
            _ => None,
        };
        match reason {
            Some(reason) => BackendResponseAction::Continue(Proposal {
                storage: Storage::HitForMiss,
                ttl: self.hit_for_miss_ttl,
                grace: Duration::ZERO,
                keep: Duration::ZERO,
                reason: reason.to_owned(),
            }),
            None => BackendResponseAction::Continue(proposal),
        }
    }
}

impl CachePolicy {
    fn ignored(&self, name: &str) -> bool {
        self.ignore_cookies
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

/// `PURGE` (hard, or soft with `x-purge: soft`) and `BAN` (`x-ban-url: <regex>`).
fn invalidate(req: &Request<'_>, method: &str) -> RecvAction {
    let soft = req
        .header("x-purge")
        .is_some_and(|v| v.eq_ignore_ascii_case("soft"));
    let (how, url) = match method {
        "PURGE" if !soft => return RecvAction::Purge,
        "PURGE" => (Invalidation::SoftPurge, req.url()),
        _ => match req.header("x-ban-url") {
            Some(pattern) => (Invalidation::Ban, pattern),
            None => {
                return RecvAction::Synth(SynthResponse::text(
                    400,
                    "BAN needs an x-ban-url header (a regular expression)\n",
                ));
            }
        },
    };
    match host::invalidate(how, &req.host(), &url) {
        Ok(n) => RecvAction::Synth(SynthResponse::text(200, format!("{how:?}: {n}\n"))),
        Err(e) => RecvAction::Synth(SynthResponse::text(400, format!("{e}\n"))),
    }
}

/// The name of a `name=value` cookie.
fn cookie_name(cookie: &str) -> &str {
    cookie
        .split_once('=')
        .map_or(cookie, |(name, _)| name)
        .trim()
}

/// Why a backend response must not be shared, if it must not.
fn uncacheable_because(resp: &Response<'_>) -> Option<&'static str> {
    if resp.header("set-cookie").is_some() {
        return Some("hit-for-miss: set-cookie");
    }
    let cache_control = resp.header_all("cache-control");
    for directive in list_items(&cache_control) {
        let name = directive
            .split_once('=')
            .map_or(directive, |(name, _)| name)
            .trim();
        if name.eq_ignore_ascii_case("private") {
            return Some("hit-for-miss: cache-control private");
        }
        if name.eq_ignore_ascii_case("no-store") {
            return Some("hit-for-miss: cache-control no-store");
        }
    }
    if list_items(&resp.header_all("vary")).any(|field| field == "*") {
        return Some("hit-for-miss: vary *");
    }
    None
}

lacquer_plugin_sdk::export!(CachePolicy, hooks = [recv, backend_response]);

#[cfg(test)]
mod tests;
