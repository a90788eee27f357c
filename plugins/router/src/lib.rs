//! `router`: sends requests to backends (or directors) by host, path prefix
//! or regex.
//!
//! Hook: `recv`. The rules are tried in order; the first whose conditions
//! all hold sends the request to its backend (and, with `strip_prefix`,
//! removes the path prefix from the URL). A rule without conditions matches
//! every request, so put one last as a default route. When no rule matches,
//! the request goes to `[server] default_backend`. The plugin never decides
//! what happens to the request: it always continues to the next plugin.
//!
//! # Config
//!
//! `rules`: a list (default empty) of tables with these keys:
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `host` | string | none (any host) | the Host without port, case-insensitive: `"example.com"`, or `"*.example.com"` for any subdomain (not the bare domain) |
//! | `path_prefix` | string starting with `/` | none (any path) | the path starts with it at a segment boundary: `"/api"` matches `/api`, `/api/x` and `/api?x`, not `/apix` |
//! | `regex` | string | none | a regular expression searched in the path and query, e.g. `"^/img/.*\\.png$"`; [regex-lite](https://docs.rs/regex-lite) syntax: the usual Rust regex syntax, with `\d`, `\w`, `\s`, `\b` and `(?i)` working on ASCII (URLs are ASCII) |
//! | `backend` | string | required | a backend or director name from the config |
//! | `strip_prefix` | bool | `false` | remove `path_prefix` from the URL before fetching (`/api/users` → `/users`); needs `path_prefix` |
//!
//! ```toml
//! [[plugins]]
//! name = "router"
//! builtin = "router"
//! config.rules = [
//!     { host = "api.example.com", backend = "api" },
//!     { path_prefix = "/api", strip_prefix = true, backend = "api" },
//!     { regex = "^/img/.*\\.(png|jpe?g)$", backend = "images" },
//!     { backend = "app" },
//! ]
//! ```
//!
//! `init` fails, naming the rule index and key, for an invalid regex, an
//! unknown backend, or an unknown key.

use lacquer_plugin_sdk::util::host_matches;
use lacquer_plugin_sdk::{Level, Plugin, RecvAction, Request, host};
use regex_lite::Regex;
use serde::Deserialize;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    rules: Vec<RuleConfig>,
}

/// One routing rule as written in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    host: Option<String>,
    path_prefix: Option<String>,
    regex: Option<String>,
    backend: String,
    #[serde(default)]
    strip_prefix: bool,
}

/// A checked rule.
#[derive(Debug)]
struct Rule {
    host: Option<String>,
    path_prefix: Option<String>,
    regex: Option<Regex>,
    backend: String,
    strip_prefix: bool,
}

impl Rule {
    fn new(i: usize, config: RuleConfig) -> Result<Rule, String> {
        if let Some(prefix) = config.path_prefix.as_ref().filter(|p| !p.starts_with('/')) {
            return Err(format!(
                "rules[{i}].path_prefix: {prefix:?} must start with \"/\""
            ));
        }
        if config.strip_prefix && config.path_prefix.is_none() {
            return Err(format!("rules[{i}].strip_prefix: needs a path_prefix"));
        }
        let regex = match &config.regex {
            Some(pattern) => Some(
                Regex::new(pattern)
                    .map_err(|err| format!("rules[{i}].regex: invalid regex: {err}"))?,
            ),
            None => None,
        };
        if host::backend_healthy(&config.backend).is_none() {
            return Err(format!(
                "rules[{i}].backend: unknown backend or director {:?}",
                config.backend
            ));
        }
        Ok(Rule {
            host: config.host,
            path_prefix: config
                .path_prefix
                .map(|p| p.trim_end_matches('/').to_owned()),
            regex,
            backend: config.backend,
            strip_prefix: config.strip_prefix,
        })
    }

    fn matches(&self, host: &str, url: &str) -> bool {
        let path = url.split('?').next().unwrap_or(url);
        self.host
            .as_deref()
            .is_none_or(|pattern| host_matches(pattern, host))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| has_prefix(path, prefix))
            && self.regex.as_ref().is_none_or(|regex| regex.is_match(url))
    }
}

/// Whether `path` starts with `prefix` (given without a trailing slash) at a
/// segment boundary.
fn has_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.is_empty())
}

/// `url` without the path prefix, still starting with "/".
fn strip(url: &str, prefix: &str) -> String {
    let rest = &url[prefix.len()..];
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// The router plugin.
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
}

impl Plugin for Router {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| Rule::new(i, rule))
            .collect::<Result<_, _>>()?;
        Ok(Router { rules })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        if self.rules.is_empty() {
            return RecvAction::Continue;
        }
        let host = req.host();
        let url = req.url();
        let Some(rule) = self.rules.iter().find(|rule| rule.matches(&host, &url)) else {
            return RecvAction::Continue;
        };
        if let Err(err) = req.set_backend(&rule.backend) {
            host::log(
                Level::Error,
                &format!("router: cannot route to {:?}: {err}", rule.backend),
            );
            return RecvAction::Continue;
        }
        if let (true, Some(prefix)) = (rule.strip_prefix, &rule.path_prefix)
            && let Err(err) = req.set_url(&strip(&url, prefix))
        {
            host::log(
                Level::Error,
                &format!("router: cannot strip {prefix:?}: {err}"),
            );
        }
        RecvAction::Continue
    }
}

lacquer_plugin_sdk::export!(Router, hooks = [recv]);

#[cfg(test)]
mod tests;
