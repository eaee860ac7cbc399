//! `wasmtp plugin ...`: the plugin author's commands. Each is one variant
//! of [`PluginCommand`] and one arm of [`dispatch`].
//!
//! ```text
//! wasmtp plugin new NAME --lang rust|js|python|c [--dir PATH]
//! wasmtp plugin build [DIR] [--cache-dir DIR]
//! wasmtp plugin test PLUGIN.wasm DIALOG... [--with OTHER.wasm]... [--cache-dir DIR]
//! wasmtp plugin inspect PLUGIN.wasm [--config FILE] [--cache-dir DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::config::LogFormat;

/// The `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// `new` and `build` (src/kit.rs, feature `plugin-kit`).
    #[cfg(feature = "plugin-kit")]
    #[command(flatten)]
    Kit(crate::kit::PluginCommand),
    /// Run dialog files (docs/DIALOGS.md) against a plugin, offline, in the
    /// gateway's own code: prints each step with ok/FAIL and a summary;
    /// exits 1 if any step failed.
    Test {
        /// The plugin component.
        plugin: PathBuf,
        /// Dialog files.
        #[arg(required = true)]
        dialogs: Vec<PathBuf>,
        /// Another plugin, run before the tested one in the chain (in the
        /// order given); its config is the dialog's `[with.NAME]` table.
        #[arg(long = "with", value_name = "OTHER.wasm")]
        with: Vec<PathBuf>,
        /// The compiled-component cache (default: ~/.cache/wasmtp).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Seconds to wait for one reply before the step fails.
        #[arg(long, default_value_t = 30)]
        reply_timeout: u64,
        /// Log filter for the gateway's log on stderr (plugin failures are
        /// warnings, with the guest's error text).
        #[arg(long, default_value = "warn")]
        log: String,
    },
    /// Show what a plugin targets, imports, exports and asks for: its
    /// `wasmtp:plugin` version, imports with the capability each needs,
    /// the hooks its `init` returns for a config, size and compile time.
    Inspect {
        /// The plugin component.
        plugin: PathBuf,
        /// A TOML file holding the plugin's config table.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The compiled-component cache (default: ~/.cache/wasmtp).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

/// Runs a `plugin` subcommand.
pub fn dispatch(command: PluginCommand) -> ExitCode {
    match command {
        #[cfg(feature = "plugin-kit")]
        PluginCommand::Kit(command) => crate::kit::run(command),
        PluginCommand::Test {
            plugin,
            dialogs,
            with,
            cache_dir,
            reply_timeout,
            log,
        } => {
            crate::logging::init(LogFormat::Text, &log);
            let plugins = crate::harness::Plugins {
                plugin,
                with,
                cache_dir: crate::harness::cache_dir(cache_dir),
                reply_timeout: Duration::from_secs(reply_timeout.max(1)),
            };
            let Some(runtime) = super::runtime() else {
                return ExitCode::FAILURE;
            };
            let mut out = std::io::stdout().lock();
            match runtime.block_on(crate::harness::test(&plugins, &dialogs, &mut out)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("wasmtp: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        PluginCommand::Inspect {
            plugin,
            config,
            cache_dir,
        } => {
            crate::logging::init(LogFormat::Text, "warn");
            let Some(runtime) = super::runtime() else {
                return ExitCode::FAILURE;
            };
            let cache_dir = crate::harness::cache_dir(cache_dir);
            let mut out = std::io::stdout().lock();
            let inspected = runtime.block_on(crate::harness::inspect(
                &plugin,
                config.as_deref(),
                cache_dir,
                &mut out,
            ));
            match inspected {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("wasmtp: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
