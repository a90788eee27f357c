//! The wasmtime side: one engine per process (pooling allocator, epoch
//! interruption driven by a 1 ms ticker), each component compiled once, and
//! per plugin a pool of warm instances, each initialised once and reused
//! until it faults or has served `recycle_after` calls.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::{Plugin, PluginPre, fiber, types::HookSet};
use super::compile::compile;
use super::cpu::{CpuBudget, CpuTimeout};
use super::host_api::{Limiter, PluginEnv, ReqState, RespState, StoreState};
use super::pool::Pool;
use super::recv_skip::RecvSkip;
use super::slots::{Slot, Slots};
use super::stdio::LogPipe;
use super::ticker::{TICK, Ticker, Ticking};
use super::wait::{CannotWait, WallTimeout};
use super::{Fault, FaultKind, Hook, PluginError};
use crate::config::{MAX_PLUGIN_MEMORY, OnError, PluginConfig, TOTAL_PLUGIN_INSTANCES};
use crate::metrics::PluginMetrics;

/// The contract version this host speaks (major.minor must match).
pub const CONTRACT: (u64, u64) = (0, 1);

struct Shared {
    engine: Engine,
    ticker: Ticker,
    /// For synchronous calls: every import synchronous.
    linker: Linker<StoreState>,
    /// For calls on a fiber: WASI, and the host functions that may wait on
    /// the network, asynchronous.
    fiber_linker: Linker<StoreState>,
    compiled: DashMap<u128, Component>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut pool = PoolingAllocationConfig::default();
        let total = TOTAL_PLUGIN_INSTANCES;
        pool.total_component_instances(total)
            .total_core_instances(4 * total)
            .total_memories(total)
            .total_tables(2 * total)
            .max_memory_size(MAX_PLUGIN_MEMORY as usize);
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            // Our guests use no component-model async: without the
            // concurrent task machinery every call and import is cheaper.
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).expect("the plugin engine's fixed settings are valid");
        let ticker = Ticker::start(engine.weak()).expect("spawn the epoch ticker");
        let mut linker = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker).expect("WASI links");
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("host API links");
        let mut fiber_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut fiber_linker).expect("WASI links");
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut fiber_linker, |s| s).expect("host API links");
        super::shared_state::add_fiber_versions(&mut fiber_linker).expect("host API links");
        Shared {
            engine,
            ticker,
            linker,
            fiber_linker,
            compiled: DashMap::new(),
        }
    })
}

/// How a plugin's hooks are called.
///
/// Synchronously, on the worker's own stack, unless a call may wait on the
/// network: a plugin that imports a host function going to the cluster's
/// Redis (in a cluster) is called on a fiber, which that wait suspends,
/// rather than handing its worker over for every call (see `wait.rs`).
enum Pre {
    /// Called synchronously.
    Sync(PluginPre<StoreState>),
    /// Called on a fiber.
    Fiber(fiber::PluginPre<StoreState>),
}

/// A plugin instance's exports, as its [`Pre`] made them.
pub enum Exports {
    /// Call these synchronously.
    Sync(Plugin),
    /// Call these on a fiber (`.await`).
    Fiber(fiber::Plugin),
}

struct Inst {
    store: Store<StoreState>,
    exports: Exports,
    uses: u64,
}

/// A hook call in progress (see [`LoadedPlugin::begin`]); it holds one of
/// the plugin's `max_instances` slots.
pub struct Call<'a> {
    // Boxed: the exports are a few hundred bytes, moved in and out of the
    // pool and through the call's futures on every call.
    inst: Box<Inst>,
    start: Instant,
    _slot: Slot<'a>,
    _ticking: Ticking<'static>,
}

impl Call<'_> {
    /// The instance's exports and store, to make the call with.
    pub fn parts(&mut self) -> (&Exports, &mut Store<StoreState>) {
        (&self.inst.exports, &mut self.inst.store)
    }
}

/// Faults and quarantine state.
struct Health {
    faults: Vec<Instant>,
    backoff: Duration,
}

