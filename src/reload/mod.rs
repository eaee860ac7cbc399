//! Whole-config reload (SIGHUP, `wasmtp reload`): the config file is read
//! again and everything that can change live is applied at once; sessions
//! in progress finish on the settings they started with.
//!
//! How: the server publishes its settings as one [`Shared`] through an
//! `ArcSwap`; every connection takes the one current at accept. A reload
//! prepares everything first (the config, the TLS certificate read again,
//! the plugin chain compiled and checked) and swaps only when all of it
//! succeeded: on any error nothing changes and the error names the key or
//! file.
//!
//! Live: `[server]` hostname, caps and grace, `[tls]` (certificate
//! rotation: the files are read on every reload), `[limits]`,
//! `[timeouts]`, `[relay]`, `[auth]` users and policy, `[dns]`, `[data]`,
//! listeners' `require_auth` and `proxy_trusted`, `[plugin_host]`,
//! `[[plugins]]`. Needing a restart (logged as a warning naming each key,
//! on every reload until the restart; the rest still applies): see
//! [`diff::Change::needs_restart`].

pub mod diff;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use arc_swap::ArcSwap;

use crate::auth::Users;
use crate::config::{Config, ListenerConfig};
use crate::delivery::Deliverer;
use crate::dns::ReverseDns;
use crate::plugin::{HostServices, PluginHost, PluginHostConfig};
use crate::relay::RelayPolicy;
use crate::session::budget::MemoryBudget;
use crate::session::proxy::ProxyPolicy;
use crate::session::throttle::AuthThrottle;
use crate::session::{ListenerInfo, Shared};
use crate::tls::ServerTls;

use diff::Change;

/// What a reload changed, for the log and the operator's terminal.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    /// Applied: one line per changed key, certificate rotation, a plugin
    /// engine rebuilt.
    pub applied: Vec<String>,
    /// Changed in the file but needing a restart, one line per key.
    pub restart: Vec<String>,
    /// The plugin chain now serving, in order.
    pub plugins: Vec<String>,
}

/// The services a [`Shared`] is built around; a reload carries them over
/// or builds the ones whose section changed.
pub(crate) struct Parts {
    pub deliverer: Arc<Deliverer>,
    pub plugins: Arc<PluginHost>,
    pub metrics: Option<crate::metrics::SessionMetrics>,
    pub auth_throttle: Arc<AuthThrottle>,
    pub memory_budget: Arc<MemoryBudget>,
    pub tls: ServerTls,
    pub users: Users,
    pub dns: ReverseDns,
}

impl Parts {
    /// The services of `config` at start (`wasmtp run`, and the offline
    /// harness `wasmtp plugin test`): TLS, delivery, the `[kv]` store when
    /// a plugin is granted a bucket, and the plugin chain loaded with
    /// `services`.
    pub(crate) async fn build(config: &Config, services: HostServices) -> anyhow::Result<Self> {
        let tls = ServerTls::load(&config.tls, &config.server.hostname)?;
        let deliverer = Deliverer::with_hostname(&config.delivery, &config.server.hostname)
            .await
            .context("setting up delivery")?;
        open_kv_if_granted(config, &services).await?;
        let plugins = PluginHost::load_with(&plugin_host_config(config), &config.plugins, services)
            .await
            .context("loading plugins")?;
        Ok(Self {
            deliverer: Arc::new(deliverer),
            plugins,
            metrics: crate::metrics::SessionMetrics::new(),
            auth_throttle: Arc::new(AuthThrottle::new(
                config.auth.max_failures_per_ip,
                config.auth.failure_window,
                config.auth.failure_delay,
                config.server.ipv6_prefix_per_ip,
            )),
            memory_budget: MemoryBudget::new(config.limits.memory_budget),
            tls,
            users: Users::new(&config.auth),
            dns: ReverseDns::new(&config.dns),
        })
    }
}

/// The settings of `config` around `parts`. Listeners are those the
/// server bound (`bound`, from the config it started with): an entry of
/// `config` at the same index with the same address, mode and PROXY
/// protocol gives its `require_auth` and `proxy_trusted`.
pub(crate) fn shared(config: &Config, bound: &[ListenerConfig], parts: Parts) -> Shared {
    let listeners = bound
        .iter()
        .enumerate()
        .map(|(i, old)| {
            let l = match config.listeners.get(i) {
                Some(n)
                    if n.address == old.address
                        && n.mode == old.mode
                        && n.proxy_protocol == old.proxy_protocol =>
                {
                    n
                }
                _ => old,
            };
            Arc::new(ListenerInfo {
                mode: l.mode,
                engine: Arc::new(config.engine_config(l)),
                proxy: l.proxy_protocol.then(|| ProxyPolicy::new(&l.proxy_trusted)),
            })
        })
        .collect();
    Shared {
        hostname: config.server.hostname.clone(),
        timeouts: config.timeouts.clone(),
        relay: RelayPolicy::new(&config.relay).with_postmaster(&config.postmaster()),
        users: parts.users,
        auth_throttle: parts.auth_throttle,
        dns: parts.dns,
        deliverer: parts.deliverer,
        plugins: parts.plugins,
        tls: parts.tls,
        metrics: parts.metrics,
        header_limits: crate::message::HeaderLimits {
            max_fields: config.limits.max_header_fields,
            max_bytes: usize::try_from(config.limits.max_header_bytes).unwrap_or(usize::MAX),
        },
        memory_budget: parts.memory_budget,
        plugin_limits: crate::context::PluginLimits::default(),
        listeners,
        max_connections: config.server.max_connections,
        max_connections_per_ip: config.server.max_connections_per_ip,
        shutdown_grace: config.server.shutdown_grace,
        observer: None,
    }
}

