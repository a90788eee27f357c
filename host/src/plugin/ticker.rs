//! The epoch ticker. wasmtime's epoch deadlines (a plugin's CPU budget, and
//! the yields that keep a looping plugin from holding a tokio worker) move
//! only while the engine's epoch advances. A thread advances it every
//! [`TICK`] while plugin code may run, and parks once no guest code was
//! running at any of its ticks for [`LINGER`]: an idle host, or one whose plugins decline
//! every call (`skip-recv-for`, as the default bundle does on plain hits),
//! makes no wake-ups for it.
//!
//! Whatever runs guest code holds a [`Ticking`] (see [`Ticker::enter`]) for
//! as long as it does. Entering is one atomic increment, plus a wake-up of
//! the thread when it had parked. Under a steady load of short calls (rarely
//! running at the instant of a tick) the thread may park between them: the
//! next call wakes it, one wake-up per [`LINGER`] at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::EngineWeak;

/// Epoch period: deadlines are counted in these.
pub const TICK: Duration = Duration::from_millis(1);
/// How long the ticker goes on with nothing running at its ticks before it
/// parks.
pub const LINGER: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    /// Sections running guest code now.
    running: AtomicUsize,
    /// Set (before it checks `running` a last time) while the thread parks.
    parked: AtomicBool,
}

/// Advances one engine's epoch while guest code may run.
pub struct Ticker {
    state: Arc<State>,
    thread: Thread,
}

/// Guest code may run while this lives: the epoch advances.
pub struct Ticking<'a>(&'a Ticker);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.state.running.fetch_sub(1, SeqCst);
    }
}

impl Ticker {
    /// Start the ticker thread for an engine; it ends with the engine.
    pub fn start(engine: EngineWeak) -> std::io::Result<Ticker> {
        let state = Arc::new(State::default());
        let s = state.clone();
        let handle = std::thread::Builder::new()
            .name("lacquer-epoch".into())
            .spawn(move || run(&engine, &s))?;
        Ok(Ticker {
            state,
            thread: handle.thread().clone(),
        })
    }

    /// Guest code is about to run: keep the epoch advancing until the
    /// returned guard is dropped.
    pub fn enter(&self) -> Ticking<'_> {
        let s = &self.state;
        // Sequentially consistent with the thread's `parked` store and
        // `running` load: either it sees this entry and does not park, or
        // this sees it parked and wakes it (an unpark before its park is
        // not lost).
        if s.running.fetch_add(1, SeqCst) == 0 && s.parked.load(SeqCst) {
            self.thread.unpark();
        }
        Ticking(self)
    }

    /// Whether the thread is parked (for tests).
    #[cfg(test)]
    fn parked(&self) -> bool {
        self.state.parked.load(SeqCst)
    }
}

fn run(engine: &EngineWeak, s: &State) {
    let linger = LINGER.as_millis() / TICK.as_millis().max(1);
    let mut idle = 0;
    loop {
        // Sleep first: a section that woke the thread gets a whole tick
        // before its deadline is looked at.
        std::thread::sleep(TICK);
        let Some(e) = engine.upgrade() else {
            return;
        };
        e.increment_epoch();
        drop(e);
        if s.running.load(SeqCst) > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle < linger {
            continue;
        }
        s.parked.store(true, SeqCst);
        // Parks until an entry wakes it; a wake-up with nothing running
        // (spurious, or a section already over) parks again.
        while s.running.load(SeqCst) == 0 {
            std::thread::park();
        }
        s.parked.store(false, SeqCst);
        idle = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Wait (bounded) until `f` holds.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(10), "never: {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn parks_when_idle_and_ticks_again_on_entry() {
        let engine = wasmtime::Engine::new(wasmtime::Config::new().epoch_interruption(true))
            .expect("engine");
        let ticker = Ticker::start(engine.weak()).expect("ticker");
        eventually("the idle ticker parks", || ticker.parked());
        // Parked: the epoch stands still. An entry wakes it, and the epoch
        // moves (a deadline of one tick can expire) while the guard lives.
        let guard = ticker.enter();
        eventually("the ticker wakes", || !ticker.parked());
        let probe = engine.clone();
        let mut store = wasmtime::Store::new(&probe, ());
        store.set_epoch_deadline(1);
        // (module (func (export "spin") (loop (br 0))))
        let spin_wasm: &[u8] = &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
            0x03, 0x02, 0x01, 0x00, // one function of type 0
            0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export "spin"
            0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
        ];
        let module = wasmtime::Module::new(&probe, spin_wasm).expect("module");
        let spin = wasmtime::Instance::new(&mut store, &module, &[])
            .and_then(|i| i.get_typed_func::<(), ()>(&mut store, "spin"))
            .expect("instance");
        let err = spin
            .call(&mut store, ())
            .expect_err("a loop is interrupted");
        assert_eq!(
            err.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
        drop(guard);
        eventually("the ticker parks again", || ticker.parked());
    }
}
