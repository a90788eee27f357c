//! The trait every plugin implements.

use crate::action::{BackendResponseAction, DeliverAction, FetchErrorAction, RecvAction};
use crate::http::{Request, Response};
use crate::types::{DeliverInfo, FetchError, Proposal};

/// A Lacquer plugin: one method per hook, each with a default that does nothing.
///
/// The host makes one value of your type per instance with [`Plugin::new`],
/// then calls the hooks you listed in [`export!`](crate::export) for many
/// requests in turn, one at a time. State kept in `self` (in a `Cell` or
/// `RefCell`) lives across the requests of one instance, but instances come
/// and go: use [`host::counter_add`](crate::host::counter_add) or
/// [`host::kv_set`](crate::host::kv_set) for state that must be shared.
///
/// Plugins run in config order; the first one to return a terminal decision
/// (anything but `Continue`) wins, and the later ones are not called for that
/// hook.
///
/// Only the hooks named in `export!` are ever called: a method you override
/// but don't list is dead code.
pub trait Plugin: Sized + 'static {
    /// The plugin's settings: the `config` table of its `[[plugins]]` entry,
    /// handed over as JSON. A missing table arrives as `{}`, so with
    /// `#[serde(default)]` every setting can be optional. Use
    /// `#[serde(deny_unknown_fields)]` so typos are errors, and
    /// [`NoConfig`](crate::NoConfig) for a plugin without settings.
    type Config: serde::de::DeserializeOwned;

    /// Makes the plugin from its parsed config. Runs once per instance, before
    /// any hook. An `Err` fails the load with this message: the proxy refuses
    /// to start (or keeps its old config on reload).
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Runs when a request arrives, before the cache is looked up.
    ///
    /// The plugin may read and edit the method, URL and headers through `req`,
    /// choose a backend ([`Request::set_backend`]) and add cache-key inputs
    /// ([`Request::add_cache_key`]). The return decides what happens next;
    /// see [`RecvAction`].
    ///
    /// Default: [`RecvAction::Continue`].
    fn on_recv(&self, req: &Request<'_>) -> RecvAction {
        let _ = req;
        RecvAction::Continue
    }

    /// Runs when the backend has answered (headers only: the body streams
    /// afterwards), before the response is stored.
    ///
    /// `proposal` is the host's caching decision from the RFC 9111 headers;
    /// return it, changed or not, in [`BackendResponseAction::Continue`], or
    /// ask for a retry or a synthetic answer. Headers edited through `resp`
    /// are stored with the object.
    ///
    /// Default: `Continue(proposal)`, unchanged.
    fn on_backend_response(
        &self,
        req: &Request<'_>,
        resp: &Response<'_>,
        proposal: Proposal,
    ) -> BackendResponseAction {
        let _ = (req, resp);
        BackendResponseAction::Continue(proposal)
    }

    /// Runs when a fetch failed (connect error, timeout, sick backend...).
    ///
    /// `stale_available` says whether a stale copy could be served instead.
    /// See [`FetchErrorAction`] for the choices.
    ///
    /// Default: [`FetchErrorAction::Continue`] (the host's plain 503 if no
    /// later plugin decides).
    fn on_fetch_error(
        &self,
        req: &Request<'_>,
        error: &FetchError,
        stale_available: bool,
    ) -> FetchErrorAction {
        let _ = (req, error, stale_available);
        FetchErrorAction::Continue
    }

    /// Runs just before a response is sent to the client, whatever its
    /// origin (see [`DeliverInfo::state`]), synthetic responses included.
    ///
    /// Edit headers through `resp`, or replace the response with
    /// [`DeliverAction::Synth`].
    ///
    /// Default: [`DeliverAction::Continue`].
    fn on_deliver(
        &self,
        req: &Request<'_>,
        resp: &Response<'_>,
        info: &DeliverInfo,
    ) -> DeliverAction {
        let _ = (req, resp, info);
        DeliverAction::Continue
    }
}
