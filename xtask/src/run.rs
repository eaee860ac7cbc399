//! `cargo xtask run`: the gateway with the shipped config, on 127.0.0.1:2525.

use std::os::unix::process::CommandExt;

use anyhow::{Result, bail};

use crate::sh;
use crate::{Options, plugins};

/// The config `cargo xtask run` starts the gateway with.
pub const CONFIG: &str = "config/gateway.toml";

/// Installs what is missing, builds the plugins and the gateway, then
/// replaces this process with `wasmtp run --config config/gateway.toml`
/// (so Ctrl-C and SIGHUP reach the gateway itself).
pub fn run(opts: &Options) -> Result<()> {
    let root = sh::root();
    let release = opts.has("--release");
    // A plugin that failed to build is reported; the gateway still starts
    // (and says which configured plugin it cannot load).
    if let Err(err) = plugins::plugins() {
        sh::error(&format!("warning: {err:#}"));
    }

    sh::step("gateway");
    let mut build = sh::cargo();
    build.args(["build", "--package", "wasmtp", "--bin", "wasmtp"]);
    if release {
        build.arg("--release");
    }
    sh::run(&mut build)?;

    if !root.join(CONFIG).is_file() {
        bail!("{CONFIG} is missing from this checkout");
    }
    let binary = sh::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("wasmtp");
    let mut gateway = sh::cmd(&binary);
    gateway
        .args(["run", "--config", CONFIG])
        .args(&opts.passthrough);
    // The README's first try is `swaks ... --tls`: say now if that would fail.
    if let Err(err) = crate::install::SWAKS.preflight() {
        sh::error(&format!(
            "note: the README's `swaks --tls` example will not work here: {err:#}"
        ));
    }
    sh::step("wasmtp (Ctrl-C stops it, SIGHUP reloads the plugins)");
    sh::announce(&gateway);
    let err = gateway.exec();
    bail!("cannot start {}: {err}", binary.display())
}
