//! The `lacquer` command.

// mimalloc: per-thread free lists suit a server whose every request
// allocates and frees the same few sizes (glibc's malloc spent a tenth of
// the host's own time on a cache hit, consolidating and splitting chunks).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lacquer::cli::main()
}
