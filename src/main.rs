//! The `nexus-audit` command: a thin layer over the library. See `nexus-audit --help`.
#![deny(unsafe_code)]

/// mimalloc: `append --stdin` and the proxy allocate on rayon workers and free on the writer
/// thread; glibc's arenas serialise that on a lock (7% of an append profile), mimalloc does
/// not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nexus_audit::run_cli()
}
