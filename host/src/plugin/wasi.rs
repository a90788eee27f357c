//! WASI for synchronous hook calls.
//!
//! wasmtime-wasi's synchronous bindings run every operation that may wait
//! through `Handle::block_on`, which panics on a tokio worker. Plugins get
//! the same interfaces as before, linked so that none does: `wasi:io`
//! streams and polls go through [`block`] (polled once, which is all a
//! guest's stdout and stderr, a bounded in-memory pipe, ever need; a real
//! wait hands the worker over and is bounded by the call's wall-clock
//! bound). The socket operations that would block on the runtime trap
//! instead (plugins have no network: every address is refused anyway), and
//! the filesystem's descriptor operations cannot be reached (there are no
//! preopened directories).

use std::future::Future;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, LinkerInstance, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::io::{
    error as io_error, poll as async_poll, streams as async_streams,
};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::sync::{filesystem as sync_fs, sockets as sync_sockets};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::host_api::StoreState;
use super::wait::block;

/// Link the WASI interfaces a plugin may use, for synchronous calls.
pub fn add_to_linker(l: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    type S = StoreState;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    random::random::add_to_linker::<S, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    io_error::add_to_linker::<S, Table>(l, |s| &mut s.table)?;
    poll::add_to_linker::<S, IoData>(l, Io::of)?;
    streams::add_to_linker::<S, IoData>(l, Io::of)?;
    sync_fs::types::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::instance_network::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::network::add_to_linker::<S, WasiSockets>(l, &Default::default(), S::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync_sockets::tcp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync_sockets::udp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync_sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    for (interface, functions) in BLOCKING_SOCKET_OPS {
        for f in *functions {
            replace(l, interface, |mut i| {
                i.func_new(f, |_, _, _, _| {
                    Err(wasmtime::Error::msg("plugins have no network"))
                })
            })?;
        }
    }
    Ok(())
}

/// Define something in `interface` in place of what is linked there:
/// `define` runs once without shadowing, where it must fail (else the name
/// was not linked, a version moved, and the old definition would be the one
/// called), then with.
pub(super) fn replace(
    l: &mut Linker<StoreState>,
    interface: &str,
    define: impl Fn(LinkerInstance<'_, StoreState>) -> wasmtime::Result<()>,
) -> wasmtime::Result<()> {
    l.allow_shadowing(false);
    if define(l.instance(interface)?).is_ok() {
        wasmtime::bail!("{interface}: what is replaced is not linked");
    }
    l.allow_shadowing(true);
    let r = define(l.instance(interface)?);
    l.allow_shadowing(false);
    r
}

/// The socket operations wasmtime-wasi's synchronous bindings run through
/// `Handle::block_on`: they trap (the others fail on the address check).
const BLOCKING_SOCKET_OPS: &[(&str, &[&str])] = &[
    (
        "wasi:sockets/tcp@0.2.12",
        &[
            "[method]tcp-socket.start-bind",
            "[method]tcp-socket.start-listen",
        ],
    ),
    (
        "wasi:sockets/udp@0.2.12",
        &["[method]udp-socket.start-bind", "[method]udp-socket.stream"],
    ),
    (
        "wasi:sockets/udp-create-socket@0.2.12",
        &["create-udp-socket"],
    ),
];

/// The store's resource table, with the call's wall-clock bound.
pub struct Io<'a> {
    table: &'a mut ResourceTable,
    /// When the call's wall-clock bound ends, and that bound.
    bound: (Instant, Duration),
}

/// [`Io`] as linker data.
struct IoData;

impl HasData for IoData {
    type Data<'a> = Io<'a>;
}

/// The store's resource table as linker data.
struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

impl Io<'_> {
    fn of(s: &mut StoreState) -> Io<'_> {
        Io {
            bound: s.cpu.deadline(),
            table: &mut s.table,
        }
    }
}

/// [`block`] for a stream operation: its trap is a stream error's.
fn run_stream<R>(
    op: impl Future<Output = StreamResult<R>>,
    bound: (Instant, Duration),
) -> StreamResult<R> {
    block(op, bound).map_err(StreamError::Trap)?
}

impl poll::Host for Io<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        block(async_poll::Host::poll(self.table, pollables), self.bound)?
    }
}

impl poll::HostPollable for Io<'_> {
    fn ready(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<bool> {
        block(async_poll::HostPollable::ready(self.table, p), self.bound)?
    }
    fn block(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        block(async_poll::HostPollable::block(self.table, p), self.bound)?
    }
    fn drop(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, p)
    }
}

impl streams::Host for Io<'_> {
    fn convert_stream_error(&mut self, e: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(async_streams::Host::convert_stream_error(self.table, e)?.into())
    }
}

impl streams::HostOutputStream for Io<'_> {
    fn drop(&mut self, s: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        block(
            async_streams::HostOutputStream::drop(self.table, s),
            self.bound,
        )?
    }
    fn check_write(&mut self, s: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_streams::HostOutputStream::check_write(self.table, s)
    }
    fn write(&mut self, s: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_streams::HostOutputStream::write(self.table, s, bytes)
    }
    fn blocking_write_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        run_stream(
            async_streams::HostOutputStream::blocking_write_and_flush(self.table, s, bytes),
            self.bound,
        )
    }
    fn blocking_write_zeroes_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        run_stream(
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.table, s, len),
            self.bound,
        )
    }
    fn subscribe(
        &mut self,
        s: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostOutputStream::subscribe(self.table, s)
    }
    fn write_zeroes(&mut self, s: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        async_streams::HostOutputStream::write_zeroes(self.table, s, len)
    }
    fn flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        async_streams::HostOutputStream::flush(self.table, s)
    }
    fn blocking_flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        run_stream(
            async_streams::HostOutputStream::blocking_flush(self.table, s),
            self.bound,
        )
    }
    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        async_streams::HostOutputStream::splice(self.table, dst, src, len)
    }
    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        run_stream(
            async_streams::HostOutputStream::blocking_splice(self.table, dst, src, len),
            self.bound,
        )
    }
}

impl streams::HostInputStream for Io<'_> {
    fn drop(&mut self, s: Resource<DynInputStream>) -> wasmtime::Result<()> {
        block(
            async_streams::HostInputStream::drop(self.table, s),
            self.bound,
        )?
    }
    fn read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_streams::HostInputStream::read(self.table, s, len)
    }
    fn blocking_read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        run_stream(
            async_streams::HostInputStream::blocking_read(self.table, s, len),
            self.bound,
        )
    }
    fn skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_streams::HostInputStream::skip(self.table, s, len)
    }
    fn blocking_skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        run_stream(
            async_streams::HostInputStream::blocking_skip(self.table, s, len),
            self.bound,
        )
    }
    fn subscribe(
        &mut self,
        s: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostInputStream::subscribe(self.table, s)
    }
}
