//! Listeners, admission and shutdown: the server around the sessions.
//!
//! - One accept loop per `[[listeners]]` entry, with backoff on accept errors.
//! - Admission: a global semaphore (`max_connections`) and a per-IP count
//!   (`max_connections_per_ip`); a connection over either cap gets
//!   `421 4.7.0` and is closed at once, without a session task.
//! - PROXY protocol (`proxy_protocol = true` on a listener): only peers in
//!   `proxy_trusted` are served; each must send a v1 or v2 header (read
//!   within `[timeouts] command`) before the greeting, and the client
//!   address it names is the session's remote address everywhere (caps,
//!   relay networks, reverse DNS, Received, plugins, logs). Anything else
//!   is closed before the greeting with one log line
//!   ([`crate::session::proxy`]).
//! - Graceful shutdown: when the `shutdown` future completes, stop accepting,
//!   let sessions finish for `shutdown_grace`, then tell the rest to send
//!   `421 4.3.2` and close (a session finishes a delivery it started first).
//! - Reload (SIGHUP in the binary): [`Reloader::reload`] re-reads the config
//!   file and swaps the plugin chain; sessions keep the chain they started with.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::auth::Users;
use crate::config::{Config, ListenerMode};
use crate::delivery::Deliverer;
use crate::dns::ReverseDns;
use crate::ids;
use crate::plugin::PluginHost;
use crate::protocol::Reply;
use crate::protocol::proxy::ProxyHeader;
use crate::relay::RelayPolicy;
use crate::session::proxy::ProxyPolicy;
use crate::session::{ListenerInfo, Session, Shared};
use crate::shutdown::{self, Signal};

/// A bound, not yet serving, server.
pub struct Server {
    listeners: Vec<Bound>,
    shared: Arc<Shared>,
    limits: Limits,
    grace: Duration,
    origin: Option<PathBuf>,
}

struct Bound {
    tcp: TcpListener,
    addr: SocketAddr,
    info: Arc<ListenerInfo>,
}

/// Connection caps shared by every accept loop.
#[derive(Clone)]
struct Limits {
    global: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
    /// IPv6 clients are counted per network of this prefix length.
    v6_prefix: u8,
}

/// Held by a session for its lifetime: a global permit and an IP slot.
struct Admission {
    _permit: OwnedSemaphorePermit,
    _slot: IpSlot,
}

struct IpSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// A global permit, taken at accept (before a PROXY header is read).
    fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.global.clone().try_acquire_owned().ok()
    }

    /// A slot for client `ip` (the one a PROXY header names, if any).
    fn admit(&self, permit: OwnedSemaphorePermit, ip: IpAddr) -> Option<Admission> {
        let ip = crate::session::throttle::client_key(ip, self.v6_prefix);
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(Admission {
            _permit: permit,
            _slot: IpSlot {
                map: self.per_ip.clone(),
                ip,
            },
        })
    }
}

/// Re-reads the config file and swaps the plugin chain (SIGHUP).
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
    origin: Option<PathBuf>,
}

impl Reloader {
    /// Loads the plugin chain of the config file anew and swaps it in, and
    /// returns the new chain's plugin names. On any error the running chain
    /// stays and the error is returned. Only the plugin sections take
    /// effect; other changes need a restart.
    pub async fn reload(&self) -> anyhow::Result<Vec<String>> {
        let path = self
            .origin
            .as_ref()
            .context("the config was not loaded from a file: nothing to reload")?;
        let config = Config::load(path)?;
        // A bucket granted for the first time by this reload: open the store
        // now (of the reloaded `[kv]`, since none was opened before).
        open_kv_if_granted(&config, self.shared.plugins.services()).await?;
        // Same engine, instance pool and compiled-component cache: only the
        // chain is swapped (in-flight sessions finish on the old one).
        // Logs "plugin chain reloaded" (once) when it succeeds.
        self.shared.plugins.reload(&config.plugins).await?;
        Ok(self.shared.plugins.plugin_names())
    }
}

/// Opens the `[kv]` store and hands it to the plugin host's services when a
/// plugin of `config` is granted a bucket and no store is open yet. The
/// store then stays open for the life of the process: SIGHUP swaps
/// plugins, not state, and a `[kv]` changed later needs a restart.
async fn open_kv_if_granted(
    config: &Config,
    services: &crate::plugin::HostServices,
) -> anyhow::Result<()> {
    let wants_kv = config
        .plugins
        .iter()
        .any(|p| p.grants().is_ok_and(|g| !g.kv.is_empty()));
    if !wants_kv || services.has_kv() {
        return Ok(());
    }
    let store = crate::kv::KvStore::open(&config.kv)
        .await
        .context("opening the [kv] store")?;
    tracing::info!(backend = ?config.kv.backend, "kv store open");
    services.set_kv(Arc::new(store));
    Ok(())
}

