//! One dialog against the real gateway code, without sockets: the dialog's
//! settings become a gateway config (`Config::from_str`, validated as any
//! config is), its services are built as `wasmtp run` builds them
//! (`reload::Parts::build`: the plugin host, Maildir delivery in a temp
//! dir, the embedded kv store in a temp dir pre-filled from the dialog,
//! DNS answered from the dialog's fixtures), and one real [`Session`]
//! runs over an in-memory pipe. This side of the pipe plays the client.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use crate::config::Config;
use crate::context::TlsInfo;
use crate::delivery::client::dotstuff;
use crate::delivery::client::reply::{self, Parsed};
use crate::dns::{Answer, LookupError, Lookups, Record, RecordKind};
use crate::plugin::HostServices;
use crate::reload::{Parts, open_kv_if_granted};
use crate::session::{ClientFacts, Session, Stream};

use super::check::{Recorder, evaluate, glob};
use super::dialog::{Dialog, DnsFixture, StepKind};

/// Where the plugins of a run come from and how output is written.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// The plugin under test.
    pub plugin: PathBuf,
    /// Other plugins, run before it in the chain, in this order.
    pub with: Vec<PathBuf>,
    /// The compiled-component cache directory.
    pub cache_dir: PathBuf,
    /// How long to wait for one reply.
    pub reply_timeout: Duration,
}

/// Steps run and failed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Steps run.
    pub steps: usize,
    /// Steps that failed.
    pub failed: usize,
}

/// The plugin name of a component file: its stem.
pub(super) fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
}

/// The gateway config a dialog runs with, as TOML text.
fn config_text(dialog: &Dialog, plugins: &Plugins, dir: &Path) -> anyhow::Result<String> {
    let front = &dialog.front;
    let mut root = toml::Table::new();
    let section = |name: &str| -> toml::Table {
        match front.gateway.get(name) {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => toml::Table::new(),
        }
    };
    let mut server = section("server");
    let mut relay = section("relay");
    let mut limits = section("limits");
    let mut delivery = section("delivery");
    let mut kv = section("kv");
    let mut host = section("plugin_host");
    let mut rest = toml::Table::new();
    for (key, value) in &front.gateway {
        let into = match key.as_str() {
            "hostname" => &mut server,
            "local_domains" | "relay_networks" => &mut relay,
            "max_message_size" | "max_recipients" => &mut limits,
            _ if value.is_table() => {
                if !matches!(
                    key.as_str(),
                    "server" | "relay" | "limits" | "delivery" | "kv" | "plugin_host"
                ) {
                    rest.insert(key.clone(), value.clone());
                }
                continue;
            }
            _ => anyhow::bail!(
                "{}: [gateway] key {key:?}: not a shortcut (hostname, local_domains, \
                 relay_networks, max_message_size, max_recipients) nor a config section",
                dialog.path.display()
            ),
        };
        into.insert(key.clone(), value.clone());
    }
    let text = |p: &Path| toml::Value::String(p.display().to_string());
    server
        .entry("hostname")
        .or_insert_with(|| "mx.test.example".into());
    server.insert("control_socket".into(), "".into());
    delivery.insert("mode".into(), "maildir".into());
    delivery.insert("maildir".into(), text(&dir.join("maildir")));
    kv.insert("backend".into(), "embedded".into());
    kv.insert("path".into(), text(&dir.join("kv")));
    host.insert("cache_dir".into(), text(&plugins.cache_dir));
    host.entry("max_connections").or_insert(2.into());
    host.insert("watch".into(), false.into());
    root.insert("server".into(), server.into());
    root.insert("relay".into(), relay.into());
    root.insert("limits".into(), limits.into());
    root.insert("delivery".into(), delivery.into());
    root.insert("kv".into(), kv.into());
    root.insert("plugin_host".into(), host.into());
    root.extend(rest);
    // Every bucket of the kv fixtures is granted, besides the `kv` of [plugin].
    let buckets: Vec<toml::Value> = front.kv.keys().map(|b| b.as_str().into()).collect();
    let mut entries = Vec::new();
    for path in plugins.with.iter().chain([&plugins.plugin]) {
        let name = plugin_name(path);
        let is_tested = path == &plugins.plugin;
        let mut entry = match is_tested {
            true => front.plugin.clone(),
            false => toml::Table::new(),
        };
        let config = match is_tested {
            true => front.config.clone(),
            false => front.with.get(&name).cloned().unwrap_or_default(),
        };
        entry.insert("name".into(), name.into());
        entry.insert("path".into(), text(path));
        entry.insert("config".into(), config.into());
        entry.entry("dns").or_insert(true.into());
        let granted = entry
            .entry("kv")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        if let toml::Value::Array(list) = granted {
            for b in &buckets {
                if !list.contains(b) {
                    list.push(b.clone());
                }
            }
        }
        entries.push(toml::Value::Table(entry));
    }
    root.insert("plugins".into(), toml::Value::Array(entries));
    Ok(toml::to_string(&root)?)
}

