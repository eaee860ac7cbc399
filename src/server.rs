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
//! - Reload (SIGHUP in the binary, `wasmtp reload`): [`Reloader::reload`]
//!   (src/reload/) re-reads the config file and publishes new settings;
//!   each connection takes the settings (and plugin chain) current at its
//!   accept and keeps them to its end.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::config::{Config, ListenerMode};
use crate::ids;
use crate::plugin::PluginHost;
use crate::protocol::Reply;
use crate::protocol::proxy::ProxyHeader;
use crate::reload::Parts;
use crate::session::{ListenerInfo, Session, Shared};
use crate::shutdown::{self, Signal};

pub use crate::reload::Reloader;

/// A bound, not yet serving, server.
pub struct Server {
    listeners: Vec<Bound>,
    /// The settings new connections get (a reload replaces them).
    live: Arc<ArcSwap<Shared>>,
    limits: Limits,
    reloader: Reloader,
}

struct Bound {
    tcp: TcpListener,
    addr: SocketAddr,
    /// Index of the `[[listeners]]` entry (into [`Shared::listeners`]).
    index: usize,
    mode: ListenerMode,
}

/// Connection counts shared by every accept loop; the caps are those of
/// the settings current at each accept.
#[derive(Clone)]
struct Limits {
    active: Arc<AtomicUsize>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// IPv6 clients are counted per network of this prefix length.
    v6_prefix: u8,
}

/// One of `max_connections`, given back on drop.
struct Permit {
    active: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held by a session for its lifetime: a global permit and an IP slot.
struct Admission {
    _permit: Permit,
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
    /// One of `max` global permits, taken at accept (before a PROXY
    /// header is read).
    fn permit(&self, max: usize) -> Option<Permit> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Permit {
            active: self.active.clone(),
        })
    }

    /// One of `max_per_ip` slots for client `ip` (the one a PROXY header
    /// names, if any).
    fn admit(&self, permit: Permit, ip: IpAddr, max_per_ip: usize) -> Option<Admission> {
        let ip = crate::session::throttle::client_key(ip, self.v6_prefix);
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max_per_ip {
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
        let services = crate::plugin::HostServices::new(&config.dns);
        let parts = Parts::build(&config, services).await?;
        if let Some(reports) = parts.deliverer.subscribe_reports() {
            tokio::spawn(forward_delivery_reports(reports, parts.plugins.clone()));
        }
        let shared = crate::reload::shared(&config, &config.listeners, parts);
        let mut listeners = Vec::new();
        for (index, l) in config.listeners.iter().enumerate() {
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
                index,
                mode: l.mode,
            });
        }
        let live = Arc::new(ArcSwap::from_pointee(shared));
        let limits = Limits {
            active: Arc::new(AtomicUsize::new(0)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            v6_prefix: config.server.ipv6_prefix_per_ip,
        };
        Ok(Self {
            listeners,
            reloader: Reloader::new(live.clone(), config),
            live,
            limits,
        })
    }

    /// The bound addresses (useful with port 0), in config order.
    pub fn local_addrs(&self) -> Vec<(ListenerMode, SocketAddr)> {
        self.listeners.iter().map(|l| (l.mode, l.addr)).collect()
    }

    /// A handle to reload the config while serving.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
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
                self.live.clone(),
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

        let shared = self.live.load_full();
        if tokio::time::timeout(shared.shutdown_grace, done_rx.recv())
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
        shared.deliverer.close().await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// Binds and serves `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown).await
}

/// As [`run`], with the process signals: SIGTERM/SIGINT shut down
/// gracefully, SIGHUP reloads the config; systemd is told of each
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
            tracing::info!("SIGHUP: reloading the config");
            crate::notify::notify(crate::notify::RELOADING);
            if let Err(e) = reloader.reload().await.map(drop) {
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload failed; the running config and chain stay"
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
    live: Arc<ArcSwap<Shared>>,
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
        // The settings of this connection, to its end.
        let shared = live.load_full();
        let Some(info) = shared.listeners.get(bound.index).cloned() else {
            continue;
        };
        if let Some(policy) = &info.proxy
            && !policy.trusts(remote.ip())
        {
            tracing::info!(%remote, "connection closed: not a trusted PROXY protocol source");
            continue;
        }
        let Some(permit) = limits.permit(shared.max_connections) else {
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
        if info.proxy.is_none() {
            start_session(accepted, None, &shared, &info, &limits, &force, &done);
            continue;
        }
        // The header is read in a task of its own, so a slow load balancer
        // does not hold up the accept loop; `done` keeps shutdown waiting.
        let limits = limits.clone();
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
    permit: Permit,
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
    let Some(admission) = limits.admit(permit, remote.ip(), shared.max_connections_per_ip) else {
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
        crate::session::Stream::Plain(tcp),
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
