//! `cargo xtask bench`: builds the gateway in release and the plugins, then
//! hands over to `bench/run.sh` (peers, loads, `bench/RESULTS.md`).

use anyhow::Result;

use crate::sh;
use crate::{Options, plugins};

/// Builds, then runs `bench/run.sh` with the arguments after `--`.
pub fn bench(opts: &Options) -> Result<()> {
    // bench/run.sh reports the time end to end, builds included.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Variants whose plugins did not build are skipped by bench/run.sh.
    if let Err(err) = plugins::plugins() {
        sh::error(&format!("warning: {err:#}"));
    }
    sh::step("gateway (release)");
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "--package",
        "wasmtp",
        "--bin",
        "wasmtp",
    ]))?;
    let binary = sh::target_dir().join("release").join("wasmtp");
    sh::step("bench/run.sh");
    sh::run(
        sh::cmd("bash")
            .arg("bench/run.sh")
            .args(&opts.passthrough)
            .env("WASMTP_BIN", &binary)
            .env("BENCH_STARTED", started.to_string()),
    )
}
