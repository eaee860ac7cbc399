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
//!
//! Failures are typed ([`PluginFailure`]): the log keeps the whole cause
//! chain, the metrics count them by reason.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::Resource;

use super::bindings::{
    ConnectionHandle, HooksWanted, TransactionHandle, WitDeliveryReport, WitDeliveryStatus,
    WitTransactionEnd, WitVerdict, wit_params,
};
use super::failure::PluginFailure;
use super::instance::{Component, Instance, start};
use super::loader::{Chain, LoadedPlugin};
use super::sandbox::{arm, placeholder};
use super::services::{HostServices, SessionBudget};
use super::verdict::{check, failure_verdict};
use super::{DELIVERY_SLOT, DENY_SLOT, Hook, TransactionEnd, Verdict};
use crate::context::SessionContext;
use crate::delivery::queue::{DeliveryReport, DeliveryStatus};

/// The chain as one connection sees it: the chain current at accept, and
/// the connection's instances.
pub struct PluginSession {
    chain: Arc<Chain>,
    engine: Engine,
    services: HostServices,
    /// What this session may still spend (DNS lookups), shared by its instances.
    budget: Arc<SessionBudget>,
    instances: Vec<Option<Instance>>,
    /// Plugins that trapped, timed out, ran out of memory or answered
    /// invalidly during this connection: their instances are not pooled.
    failed: Vec<bool>,
    /// What the guest wrote to stdout/stderr during its last failed call
    /// (a JS or Python exception), taken by the failure's log line.
    guest_error: Option<String>,
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
    /// The end of a transaction (`lifecycle.transaction-ended`).
    Ended(TransactionEnd),
}

impl Call<'_, '_> {
    /// The hook's metrics slot.
    fn slot(&self) -> usize {
        match self {
            Call::Hook(hook) => hook.slot(),
            Call::Deny(..) => DENY_SLOT,
            Call::Delivery(_) => DELIVERY_SLOT,
            // Not a hook: timed and counted under no hook slot.
            Call::Ended(_) => usize::MAX,
        }
    }
}

fn wit_end(end: TransactionEnd) -> WitTransactionEnd {
    match end {
        TransactionEnd::Delivered => WitTransactionEnd::Delivered,
        TransactionEnd::Refused => WitTransactionEnd::Refused,
        TransactionEnd::Reset => WitTransactionEnd::Reset,
        TransactionEnd::Hello => WitTransactionEnd::Hello,
        TransactionEnd::Starttls => WitTransactionEnd::Starttls,
        TransactionEnd::Disconnect => WitTransactionEnd::Disconnect,
    }
}