/// A plugin ready to run: compiled, linked, initialised once, with its pool.
pub struct LoadedPlugin {
    /// Name from the config.
    pub name: Arc<str>,
    /// Fault policy, by hook index.
    pub on_error: [OnError; 4],
    /// Hooks the plugin implements.
    pub hooks: HookSet,
    /// The requests whose `on-recv` call is skipped (`skip-recv-for`, asked
    /// by the first instance's `init`).
    pub recv_skip: Option<RecvSkip>,
    pre: Pre,
    env: Arc<PluginEnv>,
    config_json: String,
    cpu: Duration,
    wall: Duration,
    slot_wait: Duration,
    max_idle: usize,
    slots: Slots,
    memory: usize,
    recycle_after: u64,
    quarantine_after: usize,
    quarantine_window: Duration,
    /// Milliseconds since `born` until which the plugin is quarantined.
    quarantined_until: AtomicU64,
    born: Instant,
    health: Mutex<Health>,
    // Boxed (see `Call`): an instance moves in and out of the pool per call.
    pool: Pool<Box<Inst>>,
    pub(crate) metrics: PluginMetrics,
}

impl LoadedPlugin {
    /// Compile, link and initialise one instance (proving `init` accepts the config).
    pub async fn load(
        cfg: &PluginConfig,
        bytes: &[u8],
        env: Arc<PluginEnv>,
        recycle_after: u64,
        cache_dir: Option<&Path>,
        metrics: PluginMetrics,
    ) -> Result<LoadedPlugin, PluginError> {
        let name: Arc<str> = cfg.section.name.as_str().into();
        let sh = shared();
        let component = compile(&sh.engine, &sh.compiled, &name, bytes, cache_dir)?;
        let pre = if env.may_wait(&sh.engine, &component) {
            sh.fiber_linker
                .instantiate_pre(&component)
                .and_then(fiber::PluginPre::new)
                .map(Pre::Fiber)
        } else {
            sh.linker
                .instantiate_pre(&component)
                .and_then(PluginPre::new)
                .map(Pre::Sync)
        }
        .map_err(|e| PluginError::Link {
            plugin: name.to_string(),
            cause: format!("{e:#}"),
        })?;
        let s = &cfg.section;
        let mut p = LoadedPlugin {
            name: name.clone(),
            on_error: cfg.on_error,
            hooks: HookSet::empty(),
            recv_skip: None,
            pre,
            env,
            config_json: cfg.config_json.clone(),
            cpu: s.timeout,
            wall: s
                .wall_timeout
                .unwrap_or_else(|| (s.timeout * 10).max(Duration::from_secs(1))),
            slot_wait: s.timeout,
            max_idle: s.max_instances as usize,
            slots: Slots::new(s.max_instances as usize),
            memory: s.memory.0 as usize,
            recycle_after: recycle_after.max(1),
            quarantine_after: s.quarantine_after as usize,
            quarantine_window: s.quarantine_window,
            quarantined_until: AtomicU64::new(0),
            born: Instant::now(),
            health: Mutex::new(Health {
                faults: Vec::new(),
                backoff: s.quarantine_backoff,
            }),
            pool: Pool::new(s.max_instances as usize),
            metrics,
        };
        let _ticking = shared().ticker.enter();
        let mut inst = p.instantiate().await.map_err(|f| PluginError::Init {
            plugin: name.to_string(),
            cause: f.message,
        })?;
        p.recv_skip = inst.store.data_mut().recv_skip.take();
        inst.store.data_mut().cpu.reset(Instant::now());
        inst.store.set_epoch_deadline(1);
        let store = &mut inst.store;
        p.hooks = match &inst.exports {
            Exports::Sync(e) => e.lacquer_plugin_hooks().call_implemented(store),
            Exports::Fiber(e) => {
                p.bounded(e.lacquer_plugin_hooks().call_implemented(store))
                    .await
            }
        }
        .map_err(|e| PluginError::Init {
            plugin: name.to_string(),
            cause: format!("implemented(): {e}"),
        })?;
        p.pool.give_back(inst);
        Ok(p)
    }

