//! The one support module of the plugin tests (and of benches/plugin_hooks.rs):
//! every plugin, in any language, is the component `cargo xtask plugins`
//! builds into `target/plugins/` (fixtures into `target/plugins/fixtures/`),
//! built once if missing; plus session contexts, messages and verdict
//! helpers for tests that drive the plugin host directly.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use wasmtp::context::{Connection, Param, Recipient, SessionContext, Transaction};
use wasmtp::message::Message;
use wasmtp::plugin::{PluginConfig, PluginHost, PluginHostConfig, Verdict};
use wasmtp::protocol::Reply;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a built plugin (`fixtures/js-trap` for a fixture). Builds every
/// plugin with `cargo xtask plugins` once if it is missing.
pub fn plugin_path(name: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let path = root().join("target/plugins").join(format!("{name}.wasm"));
    if !path.exists() {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !*built && !path.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["run", "--quiet", "--package", "xtask", "--", "plugins"])
                .current_dir(root())
                .status()
                .expect("running cargo xtask plugins");
            assert!(status.success(), "cargo xtask plugins failed");
            *built = true;
        }
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Makes sure every plugin is built (`cargo xtask plugins`, once).
pub fn plugins_built() {
    plugin_path("fixtures/probe");
}

/// Path of a built Rust example plugin or Rust test fixture by crate name
/// (`probe`, `hostile`, `rcpt-allowlist` or `rcpt_allowlist`, ...).
pub fn wasm(name: &str) -> PathBuf {
    let name = name.replace('_', "-");
    if root().join("tests/fixtures").join(&name).is_dir() {
        plugin_path(&format!("fixtures/{name}"))
    } else {
        plugin_path(&name)
    }
}

/// A `[[plugins]]` entry for a built plugin with a JSON-ish config given as TOML text.
pub fn plugin(name: &str, crate_name: &str, config_toml: &str) -> PluginConfig {
    let mut p = PluginConfig::new(name, wasm(crate_name));
    p.config = toml::from_str(config_toml).expect("config TOML");
    p
}

/// Host settings for tests: a private cache directory, small pool, short ticks.
pub fn host_config(cache: &Path) -> PluginHostConfig {
    PluginHostConfig {
        cache_dir: cache.to_path_buf(),
        max_connections: 16,
        epoch_tick_ms: 2,
        ..PluginHostConfig::default()
    }
}

/// A fresh session context for a client at 192.0.2.7:4567.
pub fn ctx(id: &str) -> SessionContext {
    SessionContext {
        conn: Connection::new(
            id.to_string(),
            "192.0.2.7:4567".parse().unwrap(),
            "127.0.0.1:2525".parse().unwrap(),
        ),
        txn: None,
        max_message_size: 10 << 20,
    }
}

/// Opens a transaction (what the driver does at MAIL).
pub fn open_txn(ctx: &mut SessionContext, sender: &str) {
    ctx.txn = Some(Transaction {
        id: "txn-1".into(),
        sender: sender.into(),
        ..Transaction::default()
    });
}

/// Sets the transaction's complete message as given (what the driver does before data-post).
pub fn set_raw_message(ctx: &mut SessionContext, raw: &str) {
    let txn = ctx.txn.as_mut().expect("transaction open");
    txn.message = Some(Message::parse(raw.as_bytes().to_vec()));
}

/// The probe's log for `name`.
pub fn probe_log(ctx: &SessionContext, name: &str) -> String {
    ctx.conn
        .notes
        .get(&format!("probe.log.{name}"))
        .cloned()
        .unwrap_or_default()
}

/// A `[[plugins]]` entry for a built plugin with a `config` table in TOML.
pub fn entry(name: &str, file: &str, config_toml: &str) -> PluginConfig {
    let mut p = PluginConfig::new(name, plugin_path(file));
    p.config = toml::from_str(config_toml).expect("plugin config TOML");
    p
}

/// Host settings for tests: a small pool, the shared compile cache.
pub fn shared_host_config() -> PluginHostConfig {
    PluginHostConfig {
        cache_dir: root().join("target/wasmtp-cache"),
        max_connections: 8,
        ..PluginHostConfig::default()
    }
}

/// Loads a chain.
pub async fn load(plugins: &[PluginConfig]) -> Arc<PluginHost> {
    PluginHost::load(&shared_host_config(), plugins)
        .await
        .expect("loading the plugin chain")
}

/// A session context for a client at `remote`.
pub fn ctx_from(remote: &str) -> SessionContext {
    let remote: SocketAddr = remote.parse().expect("socket address");
    let local: SocketAddr = "127.0.0.1:25".parse().expect("socket address");
    SessionContext {
        conn: Connection::new("test-session".into(), remote, local),
        txn: None,
        max_message_size: 10 << 20,
    }
}

/// A session context for a non-loopback client (TEST-NET-3).
pub fn client_ctx() -> SessionContext {
    ctx_from("203.0.113.7:40000")
}

/// Starts a transaction with a sender and recipients.
pub fn begin(ctx: &mut SessionContext, sender: &str, rcpts: &[&str]) {
    ctx.txn = Some(Transaction {
        id: "txn-1".into(),
        sender: sender.into(),
        recipients: rcpts
            .iter()
            .map(|r| Recipient {
                address: (*r).into(),
                params: Vec::new(),
            })
            .collect(),
        ..Transaction::default()
    });
}

/// Puts a complete message (LF line ends are turned into CRLF) on the transaction.
pub fn set_message(ctx: &mut SessionContext, text: &str) {
    let raw = text.replace("\r\n", "\n").replace('\n', "\r\n");
    ctx.txn.as_mut().expect("transaction").message = Some(Message::parse(raw.into_bytes()));
}

/// The message as it would be delivered.
pub fn delivered(ctx: &SessionContext) -> String {
    let msg = ctx
        .txn
        .as_ref()
        .and_then(|t| t.message.as_ref())
        .expect("message");
    String::from_utf8(msg.to_bytes().into_owned()).expect("UTF-8 message")
}

/// The values of a header of the message on the transaction.
pub fn header(ctx: &SessionContext, name: &str) -> Vec<String> {
    ctx.txn
        .as_ref()
        .and_then(|t| t.message.as_ref())
        .map(|m| m.header_values(name))
        .unwrap_or_default()
}

/// A transaction note.
pub fn txn_note(ctx: &SessionContext, key: &str) -> Option<String> {
    ctx.txn.as_ref().and_then(|t| t.notes.get(key).cloned())
}

/// One ESMTP parameter.
pub fn param(key: &str, value: Option<&str>) -> Param {
    Param {
        key: key.into(),
        value: value.map(str::to_string),
    }
}

/// The reply of a denying verdict (panics on declined/ok).
pub fn reply(v: &Verdict) -> &Reply {
    match v {
        Verdict::Deny(r)
        | Verdict::DenySoft(r)
        | Verdict::DenyDisconnect(r)
        | Verdict::DenySoftDisconnect(r)
        | Verdict::Done(r) => r,
        other => panic!("expected a verdict with a reply, got {other:?}"),
    }
}

/// The reply as one text line: `550 5.7.1 text`.
pub fn reply_text(v: &Verdict) -> String {
    let r = reply(v);
    let enhanced = r.enhanced().map(|e| format!(" {e}")).unwrap_or_default();
    format!("{}{} {}", r.code(), enhanced, r.lines().join(" / "))
}
