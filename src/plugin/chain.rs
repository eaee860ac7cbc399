//! Running a hook through the chain for one connection.
//!
//! Instances are per plugin per connection, created at the plugin's first
//! wanted hook (its `init` runs there), reused across the connection's
//! transactions and dropped at disconnect. A `pooled` plugin's connection
//! takes a warm instance from the plugin's pool instead when one is idle,
//! and gives it back at disconnect if the plugin never failed during the
//! connection. The session state is moved into the store for each call and
//! taken back after it, whatever happened, so the host side of the handles
//! works on it directly.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime::{Engine, Store};

use super::bindings::{
    self, ConnectionHandle, HooksWanted, TransactionHandle, WitDeliveryReport, WitDeliveryStatus,
    WitParam, WitVerdict,
};
use super::loader::{Chain, LoadedPlugin};
use super::sandbox::{StoreData, arm, new_store};
use super::verdict::{check, failure_verdict};
use super::{DELIVERY_SLOT, DENY_SLOT, Hook, Verdict};
use crate::context::{Connection, Param, SessionContext};
use crate::queue::{DeliveryReport, DeliveryStatus};

/// A live plugin instance of one connection (or idle in a pool).
pub(crate) struct Instance {
    store: Store<StoreData>,
    plugin: bindings::Plugin,
}

/// The chain as one connection sees it: the chain current at accept, and
/// the connection's instances.
pub struct PluginSession {
    chain: Arc<Chain>,
    engine: Engine,
    instances: Vec<Option<Instance>>,
    /// Plugins that trapped, timed out, ran out of memory or answered
    /// invalidly during this connection: their instances are not pooled.
    failed: Vec<bool>,
}

impl std::fmt::Debug for PluginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSession")
            .field("plugins", &self.chain.plugins.len())
            .field(
                "live_instances",
                &self.instances.iter().filter(|i| i.is_some()).count(),
            )
            .finish()
    }
}

/// A context holding nothing, left in the driver's place while the real one
/// is lent to a store (allocation-free).
fn placeholder() -> SessionContext {
    let nowhere = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    SessionContext {
        conn: Connection::new(String::new(), nowhere, nowhere),
        txn: None,
        max_message_size: 0,
    }
}

fn wit_params(params: &[Param]) -> Vec<WitParam> {
    params
        .iter()
        .map(|p| WitParam {
            key: p.key.clone(),
            value: p.value.clone(),
        })
        .collect()
}

fn conn_handle() -> Resource<ConnectionHandle> {
    Resource::new_borrow(0)
}

fn txn_handle() -> Resource<TransactionHandle> {
    Resource::new_borrow(1)
}