/// Hands every store-and-forward outcome to the plugins that want the
/// `delivery` hook, on the chain current when the report arrives. Ends when
/// the spool shuts down.
async fn forward_delivery_reports(
    mut reports: tokio::sync::broadcast::Receiver<crate::delivery::queue::DeliveryReport>,
    plugins: Arc<PluginHost>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match reports.recv().await {
            Ok(report) => plugins.session().delivery_report(&report).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "delivery reports dropped: plugins too slow")
            }
            Err(RecvError::Closed) => break,
        }
    }
}

impl Server {
    /// Prepares TLS, delivery and plugins and binds every listener.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let tls = crate::tls::server_config(&config.tls, &config.server.hostname)?;
        let deliverer = Deliverer::with_hostname(&config.delivery, &config.server.hostname)
            .await
            .context("setting up delivery")?;
        let mut plugin_host = config.plugin_host.clone();
        if plugin_host.max_connections == 0 {
            plugin_host.max_connections =
                u32::try_from(config.server.max_connections).unwrap_or(u32::MAX);
        }
        let services = crate::plugin::HostServices::new(&config.dns);
        open_kv_if_granted(&config, &services).await?;
        let plugins = PluginHost::load_with(&plugin_host, &config.plugins, services)
            .await
            .context("loading plugins")?;
        if let Some(reports) = deliverer.subscribe_reports() {
            tokio::spawn(forward_delivery_reports(reports, plugins.clone()));
        }
        let shared = Arc::new(Shared {
            hostname: config.server.hostname.clone(),
            timeouts: config.timeouts.clone(),
            relay: RelayPolicy::new(&config.relay).with_postmaster(&config.postmaster()),
            auth_throttle: crate::session::throttle::AuthThrottle::new(
                config.auth.max_failures_per_ip,
                config.auth.failure_window,
                config.auth.failure_delay,
                config.server.ipv6_prefix_per_ip,
            ),
            users: Users::new(&config.auth),
            dns: ReverseDns::new(&config.dns),
            deliverer,
            plugins,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            metrics: crate::metrics::SessionMetrics::new(),
            header_limits: crate::message::HeaderLimits {
                max_fields: config.limits.max_header_fields,
                max_bytes: usize::try_from(config.limits.max_header_bytes).unwrap_or(usize::MAX),
            },
            memory_budget: crate::session::budget::MemoryBudget::new(config.limits.memory_budget),
            plugin_limits: crate::context::PluginLimits::default(),
        });
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let tcp = TcpListener::bind(l.address)
                .await
                .with_context(|| format!("binding {} listener {}", l.mode, l.address))?;
            let addr = tcp.local_addr()?;
            if l.proxy_protocol {
                tracing::info!(address = %addr, mode = %l.mode, proxy_protocol = true, "listening");
            } else {
                tracing::info!(address = %addr, mode = %l.mode, "listening");
            }
            listeners.push(Bound {
                tcp,
                addr,
                info: Arc::new(ListenerInfo {
                    mode: l.mode,
                    engine: Arc::new(config.engine_config(l)),
                    proxy: l.proxy_protocol.then(|| ProxyPolicy::new(&l.proxy_trusted)),
                }),
            });
        }
        Ok(Self {
            listeners,
            shared,
            limits: Limits {
                global: Arc::new(Semaphore::new(config.server.max_connections)),
                per_ip: Arc::new(Mutex::new(HashMap::new())),
                max_per_ip: config.server.max_connections_per_ip,
                v6_prefix: config.server.ipv6_prefix_per_ip,
            },
            grace: config.server.shutdown_grace,
            origin: config.origin.clone(),
        })
    }

    /// The bound addresses (useful with port 0), in config order.
    pub fn local_addrs(&self) -> Vec<(ListenerMode, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.info.mode, l.addr))
            .collect()
    }

    /// A handle to reload the plugin chain while serving.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            shared: self.shared.clone(),
            origin: self.origin.clone(),
        }
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = shutdown::channel();
        let (force_tx, force_rx) = shutdown::channel();
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut accepting = JoinSet::new();
        for bound in self.listeners {
            accepting.spawn(accept_loop(
                bound,
                self.shared.clone(),
                self.limits.clone(),
                stop_rx.clone(),
                force_rx.clone(),
                done_tx.clone(),
            ));
        }
        drop(done_tx);

        shutdown.await;
        tracing::info!("shutting down: no longer accepting connections");
        stop_tx.fire();
        while accepting.join_next().await.is_some() {}

        if tokio::time::timeout(self.grace, done_rx.recv())
            .await
            .is_err()
        {
            tracing::info!("grace period over: closing the remaining sessions");
            force_tx.fire();
            if tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
                .await
                .is_err()
            {
                tracing::warn!("sessions still busy after the grace period; leaving");
            }
        }
        self.shared.deliverer.close().await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// Binds and serves `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown).await
}

