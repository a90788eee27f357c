//! The plugin chain: each hook runs in config order over the plugins that
//! implement it; the first terminal decision wins; faults follow each
//! plugin's `on_error` policy.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use wasmtime::component::Resource;

use super::Fault;
use super::bindings::types::{self, HookSet};
use super::host_api::{ReqState, RespState};
use super::limits;
use super::runtime::{Exports, LoadedPlugin};
use crate::config::OnError;
use crate::kinds::{FaultKind, Hook, Proposal};

/// Largest synthetic body a plugin may return: 8 MiB.
pub const MAX_SYNTH_BODY: usize = 8 * 1024 * 1024;

/// A response made by a plugin, checked.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Status.
    pub status: StatusCode,
    /// Header fields.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A fail-closed plugin fault: the request is answered 500 naming the plugin.
#[derive(Debug, Clone)]
pub struct PluginFailure {
    /// Plugin name.
    pub plugin: Arc<str>,
    /// Hook that failed.
    pub hook: Hook,
    /// The fault.
    pub fault: Fault,
}

/// What `on-recv` decided.
#[derive(Debug)]
pub enum RecvDecision {
    /// No plugin decided: the host default (lookup for GET/HEAD, else pass).
    Default,
    /// Look up the cache.
    Lookup,
    /// Don't use the cache.
    Pass,
    /// Answer with this.
    Synth(Synth),
    /// Purge the URL.
    Purge,
}

/// What `on-backend-response` decided.
#[derive(Debug)]
pub enum BerespDecision {
    /// Go on with this proposal.
    Proposal(Proposal),
    /// Fetch again.
    Retry,
    /// Answer with this.
    Synth(Synth),
}

/// What `on-fetch-error` decided.
#[derive(Debug)]
pub enum FetchErrorDecision {
    /// The host's plain 503.
    Default,
    /// Try again.
    Retry,
    /// Serve the stale copy.
    ServeStale,
    /// Answer with this.
    Synth(Synth),
}

/// Facts given to `on-deliver`.
pub use types::{CacheState, DeliverInfo, FetchError as WitFetchError, FetchErrorKind};

/// Call a hook on the instance of the call `c` of plugin `p`:
/// synchronously, or on a fiber within the plugin's wall-clock bound.
macro_rules! call {
    ($p:expr, $c:expr, $hook:ident($($arg:expr),*)) => {{
        let (exports, store) = $c.parts();
        match exports {
            Exports::Sync(e) => e.lacquer_plugin_hooks().$hook(store, $($arg),*),
            Exports::Fiber(e) => {
                $p.bounded(e.lacquer_plugin_hooks().$hook(store, $($arg),*))
                    .await
            }
        }
    }};
}

/// The plugins of one config generation.
///
/// A call is synchronous (see `wait.rs`) for most plugins: its only await
/// is then for one of the plugin's `max_instances` slots, which
/// [`LoadedPlugin::begin`] boxes when it must wait, so the futures here
/// stay small and allocate nothing.
pub struct Chain {
    plugins: Vec<Arc<LoadedPlugin>>,
}

impl Chain {
    /// A chain over loaded plugins, in order.
    pub fn new(plugins: Vec<Arc<LoadedPlugin>>) -> Self {
        Self { plugins }
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// The plugins implementing a hook, in order.
    fn implementing(&self, flag: HookSet) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.iter().filter(move |p| p.hooks.contains(flag))
    }

    /// A quarantined plugin is not called: that counts as a fault.
    fn admit(p: &LoadedPlugin, hook: Hook) -> Result<(), Fault> {
        if p.quarantined() {
            let f = Fault {
                kind: FaultKind::Quarantined,
                message: "quarantined after repeated faults".into(),
            };
            p.fault(hook, &f);
            return Err(f);
        }
        Ok(())
    }

    /// Apply the plugin's fault policy: `Ok` to go on with the next plugin.
    fn on_fault(p: &LoadedPlugin, hook: Hook, fault: Fault) -> Result<(), PluginFailure> {
        if fault.kind == FaultKind::InvalidOutput {
            p.fault(hook, &fault);
        }
        match p.on_error[hook as usize] {
            OnError::Skip => Ok(()),
            OnError::FailClosed => Err(PluginFailure {
                plugin: p.name.clone(),
                hook,
                fault,
            }),
        }
    }

    /// Run `on-recv`.
    pub async fn on_recv(&self, req: &mut Box<ReqState>) -> Result<RecvDecision, PluginFailure> {
        let hook = Hook::Recv;
        for p in self.implementing(HookSet::RECV) {
            // The plugin said it continues for this request: no call.
            if p.recv_skip.as_ref().is_some_and(|s| s.skips(req)) {
                p.metrics.hooks[hook as usize].skipped.inc();
                continue;
            }
            let r = async {
                Self::admit(p, hook)?;
                let mut c = p.begin(hook, req, None).await?;
                let out = call!(p, c, call_on_recv(Resource::new_borrow(0)));
                Ok(match p.end(hook, c, req, None, out)? {
                    types::RecvAction::Continue => None,
                    types::RecvAction::Lookup => Some(RecvDecision::Lookup),
                    types::RecvAction::Pass => Some(RecvDecision::Pass),
                    types::RecvAction::Purge => Some(RecvDecision::Purge),
                    types::RecvAction::Synth(s) => Some(RecvDecision::Synth(synth(s)?)),
                })
            }
            .await;
            match r {
                Ok(Some(d)) => return Ok(d),
                Ok(None) => {}
                Err(f) => Self::on_fault(p, hook, f)?,
            }
        }
        Ok(RecvDecision::Default)
    }

