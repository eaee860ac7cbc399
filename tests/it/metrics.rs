//! `[metrics]` through the real binary: plugin chains serve SMTP over TCP,
//! then `/metrics` is scraped over plain HTTP and every series is checked
//! against the exact number of calls, instances and messages the test
//! caused (a message refused at `data-headers` counts once). Series of
//! hooks a plugin did not ask for must not exist. A busy metrics port is a
//! startup error naming `metrics.listen`.

use crate::common;
use crate::plugin_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Gateway, IO_GUARD, LOCAL};

/// `[plugin_host]` with a cache shared by the TCP tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}

fn entry(name: &str, wasm: &str, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n\n",
        plugin_support::wasm(wasm).display().to_string()
    )
}

/// A loopback port free right now (the gateway binds it moments later).
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A gateway with `[metrics] listen` on a free loopback port and `plugins`.
fn gateway(plugins: &str) -> (Gateway, SocketAddr) {
    let addr = free_port();
    let mut c = String::from(LOCAL);
    c.push_str(&format!("\n[metrics]\nlisten = \"{addr}\"\n\n"));
    c.push_str(&plugin_host());
    c.push_str(plugins);
    let gw = Gateway::start(&c);
    gw.wait_log("metrics endpoint listening");
    (gw, addr)
}

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A scrape of `/metrics`, parsed.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

/// `GET /metrics` over HTTP/1.0; the body parsed into samples.
fn scrape(addr: SocketAddr) -> Scrape {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_GUARD)).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let samples = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_line)
        .collect();
    Scrape {
        text: body.to_string(),
        samples,
    }
}

/// `name{k="v",...} value` or `name value` (test label values hold no
/// quotes or commas).
fn parse_line(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("a sample line");
    let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').expect("closing brace");
            let labels = inner
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels)
        }
    };
    (name, labels, value)
}

impl Scrape {
    /// Samples of `name` whose labels include all of `labels`.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .matching(name, labels)
            .into_iter()
            .filter(|(_, l, _)| l.len() == labels.len())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name} {labels:?}: {} samples in\n{}",
            found.len(),
            self.text
        );
        found[0].2
    }

    /// Checks one hook's histogram: `count` calls, a positive sum, and the
    /// 36 fixed buckets plus `+Inf`, cumulative, ending at `count`.
    fn assert_hook_histogram(&self, plugin: &str, hook: &str, count: u64) {
        let labels = [("plugin", plugin), ("hook", hook)];
        let name = "wasmtp_plugin_hook_duration_seconds";
        assert_eq!(
            self.value(&format!("{name}_count"), &labels),
            count as f64,
            "{plugin} {hook}"
        );
        assert!(self.value(&format!("{name}_sum"), &labels) > 0.0);
        let mut buckets: Vec<(f64, f64)> = self
            .matching(&format!("{name}_bucket"), &labels)
            .into_iter()
            .map(|(_, l, v)| {
                let le = l.get("le").expect("le label");
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or_else(|_| panic!("le {le}"))
                };
                (bound, *v)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 37, "{plugin} {hook}: {buckets:?}");
        assert_eq!(buckets[0].0, 1.0e-6);
        assert_eq!(buckets[35].0, 10.0);
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "cumulative: {buckets:?}"
        );
        assert_eq!(buckets[36].1, count as f64, "{plugin} {hook}: +Inf");
        assert!(buckets[0].1 < count as f64, "no call takes under 1 µs");
    }

    /// Asserts that no series of `plugin` names `hook`.
    fn assert_no_hook(&self, plugin: &str, hook: &str) {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|(_, l, _)| {
                l.get("plugin").map(String::as_str) == Some(plugin)
                    && l.get("hook").map(String::as_str) == Some(hook)
            })
            .collect();
        assert!(
            found.is_empty(),
            "{plugin} did not ask for {hook}: {found:?}"
        );
    }

    fn verdicts(&self, plugin: &str, hook: &str, verdict: &str) -> f64 {
        self.value(
            "wasmtp_plugin_verdicts_total",
            &[("plugin", plugin), ("hook", hook), ("verdict", verdict)],
        )
    }

    fn instances(&self, plugin: &str, source: &str) -> f64 {
        self.value(
            "wasmtp_plugin_instances_total",
            &[("plugin", plugin), ("source", source)],
        )
    }
}

