//! The fuzz smoke of `cargo xtask test`: each cargo-fuzz target in `fuzz/`
//! runs for `FUZZ_SECONDS` (default 60) when cargo-fuzz and a nightly
//! toolchain are installed; otherwise the step says so and is skipped (the
//! stable replay test `tests/it/fuzz_replay.rs` runs the same target bodies
//! either way). Crashes land in `fuzz/artifacts/<target>/`, which the replay
//! test then keeps running as regressions.

use anyhow::{Result, bail};

use crate::sh;

/// The targets in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &["engine", "headers", "upstream_reply"];

/// Runs every target for a short while, if the tools are there.
pub fn smoke() -> Result<()> {
    let nightly = sh::probe(sh::cmd("cargo").args(["+nightly", "--version"])).is_some();
    let cargo_fuzz = sh::probe(sh::cmd("cargo").args(["+nightly", "fuzz", "--version"])).is_some();
    if !nightly || !cargo_fuzz {
        eprintln!(
            "fuzz smoke skipped: needs a nightly toolchain and cargo-fuzz \
             (`rustup toolchain install nightly && cargo install cargo-fuzz`); \
             tests/it/fuzz_replay.rs replays the targets on stable"
        );
        return Ok(());
    }
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "60".into());
    let mut failed = Vec::new();
    let max_time = format!("-max_total_time={seconds}");
    for target in TARGETS {
        let mut cmd = sh::cmd("cargo");
        cmd.current_dir(sh::root().join("fuzz")).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            max_time.as_str(),
            "-rss_limit_mb=2048",
            "-max_len=65536",
        ]);
        if let Err(e) = sh::run(&mut cmd) {
            sh::error(&format!("fuzz target {target}: {e:#}"));
            failed.push(*target);
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}
