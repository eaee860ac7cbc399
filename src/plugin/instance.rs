//! A plugin instance, and the one way to make one: instantiate the
//! component in a fresh, armed store and call its `init` with the plugin's
//! config, within the plugin's wall-clock `timeout_ms`. The loader does it
//! once per plugin to learn the hooks it wants (and throws the instance
//! away); the chain does it for each connection (or pool slot).

use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use super::bindings::{HooksGuest, HooksIndices, HooksWanted, LifecycleGuest, LifecycleIndices};
use super::failure::PluginFailure;
use super::sandbox::{PluginInfo, StoreData, arm, new_store};
use super::services::{HostServices, SessionBudget};

/// A live plugin instance of one connection (or idle in a pool).
pub(crate) struct Instance {
    /// Its store: the sandbox state and the session state lent to it.
    pub(super) store: Store<StoreData>,
    /// Its `hooks` export.
    pub(super) hooks: HooksGuest,
    /// Its `lifecycle` export, when it has one.
    pub(super) lifecycle: Option<LifecycleGuest>,
}

/// Where a component's exports are, and what it is configured with.
pub(crate) struct Component<'a> {
    /// The component, linked against the host's imports.
    pub pre: &'a InstancePre<StoreData>,
    /// Where its `hooks` export functions are.
    pub hooks: &'a HooksIndices,
    /// Where its `lifecycle` export is; `None` to leave it unloaded.
    pub lifecycle: Option<&'a LifecycleIndices>,
    /// Name, config and limits.
    pub info: &'a Arc<PluginInfo>,
}

/// Instantiates `c` in a new store and calls `init`; the instance and the
/// hooks it asked for. Errors are as wasmtime reported them
/// ([`PluginFailure::from_wasmtime`]), [`PluginFailure::InitRefused`] when
/// `init` refused the config, or [`PluginFailure::Timeout`], each with what
/// the guest wrote to stdout/stderr meanwhile (a JS or Python exception).
pub(crate) async fn start(
    engine: &Engine,
    c: Component<'_>,
    services: &HostServices,
    budget: Arc<SessionBudget>,
    session: Arc<str>,
) -> Result<(Instance, HooksWanted), (PluginFailure, Option<String>)> {
    let mut store = new_store(engine, c.info, services, budget, session);
    arm(&mut store);
    let run = async {
        let instance = c.pre.instantiate_async(&mut store).await?;
        let hooks = c.hooks.load(&mut store, &instance)?;
        let lifecycle = match c.lifecycle {
            Some(l) => Some(l.load(&mut store, &instance)?),
            None => None,
        };
        let init = hooks.call_init(&mut store, &c.info.config_json).await?;
        wasmtime::Result::Ok((hooks, lifecycle, init))
    };
    let outcome = tokio::time::timeout(c.info.limits.timeout, run).await;
    let failed = |f: PluginFailure| Err((f, store.data().output.text()));
    match outcome {
        Err(_) => failed(PluginFailure::Timeout(c.info.limits.timeout)),
        Ok(Err(e)) => failed(PluginFailure::from_wasmtime(e)),
        Ok(Ok((_, _, Err(msg)))) => failed(PluginFailure::InitRefused(msg)),
        Ok(Ok((hooks, lifecycle, Ok(wanted)))) => Ok((
            Instance {
                store,
                hooks,
                lifecycle,
            },
            wanted,
        )),
    }
}