/// The DNS service answering a dialog's `[[dns]]` fixtures.
fn lookups(dialog: &Dialog) -> anyhow::Result<Lookups> {
    let mut table = Vec::new();
    for f in &dialog.front.dns {
        let fixture = |m: String| {
            anyhow::anyhow!(
                "{}: [[dns]] {:?} {}: {m}",
                dialog.path.display(),
                f.name,
                f.rtype
            )
        };
        let (kind, outcome) = dns_fixture(f).map_err(fixture)?;
        let name = match f.name.parse::<std::net::IpAddr>() {
            Ok(ip) => hickory_resolver::proto::rr::Name::from(ip).to_utf8(),
            Err(_) => f.name.clone(),
        };
        table.push(((name, kind), outcome));
    }
    Ok(Lookups::fixed(table))
}

/// One fixture's record type and outcome.
fn dns_fixture(f: &DnsFixture) -> Result<(RecordKind, Result<Answer, LookupError>), String> {
    let kind = match f.rtype.to_ascii_uppercase().as_str() {
        "A" => RecordKind::A,
        "AAAA" => RecordKind::Aaaa,
        "MX" => RecordKind::Mx,
        "TXT" => RecordKind::Txt,
        "PTR" => RecordKind::Ptr,
        "CNAME" => RecordKind::Cname,
        "NS" => RecordKind::Ns,
        other => {
            return Err(format!(
                "unknown type {other:?} (A, AAAA, MX, TXT, PTR, CNAME, NS)"
            ));
        }
    };
    if let Some(error) = &f.error {
        let e = match error.to_ascii_lowercase().as_str() {
            "nxdomain" => LookupError::NxDomain,
            "nodata" => LookupError::NoData,
            "servfail" => LookupError::ServerFailure("SERVFAIL".into()),
            "timeout" => LookupError::Timeout,
            other => {
                return Err(format!(
                    "unknown error {other:?} (nxdomain, nodata, servfail, timeout)"
                ));
            }
        };
        return Ok((kind, Err(e)));
    }
    let records = f
        .answer
        .iter()
        .map(|a| record(kind, a))
        .collect::<Result<Vec<_>, _>>()?;
    if records.is_empty() {
        return Ok((kind, Err(LookupError::NoData)));
    }
    Ok((
        kind,
        Ok(Answer {
            records,
            ttl: f.ttl,
        }),
    ))
}

fn record(kind: RecordKind, text: &str) -> Result<Record, String> {
    let bad = |what: &str| format!("{text:?} is not {what}");
    let name = || text.trim_end_matches('.').to_string();
    Ok(match kind {
        RecordKind::A => Record::A(text.parse().map_err(|_| bad("an IPv4 address"))?),
        RecordKind::Aaaa => Record::Aaaa(text.parse().map_err(|_| bad("an IPv6 address"))?),
        RecordKind::Mx => {
            let (pref, host) = text
                .split_once(' ')
                .ok_or_else(|| bad("\"PREFERENCE NAME\""))?;
            Record::Mx {
                preference: pref.parse().map_err(|_| bad("\"PREFERENCE NAME\""))?,
                exchange: host.trim().trim_end_matches('.').to_string(),
            }
        }
        RecordKind::Txt => Record::Txt(vec![text.to_string()]),
        RecordKind::Ptr => Record::Ptr(name()),
        RecordKind::Cname => Record::Cname(name()),
        RecordKind::Ns => Record::Ns(name()),
    })
}