const CLEAN: &[u8] = b"Subject: lunch\r\n\r\nSee you at noon.\r\n";
const SPAM: &[u8] = b"Subject: deal\r\n\r\nBuy cheap   Rolex now\r\n";

#[test]
fn per_connection_chain_hook_latency_instances_and_messages() {
    let mut plugins = entry(
        "probe",
        "probe",
        "",
        "hooks = [\"connect\", \"rcpt\", \"data-post\", \"help\", \"disconnect\"]\nactions = { help = [\"trap\"] }",
    );
    plugins.push_str(&entry(
        "filter",
        "content-filter",
        "memory_mb = 128",
        "body = ['cheap\\s+rolex']",
    ));
    let (gw, metrics) = gateway(&plugins);

    // Connection 1: two clean messages and one refused by the filter.
    let mut s = gw.connect();
    for body in [CLEAN, CLEAN] {
        let r = s.send_mail("alice@example.net", &["bob@example.test"], body);
        assert_eq!(r.code, 250, "{}", r.text);
    }
    let r = s.send_mail("alice@example.net", &["bob@example.test"], SPAM);
    assert_eq!(r.code, 554, "{}", r.text);
    s.expect("QUIT", 221);
    drop(s);
    // Connection 2: one clean message.
    let mut s = gw.connect();
    let r = s.send_mail("alice@example.net", &["carol@example.test"], CLEAN);
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    drop(s);
    // Connection 3: HELP traps the probe (failure policy: 451); its
    // disconnect hook then needs a fresh instance.
    let mut s = gw.connect();
    s.expect("HELP", 451);
    s.expect("QUIT", 221);
    drop(s);
    gw.wait_disconnects(3);
    assert_eq!(gw.delivered().len(), 3);

    let m = scrape(metrics);
    // One call per event, exactly.
    m.assert_hook_histogram("probe", "connect", 3);
    m.assert_hook_histogram("probe", "rcpt", 4);
    m.assert_hook_histogram("probe", "data-post", 4);
    m.assert_hook_histogram("probe", "help", 1);
    m.assert_hook_histogram("probe", "disconnect", 3);
    m.assert_hook_histogram("filter", "data-post", 4);
    // Hooks nobody asked for have no series at all.
    for hook in ["mail", "ehlo", "data", "quit", "deny", "delivery"] {
        m.assert_no_hook("probe", hook);
    }
    for hook in ["connect", "rcpt", "help", "disconnect"] {
        m.assert_no_hook("filter", hook);
    }

    // Verdicts and failures.
    assert_eq!(m.verdicts("probe", "rcpt", "declined"), 4.0);
    assert_eq!(m.verdicts("probe", "rcpt", "ok"), 0.0);
    assert_eq!(m.verdicts("probe", "connect", "declined"), 3.0);
    assert_eq!(m.verdicts("filter", "data-post", "declined"), 3.0);
    assert_eq!(m.verdicts("filter", "data-post", "deny"), 1.0);
    assert!(
        m.matching(
            "wasmtp_plugin_verdicts_total",
            &[("plugin", "probe"), ("hook", "disconnect")]
        )
        .is_empty(),
        "disconnect has no verdict"
    );
    // One series per reason; summed over them.
    let failures = |plugin, hook| {
        m.matching(
            "wasmtp_plugin_failures_total",
            &[("plugin", plugin), ("hook", hook)],
        )
        .iter()
        .map(|s| s.2)
        .sum::<f64>()
    };
    assert_eq!(failures("probe", "help"), 1.0);
    assert_eq!(
        m.value(
            "wasmtp_plugin_failures_total",
            &[("plugin", "probe"), ("hook", "help"), ("reason", "trap")]
        ),
        1.0
    );
    assert_eq!(failures("probe", "rcpt"), 0.0);
    assert_eq!(failures("filter", "data-post"), 0.0);

    // Per-connection instances: the probe got one per connection plus one
    // after the trap; the filter one per connection that sent a message.
    assert_eq!(m.instances("probe", "fresh"), 4.0);
    assert_eq!(m.instances("filter", "fresh"), 2.0);
    assert!(
        m.matching("wasmtp_plugin_instances_total", &[("source", "pooled")])
            .is_empty(),
        "no plugin is pooled"
    );
    let instantiations = |plugin| {
        m.value(
            "wasmtp_plugin_instantiate_duration_seconds_count",
            &[("plugin", plugin)],
        )
    };
    assert_eq!(instantiations("probe"), 4.0);
    assert_eq!(instantiations("filter"), 2.0);

    // Gateway counters.
    assert_eq!(m.value("wasmtp_connections_total", &[]), 3.0);
    assert_eq!(m.value("wasmtp_connections_active", &[]), 0.0);
    assert_eq!(m.value("wasmtp_messages_accepted_total", &[]), 3.0);
    let rejected = |class| m.value("wasmtp_messages_rejected_total", &[("code_class", class)]);
    assert_eq!(rejected("5xx"), 1.0);
    assert_eq!(rejected("4xx"), 0.0);

    // This scrape holds every series the gateway exports (a failure and a
    // refusal included): the shipped Grafana dashboard must query exactly these.
    assert_dashboard_matches(&m);
}

