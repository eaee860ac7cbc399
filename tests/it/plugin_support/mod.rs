//! Shared helpers of the plugin host tests: build the real plugin
//! components from source (once per test process; cargo makes it a no-op
//! when they are up to date), and make session contexts and messages.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wasmtp::context::{Connection, SessionContext, Transaction};
use wasmtp::message::Message;
use wasmtp::plugin::{PluginConfig, PluginHostConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the plugin workspaces build to.
pub fn build_dir() -> PathBuf {
    root().join("target/plugins-build/wasm32-wasip2/release")
}

fn build(manifest: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(root().join("target/plugins-build"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed (is `rustup target add wasm32-wasip2` done?):\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the example plugins and the test fixtures (once per process).
pub fn plugins_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build(&root().join("example-plugins/rust/Cargo.toml"));
        build(&root().join("tests/fixtures/Cargo.toml"));
    });
}

/// Path of a built plugin (`probe`, `hostile`, `rcpt-allowlist`, ...).
pub fn wasm(name: &str) -> PathBuf {
    plugins_built();
    build_dir().join(format!("{}.wasm", name.replace('-', "_")))
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

/// Sets the transaction's complete message (what the driver does before data-post).
pub fn set_message(ctx: &mut SessionContext, raw: &str) {
    let txn = ctx.txn.as_mut().expect("transaction open");
    txn.message = Some(Message::parse(raw.as_bytes().to_vec()));
}

/// The delivered form of the message.
pub fn delivered(ctx: &SessionContext) -> String {
    let m = ctx.txn.as_ref().unwrap().message.as_ref().unwrap();
    String::from_utf8(m.to_bytes().into_owned()).unwrap()
}

/// The probe's log for `name`.
pub fn probe_log(ctx: &SessionContext, name: &str) -> String {
    ctx.conn
        .notes
        .get(&format!("probe.log.{name}"))
        .cloned()
        .unwrap_or_default()
}