/// As [`run`], with the process signals: SIGTERM/SIGINT shut down
/// gracefully, SIGHUP reloads the plugin chain; systemd is told of each
/// ([`crate::notify`]: `READY=1` once serving). This is `wasmtp run`: it
/// also opens the `[metrics]` endpoint (once per process), before the
/// plugin chain loads so the chain's metric handles are live.
pub async fn run_with_signals(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    crate::metrics::install(&config.metrics)?;
    let control = config.server.control_socket.clone();
    // Before binding: a SIGHUP sent as soon as the listeners are logged
    // must be queued for the reloader, not kill the process.
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let server = Server::bind(config).await?;
    let reloader = server.reloader();
    // Removed when dropped, at the end of this function. Without it the
    // gateway still serves (and SIGHUP still reloads): only `wasmtp
    // reload` cannot reach it.
    let _control = match control.as_os_str().is_empty() {
        true => None,
        false => crate::control::ControlSocket::open(&control, reloader.clone())
            .inspect_err(|e| {
                tracing::error!(
                    error = format!("{e:#}"),
                    "control socket unavailable: `wasmtp reload` cannot reach this gateway (SIGHUP still reloads)"
                )
            })
            .ok(),
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the plugin chain");
            crate::notify::notify(crate::notify::RELOADING);
            if let Err(e) = reloader.reload().await.map(drop) {
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload failed; the running chain stays"
                );
            }
            crate::notify::notify(crate::notify::READY);
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        crate::notify::notify(crate::notify::STOPPING);
    };
    // Every listener is bound, the chain is loaded and the signal handlers
    // are in place: connections are served from here on.
    crate::notify::notify(crate::notify::READY);
    server.serve(shutdown).await
}

async fn accept_loop(
    bound: Bound,
    shared: Arc<Shared>,
    limits: Limits,
    stop: Signal,
    force: Signal,
    done: mpsc::Sender<()>,
) {
    const MIN_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait() => return,
            r = bound.tcp.accept() => r,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => {
                backoff = MIN_BACKOFF;
                pair
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let local = tcp.local_addr().unwrap_or(bound.addr);
        if let Some(policy) = &bound.info.proxy
            && !policy.trusts(remote.ip())
        {
            tracing::info!(%remote, "connection closed: not a trusted PROXY protocol source");
            continue;
        }
        let Some(permit) = limits.permit() else {
            tracing::info!(%remote, "connection refused: too many connections");
            refuse(
                tcp,
                &crate::protocol::replies::too_many_connections(&shared.hostname),
            );
            continue;
        };
        let accepted = Accepted {
            tcp,
            peer: remote,
            local,
            permit,
        };
        if bound.info.proxy.is_none() {
            start_session(accepted, None, &shared, &bound.info, &limits, &force, &done);
            continue;
        }
        // The header is read in a task of its own, so a slow load balancer
        // does not hold up the accept loop; `done` keeps shutdown waiting.
        let (shared, info, limits) = (shared.clone(), bound.info.clone(), limits.clone());
        let (force, done) = (force.clone(), done.clone());
        tokio::spawn(async move {
            let mut accepted = accepted;
            let deadline = tokio::time::Instant::now() + shared.timeouts.command;
            let read = crate::session::proxy::read_header(&mut accepted.tcp, deadline);
            let header = tokio::select! {
                biased;
                _ = force.wait() => return,
                h = read => h,
            };
            match header {
                Ok(header) => start_session(
                    accepted,
                    Some(header),
                    &shared,
                    &info,
                    &limits,
                    &force,
                    &done,
                ),
                Err(failure) => failure.log(accepted.peer),
            }
        });
    }
}

/// A connection accepted and counted against `max_connections`.
struct Accepted {
    tcp: TcpStream,
    /// The socket's peer (the load balancer behind PROXY protocol).
    peer: SocketAddr,
    local: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// Admits the client (per-IP cap, on the address of the PROXY `header`
/// if there is one) and spawns its session.
fn start_session(
    accepted: Accepted,
    header: Option<ProxyHeader>,
    shared: &Arc<Shared>,
    info: &Arc<ListenerInfo>,
    limits: &Limits,
    force: &Signal,
    done: &mpsc::Sender<()>,
) {
    let Accepted {
        tcp,
        peer,
        local,
        permit,
    } = accepted;
    let (remote, local) = match header {
        Some(h) => h.addresses(peer, local),
        None => (peer, local),
    };
    let Some(admission) = limits.admit(permit, remote.ip()) else {
        tracing::info!(%remote, "connection refused: too many connections");
        refuse(
            tcp,
            &crate::protocol::replies::too_many_connections(&shared.hostname),
        );
        return;
    };
    let _ = tcp.set_nodelay(true);
    let id = ids::new_id();
    let span = tracing::info_span!("session", id = %id);
    let mut session = Session::new(
        shared.clone(),
        info.clone(),
        tcp,
        remote,
        local,
        id,
        force.clone(),
    );
    if header.is_some() {
        session = session.proxied_by(peer);
    }
    let done = done.clone();
    tokio::spawn(
        async move {
            session.run().await;
            drop(admission);
            drop(done);
        }
        .instrument(span),
    );
}

/// Writes `reply` to a fresh connection without waiting and closes it.
fn refuse(tcp: TcpStream, reply: &Reply) {
    if let Ok(std) = tcp.into_std() {
        let mut s = &std;
        let _ = s.write(&reply.to_bytes());
        let _ = std.shutdown(std::net::Shutdown::Write);
    }
}