/// `dist/grafana-dashboard.json` against a real scrape: every series a
/// panel queries exists, with every label the panel groups or names its
/// legend by, and every series exported is shown by some panel.
fn assert_dashboard_matches(m: &Scrape) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = std::collections::BTreeSet::new();
    let mut shown = std::collections::BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a panel title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "{title}: id reused"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert_eq!(names.len(), 1, "{title}: one series per query: {expr}");
            let name = &names[0];
            let samples: Vec<&Sample> = m.samples.iter().filter(|(n, _, _)| n == name).collect();
            assert!(
                !samples.is_empty(),
                "{title}: {name} is not exported:\n{}",
                m.text
            );
            let legend = target["legendFormat"].as_str().unwrap_or("");
            for label in grouped_labels(expr)
                .into_iter()
                .chain(legend_labels(legend))
            {
                // Prometheus adds these at scrape time
                if label == "instance" || label == "job" {
                    continue;
                }
                assert!(
                    samples.iter().any(|(_, l, _)| l.contains_key(&label)),
                    "{title}: {name} has no label `{label}`"
                );
            }
            shown.insert(family(name).to_string());
        }
    }
    let exported: std::collections::BTreeSet<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n.starts_with("wasmtp_"))
        .map(|(n, _, _)| family(n).to_string())
        .collect();
    let missing: Vec<_> = exported.difference(&shown).collect();
    assert!(missing.is_empty(), "series no panel shows: {missing:?}");
}

/// The `wasmtp_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("wasmtp_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Labels of every `by (...)` in a PromQL expression.
fn grouped_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (") {
        let tail = &rest[at + 4..];
        let end = tail.find(')').expect("a closing parenthesis");
        labels.extend(tail[..end].split(',').map(|l| l.trim().to_string()));
        rest = &tail[end..];
    }
    labels
}

/// Labels a legend format names (`{{plugin}}`).
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_string())
        .collect()
}

/// A histogram's family name (without `_bucket`, `_sum`, `_count`).
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

