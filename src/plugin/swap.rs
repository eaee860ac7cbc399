//! The host and live swap: the current chain is published through an
//! `ArcSwap`. A connection takes the chain current at accept and finishes
//! on it; a reload compiles and validates every plugin first and swaps only
//! when all succeeded, so a broken component never replaces a working chain.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use wasmtime::Engine;

use super::cache::Cache;
use super::chain::PluginSession;
use super::config::{PluginConfig, PluginHostConfig};
use super::loader::{Chain, Loader, Sizing, linker};
use super::pool::IdleBudget;
use super::sandbox::{Ticker, engine};
use super::services::HostServices;

/// A `[[plugins]]` entry that failed to load ([`PluginHost::check`]).
#[derive(Debug, Clone)]
pub struct PluginProblem {
    /// The entry's `name`.
    pub name: String,
    /// The entry's `path` (resolved).
    pub path: PathBuf,
    /// Why, with its cause chain.
    pub error: String,
}

/// The loaded, swappable plugin chain. Cheap to share (`Arc`).
pub struct PluginHost {
    /// The chain new connections get.
    chain: ArcSwap<Chain>,
    /// Engine, linker, cache and settings of the current chain: replaced
    /// by a reload (a new engine when the new chain needs a larger pool).
    loader: ArcSwap<Loader>,
    /// The `[[plugins]]` of the current chain (what the watcher reloads).
    current: Mutex<Vec<PluginConfig>>,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
}

/// A chain loaded and checked by [`PluginHost::prepare`], not yet serving.
pub struct PreparedChain {
    chain: Chain,
    loader: Arc<Loader>,
    plugins: Vec<PluginConfig>,
    /// The old and new pool sizing when a new engine was built.
    resized: Option<(Sizing, Sizing)>,
}

