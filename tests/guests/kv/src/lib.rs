//! `kv`: exercises the host's per-plugin counters and key-value store.
//!
//! - `GET /count`: adds 1 to counter `hits` (kept 60 s) and answers 200 with
//!   the new value as the body.
//! - `GET /kv/<key>`: answers 200 with the stored value, or 404.
//! - `GET /kv/<key>?set=<value>`: stores the value for 60 s and answers 204
//!   (or 507 with the host's message if the namespace is full).
//! - `GET /kv-fill/<n>?size=<bytes>`: stores keys `fill-0` .. `fill-<n-1>`,
//!   each a value of `size` bytes (default 1024) kept 60 s, stopping at the
//!   first refusal, and answers 200 with "<stored> stored, <refused>
//!   refused\n". With `&continue=1` it tries all `n` keys and counts every
//!   refusal.
//! - `GET /kv-grow/<key>?size=<bytes>`: stores a value of `size` bytes
//!   (default 1024) for 60 s under `<key>` and answers 204, or 507 with the
//!   host's message (how a test grows an existing key in a full namespace).
//!
//! A malformed `<n>`, `size` or `continue` answers 400. Other requests go on
//! untouched.

use std::time::Duration;

use lacquer_plugin_sdk::{NoConfig, Plugin, RecvAction, Request, SynthResponse, host};

const TTL: Duration = Duration::from_secs(60);

/// The value size when a request gives no `size`.
const DEFAULT_SIZE: u32 = 1024;

/// The kv plugin.
pub struct Kv;

/// The value of query parameter `name` in `query` (without the `?`), if any.
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Parses query parameter `name`, or gives `default` when it is absent.
fn parse_param<T: std::str::FromStr>(query: &str, name: &str, default: T) -> Result<T, String> {
    match param(query, name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| format!("bad {name} {text:?}\n")),
    }
}

/// A value of `size` bytes.
fn value(size: u32) -> Vec<u8> {
    vec![b'v'; size as usize]
}

/// Stores `fill-0` .. `fill-<n-1>` through `set`, stopping at the first
/// refusal unless `keep_going`. Returns (stored, refused).
fn fill(
    n: u32,
    value: &[u8],
    keep_going: bool,
    mut set: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> (u32, u32) {
    let (mut stored, mut refused) = (0, 0);
    for i in 0..n {
        match set(&format!("fill-{i}"), value) {
            Ok(()) => stored += 1,
            Err(_) => {
                refused += 1;
                if !keep_going {
                    break;
                }
            }
        }
    }
    (stored, refused)
}

fn store(key: &str, value: &[u8]) -> Result<(), String> {
    host::kv_set(key, value, TTL)
}

/// `/kv-fill/<rest>`.
fn kv_fill(rest: &str) -> Result<SynthResponse, String> {
    let (n, query) = rest.split_once('?').unwrap_or((rest, ""));
    let n: u32 = n.parse().map_err(|_| format!("bad count {n:?}\n"))?;
    let size = parse_param(query, "size", DEFAULT_SIZE)?;
    let keep_going = match param(query, "continue") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("bad continue {other:?}\n")),
    };
    let (stored, refused) = fill(n, &value(size), keep_going, store);
    Ok(SynthResponse::text(
        200,
        format!("{stored} stored, {refused} refused\n"),
    ))
}

/// `/kv-grow/<rest>`.
fn kv_grow(rest: &str) -> Result<SynthResponse, String> {
    let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
    let size = parse_param(query, "size", DEFAULT_SIZE)?;
    Ok(match store(key, &value(size)) {
        Ok(()) => SynthResponse::new(204),
        Err(err) => SynthResponse::text(507, err),
    })
}

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
        if let Some(rest) = url.strip_prefix("/kv-fill/") {
            return RecvAction::Synth(
                kv_fill(rest).unwrap_or_else(|e| SynthResponse::text(400, e)),
            );
        }
        if let Some(rest) = url.strip_prefix("/kv-grow/") {
            return RecvAction::Synth(
                kv_grow(rest).unwrap_or_else(|e| SynthResponse::text(400, e)),
            );
        }
        let Some(rest) = url.strip_prefix("/kv/") else {
            return RecvAction::Continue;
        };
        let resp = match rest.split_once("?set=") {
            Some((key, value)) => match store(key, value.as_bytes()) {
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

    #[test]
    fn fill_stores_numbered_keys_of_the_size() {
        let resp = get("/kv-fill/3?size=5");
        assert_eq!(
            (resp.status, resp.body_str()),
            (200, Some("3 stored, 0 refused\n"))
        );
        for i in 0..3 {
            assert_eq!(host::kv_get(&format!("fill-{i}")), Some(b"vvvvv".to_vec()));
        }
        assert_eq!(host::kv_get("fill-3"), None);
        assert_eq!(get("/kv-fill/2").body_str(), Some("2 stored, 0 refused\n"));
        assert_eq!(host::kv_get("fill-1").map(|v| v.len()), Some(1024));
        assert_eq!(
            get("/kv-fill/0?continue=1").body_str(),
            Some("0 stored, 0 refused\n")
        );
    }

    /// A setter that takes the first `room` keys (recording them) and
    /// refuses the rest, as a full namespace does (the in-memory host never
    /// refuses).
    fn room_for(
        room: usize,
        keys: &mut Vec<String>,
    ) -> impl FnMut(&str, &[u8]) -> Result<(), String> + '_ {
        move |key, _| {
            if keys.len() < room {
                keys.push(key.to_owned());
                Ok(())
            } else {
                Err("namespace full".to_owned())
            }
        }
    }

    #[test]
    fn fill_stops_at_the_first_refusal_unless_told_to_go_on() {
        let mut keys = Vec::new();
        assert_eq!(fill(5, b"v", false, room_for(2, &mut keys)), (2, 1));
        assert_eq!(keys, ["fill-0", "fill-1"]);
        let mut keys = Vec::new();
        assert_eq!(fill(5, b"v", true, room_for(2, &mut keys)), (2, 3));
    }

    #[test]
    fn grow_replaces_a_value_with_one_of_the_size() {
        assert_eq!(get("/kv/a?set=hi").status, 204);
        assert_eq!(get("/kv-grow/a?size=4096").status, 204);
        assert_eq!(host::kv_get("a").map(|v| v.len()), Some(4096));
        assert_eq!(get("/kv-grow/b").status, 204);
        assert_eq!(host::kv_get("b").map(|v| v.len()), Some(1024));
    }

    #[test]
    fn malformed_requests_answer_400() {
        for url in [
            "/kv-fill/x",
            "/kv-fill/-1",
            "/kv-fill/3?size=big",
            "/kv-fill/3?continue=yes",
            "/kv-grow/a?size=-5",
        ] {
            assert_eq!(get(url).status, 400, "{url}");
        }
        assert_eq!(get("/kv-fill/x").body_str(), Some("bad count \"x\"\n"));
    }

    #[test]
    fn query_parameters_are_found_by_name() {
        assert_eq!(param("size=5&continue=1", "continue"), Some("1"));
        assert_eq!(param("size=5&continue", "continue"), Some(""));
        assert_eq!(param("sizes=5", "size"), None);
        assert_eq!(parse_param("", "size", 7u32), Ok(7));
    }
}
