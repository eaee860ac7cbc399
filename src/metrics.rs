//! `[metrics]`: a Prometheus scrape endpoint for per-hook plugin latency and
//! a few gateway counters.
//!
//! Off unless `[metrics] listen` is set. Then `wasmtp run` installs the
//! `metrics-exporter-prometheus` recorder with its HTTP listener (any
//! request path answers with the text exposition format) before the plugin
//! chain loads, and every recording site holds handles resolved once: the
//! plugin host per plugin per hook when a chain is loaded
//! (`src/plugin/metrics.rs`), the session driver in [`SessionMetrics`].
//! When metrics are off those handles are absent and recording costs one
//! branch (no clock reads).
//!
//! Durations are Prometheus histograms with the fixed buckets
//! [`BUCKETS`]: 1 µs to 10 s, five per decade (1, 1.6, 2.5, 4, 6.3), so a
//! quantile read with `histogram_quantile` is within one bucket, about
//! ±25 %. Histograms, not summaries: they add up across gateways and over
//! any time range, and the exporter's summaries (a DDSketch of fixed size)
//! collapse their low bins once the values span more than about three
//! decades, which plugin calls do (a few µs warm, tens of ms when a guest
//! waits for the CPU), and then report p50 = p99.
//!
//! # Series
//! | name | type | labels |
//! |---|---|---|
//! | `wasmtp_plugin_hook_duration_seconds` | histogram | `plugin`, `hook` |
//! | `wasmtp_plugin_instantiate_duration_seconds` | histogram | `plugin` |
//! | `wasmtp_plugin_instances_total` | counter | `plugin`, `source` (`fresh`, `pooled`) |
//! | `wasmtp_plugin_failures_total` | counter | `plugin`, `hook` |
//! | `wasmtp_plugin_verdicts_total` | counter | `plugin`, `hook`, `verdict` |
//! | `wasmtp_connections_total` | counter | |
//! | `wasmtp_connections_active` | gauge | |
//! | `wasmtp_messages_accepted_total` | counter | |
//! | `wasmtp_messages_rejected_total` | counter | `code_class` (`4xx`, `5xx`) |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use metrics::{Counter, Gauge, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `ip:port` of the Prometheus endpoint (plain HTTP, no authentication:
    /// keep it on loopback or a management network). Unset: no endpoint and
    /// nothing recorded.
    pub listen: Option<SocketAddr>,
}

impl MetricsConfig {
    /// Semantic checks: the failing key and the message.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if let Some(addr) = self.listen
            && addr.port() == 0
        {
            return Err((
                "metrics.listen".into(),
                format!("{addr}: port 0 is not allowed (a scraper needs a fixed port)"),
            ));
        }
        Ok(())
    }
}

/// Upper bounds (seconds) of every duration histogram's buckets: 1 µs to
/// 10 s, five per decade.
pub const BUCKETS: [f64; 36] = [
    1.0e-6, 1.6e-6, 2.5e-6, 4.0e-6, 6.3e-6, 1.0e-5, 1.6e-5, 2.5e-5, 4.0e-5, 6.3e-5, 1.0e-4, 1.6e-4,
    2.5e-4, 4.0e-4, 6.3e-4, 1.0e-3, 1.6e-3, 2.5e-3, 4.0e-3, 6.3e-3, 1.0e-2, 1.6e-2, 2.5e-2, 4.0e-2,
    6.3e-2, 0.1, 0.16, 0.25, 0.4, 0.63, 1.0, 1.6, 2.5, 4.0, 6.3, 10.0,
];

/// Wall time of one plugin hook call (the guest call only).
pub const HOOK_DURATION: &str = "wasmtp_plugin_hook_duration_seconds";
/// Instantiation plus `init` of a fresh plugin instance.
pub const INSTANTIATE_DURATION: &str = "wasmtp_plugin_instantiate_duration_seconds";
/// Instances a connection started using, by source.
pub const INSTANCES: &str = "wasmtp_plugin_instances_total";
/// Failed plugin calls (trap, timeout, memory, invalid answer, failed instantiation).
pub const FAILURES: &str = "wasmtp_plugin_failures_total";
/// Valid plugin answers, by verdict.
pub const VERDICTS: &str = "wasmtp_plugin_verdicts_total";
/// Sessions started.
pub const CONNECTIONS: &str = "wasmtp_connections_total";
/// Sessions running now.
pub const CONNECTIONS_ACTIVE: &str = "wasmtp_connections_active";
/// Messages accepted at the end of their data.
pub const MESSAGES_ACCEPTED: &str = "wasmtp_messages_accepted_total";
/// Messages refused by the driver's decision, by reply class.
pub const MESSAGES_REJECTED: &str = "wasmtp_messages_rejected_total";

