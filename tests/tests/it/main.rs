//! The integration tests, one binary: every module starts the real host
//! (or the real `lacquer` binary) against real origins. One binary links
//! wasmtime once instead of once per file, which keeps a clean build's disk
//! use and link time down. Tests that need the process to themselves
//! (`memory` reads its RSS, `environment` sets `LACQUER_*` variables) are
//! binaries of their own beside this one.

mod admin;
mod backend_h2;
mod backend_tls;
mod backends;
mod caching;
mod cluster;
mod compression;
mod examples;
mod hardening_http;
mod hardening_plugins;
mod interim;
mod log_follow;
mod operator;
mod packaging;
mod partial;
mod plugins;
mod proxy;
mod proxy_protocol;
mod rate_limit;
mod recv_skip;
mod reload;
mod stale;
mod status_page;
mod storage;
mod tls;
mod top;