/// One guest call.
enum Call<'a, 'h> {
    /// A protocol hook.
    Hook(&'a Hook<'h>),
    /// A `deny` notification: hook name, denying plugin, reply code.
    Deny(&'static str, &'a str, u16),
    /// A store-and-forward outcome for one recipient.
    Delivery(&'a WitDeliveryReport),
}

impl Call<'_, '_> {
    /// The hook's metrics slot.
    fn slot(&self) -> usize {
        match self {
            Call::Hook(hook) => hook.slot(),
            Call::Deny(..) => DENY_SLOT,
            Call::Delivery(_) => DELIVERY_SLOT,
        }
    }
}

/// Calls the export; `None` for calls without a verdict.
async fn dispatch(inst: &mut Instance, call: Call<'_, '_>) -> wasmtime::Result<Option<WitVerdict>> {
    let g = inst.plugin.wasmtp_plugin_hooks();
    let s = &mut inst.store;
    let (c, t) = (conn_handle(), txn_handle());
    let hook = match call {
        Call::Hook(hook) => hook,
        Call::Deny(hook, plugin, code) => {
            g.call_deny(s, c, hook, plugin, code).await?;
            return Ok(None);
        }
        Call::Delivery(report) => {
            // No connection exists: the handles are not lent.
            let _unused = (c, t);
            g.call_delivery(s, report).await?;
            return Ok(None);
        }
    };
    let v = match *hook {
        Hook::Connect => g.call_connect(s, c).await?,
        Hook::Helo(h) => g.call_helo(s, c, h).await?,
        Hook::Ehlo(h) => g.call_ehlo(s, c, h).await?,
        Hook::Mail(a, p) => g.call_mail(s, c, t, a, &wit_params(p)).await?,
        Hook::Rcpt(a, p) => g.call_rcpt(s, c, t, a, &wit_params(p)).await?,
        Hook::Data => g.call_data(s, c, t).await?,
        Hook::DataHeaders => g.call_data_headers(s, c, t).await?,
        Hook::BodyChunk(offset, chunk) => g.call_body_chunk(s, c, t, offset, chunk).await?,
        Hook::DataPost => g.call_data_post(s, c, t).await?,
        Hook::Queue => g.call_queue(s, c, t).await?,
        Hook::Reset => g.call_reset(s, c).await?,
        Hook::Quit => g.call_quit(s, c).await?,
        Hook::Disconnect => {
            g.call_disconnect(s, c).await?;
            return Ok(None);
        }
        Hook::Unrecognized(verb, args) => g.call_unrecognized_command(s, c, verb, args).await?,
        Hook::Vrfy(a) => g.call_vrfy(s, c, a).await?,
        Hook::Noop(a) => g.call_noop(s, c, a).await?,
        Hook::Help(a) => g.call_help(s, c, a).await?,
        Hook::Auth(mech, authzid, user, pass) => {
            g.call_auth(s, c, mech, authzid, user, pass).await?
        }
    };
    Ok(Some(v))
}

/// Why a call failed, for the log.
fn describe(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("trap ({trap}): {e:?}"),
        None => format!("{e:?}"),
    }
}

impl PluginSession {
    pub(crate) fn new(chain: Arc<Chain>, engine: Engine) -> Self {
        let n = chain.plugins.len();
        Self {
            chain,
            engine,
            instances: (0..n).map(|_| None).collect(),
            failed: vec![false; n],
        }
    }

    /// Drops plugin `i`'s instance after a failure; the plugin's instances
    /// of this connection are no longer pooled.
    fn discard(&mut self, i: usize) {
        self.instances[i] = None;
        self.failed[i] = true;
    }

    /// Ends the connection's use of its instances: healthy instances of
    /// pooled plugins that never failed go back to their pool (if it has
    /// room), every other one is dropped.
    fn release(&mut self) {
        for i in 0..self.instances.len() {
            let Some(inst) = self.instances[i].take() else {
                continue;
            };
            let p = &self.chain.plugins[i];
            // The session state is always taken back after a call; an
            // instance still holding it was interrupted mid-call.
            let healthy = inst.store.data().ctx.is_none();
            if !p.pool.enabled() || self.failed[i] || !healthy {
                continue;
            }
            // An instance that grew (a large message) would keep its peak
            // memory while idle: drop it, a fresh one starts small.
            let memory = inst.store.data().limits.memory();
            if inst
                .store
                .data()
                .limits
                .grew_past(super::limiter::POOL_GROWTH_MAX)
            {
                tracing::debug!(plugin = %p.info.name, memory, "pooled instance grew too large: dropped");
                continue;
            }
            let kept = p.pool.put(inst);
            tracing::debug!(plugin = %p.info.name, kept, "pooled instance released");
        }
    }

    /// Whether any plugin of this connection's chain wants `hook`: the
    /// driver can skip work (e.g. body chunks) nobody looks at.
    pub fn wants(&self, hook: &Hook<'_>) -> bool {
        self.chain.wanted.contains(hook.flag())
    }

    /// Number of plugins in this connection's chain.
    pub fn chain_len(&self) -> usize {
        self.chain.plugins.len()
    }