/// The client's end of the pipe: reads whole replies.
struct Client {
    pipe: DuplexStream,
    buf: Vec<u8>,
    timeout: Duration,
}

/// A reply as received: its code and text (each line without the code and
/// its separator, lines joined with "\n").
struct Received {
    code: u16,
    text: String,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.pipe
            .write_all(bytes)
            .await
            .map_err(|_| "the gateway closed the connection".to_string())
    }

    async fn reply(&mut self) -> Result<Received, String> {
        loop {
            match reply::parse(&self.buf) {
                Parsed::Reply(r, used) => {
                    let raw = String::from_utf8_lossy(&self.buf[..used]).into_owned();
                    self.buf.drain(..used);
                    let text = raw
                        .lines()
                        .map(|l| l.get(4..).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Ok(Received {
                        code: r.code(),
                        text,
                    });
                }
                Parsed::Invalid(why) => return Err(format!("not an SMTP reply: {why}")),
                Parsed::Incomplete => {}
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout(self.timeout, self.pipe.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err("no reply: the gateway closed the connection".into());
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    return Err(format!(
                        "no reply within {} s (does the gateway wait for more input?)",
                        self.timeout.as_secs()
                    ));
                }
            }
        }
    }
}

/// Runs `dialog`, writing each step's outcome to `out`.
pub async fn dialog(
    dialog: &Dialog,
    plugins: &Plugins,
    out: &mut dyn Write,
) -> anyhow::Result<Tally> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let text = config_text(dialog, plugins, dir.path())?;
    let origin = format!("{} (as a gateway config)", dialog.path.display());
    let config = Config::from_str(&text, &origin)?;
    let mut services = HostServices::new(&config.dns);
    services.dns = Some(Arc::new(lookups(dialog)?));
    open_kv_if_granted(&config, &services).await?;
    if let Some(kv) = services.kv.get() {
        for (bucket, keys) in &dialog.front.kv {
            for (key, value) in keys {
                kv.set(bucket, key, value.bytes(), None)
                    .await
                    .with_context(|| format!("[kv.{bucket}] {key:?}"))?;
            }
        }
    }
    let parts = Parts::build(&config, services).await?;
    let recorder = Arc::new(Recorder::default());
    let mut shared = crate::reload::shared(&config, &config.listeners, parts);
    shared.observer = Some(recorder.clone());
    let shared = Arc::new(shared);
    let listener = shared
        .listeners
        .first()
        .cloned()
        .context("no listener in the config")?;
    let c = &dialog.front.client;
    let remote = SocketAddr::new(c.ip, c.port);
    let local = SocketAddr::from(([192, 0, 2, 25], 25));
    let facts = ClientFacts {
        tls: c.tls.then(|| TlsInfo {
            protocol: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            sni: None,
        }),
        auth_user: c.auth_user.clone(),
        relay: c.relay,
        remote_host: c.host.clone(),
    };
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (_trigger, force_close) = crate::shutdown::channel();
    let session = Session::new(
        shared.clone(),
        listener,
        Stream::Memory(theirs),
        remote,
        local,
        crate::ids::new_id(),
        force_close,
    )
    .with_client(facts);
    let task = tokio::spawn(session.run());
    let mut client = Client {
        pipe: ours,
        buf: Vec::new(),
        timeout: plugins.reply_timeout,
    };
    let tally = steps(dialog, &mut client, &recorder, out).await?;
    // End the session as a client would, then wait for it (its
    // `disconnect` hooks and transaction ends run).
    let _ = client.send(b"QUIT\r\n").await;
    let _ = client.reply().await;
    drop(client);
    let _ = tokio::time::timeout(plugins.reply_timeout, task).await;
    Ok(tally)
}

