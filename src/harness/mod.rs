//! The offline plugin harness: `wasmtp plugin test PLUGIN.wasm DIALOG...`
//! and `wasmtp plugin inspect PLUGIN.wasm`.
//!
//! A dialog (`docs/DIALOGS.md`) is one SMTP session against a plugin: its
//! config, fixtures (DNS answers, key-value contents), the client's lines
//! and the replies expected, and checks on what the plugin left behind.
//! The plugin runs in the gateway's own code: the same plugin host, chain,
//! limits, verdict handling and failure policy, the same protocol engine
//! and session driver, over an in-memory pipe instead of a socket.
//!
//! # Layout
//! - `dialog`: the file format, parsed; errors name file and line.
//! - `run`: one dialog: gateway config, services, session, the client's steps.
//! - `check`: what a transaction left behind, and the `?` checks (globs).
//! - `inspect`: the `plugin inspect` report.

mod check;
pub mod dialog;
mod inspect;
pub mod run;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use inspect::inspect;
pub use run::{Plugins, Tally};

/// The compile cache directory: `given`, or [`default_cache_dir`]; a
/// symbolic link to a directory is resolved (the cache refuses to use a
/// link itself).
pub fn cache_dir(given: Option<PathBuf>) -> PathBuf {
    let dir = given.unwrap_or_else(default_cache_dir);
    dir.canonicalize().unwrap_or(dir)
}

/// The compile cache used when none is given: `$XDG_CACHE_HOME/wasmtp`,
/// `$HOME/.cache/wasmtp`, or `target/wasmtp-cache` when neither is set.
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("wasmtp");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".cache").join("wasmtp");
    }
    PathBuf::from("target/wasmtp-cache")
}

/// Runs every dialog in `dialogs` against `plugins`, writing each step and
/// a summary to `out`: true when every step passed. A dialog that cannot
/// be parsed is reported (file:line) and counts as one failed step; one
/// that cannot be run (the plugin does not load, its config is refused)
/// too, with the error.
pub async fn test(
    plugins: &Plugins,
    dialogs: &[PathBuf],
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let mut total = Tally::default();
    for path in dialogs {
        writeln!(out, "{}", path.display())?;
        let tally = match dialog::load(path) {
            Ok(d) => match run::dialog(&d, plugins, out).await {
                Ok(t) => t,
                Err(e) => {
                    writeln!(out, "  FAIL        {e:#}")?;
                    Tally {
                        steps: 1,
                        failed: 1,
                    }
                }
            },
            Err(e) => {
                writeln!(out, "  FAIL        {e}")?;
                Tally {
                    steps: 1,
                    failed: 1,
                }
            }
        };
        total.steps += tally.steps;
        total.failed += tally.failed;
    }
    let verdict = match total.failed {
        0 => "all passed".to_string(),
        n => format!("{n} failed"),
    };
    // The summary's shape is a contract (the `plugin new` templates and
    // CI scripts match it): always "dialogs", even for one.
    writeln!(
        out,
        "{} dialogs, {} steps: {verdict}",
        dialogs.len(),
        total.steps
    )?;
    Ok(total.failed == 0)
}

/// The plugin name `wasmtp plugin test` gives a component file (its stem).
pub fn plugin_name(path: &Path) -> String {
    run::plugin_name(path)
}
