//! The sandbox: one engine with a pooling allocator sized from the
//! connection limit, epoch interruption driven by a ticker thread, and one
//! store per plugin instance with a memory cap, a CPU budget and a WASI
//! context that grants nothing (no files, no environment, no name lookup)
//! but the TCP destinations of the plugin's `connect` grant.
//!
//! [`StoreData`] holds everything an instance's host calls may need; each
//! WIT interface sees only its own view of it (`host_session`, `host_log`,
//! `host_dns`, `host_kv`; WASI through [`WasiView`], `wasi:http` through
//! [`WasiHttpView`] with the grant check of `host_http`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::PluginHostConfig;
use super::config::PluginLimits;
use super::failure::CpuBudgetExhausted;
use super::grants::Grants;
use super::host_dns::DnsView;
use super::host_http::HttpGrant;
use super::host_kv::KvView;
use super::host_log::LogView;
use super::host_session::SessionView;
use super::services::{HostServices, SessionBudget};
use crate::context::{Connection, SessionContext};

/// What a plugin instance's store holds.
pub(crate) struct StoreData {
    /// The session state, lent for the duration of one hook call (an empty
    /// placeholder between calls and during `init`).
    pub ctx: SessionContext,
    /// Whether `ctx` is the lent session state (a call is in progress).
    pub lent: bool,
    /// The host services (DNS, key-value).
    pub services: HostServices,
    /// The budget of the session the instance serves now.
    pub budget: Arc<SessionBudget>,
    /// Name and config of the plugin (for `host.config` and log records).
    pub plugin: Arc<PluginInfo>,
    /// Session id for log records (also available while `ctx` is lent out);
    /// shared with the stdout/stderr stream and renamed when a pooled
    /// instance serves another connection.
    pub session: SessionTag,
    /// The end of what the guest wrote to stdout/stderr during the current
    /// call (a JS or Python exception's text), for the failure log line.
    pub output: OutputTail,
    /// WASI state: grants nothing.
    pub wasi: WasiCtx,
    /// WASI's resource table (also holds `wasi:http` resources).
    pub table: ResourceTable,
    /// `wasi:http` state.
    pub http: WasiHttpCtx,
    /// `wasi:http` hooks: the `http` grant check.
    pub http_hooks: HttpGrant,
    /// Memory cap of this instance (all its memories together).
    pub limits: super::limiter::InstanceLimits,
    /// Epoch ticks the current call may still run before it traps.
    pub ticks_left: u64,
}

/// The session id an instance's log records carry; swappable so a warm
/// instance reused by another connection logs under that connection's id.
#[derive(Clone)]
pub(crate) struct SessionTag(Arc<arc_swap::ArcSwap<String>>);

impl SessionTag {
    fn new(id: &str) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(id.to_string())))
    }

    /// The current session id.
    pub(crate) fn get(&self) -> Arc<String> {
        self.0.load_full()
    }

    /// Renames the session (a pooled instance taken by a new connection).
    pub(crate) fn set(&self, id: &str) {
        self.0.store(Arc::new(id.to_string()));
    }
}

/// The parts of a plugin's configuration its instances need at run time.
#[derive(Debug)]
pub(crate) struct PluginInfo {
    /// Name from the `[[plugins]]` entry.
    pub name: Arc<str>,
    /// The `config` table as JSON (argument of `init`, result of `host.config`).
    pub config_json: String,
    /// The same table, parsed, for `host.config-get`.
    pub config: serde_json::Value,
    /// Sandbox limits.
    pub limits: PluginLimits,
    /// Capability grants.
    pub grants: Grants,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl StoreData {
    /// The `session` interface's view.
    pub(crate) fn session_view(&mut self) -> SessionView<'_> {
        SessionView { ctx: &mut self.ctx }
    }