/// Runs the steps; the session's greeting is read first.
async fn steps(
    dialog: &Dialog,
    client: &mut Client,
    recorder: &Recorder,
    out: &mut dyn Write,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut report =
        |ok: bool, line: usize, what: &str, detail: &[String]| -> std::io::Result<()> {
            tally.steps += 1;
            if !ok {
                tally.failed += 1;
            }
            let mark = if ok { "ok  " } else { "FAIL" };
            writeln!(out, "  {mark} {line:>4}  {what}")?;
            for d in detail {
                writeln!(out, "              {d}")?;
            }
            Ok(())
        };
    let first_is_expect = matches!(
        dialog.steps.first().map(|s| &s.kind),
        Some(StepKind::Expect { .. })
    );
    if !first_is_expect {
        match client.reply().await {
            Ok(r) if r.code == 220 => report(true, 0, "< 220 (greeting)", &[])?,
            Ok(r) => report(
                false,
                0,
                "< 220 (greeting)",
                &[format!("got:      {} {}", r.code, r.text)],
            )?,
            Err(e) => report(false, 0, "< 220 (greeting)", &[format!("got:      {e}")])?,
        }
    }
    for step in &dialog.steps {
        let line = step.line;
        match &step.kind {
            StepKind::Send(text) => {
                let sent = client.send(format!("{text}\r\n").as_bytes()).await;
                let shown = format!("> {text}");
                match sent {
                    Ok(()) => report(true, line, &shown, &[])?,
                    Err(e) => report(false, line, &shown, &[e])?,
                }
            }
            StepKind::Content(lines) => {
                let mut message = Vec::new();
                for l in lines {
                    message.extend_from_slice(l);
                    message.extend_from_slice(b"\r\n");
                }
                let sent = client.send(&dotstuff::stuff(&[&message])).await;
                let shown = format!("| ({} lines, then \".\")", lines.len());
                match sent {
                    Ok(()) => report(true, line, &shown, &[])?,
                    Err(e) => report(false, line, &shown, &[e])?,
                }
            }
            StepKind::Expect { code, text } => {
                let shown = match text {
                    Some(t) => format!("< {code} {t}"),
                    None => format!("< {code}"),
                };
                match client.reply().await {
                    Ok(r) => {
                        let ok = code.matches(r.code)
                            && text.as_deref().is_none_or(|g| glob(g, &r.text));
                        let detail = match ok {
                            true => Vec::new(),
                            false => vec![
                                format!("expected: {}", &shown[2..]),
                                format!(
                                    "got:      {} {}",
                                    r.code,
                                    r.text.replace('\n', "\n                        ")
                                ),
                            ],
                        };
                        report(ok, line, &shown, &detail)?;
                    }
                    Err(e) => report(
                        false,
                        line,
                        &shown,
                        &[
                            format!("expected: {}", &shown[2..]),
                            format!("got:      {e}"),
                        ],
                    )?,
                }
            }
            StepKind::Check(check) => {
                let shown = format!("? {check}");
                match evaluate(check, recorder) {
                    Ok(()) => report(true, line, &shown, &[])?,
                    Err(got) => report(
                        false,
                        line,
                        &shown,
                        &[format!("expected: {check}"), format!("got:      {got}")],
                    )?,
                }
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_fixtures() {
        let f = DnsFixture {
            name: "mail.example".into(),
            rtype: "mx".into(),
            answer: vec!["10 mx1.mail.example.".into()],
            error: None,
            ttl: 60,
        };
        let (kind, outcome) = dns_fixture(&f).unwrap();
        assert_eq!(kind, RecordKind::Mx);
        assert_eq!(
            outcome.unwrap().records,
            vec![Record::Mx {
                preference: 10,
                exchange: "mx1.mail.example".into()
            }]
        );
        let bad = DnsFixture {
            rtype: "SRV".into(),
            ..f
        };
        assert!(dns_fixture(&bad).is_err());
    }
}