    /// Run `on-backend-response`; each plugin sees the proposal the previous one left.
    pub async fn on_backend_response(
        &self,
        req: &mut Box<ReqState>,
        resp: &mut RespState,
        proposal: Proposal,
    ) -> Result<BerespDecision, PluginFailure> {
        let hook = Hook::BackendResponse;
        let mut current = types::CacheProposal::from(&proposal);
        for p in self.implementing(HookSet::BACKEND_RESPONSE) {
            let r = async {
                Self::admit(p, hook)?;
                let mut c = p.begin(hook, req, Some(resp)).await?;
                let out = call!(
                    p,
                    c,
                    call_on_backend_response(
                        Resource::new_borrow(0),
                        Resource::new_borrow(0),
                        &current
                    )
                );
                Ok(match p.end(hook, c, req, Some(resp), out)? {
                    types::BackendResponseAction::Continue(next) => {
                        current = next;
                        None
                    }
                    types::BackendResponseAction::Retry => Some(BerespDecision::Retry),
                    types::BackendResponseAction::Synth(s) => {
                        Some(BerespDecision::Synth(synth(s)?))
                    }
                })
            }
            .await;
            match r {
                Ok(Some(d)) => return Ok(d),
                Ok(None) => {}
                Err(f) => Self::on_fault(p, hook, f)?,
            }
        }
        Ok(BerespDecision::Proposal(Proposal::from(current)))
    }

    /// Run `on-fetch-error`.
    pub async fn on_fetch_error(
        &self,
        req: &mut Box<ReqState>,
        error: &WitFetchError,
        stale_available: bool,
    ) -> Result<FetchErrorDecision, PluginFailure> {
        let hook = Hook::FetchError;
        for p in self.implementing(HookSet::FETCH_ERROR) {
            let r = async {
                Self::admit(p, hook)?;
                let mut c = p.begin(hook, req, None).await?;
                let out = call!(
                    p,
                    c,
                    call_on_fetch_error(Resource::new_borrow(0), error, stale_available)
                );
                Ok(match p.end(hook, c, req, None, out)? {
                    types::FetchErrorAction::Continue => None,
                    types::FetchErrorAction::Retry => Some(FetchErrorDecision::Retry),
                    types::FetchErrorAction::ServeStale if stale_available => {
                        Some(FetchErrorDecision::ServeStale)
                    }
                    types::FetchErrorAction::ServeStale => None,
                    types::FetchErrorAction::Synth(s) => Some(FetchErrorDecision::Synth(synth(s)?)),
                })
            }
            .await;
            match r {
                Ok(Some(d)) => return Ok(d),
                Ok(None) => {}
                Err(f) => Self::on_fault(p, hook, f)?,
            }
        }
        Ok(FetchErrorDecision::Default)
    }

    /// Run `on-deliver`; `Some(synth)` replaces the response.
    pub async fn on_deliver(
        &self,
        req: &mut Box<ReqState>,
        resp: &mut RespState,
        info: DeliverInfo,
    ) -> Result<Option<Synth>, PluginFailure> {
        let hook = Hook::Deliver;
        for p in self.implementing(HookSet::DELIVER) {
            let r = async {
                Self::admit(p, hook)?;
                let mut c = p.begin(hook, req, Some(resp)).await?;
                let out = call!(
                    p,
                    c,
                    call_on_deliver(Resource::new_borrow(0), Resource::new_borrow(0), info)
                );
                Ok(match p.end(hook, c, req, Some(resp), out)? {
                    types::DeliverAction::Continue => None,
                    types::DeliverAction::Synth(s) => Some(synth(s)?),
                })
            }
            .await;
            match r {
                Ok(Some(d)) => return Ok(Some(d)),
                Ok(None) => {}
                Err(f) => Self::on_fault(p, hook, f)?,
            }
        }
        Ok(None)
    }

    /// Whether any plugin implements a hook (so the host can skip building its inputs).
    pub fn implements(&self, hook: Hook) -> bool {
        let flag = match hook {
            Hook::Recv => HookSet::RECV,
            Hook::BackendResponse => HookSet::BACKEND_RESPONSE,
            Hook::FetchError => HookSet::FETCH_ERROR,
            Hook::Deliver => HookSet::DELIVER,
        };
        self.plugins.iter().any(|p| p.hooks.contains(flag))
    }
}

/// Names of the hooks a set contains.
pub fn hook_names(set: HookSet) -> Vec<&'static str> {
    Hook::ALL
        .into_iter()
        .zip([
            HookSet::RECV,
            HookSet::BACKEND_RESPONSE,
            HookSet::FETCH_ERROR,
            HookSet::DELIVER,
        ])
        .filter(|(_, f)| set.contains(*f))
        .map(|(h, _)| h.as_str())
        .collect()
}

fn invalid(message: String) -> Fault {
    Fault {
        kind: FaultKind::InvalidOutput,
        message,
    }
}

fn synth(s: types::SynthResponse) -> Result<Synth, Fault> {
    let status =
        limits::final_status(s.status).map_err(|e| invalid(format!("synthetic response: {e}")))?;
    if s.body.len() > MAX_SYNTH_BODY {
        return Err(invalid(format!(
            "synthetic body of {} bytes exceeds the {MAX_SYNTH_BODY}-byte limit",
            s.body.len()
        )));
    }
    let headers = limits::synth_headers(&s.headers)
        .map_err(|e| invalid(format!("synthetic response: {e}")))?;
    Ok(Synth {
        status,
        headers,
        body: Bytes::from(s.body),
    })
}
