//! Lacquer: a caching HTTP reverse proxy whose request logic is WebAssembly plugins.
//!
//! The host owns the mechanism (sockets, HTTP, the cache, backends, timeouts,
//! health, limits); plugins own the policy, through the `lacquer:plugin` WIT
//! contract in `wit/plugin.wit`. Start a server with [`Server::start`].
//!
//! - [`config`]: the TOML file, checked once into [`config::Config`].
//! - [`server`]: listeners, config generations, reload.
//! - `proxy` / `fetch`: the request flow.
//! - [`cache`]: the store, coalescing, eviction, RFC 9111 decisions.
//! - [`backend`]: clients, timeouts, health, circuit breaker, directors.
//! - [`plugin`]: the wasmtime runtime and the hook chain.
//! - [`metrics`]: metric names and the Prometheus registry.

#![deny(missing_docs)]

mod admin;
pub mod backend;
pub mod body;
pub mod cache;
pub mod cli;
pub mod config;
mod fetch;
pub mod http_util;
mod listener;
pub mod metrics;
pub mod plugin;
mod proxy;
pub mod server;

pub use config::{Config, ConfigError};
pub use server::{ConfigSource, ServeError, Server};