    /// The `host` (and `types`) interface's view.
    pub(crate) fn log_view(&mut self) -> LogView<'_> {
        LogView {
            plugin: &self.plugin,
            session: &self.session,
        }
    }

    /// The `dns` interface's view.
    pub(crate) fn dns_view(&mut self) -> DnsView<'_> {
        DnsView {
            plugin: &self.plugin,
            lookups: self.services.dns.as_deref(),
            budget: &self.budget,
        }
    }

    /// The `kv` interface's view.
    pub(crate) fn kv_view(&mut self) -> KvView<'_> {
        KvView {
            plugin: &self.plugin,
            backend: self.services.kv.get(),
        }
    }
}

/// A context holding nothing, kept in a store between calls and left in
/// the driver's place while the real one is lent to a store (allocation-free).
pub(crate) fn placeholder() -> SessionContext {
    let nowhere = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
    SessionContext {
        conn: Connection::new(String::new(), nowhere, nowhere),
        txn: None,
        max_message_size: 0,
    }
}

/// Builds the one engine of the gateway.
///
/// `instances` is the number of plugin instances that may live at once
/// (connections × chain length plus headroom); `calls` the number of guest
/// calls that may run at once, each on a fiber stack of its own (a
/// connection runs one hook of one plugin at a time, so connections plus
/// headroom). Stacks are sized by `calls`, not `instances`: every pooled
/// stack costs two memory mappings (stack and guard page), and one per
/// instance would pass Linux's default `vm.max_map_count` (65,530) at a few
/// thousand connections with a six-plugin chain.
pub(crate) fn engine(cfg: &PluginHostConfig, instances: u32, calls: u32) -> anyhow::Result<Engine> {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        // Plugins are plain WASIp2 components: no component-model async.
        .concurrency_support(false);
    let max_memory = cfg.max_memory_mb.saturating_mul(1 << 20);
    if cfg.pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(2))
            .total_stacks(calls.min(instances))
            .max_memories_per_component(4)
            .max_tables_per_component(4)
            .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX));
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Reserve only what a memory may grow to, not 4 GiB per slot.
        c.memory_reservation(max_memory).memory_guard_size(2 << 20);
    }
    Engine::new(&c).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))
}

/// Advances the engine's epoch every tick until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    /// Starts the ticker thread.
    pub(super) fn start(engine: Engine, tick: Duration) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wasmtp-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticker")
    }
}

