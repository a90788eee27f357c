//! Lacquer: a caching HTTP reverse proxy whose request logic is WebAssembly plugins.
//!
//! The host owns the mechanism (sockets, HTTP, the cache, backends, timeouts,
//! health, limits); plugins own the policy, through the `lacquer:plugin` WIT
//! contract in `wit/plugin.wit`. Start a server with [`Server::start`].
//!
//! - [`config`]: the TOML file, checked once into [`config::Config`].
//! - [`server`]: listeners, config generations, reload.
//! - `flow`: the request flow, one module per phase.
//! - [`cache`]: the store, coalescing, eviction, RFC 9111 decisions.
//! - [`backend`]: clients, timeouts, health, circuit breaker, directors.
//! - [`plugin`]: the wasmtime runtime and the hook chain.
//! - [`cluster`]: nodes sharing a Redis: sharding, invalidations, limits.
//! - [`metrics`]: metric names and the Prometheus registry.

#![deny(missing_docs)]

pub mod access;
mod admin;
pub mod backend;
pub mod body;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
mod flow;
mod follow;
pub mod http_util;
pub mod interim;
pub mod kinds;
mod listener;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod proxy_protocol;
pub mod server;
pub mod state;
pub mod tls;
mod top;

pub use config::{Config, ConfigError};
pub use server::{ConfigSource, ServeError, Server};