#[test]
fn pooled_instances_and_soft_rejections_are_counted() {
    let plugins = entry(
        "probe",
        "probe",
        "instances = \"pooled\"\npool_size = 2",
        "hooks = [\"connect\", \"rcpt\", \"data-post\"]\nverdicts = { data-post = \"deny-soft\" }",
    );
    let (gw, metrics) = gateway(&plugins);
    for n in 1..=3 {
        let mut s = gw.connect();
        let r = s.send_mail("alice@example.net", &["bob@example.test"], CLEAN);
        assert_eq!(r.code / 100, 4, "{}", r.text);
        s.expect("QUIT", 221);
        drop(s);
        // The instance is back in the pool before the next connection.
        gw.wait_disconnects(n);
    }
    // While a session runs it counts as active.
    let mut open = gw.connect();
    open.expect("NOOP", 250);
    let m = scrape(metrics);
    assert_eq!(m.value("wasmtp_connections_active", &[]), 1.0);
    assert_eq!(m.value("wasmtp_connections_total", &[]), 4.0);
    open.expect("QUIT", 221);
    drop(open);
    gw.wait_disconnects(4);

    let m = scrape(metrics);
    m.assert_hook_histogram("probe", "connect", 4);
    m.assert_hook_histogram("probe", "rcpt", 3);
    m.assert_hook_histogram("probe", "data-post", 3);
    for hook in ["mail", "disconnect", "noop", "quit"] {
        m.assert_no_hook("probe", hook);
    }
    // One instance made at the first connection, then reused from the pool.
    assert_eq!(m.instances("probe", "fresh"), 1.0);
    assert_eq!(m.instances("probe", "pooled"), 3.0);
    assert_eq!(
        m.value(
            "wasmtp_plugin_instantiate_duration_seconds_count",
            &[("plugin", "probe")]
        ),
        1.0
    );
    assert_eq!(m.verdicts("probe", "data-post", "deny-soft"), 3.0);
    assert_eq!(m.verdicts("probe", "data-post", "declined"), 0.0);
    assert_eq!(m.verdicts("probe", "rcpt", "declined"), 3.0);

    assert_eq!(m.value("wasmtp_connections_active", &[]), 0.0);
    assert_eq!(m.value("wasmtp_messages_accepted_total", &[]), 0.0);
    let rejected = |class| m.value("wasmtp_messages_rejected_total", &[("code_class", class)]);
    assert_eq!(rejected("4xx"), 3.0);
    assert_eq!(rejected("5xx"), 0.0);
    assert!(gw.delivered().is_empty());
}

#[test]
fn a_message_refused_at_data_headers_is_counted_once() {
    let plugins = entry(
        "probe",
        "probe",
        "",
        "hooks = [\"data-headers\"]\nverdicts = { data-headers = \"deny\" }",
    );
    let (gw, metrics) = gateway(&plugins);
    let mut s = gw.connect();
    let r = s.send_mail("alice@example.net", &["bob@example.test"], CLEAN);
    assert_eq!(r.code / 100, 5, "{}", r.text);
    s.expect("QUIT", 221);
    drop(s);
    gw.wait_disconnects(1);

    let m = scrape(metrics);
    m.assert_hook_histogram("probe", "data-headers", 1);
    assert_eq!(m.verdicts("probe", "data-headers", "deny"), 1.0);
    assert_eq!(m.value("wasmtp_messages_accepted_total", &[]), 0.0);
    let rejected = |class| m.value("wasmtp_messages_rejected_total", &[("code_class", class)]);
    assert_eq!(rejected("5xx"), 1.0);
    assert_eq!(rejected("4xx"), 0.0);
}

#[test]
fn a_busy_metrics_port_is_a_startup_error_naming_the_key() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(
        dir.path(),
        &["smtp"],
        &format!("{LOCAL}\n[metrics]\nlisten = \"{addr}\"\n"),
    );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Hang guard, not a timing assertion.
    let mut status = None;
    for _ in 0..600 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("wasmtp kept running with its metrics port taken");
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("metrics.listen"), "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    drop(busy);
}
