//! Loading a chain: read, compile (through the cache), link against the
//! `plugin` world, and probe each plugin once (`init` with its config) to
//! learn which hooks it wants. Any failure names the plugin and what is
//! wrong, with its cause chain (`anyhow` context).
//!
//! The linker links each WIT interface on its own view of the store
//! (`StoreData::session_view`, `log_view`, `dns_view`, `kv_view`), as
//! wasmtime-wasi does with `WasiCtxView`. The optional `lifecycle` export is
//! looked up per component: present, it is called at every transaction end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use wasmtime::Engine;
use wasmtime::component::{InstancePre, Linker};

use super::bindings::wasmtp::plugin::{dns, host, kv, mime, session, types};
use super::bindings::{HooksIndices, HooksWanted, LifecycleIndices};
use super::cache::{Cache, Digest32, sha256};
use super::config::{PluginConfig, PluginHostConfig, PluginLimits};
use super::failure::PluginFailure;
use super::host_dns::DnsHost;
use super::host_kv::KvHost;
use super::host_log::LogHost;
use super::host_session::SessionHost;
use super::instance::{Component, start};
use super::metrics::PluginMetrics;
use super::pool::{IdleBudget, InstancePool};
use super::sandbox::{PluginInfo, StoreData, Ticker};
use super::services::{HostServices, SessionBudget};

/// A wasmtime error as an `anyhow` one, keeping its cause chain.
pub(crate) fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
    anyhow::Error::from_boxed(boxed)
}

/// One plugin of a chain, ready to instantiate.
pub(crate) struct LoadedPlugin {
    /// Name, config and limits.
    pub info: Arc<PluginInfo>,
    /// The component, linked against the host's imports.
    pub pre: InstancePre<StoreData>,
    /// Where its `hooks` export functions are.
    pub hooks: HooksIndices,
    /// Where its `lifecycle` export is, if it has one.
    pub lifecycle: Option<LifecycleIndices>,
    /// The hooks its `init` asked for (the host never calls the others).
    pub wanted: HooksWanted,
    /// Warm instances kept across connections (`instances = "pooled"`);
    /// belongs to this chain generation.
    pub pool: InstancePool,
    /// Metric handles of its wanted hooks; `None` when `[metrics]` is off.
    pub metrics: Option<Box<PluginMetrics>>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.info.name)
            .field("wanted", &self.wanted)
            .field("lifecycle", &self.lifecycle.is_some())
            .finish_non_exhaustive()
    }
}

/// A loaded chain, in config order.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// The plugins.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    /// Union of every plugin's wanted hooks.
    pub wanted: HooksWanted,
    /// The engine the chain was loaded into, with its services and epoch
    /// ticker: the chain's sessions run on it, and it lives (ticking) as
    /// long as they do, even after a reload moved to a new engine.
    pub runtime: Option<Runtime>,
}

/// An engine, the services its plugins use and the ticker driving its
/// epoch (a chain's sessions keep all three alive).
#[derive(Clone, Debug)]
pub(crate) struct Runtime {
    /// The engine (and its instance pool).
    pub engine: Engine,
    /// DNS and key-value services for granted plugins.
    pub services: HostServices,
    /// Advances `engine`'s epoch while any holder lives (only held).
    pub _ticker: Arc<Ticker>,
}

/// What an engine's instance pool was sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    /// Plugin instances one connection may hold (chain length, at least 4).
    pub per_connection: u32,
    /// Connections served at once.
    pub connections: u32,
    /// Instance slots in all (connections × per connection, idle, headroom).
    pub instances: u32,
    /// Guest calls at once (fiber stacks).
    pub calls: u32,
    /// Idle warm instances kept across every pool.
    pub idle: u32,
}

impl Sizing {
    /// The sizing `plugins` need under `host`.
    pub(crate) fn of(host: &PluginHostConfig, plugins: &[PluginConfig]) -> Self {
        let per_connection = u32::try_from(plugins.len()).unwrap_or(u32::MAX).max(4);
        let connections = match host.max_connections {
            0 => 256,
            n => n,
        };
        // Idle warm instances of pooled plugins hold slots too: reserve
        // them on top of what the connections need.
        let idle = match host.max_idle_instances {
            0 => plugins
                .iter()
                .map(|p| p.idle_instances())
                .fold(0u32, u32::saturating_add)
                .saturating_mul(2)
                .max(32),
            n => n,
        };
        let instances = connections
            .saturating_mul(per_connection)
            .saturating_add(32)
            .saturating_add(idle);
        Self {
            per_connection,
            connections,
            instances,
            calls: connections.saturating_add(32),
            idle,
        }
    }

    /// Whether an engine sized `self` can serve what `need` asks for.
    pub(crate) fn covers(&self, need: &Sizing) -> bool {
        need.per_connection <= self.per_connection
            && need.connections <= self.connections
            && need.instances <= self.instances
            && need.calls <= self.calls
            && need.idle <= self.idle
    }
}