/// A fresh store for one instance of `plugin` in session `session`.
///
/// TCP is enabled only when the plugin has a `connect` grant, and every
/// connect is checked against it; UDP and binding stay off. Name lookups
/// are the host's own (src/plugin/host_name_lookup.rs), not wasmtime-wasi's.
pub(crate) fn new_store(
    engine: &Engine,
    plugin: &Arc<PluginInfo>,
    services: &HostServices,
    budget: Arc<SessionBudget>,
    session: Arc<str>,
) -> Store<StoreData> {
    let session = SessionTag::new(&session);
    let mut wasi = WasiCtx::builder();
    let output = OutputTail::default();
    let out = LogStream {
        plugin: plugin.name.clone(),
        session: session.clone(),
        tail: output.clone(),
    };
    wasi.stdout(out.clone())
        .stderr(out)
        .allow_tcp(!plugin.grants.connect.is_empty())
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if !plugin.grants.connect.is_empty() {
        let grants = plugin.grants.clone();
        let name = plugin.name.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let allowed = match use_ {
                SocketAddrUse::TcpConnect => grants.connect_to(addr),
                // The check wasmtime-wasi makes for the OS's implicit bind
                // before a connect (nothing is bound by it).
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !allowed {
                tracing::info!(plugin = %name, %addr, ?use_, "socket use outside the connect grant refused");
            }
            Box::pin(std::future::ready(allowed))
        });
    }
    let limits = super::limiter::InstanceLimits::new(
        usize::try_from(plugin.limits.memory_bytes).unwrap_or(usize::MAX),
    );
    let data = StoreData {
        ctx: placeholder(),
        lent: false,
        services: services.clone(),
        budget,
        plugin: plugin.clone(),
        session,
        output,
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        http_hooks: HttpGrant::new(plugin.clone()),
        limits,
        ticks_left: 0,
    };
    let mut store = Store::new(engine, data);
    store.limiter(|d| &mut d.limits);
    store.epoch_deadline_callback(|mut cx| {
        let d = cx.data_mut();
        if d.ticks_left == 0 {
            return Err(wasmtime::Error::new(CpuBudgetExhausted));
        }
        d.ticks_left -= 1;
        // Yield to tokio so the wall-clock timeout and other sessions run.
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Arms the CPU budget of the next call (and forgets the guest output of
/// the previous one).
pub(crate) fn arm(store: &mut Store<StoreData>) {
    store.data().output.clear();
    let ticks = store.data().plugin.limits.cpu_ticks;
    store.data_mut().ticks_left = ticks;
    store.set_epoch_deadline(1);
}

/// The plugin's stdout/stderr: each write becomes a debug log record.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
    session: SessionTag,
    tail: OutputTail,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Longest stdout/stderr write kept in the log.
const MAX_PRINT: usize = 1024;

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tail.push(buf);
        let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_PRINT)]);
        let text = text.trim_end();
        if !text.is_empty() {
            let session = self.session.get();
            tracing::debug!(plugin = %self.plugin, session = %session, "plugin output: {text}");
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Most octets of guest output kept for a failure's log line.
const TAIL_MAX: usize = 2048;
/// Most lines of guest output kept for a failure's log line.
const TAIL_LINES: usize = 12;

/// The last [`TAIL_MAX`] octets a guest wrote to stdout/stderr since its
/// current call began: a JS or Python plugin's exception text and traceback
/// (the trap itself only says `unreachable`). Shared by the store and its
/// output stream.
#[derive(Clone, Default)]
pub(crate) struct OutputTail(Arc<std::sync::Mutex<std::collections::VecDeque<u8>>>);

impl OutputTail {
    /// Appends a write, dropping the oldest octets past [`TAIL_MAX`].
    fn push(&self, buf: &[u8]) {
        let Ok(mut tail) = self.0.lock() else { return };
        let keep = &buf[buf.len().saturating_sub(TAIL_MAX)..];
        let excess = (tail.len() + keep.len()).saturating_sub(TAIL_MAX);
        let drop = excess.min(tail.len());
        tail.drain(..drop);
        tail.extend(keep);
    }

    /// Forgets what was written so far.
    pub(crate) fn clear(&self) {
        if let Ok(mut tail) = self.0.lock() {
            tail.clear();
        }
    }

    /// The last few non-empty lines written (joined with " | ", control
    /// characters replaced), or `None` when the guest wrote nothing.
    pub(crate) fn text(&self) -> Option<String> {
        let bytes: Vec<u8> = self.0.lock().ok()?.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let lines = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        let joined = lines
            .join(" | ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>();
        // " | " is longer than the newline it replaces: bound it again.
        let mut start = joined.len().saturating_sub(TAIL_MAX);
        while !joined.is_char_boundary(start) {
            start += 1;
        }
        let joined = &joined[start..];
        (!joined.is_empty()).then(|| joined.to_string())
    }
}

#[cfg(test)]
mod output_tail_tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_bounded() {
        let t = OutputTail::default();
        assert_eq!(t.text(), None);
        t.push(b"Traceback (most recent call last):\n  File \"x\"\n");
        t.push(b"RuntimeError: boom\n");
        assert_eq!(
            t.text().as_deref(),
            Some("Traceback (most recent call last): |   File \"x\" | RuntimeError: boom")
        );
        t.push(&vec![b'a'; 5000]);
        t.push(b"\nlast\n");
        let text = t.text().unwrap_or_default();
        assert!(text.len() <= TAIL_MAX, "{}", text.len());
        assert!(text.ends_with("last"));
        t.clear();
        assert_eq!(t.text(), None);
    }
}