impl PreparedChain {
    /// When the chain needed a larger instance pool than the running
    /// engine has (a longer chain, more connections, more idle instances,
    /// or a changed `[plugin_host] max_memory_mb`, `pooling`,
    /// `epoch_tick_ms`): a one-line summary of the old and new sizing.
    pub fn resized(&self) -> Option<String> {
        self.resized.map(|(old, new)| {
            format!(
                "plugin engine rebuilt: {} connections × {} instances ({} slots) → {} × {} ({} slots); sessions in progress finish on the old engine",
                old.connections,
                old.per_connection,
                old.instances,
                new.connections,
                new.per_connection,
                new.instances
            )
        })
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.plugin_names())
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Loads every plugin of the config (compiling through the cache,
    /// checking each against the world and probing its `init`). The error
    /// names the first plugin that failed and why.
    pub async fn load(
        host: &PluginHostConfig,
        plugins: &[PluginConfig],
    ) -> anyhow::Result<Arc<Self>> {
        Self::load_with(host, plugins, HostServices::default()).await
    }

    /// [`PluginHost::load`] with the DNS and key-value services that
    /// granted plugins use (the server passes those of its config).
    pub async fn load_with(
        host: &PluginHostConfig,
        plugins: &[PluginConfig],
        services: HostServices,
    ) -> anyhow::Result<Arc<Self>> {
        let loader = build_loader(host, plugins, services)?;
        let chain = loader.chain(plugins).await?;
        let me = Arc::new(Self {
            chain: ArcSwap::from_pointee(chain),
            loader: ArcSwap::from_pointee(loader),
            current: Mutex::new(plugins.to_vec()),
            reloading: tokio::sync::Mutex::new(()),
        });
        if host.watch && !plugins.is_empty() {
            spawn_watcher(
                Arc::downgrade(&me),
                Duration::from_millis(host.watch_interval_ms.max(50)),
            );
        }
        Ok(me)
    }

    /// Loads every plugin of `plugins` on its own, the way
    /// [`PluginHost::load_with`] does (compile through the cache, link,
    /// `init` with its config), and returns every failure, each naming the
    /// `[[plugins]]` entry. This is `wasmtp check-config`.
    pub async fn check(
        host: &PluginHostConfig,
        plugins: &[PluginConfig],
        services: HostServices,
    ) -> anyhow::Result<Vec<PluginProblem>> {
        let loader = build_loader(host, plugins, services)?;
        let failures = loader.check(plugins).await;
        Ok(failures
            .into_iter()
            .filter_map(|(i, e)| {
                let p = plugins.get(i)?;
                Some(PluginProblem {
                    name: p.name.clone(),
                    path: p.path.clone(),
                    error: format!("{e:#}"),
                })
            })
            .collect())
    }

    /// A per-connection view of the current chain (call it at accept: the
    /// connection keeps this chain even if a reload happens meanwhile).
    pub fn session(self: &Arc<Self>) -> PluginSession {
        let chain = self.chain.load_full();
        let (engine, services) = match &chain.runtime {
            Some(rt) => (rt.engine.clone(), rt.services.clone()),
            None => {
                let loader = self.loader.load();
                (loader.engine.clone(), loader.services.clone())
            }
        };
        PluginSession::new(chain, engine, services)
    }

    /// Loads and checks `plugins` under `host` with `services`, without
    /// touching the running chain ([`PluginHost::commit`] swaps it in).
    /// The running engine is reused when its instance pool is large
    /// enough for the new chain and `host` keeps its engine settings;
    /// otherwise a new engine is built for the new chain, and sessions in
    /// progress finish on the old one (freed when the last ends).
    pub async fn prepare(
        &self,
        host: &PluginHostConfig,
        plugins: &[PluginConfig],
        services: HostServices,
    ) -> anyhow::Result<PreparedChain> {
        let old = self.loader.load_full();
        let need = Sizing::of(host, plugins);
        let same_engine = old.cfg.max_memory_mb == host.max_memory_mb
            && old.cfg.pooling == host.pooling
            && old.cfg.epoch_tick_ms == host.epoch_tick_ms
            && old.sizing.covers(&need);
        let (loader, resized) = if same_engine {
            let cache = match old.cfg.cache_dir == host.cache_dir {
                true => old.cache.clone(),
                false => Arc::new(Cache::new(&old.engine, &host.cache_dir)),
            };
            let loader = Loader {
                linker: linker(&old.engine)?,
                cache,
                engine: old.engine.clone(),
                cfg: host.clone(),
                budget: old.budget.clone(),
                services,
                ticker: old.ticker.clone(),
                sizing: old.sizing,
            };
            (loader, None)
        } else {
            let loader = build_loader(host, plugins, services)?;
            let sizes = (old.sizing, loader.sizing);
            (loader, Some(sizes))
        };
        let chain = loader.chain(plugins).await?;
        Ok(PreparedChain {
            chain,
            loader: Arc::new(loader),
            plugins: plugins.to_vec(),
            resized,
        })
    }

    /// Swaps in a chain made by [`PluginHost::prepare`]: new connections
    /// get it, connections in flight finish on the old one.
    pub async fn commit(&self, prepared: PreparedChain) {
        let _one_at_a_time = self.reloading.lock().await;
        self.swap_in(prepared);
    }

    fn swap_in(&self, prepared: PreparedChain) {
        if let Some(line) = prepared.resized() {
            tracing::info!("{line}");
        }
        self.loader.store(prepared.loader);
        let old = self.chain.swap(Arc::new(prepared.chain));
        // Connections still on the old chain finish on fresh instances
        // where needed; its warm ones are dropped now, never handed over.
        old.close_pools();
        if let Ok(mut cur) = self.current.lock() {
            *cur = prepared.plugins;
        }
        tracing::info!(plugins = ?self.plugin_names(), "plugin chain reloaded");
    }

    /// The `[plugin_host]` settings of the running engine.
    pub fn host_config(&self) -> PluginHostConfig {
        self.loader.load().cfg.clone()
    }

    /// Replaces the chain (SIGHUP, file watcher): loads and validates every
    /// plugin first; on any failure the current chain stays and the error
    /// names the plugin. New connections get the new chain; connections in
    /// flight finish on the old one.
    pub async fn reload(&self, plugins: &[PluginConfig]) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let (host, services) = {
            let loader = self.loader.load();
            (loader.cfg.clone(), loader.services.clone())
        };
        let prepared = match self.prepare(&host, plugins, services).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("plugin reload refused, keeping the current chain: {e:#}");
                return Err(e);
            }
        };
        self.swap_in(prepared);
        Ok(())
    }

    /// The host services every session of this host uses (the key-value
    /// backend can be set here when a reload first grants a bucket).
    pub fn services(&self) -> HostServices {
        self.loader.load().services.clone()
    }

    /// Reloads the current `[[plugins]]` from their files.
    pub async fn reload_files(&self) -> anyhow::Result<()> {
        let plugins = self.current.lock().map(|c| c.clone()).unwrap_or_default();
        self.reload(&plugins).await
    }

    /// Idle warm instances kept per plugin of the current chain, in chain
    /// order (always 0 for `per-connection` plugins).
    pub fn idle_instances(&self) -> Vec<usize> {
        self.chain
            .load()
            .plugins
            .iter()
            .map(|p| p.pool.idle())
            .collect()
    }

    /// Names of the plugins of the current chain, in order.
    pub fn plugin_names(&self) -> Vec<String> {
        self.chain
            .load()
            .plugins
            .iter()
            .map(|p| p.info.name.to_string())
            .collect()
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.current
            .lock()
            .map(|c| c.iter().map(|p| p.path.clone()).collect())
            .unwrap_or_default()
    }
}

/// A loader on a new engine sized for `plugins` under `host`, with its
/// epoch ticker.
pub(super) fn build_loader(
    host: &PluginHostConfig,
    plugins: &[PluginConfig],
    services: HostServices,
) -> anyhow::Result<Loader> {
    let sizing = Sizing::of(host, plugins);
    let engine: Engine = engine(host, sizing.instances, sizing.calls)?;
    // Before loading: a plugin spinning in `init` must hit its budget.
    let ticker = Ticker::start(
        engine.clone(),
        Duration::from_millis(host.epoch_tick_ms.max(1)),
    )?;
    Ok(Loader {
        linker: linker(&engine)?,
        cache: Arc::new(Cache::new(&engine, &host.cache_dir)),
        engine,
        cfg: host.clone(),
        budget: Arc::new(IdleBudget::new(sizing.idle as usize)),
        services,
        ticker: Arc::new(ticker),
        sizing,
    })
}

/// Polls the plugin files' modification times and reloads on a change.
fn spawn_watcher(host: Weak<PluginHost>, every: Duration) {
    fn stamp(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
        paths
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
    // The files as loaded, taken now: stamped inside the task instead, a
    // file replaced before the task first ran would never be seen to change.
    let Some(mut seen) = host.upgrade().map(|h| stamp(&h.paths())) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(h) = host.upgrade() else { return };
            let now = stamp(&h.paths());
            if now != seen {
                // Remember what triggered this reload (not what is there
                // after it): a file still being written is seen again.
                seen = now;
                tracing::info!("plugin file changed, reloading the chain");
                // Errors are logged by reload; the old chain keeps serving.
                let _ = h.reload_files().await;
            }
        }
    });
}
