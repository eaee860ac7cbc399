//! Loading a chain: read, compile (through the cache), link against the
//! `plugin` world, and probe each plugin once (`init` with its config) to
//! learn which hooks it wants. Any failure names the plugin and what is wrong.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::{HooksWanted, PluginPre};
use super::cache::{Cache, sha256};
use super::config::{PluginConfig, PluginHostConfig, PluginLimits};
use super::metrics::PluginMetrics;
use super::pool::{IdleBudget, InstancePool};
use super::sandbox::{PluginInfo, StoreData, arm, new_store};

/// One plugin of a chain, ready to instantiate.
pub(crate) struct LoadedPlugin {
    /// Name, config and limits.
    pub info: Arc<PluginInfo>,
    /// The component, linked and checked against the world.
    pub pre: PluginPre<StoreData>,
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
}

impl Chain {
    /// Drops the idle instances of every plugin and keeps none from now
    /// on: this generation was replaced by a reload.
    pub fn close_pools(&self) {
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
}

/// The linker every plugin is instantiated with.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
    super::bindings::Plugin::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |s| s)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(linker)
}

impl Loader {
    /// Loads every plugin of `plugins`; the first failure is the error.
    pub async fn chain(&self, plugins: &[PluginConfig]) -> anyhow::Result<Chain> {
        let mut chain = Chain::default();
        for (i, p) in plugins.iter().enumerate() {
            if plugins[..i].iter().any(|q| q.name == p.name) {
                anyhow::bail!("plugin {:?}: the name is used twice in [[plugins]]", p.name);
            }
            let loaded = self
                .plugin(p)
                .await
                .map_err(|e| anyhow::anyhow!("plugin {:?} ({}): {e}", p.name, p.path.display()))?;
            chain.wanted |= loaded.wanted;
            chain.plugins.push(Arc::new(loaded));
        }
        Ok(chain)
    }

    async fn plugin(&self, p: &PluginConfig) -> anyhow::Result<LoadedPlugin> {
        let limits = PluginLimits::resolve(&self.cfg, p).map_err(anyhow::Error::msg)?;
        let config = serde_json::to_value(&p.config)?;
        let info = Arc::new(PluginInfo {
            name: Arc::from(p.name.as_str()),
            config_json: config.to_string(),
            config,
            limits,
        });
        let wasm = tokio::fs::read(&p.path)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the component: {e}"))?;
        let digest = sha256(&wasm);
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let component =
            tokio::task::spawn_blocking(move || cache.component(&engine, &wasm, digest))
                .await?
                .map_err(|e| anyhow::anyhow!("not a valid component: {e}"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("imports something the host does not provide: {e}"))?;
        let pre = PluginPre::new(pre).map_err(|e| {
            anyhow::anyhow!("does not export the wasmtp:plugin/hooks interface it needs: {e}")
        })?;
        let wanted = self.probe(&pre, &info).await?;
        let pool = InstancePool::new(limits.pool_size, self.budget.clone());
        let metrics = crate::metrics::enabled()
            .then(|| Box::new(PluginMetrics::new(&p.name, wanted, pool.enabled())));
        Ok(LoadedPlugin {
            info,
            pre,
            wanted,
            pool,
            metrics,
        })
    }

    /// Instantiates once and calls `init`: checks the config and learns the hooks.
    async fn probe(
        &self,
        pre: &PluginPre<StoreData>,
        info: &Arc<PluginInfo>,
    ) -> anyhow::Result<HooksWanted> {
        let mut store = new_store(&self.engine, info, Arc::from("load"));
        arm(&mut store);
        let run = async {
            let plugin = pre.instantiate_async(&mut store).await?;
            plugin
                .wasmtp_plugin_hooks()
                .call_init(&mut store, &info.config_json)
                .await
        };
        match tokio::time::timeout(info.limits.timeout, run).await {
            Err(_) => anyhow::bail!("init timed out after {:?}", info.limits.timeout),
            Ok(Err(e)) => anyhow::bail!("init failed: {e}"),
            Ok(Ok(Err(msg))) => anyhow::bail!("init refused its config: {msg}"),
            Ok(Ok(Ok(wanted))) => Ok(wanted),
        }
    }
}