/// Calls the export; `None` for calls without a verdict.
async fn dispatch(inst: &mut Instance, call: Call<'_, '_>) -> wasmtime::Result<Option<WitVerdict>> {
    let g = &inst.hooks;
    let s = &mut inst.store;
    let (c, t) = (conn_handle(), txn_handle());
    let hook = match call {
        Call::Ended(end) => {
            if let Some(l) = &inst.lifecycle {
                l.call_transaction_ended(s, c, wit_end(end)).await?;
            }
            return Ok(None);
        }
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

/// The info line of a plugin's refusal (a deny-class verdict): which
/// plugin refused what, with the reply the client gets.
fn log_refusal(
    plugin: &str,
    hook: &Hook<'_>,
    reply: &crate::protocol::Reply,
    ctx: &SessionContext,
) {
    let sender = match hook {
        Hook::Mail(sender, _) => Some(*sender),
        _ => ctx.txn.as_ref().map(|t| t.sender.as_str()),
    };
    let recipient = match hook {
        Hook::Rcpt(rcpt, _) => Some(*rcpt),
        _ => None,
    };
    tracing::info!(
        plugin,
        session = %ctx.conn.id,
        hook = hook.name(),
        code = reply.code(),
        reply = %reply.to_string().replace("\r\n", " "),
        sender,
        recipient,
        "plugin refused"
    );
}

/// A failure with its cause chain, for the log.
fn describe(f: &PluginFailure) -> String {
    let mut out = f.to_string();
    let mut source = std::error::Error::source(f);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl PluginSession {
    pub(crate) fn new(chain: Arc<Chain>, engine: Engine, services: HostServices) -> Self {
        let n = chain.plugins.len();
        let budget = Arc::new(SessionBudget::new(services.dns_budget));
        Self {
            chain,
            engine,
            services,
            budget,
            instances: (0..n).map(|_| None).collect(),
            failed: vec![false; n],
            guest_error: None,
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
            let healthy = !inst.store.data().lent;
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
        // Whether the decider's verdict is its own (not its failure policy).
        let mut answered = false;
        for i in 0..self.chain.plugins.len() {
            let p = self.chain.plugins[i].clone();
            if !p.wanted.contains(flag) {
                continue;
            }
            let outcome = match self.call(i, &hook, ctx).await {
                Ok(Some(v)) => check(v, &hook).map_err(PluginFailure::InvalidVerdict),
                Ok(None) => Ok(Verdict::Declined),
                Err(e) => Err(e),
            };
            if let Some(m) = &p.metrics {
                match &outcome {
                    Ok(v) => m.verdict(slot, v),
                    Err(f) => m.failure(slot, f.reason()),
                }
            }
            match outcome {
                Ok(Verdict::Declined) => {}
                Ok(v) => {
                    verdict = v;
                    decider = Some(i);
                    answered = true;
                    break;
                }
                Err(failure) => {
                    self.discard(i);
                    let policy = p.info.limits.failure;
                    tracing::warn!(
                        plugin = %p.info.name,
                        session = %ctx.conn.id,
                        hook = hook.name(),
                        reason = failure.reason(),
                        ?policy,
                        guest_error = self.guest_error.take(),
                        "plugin failed: {}",
                        describe(&failure)
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
            if answered {
                log_refusal(&self.chain.plugins[i].info.name, &hook, reply, ctx);
            }
            let code = reply.code();
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
            if let Err(f) = self.with_instance(i, &mut ctx, Call::Delivery(&wit)).await {
                if let Some(m) = &p.metrics {
                    m.failure(DELIVERY_SLOT, f.reason());
                }
                self.discard(i);
                tracing::warn!(plugin = %p.info.name, queue_id = %report.queue_id, hook = "delivery", reason = f.reason(), guest_error = self.guest_error.take(), "plugin failed: {}", describe(&f));
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
            if let Err(f) = result {
                if let Some(m) = &p.metrics {
                    m.failure(DENY_SLOT, f.reason());
                }
                self.discard(i);
                tracing::warn!(plugin = %p.info.name, session = %ctx.conn.id, hook = "deny", reason = f.reason(), guest_error = self.guest_error.take(), "plugin failed: {}", describe(&f));
            }
        }
    }

    /// Tells every plugin exporting `lifecycle` that the open transaction
    /// ended, and why. Called by the driver at each end (after the reply
    /// at the end of data, RSET, a new HELO/EHLO, STARTTLS, disconnect)
    /// only when a transaction was open, before its state is dropped.
    /// Answers are none; a failure is logged and counted, the plugin's
    /// instance is discarded, the session goes on.
    pub async fn transaction_ended(&mut self, end: TransactionEnd, ctx: &mut SessionContext) {
        if !self.chain.plugins.iter().any(|p| p.lifecycle.is_some()) {
            return;
        }
        for i in 0..self.chain.plugins.len() {
            let p = self.chain.plugins[i].clone();
            // Only instances this session already has: a plugin that never
            // ran in this session holds no transaction state to clear.
            if p.lifecycle.is_none() || self.instances[i].is_none() {
                continue;
            }
            if let Err(f) = self.with_instance(i, ctx, Call::Ended(end)).await {
                if let Some(m) = &p.metrics {
                    m.failure(usize::MAX, f.reason());
                }
                self.discard(i);
                tracing::warn!(plugin = %p.info.name, session = %ctx.conn.id, hook = "transaction-ended", reason = f.reason(), guest_error = self.guest_error.take(), "plugin failed: {}", describe(&f));
            }
        }
    }

    async fn call(
        &mut self,
        i: usize,
        hook: &Hook<'_>,
        ctx: &mut SessionContext,
    ) -> Result<Option<WitVerdict>, PluginFailure> {
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
    ) -> Result<Option<WitVerdict>, PluginFailure> {
        let p: Arc<LoadedPlugin> = self.chain.plugins[i].clone();
        let metrics = p.metrics.as_deref();
        if self.instances[i].is_none() {
            // A connection that saw the plugin fail takes no warm instance.
            let warm = if self.failed[i] { None } else { p.pool.take() };
            let inst = match warm {
                Some(mut inst) => {
                    // Host-side state is per connection: only the log
                    // records' session id and the session's budget live
                    // in the store between calls.
                    inst.store.data().session.set(&ctx.conn.id);
                    inst.store.data_mut().budget = self.budget.clone();
                    if let Some(m) = metrics {
                        m.pooled.increment(1);
                    }
                    inst
                }
                None => {
                    let start = metrics.map(|_| Instant::now());
                    let session = Arc::from(ctx.conn.id.as_str());
                    let budget = self.budget.clone();
                    let inst = instantiate(&self.engine, &p, &self.services, budget, session)
                        .await
                        .map_err(|(failure, output)| {
                            self.guest_error = output;
                            failure
                        })?;
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
            return Err(PluginFailure::Init("no instance".into()));
        };
        {
            let data = inst.store.data_mut();
            std::mem::swap(&mut data.ctx, ctx);
            data.lent = true;
        }
        arm(&mut inst.store);
        let limit = p.info.limits.timeout;
        let slot = call.slot();
        let start = metrics.map(|_| Instant::now());
        let result = tokio::time::timeout(limit, dispatch(inst, call)).await;
        if let (Some(m), Some(start)) = (metrics, start) {
            m.call(slot, start.elapsed().as_secs_f64());
        }
        {
            let data = inst.store.data_mut();
            if data.lent {
                std::mem::swap(&mut data.ctx, ctx);
                data.ctx = placeholder();
                data.lent = false;
            }
        }
        let result = match result {
            Err(_) => Err(PluginFailure::Timeout(limit)),
            Ok(Err(e)) => Err(PluginFailure::from_wasmtime(e)),
            Ok(Ok(v)) => Ok(v),
        };
        if result.is_err() {
            self.guest_error = inst.store.data().output.text();
        }
        result
    }
}

/// A fresh instance of `p` for one connection, with `init` called. A
/// failure comes with what the guest wrote to stdout/stderr meanwhile.
async fn instantiate(
    engine: &Engine,
    p: &LoadedPlugin,
    services: &HostServices,
    budget: Arc<SessionBudget>,
    session: Arc<str>,
) -> Result<Instance, (PluginFailure, Option<String>)> {
    let component = Component {
        pre: &p.pre,
        hooks: &p.hooks,
        lifecycle: p.lifecycle.as_ref(),
        info: &p.info,
    };
    match start(engine, component, services, budget, session).await {
        Ok((mut inst, _)) => {
            // What the instance holds after init: its pooled size is
            // measured against it.
            inst.store.data_mut().limits.set_baseline();
            Ok(inst)
        }
        Err((PluginFailure::Other(cause), output)) => {
            Err((PluginFailure::Init(cause.to_string()), output))
        }
        Err(other) => Err(other),
    }
}
