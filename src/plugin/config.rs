//! `[plugin_host]` and `[[plugins]]`: the plugin chain's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::grants::Grants;

/// `[plugin_host]`: engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginHostConfig {
    /// Where compiled components are cached (keyed by the wasm's sha256 and
    /// the engine's compatibility hash). Default `target/wasmtp-cache`;
    /// empty: no disk cache.
    pub cache_dir: PathBuf,
    /// Most octets the cache directory may hold: after each load or reload
    /// the least recently used artefacts (by mtime, touched at each use)
    /// that the current chain does not use are removed until it fits.
    /// 0: never evict. Default 2 GiB.
    #[serde(deserialize_with = "crate::config::units::size")]
    pub cache_max_size: u64,
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
    /// Most warm idle instances kept across every plugin and chain
    /// generation for `instances = "pooled"` plugins (each holds a slot of
    /// the pooling allocator, reserved on top of the per-connection ones).
    /// 0 (the default) means twice the sum of the initial chain's
    /// `pool_size`s, at least 32.
    pub max_idle_instances: u32,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from("target/wasmtp-cache"),
            cache_max_size: 2 << 30,
            watch: false,
            watch_interval_ms: 1000,
            epoch_tick_ms: 5,
            max_connections: 0,
            max_memory_mb: 256,
            pooling: true,
            max_idle_instances: 0,
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

/// How a plugin's instances live (`instances` in `[[plugins]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceMode {
    /// A fresh instance per connection, dropped at disconnect (the default).
    #[default]
    PerConnection,
    /// Warm instances are kept after a clean connection and reused by the
    /// next one: host-side state (handles, notes, config) is fresh per
    /// connection, the guest's own memory and globals persist. An instance
    /// whose plugin failed during the connection is never reused.
    Pooled,
}

/// Idle warm instances kept per pooled plugin when `pool_size` is not set.
pub const DEFAULT_POOL_SIZE: u32 = 4;

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
    /// `"per-connection"` (default) or `"pooled"`.
    #[serde(default)]
    pub instances: InstanceMode,
    /// Most idle warm instances kept for this plugin (`pooled` only;
    /// default [`DEFAULT_POOL_SIZE`]).
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Grant: the `dns` interface answers (default false: `refused`).
    #[serde(default)]
    pub dns: bool,
    /// Grant: key-value buckets the plugin may use (default none).
    #[serde(default)]
    pub kv: Vec<String>,
    /// Grant: TCP destinations of `wasi:sockets` (`"ip:port"`,
    /// `"cidr:port"`, `"[ipv6]:port"`; default none).
    #[serde(default)]
    pub connect: Vec<String>,
    /// Grant: origins of `wasi:http` outgoing requests
    /// (`"http://127.0.0.1:11333"`; default none).
    #[serde(default)]
    pub http: Vec<String>,
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
            instances: InstanceMode::default(),
            pool_size: None,
            dns: false,
            kv: Vec::new(),
            connect: Vec::new(),
            http: Vec::new(),
        }
    }

    /// The parsed capability grants; the error names the key (`kv[1]`) and why.
    pub fn grants(&self) -> Result<Grants, (String, String)> {
        super::grants::parse(self.dns, &self.kv, &self.connect, &self.http)
    }

    /// Idle warm instances to keep: 0 in per-connection mode.
    pub fn idle_instances(&self) -> u32 {
        match self.instances {
            InstanceMode::PerConnection => 0,
            InstanceMode::Pooled => self.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
        }
    }

    /// Checks `instances` and `pool_size` together: the offending key and why.
    pub fn check_instances(&self) -> Result<(), (&'static str, String)> {
        match (self.instances, self.pool_size) {
            (InstanceMode::PerConnection, Some(_)) => Err((
                "pool_size",
                "only applies with instances = \"pooled\"".into(),
            )),
            (InstanceMode::Pooled, Some(0)) => Err(("pool_size", "must be at least 1".into())),
            (InstanceMode::Pooled, Some(n)) if n > MAX_POOL_SIZE => {
                Err(("pool_size", format!("must be at most {MAX_POOL_SIZE}")))
            }
            _ => Ok(()),
        }
    }
}

/// Largest `pool_size` accepted.
pub const MAX_POOL_SIZE: u32 = 1024;

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
    /// Idle warm instances kept (0: per-connection instances).
    pub pool_size: usize,
}

impl PluginLimits {
    /// Resolves and checks the limits of `p`.
    pub(crate) fn resolve(host: &PluginHostConfig, p: &PluginConfig) -> Result<Self, String> {
        if p.memory_mb == 0 || p.memory_mb > host.max_memory_mb {
            return Err(format!(
                "memory_mb = {} must be between 1 and [plugin_host] max_memory_mb = {}",
                p.memory_mb, host.max_memory_mb
            ));
        }
        if p.cpu_ms == 0 || p.timeout_ms == 0 {
            return Err("cpu_ms and timeout_ms must be positive".into());
        }
        p.check_instances()
            .map_err(|(key, msg)| format!("{key}: {msg}"))?;
        let tick = host.epoch_tick_ms.max(1);
        Ok(Self {
            cpu_ticks: p.cpu_ms.div_ceil(tick),
            timeout: Duration::from_millis(p.timeout_ms),
            memory_bytes: p.memory_mb << 20,
            failure: p.failure_policy,
            pool_size: p.idle_instances() as usize,
        })
    }
}