    /// Runs the chain for one hook: each plugin that wants it, in order,
    /// until one does not decline. Failures are answered by the failing
    /// plugin's policy; deny-class verdicts are then told to the plugins
    /// that want `deny`. `Disconnect` runs every plugin and then releases the
    /// connection's instances (see [`PluginSession::disconnect`]).
    pub async fn run(&mut self, hook: Hook<'_>, ctx: &mut SessionContext) -> Verdict {
        let flag = hook.flag();
        let slot = hook.slot();
        let mut verdict = Verdict::Declined;
        let mut decider = None;
        for i in 0..self.chain.plugins.len() {
            let p = self.chain.plugins[i].clone();
            if !p.wanted.contains(flag) {
                continue;
            }
            let outcome = match self.call(i, &hook, ctx).await {
                Ok(Some(v)) => check(v, &hook),
                Ok(None) => Ok(Verdict::Declined),
                Err(e) => Err(e),
            };
            if let Some(m) = &p.metrics {
                match &outcome {
                    Ok(v) => m.verdict(slot, v),
                    Err(_) => m.failure(slot),
                }
            }
            match outcome {
                Ok(Verdict::Declined) => {}
                Ok(v) => {
                    verdict = v;
                    decider = Some(i);
                    break;
                }
                Err(reason) => {
                    self.discard(i);
                    let policy = p.info.limits.failure;
                    tracing::warn!(
                        plugin = %p.info.name,
                        session = %ctx.conn.id,
                        hook = hook.name(),
                        ?policy,
                        "plugin failed: {reason}"
                    );
                    if let Some(v) = failure_verdict(policy) {
                        verdict = v;
                        decider = Some(i);
                        break;
                    }
                }
            }
        }
        if matches!(hook, Hook::Disconnect) {
            self.release();
            return Verdict::Declined;
        }
        if let (Some(i), Some(reply)) = (decider, verdict.deny_reply()) {
            let code = reply.code;
            self.notify_deny(i, &hook, code, ctx).await;
        }
        verdict
    }

    /// Tells every plugin that wants `delivery` what happened to one
    /// recipient of a spooled message. Called outside any connection (on a
    /// session of its own); answers are ignored and failures only logged.
    pub async fn delivery_report(&mut self, report: &DeliveryReport) {
        if !self.chain.wanted.contains(HooksWanted::DELIVERY) {
            return;
        }
        let wit = WitDeliveryReport {
            queue_id: report.queue_id.clone(),
            sender: report.sender.clone(),
            recipient: report.recipient.clone(),
            status: match report.status {
                DeliveryStatus::Delivered => WitDeliveryStatus::Delivered,
                DeliveryStatus::Deferred => WitDeliveryStatus::Deferred,
                DeliveryStatus::Bounced => WitDeliveryStatus::Bounced,
            },
            code: report.code,
            text: report.text.clone(),
            attempts: report.attempts,
        };
        let mut ctx = placeholder();
        ctx.conn.id = format!("delivery-{}", report.queue_id);
        for i in 0..self.chain.plugins.len() {
            let p = self.chain.plugins[i].clone();
            if !p.wanted.contains(HooksWanted::DELIVERY) {
                continue;
            }
            if let Err(reason) = self.with_instance(i, &mut ctx, Call::Delivery(&wit)).await {
                if let Some(m) = &p.metrics {
                    m.failure(DELIVERY_SLOT);
                }
                self.discard(i);
                tracing::warn!(plugin = %p.info.name, queue_id = %report.queue_id, hook = "delivery", "plugin failed: {reason}");
            }
        }
        self.release();
    }

    /// Runs the `disconnect` hooks and releases every instance (dropped, or
    /// given back to its pool for a `pooled` plugin that never failed).
    pub async fn disconnect(&mut self, ctx: &mut SessionContext) {
        self.run(Hook::Disconnect, ctx).await;
    }

    /// Tells the plugins that want `deny` (other than the denier) that
    /// `decider` denied in `hook`. Their answers are ignored.
    async fn notify_deny(
        &mut self,
        decider: usize,
        hook: &Hook<'_>,
        code: u16,
        ctx: &mut SessionContext,
    ) {
        if !self.chain.wanted.contains(HooksWanted::DENY) {
            return;
        }
        let denier = self.chain.plugins[decider].info.name.clone();
        for i in 0..self.chain.plugins.len() {
            let p = self.chain.plugins[i].clone();
            if i == decider || !p.wanted.contains(HooksWanted::DENY) {
                continue;
            }
            let result = self
                .with_instance(i, ctx, Call::Deny(hook.name(), &denier, code))
                .await;
            if let Err(reason) = result {
                if let Some(m) = &p.metrics {
                    m.failure(DENY_SLOT);
                }
                self.discard(i);
                tracing::warn!(plugin = %p.info.name, session = %ctx.conn.id, hook = "deny", "plugin failed: {reason}");
            }
        }
    }

