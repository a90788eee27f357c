//! `probe`: a plugin that does nothing but the host calls its config lists,
//! so that `bench/hook-cost.sh` can tell what an empty hook call costs and
//! what each host call adds (read from `lacquer_plugin_duration_seconds`).
//!
//! Config (both keys optional; unknown keys and unknown operations are errors):
//!
//! | key | meaning |
//! |---|---|
//! | `recv` | host calls made in `on-recv`, in order |
//! | `deliver` | host calls made in `on-deliver`, in order |
//!
//! Operations: `"method"`, `"url"` (on the request), `"header:NAME"`,
//! `"header_all:NAME"`, `"set_header:NAME"` (on the request in `recv`, on
//! the response in `deliver`). Every hook returns `continue`.
//!
//! Example: the host calls `cache-policy` makes on a plain cache hit:
//! `recv = ["method", "header:authorization", "header_all:cookie"]`,
//! `deliver = ["set_header:x-cache"]`.

use std::hint::black_box;

use lacquer_plugin_sdk::{DeliverAction, DeliverInfo, Plugin, RecvAction, Request, Response};
use serde::Deserialize;

/// The plugin's settings; see the crate docs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    recv: Vec<String>,
    deliver: Vec<String>,
}

enum Op {
    Method,
    Url,
    Header(String),
    HeaderAll(String),
    SetHeader(String),
}

fn parse(key: &str, ops: &[String]) -> Result<Vec<Op>, String> {
    ops.iter()
        .enumerate()
        .map(|(i, s)| {
            let op = match s.split_once(':') {
                None if s == "method" => Op::Method,
                None if s == "url" => Op::Url,
                Some(("header", n)) => Op::Header(n.into()),
                Some(("header_all", n)) => Op::HeaderAll(n.into()),
                Some(("set_header", n)) => Op::SetHeader(n.into()),
                _ => return Err(format!("{key}[{i}]: unknown operation {s:?}")),
            };
            Ok(op)
        })
        .collect()
}

/// The plugin: the operations of each hook.
pub struct Probe {
    recv: Vec<Op>,
    deliver: Vec<Op>,
}

impl Plugin for Probe {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Probe {
            recv: parse("recv", &config.recv)?,
            deliver: parse("deliver", &config.deliver)?,
        })
    }

    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        for op in &self.recv {
            match op {
                Op::Method => drop(black_box(req.method())),
                Op::Url => drop(black_box(req.url())),
                Op::Header(n) => drop(black_box(req.header(n))),
                Op::HeaderAll(n) => drop(black_box(req.header_all(n))),
                Op::SetHeader(n) => drop(black_box(req.set_header(n, "probe"))),
            }
        }
        RecvAction::Continue
    }

    fn on_deliver(&self, req: &Request<'_>, resp: &Response<'_>, _: &DeliverInfo) -> DeliverAction {
        for op in &self.deliver {
            match op {
                Op::Method => drop(black_box(req.method())),
                Op::Url => drop(black_box(req.url())),
                Op::Header(n) => drop(black_box(resp.header(n))),
                Op::HeaderAll(n) => drop(black_box(resp.header_all(n))),
                Op::SetHeader(n) => drop(black_box(resp.set_header(n, "HIT"))),
            }
        }
        DeliverAction::Continue
    }
}

lacquer_plugin_sdk::export!(Probe, hooks = [recv, deliver]);