/// `[plugin_host]` as the engine is sized: `max_connections = 0` means
/// `[server] max_connections`.
pub(crate) fn plugin_host_config(config: &Config) -> PluginHostConfig {
    let mut host = config.plugin_host.clone();
    if host.max_connections == 0 {
        host.max_connections = u32::try_from(config.server.max_connections).unwrap_or(u32::MAX);
    }
    host
}

/// Re-reads the config file and applies it (SIGHUP, `wasmtp reload`).
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    /// The settings new connections get.
    live: Arc<ArcSwap<Shared>>,
    /// The config file.
    origin: Option<PathBuf>,
    /// The config the process started with: what restart-only keys are
    /// compared with, and the listeners it bound.
    started: Config,
    /// The keys last applied (what the change lines compare with).
    applied: Mutex<toml::Table>,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader publishing into `live`, for a server started with `started`.
    pub(crate) fn new(live: Arc<ArcSwap<Shared>>, started: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                live,
                origin: started.origin.clone(),
                applied: Mutex::new(started.raw.clone()),
                started,
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Reads the config file again and applies it: everything that can
    /// change live takes effect for new connections; keys needing a
    /// restart are reported (and logged as warnings) and left as they
    /// are. On any error (config, certificate, plugin) nothing changes and
    /// the error is returned, naming the key or file. Logs one line per
    /// change.
    pub async fn reload(&self) -> anyhow::Result<ReloadReport> {
        let me = &*self.inner;
        let _one_at_a_time = me.lock.lock().await;
        let path = me
            .origin
            .as_ref()
            .context("the config was not loaded from a file: nothing to reload")?;
        let config = Config::load(path)?;
        let cur = me.live.load_full();
        let changes: Vec<Change> = {
            let applied = me.applied.lock().unwrap_or_else(|p| p.into_inner());
            diff::diff(&applied, &config.raw)
        };
        let changed = |section: &str| changes.iter().any(|c| c.is_under(section));
        let restart: Vec<Change> = diff::diff(&me.started.raw, &config.raw)
            .into_iter()
            .filter(Change::needs_restart)
            .collect();

        // Prepare: nothing below changes what is serving until all succeeded.
        let tls = cur
            .tls
            .reload(&config.tls, &config.server.hostname)
            .context("[tls]: the certificate was not changed")?;
        let services = match changed("dns") {
            true => cur.plugins.services().with_dns(&config.dns),
            false => cur.plugins.services(),
        };
        // A bucket granted for the first time by this reload: open the
        // store now (of the reloaded `[kv]`, since none was opened before).
        open_kv_if_granted(&config, &services).await?;
        let mut host = plugin_host_config(&config);
        // Restart-only: the watcher runs as started.
        let running = cur.plugins.host_config();
        host.watch = running.watch;
        host.watch_interval_ms = running.watch_interval_ms;
        let prepared = cur
            .plugins
            .prepare(&host, &config.plugins, services)
            .await?;
        let users = match changed("auth.users") {
            true => Users::new(&config.auth),
            false => cur.users.clone(),
        };
        let dns = match changed("dns") {
            true => ReverseDns::new(&config.dns),
            false => cur.dns.clone(),
        };

        // Commit.
        let mut report = ReloadReport::default();
        for c in changes.iter().filter(|c| !c.needs_restart()) {
            tracing::info!(key = %c.key, "reload: {c}");
            report.applied.push(c.to_string());
        }
        if let Some(new) = &tls {
            let line = format!(
                "tls certificate rotated: {} (sha256 {} → {})",
                new.source, cur.tls.fingerprint, new.fingerprint
            );
            tracing::info!(fingerprint = %new.fingerprint, "reload: {line}");
            report.applied.push(line);
        }
        if let Some(line) = prepared.resized() {
            report.applied.push(line);
        }
        cur.plugins.commit(prepared).await;
        cur.memory_budget.set_limit(config.limits.memory_budget);
        let parts = Parts {
            deliverer: cur.deliverer.clone(),
            plugins: cur.plugins.clone(),
            metrics: cur.metrics.clone(),
            auth_throttle: cur.auth_throttle.clone(),
            memory_budget: cur.memory_budget.clone(),
            tls: tls.unwrap_or_else(|| cur.tls.clone()),
            users,
            dns,
        };
        me.live
            .store(Arc::new(shared(&config, &me.started.listeners, parts)));
        *me.applied.lock().unwrap_or_else(|p| p.into_inner()) = config.raw.clone();
        for c in &restart {
            tracing::warn!(key = %c.key, "reload: {c}: needs a restart, not applied");
            report.restart.push(c.to_string());
        }
        if report.applied.is_empty() {
            tracing::info!("reload: no setting changed");
        }
        report.plugins = cur.plugins.plugin_names();
        Ok(report)
    }
}

/// Opens the `[kv]` store and hands it to the plugin host's services when a
/// plugin of `config` is granted a bucket and no store is open yet. The
/// store then stays open for the life of the process: a reload swaps
/// plugins, not state, and a `[kv]` changed later needs a restart.
pub(crate) async fn open_kv_if_granted(
    config: &Config,
    services: &HostServices,
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
