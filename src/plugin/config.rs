//! `[plugin_host]` and `[[plugins]]`: the plugin chain's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[plugin_host]`: engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginHostConfig {
    /// Where compiled components are cached (keyed by the wasm's sha256 and
    /// the engine's compatibility hash). Default `target/wasmtp-cache`.
    pub cache_dir: PathBuf,
    /// Reload the chain when a plugin file changes (polls mtimes).
    pub watch: bool,
    /// How often the watcher polls, in milliseconds.
    pub watch_interval_ms: u64,
    /// Epoch tick: the granularity of CPU budgets, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Connections the instance pool is sized for: the pool holds
    /// `max_connections` × chain length instances (at least 4 per
    /// connection) plus headroom. 0 (the default) means the server's
    /// `[server] max_connections`; a library user that leaves it 0 gets 256.
    pub max_connections: u32,
    /// Largest memory any plugin may use (`memory_mb` of a plugin may not
    /// exceed it): what each pool slot reserves.
    pub max_memory_mb: u64,
    /// Use the pooling allocator (false: allocate on demand, for debugging).
    pub pooling: bool,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from("target/wasmtp-cache"),
            watch: false,
            watch_interval_ms: 1000,
            epoch_tick_ms: 5,
            max_connections: 0,
            max_memory_mb: 256,
            pooling: true,
        }
    }
}

/// What the gateway answers when a plugin traps, times out, runs out of
/// memory or returns an invalid verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// `451 4.3.0`: the client retries later (fail closed, the default).
    #[default]
    Tempfail,
    /// As if the plugin had declined (fail open).
    Skip,
    /// `554 5.3.0`: refuse permanently.
    Reject,
}

/// One `[[plugins]]` entry, in chain order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name used in logs and errors (unique within the chain).
    pub name: String,
    /// Path to the component `.wasm`.
    pub path: PathBuf,
    /// The plugin's own settings, handed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Answer when the plugin fails.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// CPU budget per hook call, in milliseconds (epoch-based).
    #[serde(default = "default_cpu_ms")]
    pub cpu_ms: u64,
    /// Wall-clock limit per hook call, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory cap of one instance, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
}

fn default_cpu_ms() -> u64 {
    200
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_memory_mb() -> u64 {
    64
}

impl PluginConfig {
    /// An entry with default limits and policy and an empty `config` table.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            config: toml::Table::new(),
            failure_policy: FailurePolicy::default(),
            cpu_ms: default_cpu_ms(),
            timeout_ms: default_timeout_ms(),
            memory_mb: default_memory_mb(),
        }
    }
}

/// Limits of one plugin, resolved against the host config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PluginLimits {
    /// Epoch ticks a hook may run.
    pub cpu_ticks: u64,
    /// Wall-clock limit of a hook.
    pub timeout: Duration,
    /// Memory cap in bytes.
    pub memory_bytes: u64,
    /// Failure policy.
    pub failure: FailurePolicy,
}

impl PluginLimits {
    /// Resolves and checks the limits of `p`.
    pub fn resolve(host: &PluginHostConfig, p: &PluginConfig) -> Result<Self, String> {
        if p.memory_mb == 0 || p.memory_mb > host.max_memory_mb {
            return Err(format!(
                "memory_mb = {} must be between 1 and [plugin_host] max_memory_mb = {}",
                p.memory_mb, host.max_memory_mb
            ));
        }
        if p.cpu_ms == 0 || p.timeout_ms == 0 {
            return Err("cpu_ms and timeout_ms must be positive".into());
        }
        let tick = host.epoch_tick_ms.max(1);
        Ok(Self {
            cpu_ticks: p.cpu_ms.div_ceil(tick),
            timeout: Duration::from_millis(p.timeout_ms),
            memory_bytes: p.memory_mb << 20,
            failure: p.failure_policy,
        })
    }
}
