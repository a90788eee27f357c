//! The wasmtime side: one engine per process (pooling allocator, epoch
//! interruption driven by a 1 ms ticker), each component compiled once, and
//! per plugin a pool of warm instances, each initialised once and reused
//! until it faults or has served `recycle_after` calls.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::{Plugin, PluginPre, types::HookSet};
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
    linker: Linker<StoreState>,
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
        Shared {
            engine,
            ticker,
            linker,
            compiled: DashMap::new(),
        }
    })
}

/// Compile (or fetch the already compiled) component and check its contract
/// version. With a cache directory, compiled code is stored there (keyed by
/// the component's content hash and the engine's compatibility hash) and
/// loaded from there on the next start or reload instead of recompiling.
fn compile(name: &str, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component, PluginError> {
    let sh = shared();
    let key = xxhash_rust::xxh3::xxh3_128(bytes);
    let file =
        cache_dir.map(|d| d.join(format!("{key:032x}-{:016x}.cwasm", engine_hash(&sh.engine))));
    let cached = sh.compiled.get(&key).map(|c| c.clone());
    let c = match (cached, &file) {
        (Some(c), _) => c,
        (None, Some(f)) if f.exists() => match load_precompiled(&sh.engine, f) {
            Ok(c) => {
                tracing::info!(plugin = name, "loaded precompiled {}", f.display());
                c
            }
            Err(e) => {
                tracing::warn!(
                    plugin = name,
                    "ignoring unusable precompiled {}: {e}",
                    f.display()
                );
                compile_fresh(name, bytes)?
            }
        },
        (None, _) => compile_fresh(name, bytes)?,
    };
    check_contract(&sh.engine, &c).map_err(|cause| PluginError::Contract {
        plugin: name.into(),
        cause,
    })?;
    if let Some(f) = file.filter(|f| !f.exists()) {
        store_precompiled(name, &c, &f);
    }
    sh.compiled.insert(key, c.clone());
    Ok(c)
}

fn compile_fresh(name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(&shared().engine, bytes).map_err(|e| PluginError::Compile {
        plugin: name.into(),
        cause: format!("{e:#}"),
    })
}

fn engine_hash(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires a trusted artifact made by `Component::serialize`
    // for a compatible engine. Lacquer writes these files itself, named by the
    // source's content hash and this engine's compatibility hash, into
    // `[runtime] cache_dir`, which must be writable only by the operator.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Write atomically (temp file, then rename); a failure only costs a recompile later.
fn store_precompiled(name: &str, c: &Component, path: &Path) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = c
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|bytes| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(
            plugin = name,
            "cannot store precompiled plugin in {}: {e}",
            path.display()
        );
    }
}

fn check_contract(engine: &Engine, c: &Component) -> Result<(), String> {
    for (name, _) in c.component_type().exports(engine) {
        let Some(v) = name.strip_prefix("lacquer:plugin/hooks@") else {
            continue;
        };
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let (major, minor) = (parts.next().flatten(), parts.next().flatten());
        return if (major, minor) == (Some(CONTRACT.0), Some(CONTRACT.1)) {
            Ok(())
        } else {
            Err(format!(
                "built against lacquer:plugin@{v}, but this host speaks lacquer:plugin@{}.{}.x; rebuild it with a matching lacquer-plugin-sdk",
                CONTRACT.0, CONTRACT.1
            ))
        };
    }
    Err("not a Lacquer plugin: it exports no lacquer:plugin/hooks interface".into())
}

struct Inst {
    store: Store<StoreState>,
    bindings: Plugin,
    uses: u64,
}

/// A hook call in progress (see [`LoadedPlugin::begin`]); it holds one of
/// the plugin's `max_instances` slots.
pub struct Call<'a> {
    // Boxed: the bindings are a few hundred bytes, moved in and out of the
    // pool and through the call's futures on every call.
    inst: Box<Inst>,
    start: Instant,
    _slot: Slot<'a>,
    _ticking: Ticking<'static>,
}

impl Call<'_> {
    /// The instance's exports and store, to make the call with.
    pub fn parts(&mut self) -> (&Plugin, &mut Store<StoreState>) {
        (&self.inst.bindings, &mut self.inst.store)
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
    pre: PluginPre<StoreState>,
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
        let component = compile(&name, bytes, cache_dir)?;
        let pre = shared()
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
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
        let mut inst = p.instantiate().map_err(|f| PluginError::Init {
            plugin: name.to_string(),
            cause: f.message,
        })?;
        p.recv_skip = inst.store.data_mut().recv_skip.take();
        inst.store.data_mut().cpu.reset(Instant::now());
        inst.store.set_epoch_deadline(1);
        p.hooks = inst
            .bindings
            .lacquer_plugin_hooks()
            .call_implemented(&mut inst.store)
            .map_err(|e| PluginError::Init {
                plugin: name.to_string(),
                cause: format!("implemented(): {e}"),
            })?;
        p.pool.give_back(inst);
        Ok(p)
    }

    /// A new instance, initialised (`init` with the plugin's config).
    fn instantiate(&self) -> Result<Box<Inst>, Fault> {
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
        store.data_mut().cpu.reset(Instant::now());
        store.set_epoch_deadline(1);
        let init_fault = |kind, message| Fault { kind, message };
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| init_fault(FaultKind::InitFailed, format!("instantiate: {e:#}")))?;
        let r = bindings
            .lacquer_plugin_hooks()
            .call_init(&mut store, &self.config_json);
        self.log_stdio(&mut store);
        store.data_mut().initialising = false;
        match r {
            Ok(Ok(())) => Ok(Box::new(Inst {
                store,
                bindings,
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

    /// Whether calls are suspended after too many faults.
    pub fn quarantined(&self) -> bool {
        let until = self.quarantined_until.load(Ordering::Relaxed);
        until != 0 && (self.born.elapsed().as_millis() as u64) < until
    }

    /// Start a hook call: take a warm instance (or make one) and move the
    /// request (and response) into its store. Finish with [`LoadedPlugin::end`].
    pub async fn begin(
        &self,
        hook: Hook,
        req: &mut Box<ReqState>,
        resp: Option<&mut RespState>,
    ) -> Result<Call<'_>, Fault> {
        self.metrics.hooks[hook as usize].calls.inc();
        let start = Instant::now();
        // Waiting for an instance is bounded by the call deadline: a plugin
        // whose instances are all stuck fails fast.
        let Some(slot) = self.slots.take(self.slot_wait).await else {
            let f = Fault {
                kind: FaultKind::Busy,
                message: format!(
                    "all {} instances busy for {:?} (max_instances)",
                    self.max_idle, self.slot_wait
                ),
            };
            self.fault(hook, &f);
            return Err(f);
        };
        let popped = self.pool.take();
        let mut inst = match popped {
            Some(i) => i,
            None => self.instantiate().inspect_err(|f| self.fault(hook, f))?,
        };
        let data = inst.store.data_mut();
        std::mem::swap(&mut data.req, req);
        if let Some(r) = resp {
            std::mem::swap(&mut data.resp, r);
        }
        data.violation = None;
        data.logged = 0;
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
