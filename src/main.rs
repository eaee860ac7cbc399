//! The `wasmtp` binary: everything lives in the library ([`wasmtp::cli`]).

/// With the `mimalloc` feature (the `cargo xtask dist` build), mimalloc
/// replaces the C library's allocator: musl's malloc takes one lock for
/// every thread.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wasmtp::cli::main()
}