    /// A new instance, initialised (`init` with the plugin's config).
    async fn instantiate(&self) -> Result<Box<Inst>, Fault> {
        let _ticking = shared().ticker.enter();
        let stdio = LogPipe::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdio.clone())
            .stderr(stdio.clone())
            .build();
        let state = StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.memory,
                denied: false,
            },
            stdio,
            env: self.env.clone(),
            req: Box::default(),
            resp: RespState::default(),
            violation: None,
            logged: 0,
            cpu: CpuBudget::new(self.cpu, self.wall, TICK),
            initialising: true,
            recv_skip: None,
        };
        let mut store = Store::new(&shared().engine, state);
        store.limiter(|s| &mut s.limiter);
        // Past each tick: charge the CPU time, trap once a bound is spent,
        // hand the worker over once the call is long.
        store.epoch_deadline_callback(|mut ctx| {
            ctx.data_mut().cpu.on_tick()?;
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        let init_fault = |kind, message| Fault { kind, message };
        let config = &self.config_json;
        let (exports, r) = match &self.pre {
            Pre::Sync(pre) => {
                let e = pre.instantiate(&mut store).map_err(|e| {
                    init_fault(FaultKind::InitFailed, format!("instantiate: {e:#}"))
                })?;
                let r = e.lacquer_plugin_hooks().call_init(&mut store, config);
                (Exports::Sync(e), r)
            }
            Pre::Fiber(pre) => {
                let e = pre.instantiate_async(&mut store).await.map_err(|e| {
                    init_fault(FaultKind::InitFailed, format!("instantiate: {e:#}"))
                })?;
                let r = self
                    .bounded(e.lacquer_plugin_hooks().call_init(&mut store, config))
                    .await;
                (Exports::Fiber(e), r)
            }
        };
        self.log_stdio(&mut store);
        store.data_mut().initialising = false;
        match r {
            Ok(Ok(())) => Ok(Box::new(Inst {
                store,
                exports,
                uses: 0,
            })),
            Ok(Err(msg)) => Err(init_fault(FaultKind::InitFailed, format!("init: {msg}"))),
            Err(e) => Err(init_fault(
                FaultKind::InitFailed,
                format!("init: {}", classify(&e, &store).message),
            )),
        }
    }

    fn log_stdio(&self, store: &mut Store<StoreState>) {
        let d = store.data_mut();
        if let Some((text, cut)) = d.stdio.drain() {
            if cut {
                d.env.log.dropped_output();
            }
            // One record per call's output, so a guest panic (several
            // lines) arrives whole.
            d.env.log.line(
                &mut d.logged,
                &self.name,
                &d.req.id,
                super::bindings::types::Level::Info,
                &format!("plugin output: {text}"),
            );
        }
    }

    /// Run a call on a fiber within the plugin's wall-clock bound (WASI
    /// waits are not bounded otherwise); past it the call is dropped and
    /// fails (its instance is then discarded, as after any fault). Most
    /// calls finish in their first poll: only one that waits arms a timer.
    pub async fn bounded<R>(
        &self,
        call: impl std::future::Future<Output = wasmtime::Result<R>>,
    ) -> wasmtime::Result<R> {
        let mut call = std::pin::pin!(call);
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = first {
            return r;
        }
        // Boxed: the timer is needed only here, and it is large.
        match Box::pin(tokio::time::timeout(self.wall, call)).await {
            Ok(r) => r,
            Err(_) => Err(wasmtime::Error::new(WallTimeout(self.wall))),
        }
    }

    /// How the hooks are called: `"sync"`, or `"fiber"` for a plugin whose
    /// calls may wait on the cluster's Redis (see [`Pre`]).
    pub fn call_mode(&self) -> &'static str {
        match self.pre {
            Pre::Sync(_) => "sync",
            Pre::Fiber(_) => "fiber",
        }
    }

    /// Whether calls are suspended after too many faults.
    pub fn quarantined(&self) -> bool {
        let until = self.quarantined_until.load(Ordering::Relaxed);
        until != 0 && (self.born.elapsed().as_millis() as u64) < until
    }

    /// Start a hook call: take a warm instance (or make one) and move the
    /// request (and response) into its store. Finish with [`LoadedPlugin::end`].
    /// Nearly always one of the plugin's `max_instances` slots is free and
    /// nothing is awaited; only a call that finds them all taken waits
    /// (boxed, so that callers' futures stay small).
    pub async fn begin(
        &self,
        hook: Hook,
        req: &mut Box<ReqState>,
        resp: Option<&mut RespState>,
    ) -> Result<Call<'_>, Fault> {
        self.metrics.hooks[hook as usize].calls.inc();
        let start = Instant::now();
        let slot = match self.slots.try_take() {
            Some(slot) => slot,
            // Waiting for an instance is bounded by the call deadline: a
            // plugin whose instances are all stuck fails fast.
            None => match Box::pin(self.slots.take(self.slot_wait)).await {
                Some(slot) => slot,
                None => {
                    let f = Fault {
                        kind: FaultKind::Busy,
                        message: format!(
                            "all {} instances busy for {:?} (max_instances)",
                            self.max_idle, self.slot_wait
                        ),
                    };
                    self.fault(hook, &f);
                    return Err(f);
                }
            },
        };
        let popped = self.pool.take();
        let mut inst = match popped {
            Some(i) => i,
            // Boxed: instantiating is rare and its future is large.
            None => Box::pin(self.instantiate())
                .await
                .inspect_err(|f| self.fault(hook, f))?,
        };
        let data = inst.store.data_mut();
        std::mem::swap(&mut data.req, req);
        if let Some(r) = resp {
            std::mem::swap(&mut data.resp, r);
        }
        data.violation = None;
        data.logged = 0;
        // A refused growth the guest got over is not this call's.
        data.limiter.denied = false;
        data.cpu.reset(start);
        inst.store.set_epoch_deadline(1);
        Ok(Call {
            inst,
            start,
            _slot: slot,
            _ticking: shared().ticker.enter(),
        })
    }

    /// Finish a hook call: move the (edited) request and response back, keep
    /// the instance warm if the call succeeded, or drop it and count the fault.
    pub fn end<R>(
        &self,
        hook: Hook,
        call: Call<'_>,
        req: &mut Box<ReqState>,
        resp: Option<&mut RespState>,
        out: wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let Call {
            mut inst,
            start,
            _slot,
            _ticking,
        } = call;
        self.log_stdio(&mut inst.store);
        let data = inst.store.data_mut();
        std::mem::swap(&mut data.req, req);
        if let Some(r) = resp {
            std::mem::swap(&mut data.resp, r);
        }
        let violation = data.violation.take();
        self.metrics.hooks[hook as usize]
            .duration
            .observe(start.elapsed());
        match out {
            Ok(v) => {
                inst.uses += 1;
                if inst.uses < self.recycle_after {
                    self.pool.give_back(inst);
                }
                // The instance is sound; what it asked for was refused.
                match violation {
                    Some(message) => Err(Fault {
                        kind: FaultKind::InvalidOutput,
                        message,
                    }),
                    None => Ok(v),
                }
            }
            Err(e) => {
                // A faulted instance is never entered again.
                let f = classify(&e, &inst.store);
                self.fault(hook, &f);
                Err(f)
            }
        }
    }

    /// Count a fault; quarantine the plugin when too many come in the window.
    pub fn fault(&self, hook: Hook, f: &Fault) {
        self.metrics.fault(hook, f.kind);
        tracing::warn!(
            plugin = &*self.name,
            hook = hook.as_str(),
            kind = f.kind.as_str(),
            "plugin fault: {}",
            f.message
        );
        if self.quarantine_after == 0 || f.kind == FaultKind::Quarantined {
            return;
        }
        let now = Instant::now();
        let mut h = self.health.lock();
        h.faults
            .retain(|t| now.duration_since(*t) < self.quarantine_window);
        h.faults.push(now);
        if h.faults.len() >= self.quarantine_after {
            h.faults.clear();
            let period = h.backoff;
            h.backoff = (h.backoff * 2).min(Duration::from_secs(300));
            let until = (self.born.elapsed() + period).as_millis() as u64;
            self.quarantined_until.store(until, Ordering::Relaxed);
            self.metrics.quarantines.inc();
            tracing::error!(
                plugin = &*self.name,
                "plugin quarantined for {period:?} after repeated faults"
            );
        }
    }
}

fn classify(e: &wasmtime::Error, store: &Store<StoreState>) -> Fault {
    if store.data().limiter.denied {
        return Fault {
            kind: FaultKind::Memory,
            message: format!("memory limit reached: {}", e.root_cause()),
        };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return Fault {
            kind: FaultKind::Timeout,
            message: "deadline exceeded".into(),
        };
    }
    if let Some(c) = e.downcast_ref::<CpuTimeout>() {
        return Fault {
            kind: FaultKind::Timeout,
            message: c.to_string(),
        };
    }
    if let Some(w) = e.downcast_ref::<WallTimeout>() {
        return Fault {
            kind: FaultKind::Timeout,
            message: w.to_string(),
        };
    }
    if let Some(c) = e.downcast_ref::<CannotWait>() {
        return Fault {
            kind: FaultKind::Trap,
            message: c.to_string(),
        };
    }
    Fault {
        kind: FaultKind::Trap,
        message: format!("{}", e.root_cause()),
    }
}
