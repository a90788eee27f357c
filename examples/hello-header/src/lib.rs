// An example Lacquer plugin, built like any out-of-tree plugin:
//
//     cd examples/hello-header
//     cargo build --target wasm32-wasip2 --release
//     # -> target/wasm32-wasip2/release/hello_header.wasm
//
// `cargo test` runs its unit tests natively; `../hello-header.toml` is a
// Lacquer config that loads it next to the built-in bundle:
//
//     lacquer serve --config examples/hello-header.toml

//! `hello-header`: adds a greeting header to every response and moves an old
//! URL prefix to a new one.
//!
//! Hooks: `recv` (rewrites a path starting with `from` to start with `to`
//! instead, keeping the rest and the query) and `deliver` (sets
//! `x-hello: <greeting>`).
//!
//! Config (every key optional, unknown keys are errors):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `greeting` | `"world"` | value of the `x-hello` header |
//! | `from` | `"/old/"` | path prefix to rewrite |
//! | `to` | `"/new/"` | what replaces it |

use lacquer_plugin_sdk::{
    DeliverAction, DeliverInfo, Level, Plugin, RecvAction, Request, Response, host,
};
use serde::Deserialize;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    greeting: String,
    from: String,
    to: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "world".into(),
            from: "/old/".into(),
            to: "/new/".into(),
        }
    }
}

/// The plugin: its config, checked.
pub struct HelloHeader {
    config: Config,
}

impl Plugin for HelloHeader {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.greeting.contains(['\r', '\n', '\0']) {
            return Err("greeting: must not contain CR, LF or NUL".into());
        }
        for (key, prefix) in [("from", &config.from), ("to", &config.to)] {
            if !prefix.starts_with('/') {
                return Err(format!("{key}: {prefix:?} must start with \"/\""));
            }
        }
        Ok(HelloHeader { config })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        let url = req.url();
        if let Some(rest) = url.strip_prefix(&self.config.from) {
            let new_url = format!("{}{rest}", self.config.to);
            if let Err(err) = req.set_url(&new_url) {
                host::log(
                    Level::Warn,
                    &format!("cannot rewrite {url} to {new_url}: {err}"),
                );
            }
        }
        RecvAction::Continue
    }

    fn on_deliver(
        &self,
        _req: &Request<'_>,
        resp: &Response<'_>,
        _info: &DeliverInfo,
    ) -> DeliverAction {
        // `new` checked the value, so this cannot fail.
        let _ = resp.set_header("x-hello", &self.config.greeting);
        DeliverAction::Continue
    }
}

lacquer_plugin_sdk::export!(HelloHeader, hooks = [recv, deliver]);

#[cfg(test)]
mod tests {
    use lacquer_plugin_sdk::{CacheState, instantiate};

    use super::*;

    #[test]
    fn greets_with_the_configured_value() {
        let plugin: HelloHeader = instantiate(r#"{"greeting": "from lacquer"}"#).unwrap();
        let resp = Response::builder().build();
        let action = plugin.on_deliver(
            &Request::builder().build(),
            &resp,
            &DeliverInfo::new(CacheState::Hit),
        );
        assert_eq!(action, DeliverAction::Continue);
        assert_eq!(resp.header("x-hello").as_deref(), Some("from lacquer"));
    }

    #[test]
    fn rewrites_the_old_prefix() {
        let plugin: HelloHeader = instantiate("{}").unwrap();
        let req = Request::builder().url("/old/page?x=1").build();
        assert_eq!(plugin.on_recv(&req), RecvAction::Continue);
        assert_eq!(req.url(), "/new/page?x=1");
        let req = Request::builder().url("/older").build();
        plugin.on_recv(&req);
        assert_eq!(req.url(), "/older");
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(instantiate::<HelloHeader>(r#"{"from": "old"}"#).is_err());
        assert!(instantiate::<HelloHeader>(r#"{"greeting": "a\nb"}"#).is_err());
        assert!(instantiate::<HelloHeader>(r#"{"greting": "typo"}"#).is_err());
    }
}
