//! The `wasmtp` binary: everything lives in the library ([`wasmtp::cli`]).

fn main() -> std::process::ExitCode {
    wasmtp::cli::main()
}
