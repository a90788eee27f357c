//! `kv`: exercises the host's per-plugin counters and key-value store.
//!
//! - `GET /count`: adds 1 to counter `hits` (kept 60 s) and answers 200 with
//!   the new value as the body.
//! - `GET /kv/<key>`: answers 200 with the stored value, or 404.
//! - `GET /kv/<key>?set=<value>`: stores the value for 60 s and answers 204
//!   (or 507 with the host's message if the namespace is full).
//!
//! Other requests go on untouched.

use std::time::Duration;

use lacquer_plugin_sdk::{NoConfig, Plugin, RecvAction, Request, SynthResponse, host};

const TTL: Duration = Duration::from_secs(60);

/// The kv plugin.
pub struct Kv;

impl Plugin for Kv {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Kv)
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        let url = req.url();
        if url == "/count" {
            let hits = host::counter_add("hits", 1, TTL);
            return RecvAction::Synth(SynthResponse::text(200, hits.to_string()));
        }
        let Some(rest) = url.strip_prefix("/kv/") else {
            return RecvAction::Continue;
        };
        let resp = match rest.split_once("?set=") {
            Some((key, value)) => match host::kv_set(key, value.as_bytes(), TTL) {
                Ok(()) => SynthResponse::new(204),
                Err(err) => SynthResponse::text(507, err),
            },
            None => match host::kv_get(rest) {
                Some(value) => SynthResponse::new(200).body(value),
                None => SynthResponse::text(404, "no such key\n"),
            },
        };
        RecvAction::Synth(resp)
    }
}

lacquer_plugin_sdk::export!(Kv, hooks = [recv]);

#[cfg(test)]
mod tests {
    use lacquer_plugin_sdk::instantiate;

    use super::*;

    fn get(url: &str) -> SynthResponse {
        let kv: Kv = instantiate("").unwrap();
        match kv.on_recv(&Request::builder().url(url).build()) {
            RecvAction::Synth(resp) => resp,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn counts_and_stores() {
        assert_eq!(get("/count").body_str(), Some("1"));
        assert_eq!(get("/count").body_str(), Some("2"));
        assert_eq!(get("/kv/a").status, 404);
        assert_eq!(get("/kv/a?set=hello").status, 204);
        assert_eq!(get("/kv/a").body_str(), Some("hello"));
    }
}
