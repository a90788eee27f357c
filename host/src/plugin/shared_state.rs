//! The host functions that may wait on the network: counters, token
//! buckets and (with `shared_kv`) the key-value store live in the cluster's
//! Redis when there is one. Their logic is here once; a synchronous call
//! waits for it with its worker handed over (`host_api.rs`, through
//! [`super::wait::block`]), and a plugin called on a fiber (one that makes
//! these calls in a cluster, see `runtime::Pre`) awaits it, its fiber
//! suspended meanwhile, through the asynchronous versions that
//! [`add_fiber_versions`] links in place of the synchronous ones.

use std::future::Future;
use std::task::Poll;

use wasmtime::component::{Component, Linker};
use wasmtime::{AsContextMut, Engine, StoreContextMut};

use super::host_api::{PluginEnv, StoreState};
use super::wait::WallTimeout;
use super::wasi::replace;

/// The `host` functions of the contract that may wait on Redis.
const COUNTERS: [&str; 2] = ["counter-add", "take-token"];
/// The ones that do only with `shared_kv`.
const KV: [&str; 2] = ["kv-get", "kv-set"];

impl PluginEnv {
    /// `counter-add`: in the cluster's Redis when it answers, else here. A
    /// request hopping from another node was counted there: it only reads.
    pub(super) async fn counter_add(&self, hop: bool, key: &str, delta: i64, ttl_ms: u64) -> i64 {
        let delta = if hop { 0 } else { delta };
        if let Some(c) = &self.cluster
            && let Some(v) = c.counter_add(&self.name, key, delta, ttl_ms).await
        {
            return v;
        }
        self.kv.counter_add(key, delta, ttl_ms)
    }

    /// `take-token`, in the cluster's Redis when it answers, else here. A
    /// request hopping from another node was charged there.
    pub(super) async fn take_token(
        &self,
        hop: bool,
        key: &str,
        rate: f64,
        burst: u32,
    ) -> Result<(), u64> {
        if hop {
            return Ok(());
        }
        if let Some(c) = &self.cluster
            && let Some(r) = c.take_token(&self.name, key, rate, burst).await
        {
            return r;
        }
        self.kv.take_token(key, rate, burst)
    }

    /// `kv-get`: in Redis with `shared_kv` (when it answers), else here.
    pub(super) async fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(c) = self.cluster.as_ref().filter(|_| self.shared_kv)
            && let Some(v) = c.kv_get(&self.name, key).await
        {
            return v;
        }
        self.kv.get(key)
    }

    /// `kv-set`: in Redis with `shared_kv` (when it answers), else here. A
    /// full namespace is the plugin's business (it is told), not a fault.
    pub(super) async fn kv_set(
        &self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<(), String> {
        if let Some(c) = self.cluster.as_ref().filter(|_| self.shared_kv)
            && c.kv_set(&self.name, &key, &value, ttl_ms).await.is_some()
        {
            return Ok(());
        }
        self.kv.set(key, value, ttl_ms)
    }

    /// Whether a call of this plugin's `component` may wait on Redis: it
    /// imports a function that goes there with this environment.
    pub(super) fn may_wait(&self, engine: &Engine, component: &Component) -> bool {
        let Some(_) = &self.cluster else {
            return false;
        };
        component
            .component_type()
            .imports(engine)
            .any(|(name, item)| {
                let wasmtime::component::types::ComponentItem::ComponentInstance(i) = item.ty
                else {
                    return false;
                };
                name.starts_with("lacquer:plugin/host@")
                    && i.exports(engine)
                        .any(|(f, _)| COUNTERS.contains(&f) || (self.shared_kv && KV.contains(&f)))
            })
    }
}

/// Whether the request of the call in progress hops from another node.
pub(super) fn hop(s: &StoreState) -> bool {
    s.env
        .cluster
        .as_ref()
        .is_some_and(|c| c.is_hop(&s.req.headers))
}

/// Await `op` on the call's fiber within its wall-clock bound; the time
/// waited is not charged to its CPU budget, and the fiber may go on on
/// another thread.
///
/// What is ready at once (the local store: without `shared_kv`, or while
/// Redis is down) is no wait: the call's ticks and epoch deadline go on,
/// so a guest looping over such calls still hands its worker over and
/// meets its bounds at the next tick.
async fn on_fiber<R>(
    mut cx: StoreContextMut<'_, StoreState>,
    op: impl Future<Output = R>,
) -> wasmtime::Result<R> {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(r) = std::future::poll_fn(|c| Poll::Ready(op.as_mut().poll(c))).await {
        return Ok(r);
    }
    let (deadline, wall) = cx.data().cpu.deadline();
    cx.data_mut().cpu.pause();
    let r = tokio::time::timeout_at(deadline.into(), op).await;
    cx.data_mut().cpu.resume_here();
    // The ticks that passed while it waited are not the call's.
    cx.set_epoch_deadline(1);
    r.map_err(|_| wasmtime::Error::new(WallTimeout(wall)))
}

/// Link, in place of the synchronous versions, the asynchronous versions of
/// the functions that may wait: a plugin calling them is called on a fiber.
pub(super) fn add_fiber_versions(l: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    const HOST: &str = "lacquer:plugin/host@0.1.1";
    replace(l, HOST, |mut h| {
        h.func_wrap_async(
            "counter-add",
            |mut cx, (key, delta, ttl_ms): (String, i64, u64)| {
                let (env, hop) = (cx.data().env.clone(), hop(cx.data()));
                Box::new(async move {
                    let v = on_fiber(
                        cx.as_context_mut(),
                        env.counter_add(hop, &key, delta, ttl_ms),
                    );
                    Ok((v.await?,))
                })
            },
        )
    })?;
    replace(l, HOST, |mut h| {
        h.func_wrap_async(
            "take-token",
            |mut cx, (key, rate, burst): (String, f64, u32)| {
                let (env, hop) = (cx.data().env.clone(), hop(cx.data()));
                Box::new(async move {
                    let r = on_fiber(cx.as_context_mut(), env.take_token(hop, &key, rate, burst));
                    Ok((r.await?,))
                })
            },
        )
    })?;
    replace(l, HOST, |mut h| {
        h.func_wrap_async("kv-get", |mut cx, (key,): (String,)| {
            let env = cx.data().env.clone();
            Box::new(async move { Ok((on_fiber(cx.as_context_mut(), env.kv_get(&key)).await?,)) })
        })
    })?;
    replace(l, HOST, |mut h| {
        h.func_wrap_async(
            "kv-set",
            |mut cx, (key, value, ttl_ms): (String, Vec<u8>, u64)| {
                let env = cx.data().env.clone();
                Box::new(async move {
                    let r = on_fiber(cx.as_context_mut(), env.kv_set(key, value, ttl_ms));
                    Ok((r.await?,))
                })
            },
        )
    })
}