impl Chain {
    /// Drops the idle instances of every plugin and keeps none from now
    /// on: this generation was replaced by a reload.
    pub(crate) fn close_pools(&self) {
        self.plugins.iter().for_each(|p| p.pool.close());
    }
}

/// What loading needs from the host.
pub(crate) struct Loader {
    /// The engine.
    pub engine: Engine,
    /// Linker with WASI (granting nothing) and the `session`/`host` imports.
    pub linker: Linker<StoreData>,
    /// Compiled-component cache.
    pub cache: Arc<Cache>,
    /// Host settings.
    pub cfg: PluginHostConfig,
    /// Idle instances kept across every pool.
    pub budget: Arc<IdleBudget>,
    /// DNS and key-value services for granted plugins.
    pub services: HostServices,
    /// Advances the engine's epoch (shared with every loader on this engine).
    pub ticker: Arc<Ticker>,
    /// What the engine's instance pool was sized for.
    pub sizing: Sizing,
}

/// The linker every plugin is instantiated with: WASI (granting nothing
/// but a plugin's `connect` grant, see the sandbox) and each `wasmtp:plugin`
/// interface on its own view.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(wasm_err)
        .context("linking WASI")?;
    // wasi:http's outgoing handler: refused unless the plugin's `http`
    // grant names the origin (src/plugin/host_http.rs).
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm_err)?;
    // Name lookups: IP literals, and host names through `[dns]` only
    // (src/plugin/host_name_lookup.rs), never the system resolver.
    super::host_name_lookup::add_to_linker(&mut linker)
        .map_err(wasm_err)
        .context("linking wasi:sockets/ip-name-lookup")?;
    let l = &mut linker;
    types::add_to_linker::<StoreData, LogHost>(l, StoreData::log_view).map_err(wasm_err)?;
    session::add_to_linker::<StoreData, SessionHost>(l, StoreData::session_view)
        .map_err(wasm_err)?;
    host::add_to_linker::<StoreData, LogHost>(l, StoreData::log_view).map_err(wasm_err)?;
    dns::add_to_linker::<StoreData, DnsHost>(l, StoreData::dns_view).map_err(wasm_err)?;
    kv::add_to_linker::<StoreData, KvHost>(l, StoreData::kv_view).map_err(wasm_err)?;
    // The MIME view reads the lent session state, like `session`.
    mime::add_to_linker::<StoreData, SessionHost>(l, StoreData::session_view).map_err(wasm_err)?;
    Ok(linker)
}

impl Loader {
    /// Loads every plugin of `plugins`; the first failure is the error.
    /// Then evicts cached artefacts past `cache_max_size` (never this
    /// chain's).
    pub(super) async fn chain(&self, plugins: &[PluginConfig]) -> anyhow::Result<Chain> {
        let mut chain = Chain {
            runtime: Some(Runtime {
                engine: self.engine.clone(),
                services: self.services.clone(),
                _ticker: self.ticker.clone(),
            }),
            ..Chain::default()
        };
        let mut digests = Vec::new();
        for (i, p) in plugins.iter().enumerate() {
            if plugins[..i].iter().any(|q| q.name == p.name) {
                anyhow::bail!("plugin {:?}: the name is used twice in [[plugins]]", p.name);
            }
            let (loaded, digest) = self
                .plugin(p)
                .await
                .with_context(|| format!("plugin {:?} ({})", p.name, p.path.display()))?;
            chain.wanted |= loaded.wanted;
            chain.plugins.push(Arc::new(loaded));
            digests.push(digest);
        }
        self.evict(&digests).await;
        Ok(chain)
    }

    /// Loads every plugin of `plugins` on its own, as [`Loader::chain`]
    /// would (compile, link, `init` with its config), and returns every
    /// failure: the index of the `[[plugins]]` entry and why.
    pub(super) async fn check(&self, plugins: &[PluginConfig]) -> Vec<(usize, anyhow::Error)> {
        let mut failures = Vec::new();
        for (i, p) in plugins.iter().enumerate() {
            if plugins[..i].iter().any(|q| q.name == p.name) {
                failures.push((i, anyhow::anyhow!("the name is used twice in [[plugins]]")));
                continue;
            }
            if let Err(e) = self.plugin(p).await {
                failures.push((i, e));
            }
        }
        failures
    }

    /// Removes cached artefacts past `cache_max_size`, keeping those of
    /// the chain with the wasm `digests`. Failures are only logged.
    async fn evict(&self, digests: &[Digest32]) {
        let Some(dir) = self.cache.dir().map(|d| d.to_path_buf()) else {
            return;
        };
        let keep: HashSet<String> = digests.iter().map(|d| self.cache.file_name(d)).collect();
        let max = self.cfg.cache_max_size;
        let evicted =
            tokio::task::spawn_blocking(move || super::eviction::evict(&dir, &keep, max)).await;
        match evicted {
            Ok(Ok((0, _))) => {}
            Ok(Ok((files, octets))) => {
                tracing::info!(
                    files,
                    octets,
                    "plugin cache: evicted least recently used artefacts"
                )
            }
            Ok(Err(e)) => tracing::warn!("plugin cache eviction failed: {e}"),
            Err(e) => tracing::warn!("plugin cache eviction failed: {e}"),
        }
    }

