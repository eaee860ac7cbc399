//! The `wasmtp plugin inspect` report, written from [`crate::plugin::inspect()`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::plugin::{HostServices, PluginConfig, PluginHostConfig};

/// Inspects `plugin` (with the config table in the TOML file `config`, if
/// given) and writes the report to `out`; false when `init` failed.
pub async fn inspect(
    plugin: &Path,
    config: Option<&Path>,
    cache_dir: PathBuf,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut p = PluginConfig::new(super::plugin_name(plugin), plugin);
    if let Some(file) = config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        p.config = toml::from_str(&text).with_context(|| format!("{}", file.display()))?;
    }
    // Every capability granted, so `init` sees what the plugin would with
    // its grants (nothing answers: no resolver, no store).
    p.dns = true;
    let host = PluginHostConfig {
        cache_dir,
        max_connections: 1,
        ..PluginHostConfig::default()
    };
    let i = crate::plugin::inspect(&host, &p, HostServices::default()).await?;
    writeln!(out, "plugin:    {}", plugin.display())?;
    writeln!(out, "size:      {} octets", i.size)?;
    let cache = if i.cache_hit {
        "cache hit"
    } else {
        "compiled now, cached"
    };
    writeln!(out, "compile:   {:.3} s ({cache})", i.compile.as_secs_f64())?;
    let versions = match i.versions.is_empty() {
        true => "none (not a wasmtp plugin)".to_string(),
        false => i.versions.join(", "),
    };
    writeln!(out, "wasmtp:plugin version: {versions}")?;
    writeln!(out, "imports:")?;
    for (name, cap) in &i.imports {
        match cap {
            Some(c) => writeln!(out, "  {name}    [{c}]")?,
            None => writeln!(out, "  {name}")?,
        }
    }
    writeln!(out, "exports:")?;
    for (name, funcs) in &i.exports {
        match funcs.is_empty() {
            true => writeln!(out, "  {name}")?,
            false => writeln!(out, "  {name}: {}", funcs.join(", "))?,
        }
    }
    writeln!(
        out,
        "lifecycle: {}",
        if i.lifecycle {
            "exported"
        } else {
            "not exported"
        }
    )?;
    match &i.hooks {
        Ok(hooks) => {
            writeln!(out, "hooks (from init): {}", hooks.join(", "))?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "hooks: init failed: {e}")?;
            Ok(false)
        }
    }
}