/// Set once the exporter is installed; read when handles are resolved.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether metrics are recorded (the exporter is installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Installs the Prometheus recorder and its HTTP listener when `listen` is
/// set (call inside the tokio runtime, before the plugin chain loads).
/// Returns the endpoint's address, `None` when metrics are off. A busy port
/// or a second install is an error naming `metrics.listen`.
pub fn install(cfg: &MetricsConfig) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = cfg.listen else {
        return Ok(None);
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&BUCKETS)
        .and_then(PrometheusBuilder::install)
        .with_context(|| format!("key `metrics.listen` = {addr}: cannot start the endpoint"))?;
    describe();
    ENABLED.store(true, Ordering::Release);
    tracing::info!(address = %addr, "metrics endpoint listening");
    Ok(Some(addr))
}

/// HELP lines and units.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        HOOK_DURATION,
        Unit::Seconds,
        "Wall time of one plugin hook call (guest call only)"
    );
    describe_histogram!(
        INSTANTIATE_DURATION,
        Unit::Seconds,
        "Instantiation and init of a fresh plugin instance"
    );
    describe_counter!(
        INSTANCES,
        "Plugin instances taken into use: fresh or from the warm pool"
    );
    describe_counter!(
        FAILURES,
        "Failed plugin calls by reason (timeout, cpu-budget, out-of-memory, trap, init, invalid-verdict, host-call-refused, other)"
    );
    describe_counter!(VERDICTS, "Valid plugin answers by verdict");
    describe_counter!(CONNECTIONS, "SMTP sessions started");
    describe_gauge!(CONNECTIONS_ACTIVE, "SMTP sessions running now");
    describe_counter!(MESSAGES_ACCEPTED, "Messages accepted at the end of data");
    describe_counter!(
        MESSAGES_REJECTED,
        "Messages refused at the end of data or at data-headers, by reply class"
    );
}

/// The session driver's handles, resolved once (see [`SessionMetrics::new`]).
#[derive(Debug, Clone)]
pub struct SessionMetrics {
    /// `wasmtp_connections_total`.
    connections: Counter,
    /// `wasmtp_connections_active`.
    active: Gauge,
    /// `wasmtp_messages_accepted_total`.
    accepted: Counter,
    /// `wasmtp_messages_rejected_total{code_class="4xx"}`.
    rejected_4xx: Counter,
    /// `wasmtp_messages_rejected_total{code_class="5xx"}`.
    rejected_5xx: Counter,
}

/// Holds one `wasmtp_connections_active` unit while a session runs.
#[derive(Debug)]
pub struct ActiveConnection(Gauge);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl SessionMetrics {
    /// The handles, or `None` when metrics are off.
    pub fn new() -> Option<Self> {
        enabled().then(|| Self {
            connections: metrics::counter!(CONNECTIONS),
            active: metrics::gauge!(CONNECTIONS_ACTIVE),
            accepted: metrics::counter!(MESSAGES_ACCEPTED),
            rejected_4xx: metrics::counter!(MESSAGES_REJECTED, "code_class" => "4xx"),
            rejected_5xx: metrics::counter!(MESSAGES_REJECTED, "code_class" => "5xx"),
        })
    }

    /// A session started; it counts as active until the guard drops.
    pub fn connection(&self) -> ActiveConnection {
        self.connections.increment(1);
        self.active.increment(1.0);
        ActiveConnection(self.active.clone())
    }

    /// A message was accepted.
    pub fn accepted(&self) {
        self.accepted.increment(1);
    }

    /// A message was refused with `code` (a 4xx counts as `4xx`, anything
    /// else as `5xx`).
    pub fn rejected(&self, code: u16) {
        if code / 100 == 4 {
            self.rejected_4xx.increment(1);
        } else {
            self.rejected_5xx.increment(1);
        }
    }
}