    async fn call(
        &mut self,
        i: usize,
        hook: &Hook<'_>,
        ctx: &mut SessionContext,
    ) -> Result<Option<WitVerdict>, String> {
        self.with_instance(i, ctx, Call::Hook(hook)).await
    }

    /// Makes sure plugin `i` has an instance, lends `ctx` to it, makes the
    /// call under the plugin's CPU budget and wall-clock limit, and takes
    /// `ctx` back. With `[metrics]` on, times the instantiation of a fresh
    /// instance and the guest call (the clock is not read otherwise).
    async fn with_instance(
        &mut self,
        i: usize,
        ctx: &mut SessionContext,
        call: Call<'_, '_>,
    ) -> Result<Option<WitVerdict>, String> {
        let p: Arc<LoadedPlugin> = self.chain.plugins[i].clone();
        let metrics = p.metrics.as_deref();
        if self.instances[i].is_none() {
            // A connection that saw the plugin fail takes no warm instance.
            let warm = if self.failed[i] { None } else { p.pool.take() };
            let inst = match warm {
                Some(inst) => {
                    // Host-side state is per connection: only the log
                    // records' session id lives in the store between calls.
                    inst.store.data().session.set(&ctx.conn.id);
                    if let Some(m) = metrics {
                        m.pooled.increment(1);
                    }
                    inst
                }
                None => {
                    let start = metrics.map(|_| Instant::now());
                    let session = Arc::from(ctx.conn.id.as_str());
                    let inst = instantiate(&self.engine, &p, session).await?;
                    if let (Some(m), Some(start)) = (metrics, start) {
                        m.instantiate.record(start.elapsed().as_secs_f64());
                        m.fresh.increment(1);
                    }
                    inst
                }
            };
            self.instances[i] = Some(inst);
        }
        let Some(inst) = self.instances[i].as_mut() else {
            return Err("no instance".into());
        };
        inst.store.data_mut().ctx = Some(std::mem::replace(ctx, placeholder()));
        arm(&mut inst.store);
        let limit = p.info.limits.timeout;
        let slot = call.slot();
        let start = metrics.map(|_| Instant::now());
        let result = tokio::time::timeout(limit, dispatch(inst, call)).await;
        if let (Some(m), Some(start)) = (metrics, start) {
            m.call(slot, start.elapsed().as_secs_f64());
        }
        if let Some(lent) = inst.store.data_mut().ctx.take() {
            *ctx = lent;
        }
        match result {
            Err(_) => Err(format!("timed out after {} ms", limit.as_millis())),
            Ok(Err(e)) => Err(describe(&e)),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// A fresh instance of `p`, with `init` called.
async fn instantiate(
    engine: &Engine,
    p: &LoadedPlugin,
    session: Arc<str>,
) -> Result<Instance, String> {
    let mut store = new_store(engine, &p.info, session);
    arm(&mut store);
    let run = async {
        let plugin = p.pre.instantiate_async(&mut store).await?;
        let init = plugin
            .wasmtp_plugin_hooks()
            .call_init(&mut store, &p.info.config_json)
            .await?;
        wasmtime::Result::Ok((plugin, init))
    };
    match tokio::time::timeout(p.info.limits.timeout, run).await {
        Err(_) => Err("init timed out".into()),
        Ok(Err(e)) => Err(format!("instantiation failed: {}", describe(&e))),
        Ok(Ok((_, Err(msg)))) => Err(format!("init refused: {msg}")),
        Ok(Ok((plugin, Ok(_)))) => {
            // What the instance holds after init: its pooled size is
            // measured against it.
            store.data_mut().limits.set_baseline();
            Ok(Instance { store, plugin })
        }
    }
}
