//! `wasmtp plugin new` and `wasmtp plugin build`: writing and building a
//! plugin outside this repository.
//!
//! The recipes, templates, the WIT and the SDKs live in the
//! `wasmtp-plugin-kit` crate (shared with `cargo xtask plugins`); this
//! module adds what needs the gateway: after a build, the component is
//! checked exactly as `run` and `check-config` load it
//! ([`PluginHost::check`]: compiled, linked against this host's imports,
//! its `wasmtp:plugin/hooks` export found, `init` called with the
//! manifest's `[config]`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use wasmtp_plugin_kit::{Lang, MissingTool, embedded, new, project};

use crate::config::DnsConfig;
use crate::plugin::{HostServices, PluginConfig, PluginHost, PluginHostConfig};

/// The `wasmtp plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project (manifest, README, a small working plugin,
    /// the WIT contract and the language's SDK, `dialogs/basic.dialog`)
    /// that builds without the wasmtp repository.
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        /// Its language: rust, js, python or c.
        #[arg(long, value_parser = parse_lang)]
        lang: Lang,
        /// The project folder (created; must be empty if it exists).
        /// Default: `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the project in DIR (default: the current folder) with the
    /// steps of its `wasmtp-plugin.toml`, then check that the component
    /// exports `wasmtp:plugin/hooks` at a version this gateway links and
    /// that its `init` accepts the manifest's `[config]`. A missing
    /// toolchain is reported with the command that installs it.
    Build {
        /// The project folder.
        dir: Option<PathBuf>,
        /// Keep the compiled component in this cache folder (give the
        /// gateway's `[plugin_host] cache_dir` so its next start does not
        /// compile it again). Default: the cache `wasmtp plugin test` uses
        /// (`$XDG_CACHE_HOME/wasmtp` or `~/.cache/wasmtp`).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

fn parse_lang(s: &str) -> Result<Lang, String> {
    s.parse()
}

/// Runs a `wasmtp plugin` subcommand.
pub fn run(command: PluginCommand) -> ExitCode {
    let result = match command {
        PluginCommand::New { name, lang, dir } => create(&name, lang, dir),
        PluginCommand::Build { dir, cache_dir } => build(
            dir.as_deref().unwrap_or(Path::new(".")),
            crate::harness::cache_dir(cache_dir),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmtp plugin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn create(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = new::create(name, lang, &dir)?;
    println!(
        "created {lang} plugin {name:?} in {} ({} files, contract {})",
        dir.display(),
        files.len(),
        embedded::contract()
    );
    println!("next: cd {} && wasmtp plugin build", dir.display());
    Ok(())
}

fn build(dir: &Path, cache_dir: PathBuf) -> anyhow::Result<()> {
    let built = project::build(dir).map_err(|e| match e.downcast_ref::<MissingTool>() {
        Some(missing) => anyhow::anyhow!("{missing}"),
        None => e,
    })?;
    check(&built, cache_dir)?;
    let size = std::fs::metadata(&built.output)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "built {} ({} KiB in {:.1} s): exports wasmtp:plugin/hooks, links against this \
         gateway ({}), init accepts [config]",
        built.output.display(),
        size / 1024,
        built.elapsed.as_secs_f64(),
        embedded::contract()
    );
    Ok(())
}

/// Loads the built component as the gateway would (an empty `cache_dir`:
/// no disk cache).
fn check(built: &project::Built, cache_dir: PathBuf) -> anyhow::Result<()> {
    let host = PluginHostConfig {
        cache_dir,
        max_connections: 1,
        ..PluginHostConfig::default()
    };
    let mut plugin = PluginConfig::new(&built.manifest.name, &built.output);
    plugin.config = built.manifest.config.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let services = HostServices::new(&DnsConfig::default());
    let problems = runtime.block_on(PluginHost::check(&host, &[plugin], services))?;
    match problems.first() {
        None => Ok(()),
        Some(p) => anyhow::bail!(
            "{} is not a plugin this gateway can load: {}",
            p.path.display(),
            p.error
        ),
    }
}