    /// Loads one plugin; also returns the sha256 of its wasm.
    pub(super) async fn plugin(
        &self,
        p: &PluginConfig,
    ) -> anyhow::Result<(LoadedPlugin, Digest32)> {
        let start = Instant::now();
        let info = self.info(p)?;
        let limits = info.limits;
        let (component, digest, _) = self.compile(p).await?;
        let (pre, hooks, lifecycle) = self.link(&component)?;
        let wanted = self.probe(&pre, &hooks, &info).await?;
        let pool = InstancePool::new(limits.pool_size, self.budget.clone());
        let metrics = crate::metrics::enabled()
            .then(|| Box::new(PluginMetrics::new(&p.name, wanted, pool.enabled())));
        let secs = start.elapsed().as_secs_f64();
        tracing::info!(plugin = %p.name, seconds = secs, "{} ready ({secs:.1} s)", p.name);
        let loaded = LoadedPlugin {
            info,
            pre,
            hooks,
            lifecycle,
            wanted,
            pool,
            metrics,
        };
        Ok((loaded, digest))
    }

    /// The name, config, limits and grants of `p`, checked.
    pub(super) fn info(&self, p: &PluginConfig) -> anyhow::Result<Arc<PluginInfo>> {
        let limits = PluginLimits::resolve(&self.cfg, p).map_err(anyhow::Error::msg)?;
        let grants = p
            .grants()
            .map_err(|(key, msg)| anyhow::anyhow!("{key}: {msg}"))?;
        let config = serde_json::to_value(&p.config)?;
        Ok(Arc::new(PluginInfo {
            name: Arc::from(p.name.as_str()),
            config_json: config.to_string(),
            config,
            limits,
            grants,
        }))
    }

    /// Reads and compiles (through the cache) the component of `p`; also
    /// returns the sha256 of its wasm and whether it was compiled now
    /// (false: it came from the cache).
    pub(super) async fn compile(
        &self,
        p: &PluginConfig,
    ) -> anyhow::Result<(wasmtime::component::Component, Digest32, bool)> {
        let wasm = tokio::fs::read(&p.path)
            .await
            .context("cannot read the component")?;
        let digest = sha256(&wasm);
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let name = p.name.clone();
        let (component, compiled) = tokio::task::spawn_blocking(move || {
            let mut compiled = false;
            let c = cache.component(&engine, &wasm, digest, || {
                compiled = true;
                tracing::info!(plugin = %name, "compiling {name}…");
            });
            c.map(|c| (c, compiled))
        })
        .await?
        .context("not a valid component")?;
        Ok((component, digest, compiled))
    }

    /// Links `component` against the host's imports and finds its
    /// `hooks` (required) and `lifecycle` (optional) exports.
    pub(super) fn link(
        &self,
        component: &wasmtime::component::Component,
    ) -> anyhow::Result<(
        InstancePre<StoreData>,
        HooksIndices,
        Option<LifecycleIndices>,
    )> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(wasm_err)
            .context("imports something the host does not provide")?;
        let hooks = HooksIndices::new(&pre)
            .map_err(wasm_err)
            .context("does not export the wasmtp:plugin/hooks interface it needs")?;
        // Optional: a plugin built for world `plugin` has no lifecycle export.
        let lifecycle = LifecycleIndices::new(&pre).ok();
        Ok((pre, hooks, lifecycle))
    }

    /// Instantiates once and calls `init`: checks the config and learns the hooks.
    pub(super) async fn probe(
        &self,
        pre: &InstancePre<StoreData>,
        hooks: &HooksIndices,
        info: &Arc<PluginInfo>,
    ) -> anyhow::Result<HooksWanted> {
        let budget = Arc::new(SessionBudget::new(self.services.dns_budget));
        let component = Component {
            pre,
            hooks,
            lifecycle: None,
            info,
        };
        let started = start(
            &self.engine,
            component,
            &self.services,
            budget,
            Arc::from("load"),
        )
        .await;
        let (failure, output) = match started {
            Ok((_, wanted)) => return Ok(wanted),
            Err(failed) => failed,
        };
        // A JS or Python init that throws writes its exception to stderr.
        let guest = output
            .map(|text| format!(" (guest output: {text})"))
            .unwrap_or_default();
        match failure {
            e @ PluginFailure::Timeout(_) => Err(e).with_context(|| format!("init{guest}")),
            e @ PluginFailure::InitRefused(_) => Err(e).context("init refused its config"),
            e => Err(e).with_context(|| format!("init failed{guest}")),
        }
    }
}
