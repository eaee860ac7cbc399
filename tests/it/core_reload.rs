//! `wasmtp reload --config FILE` through the real binary: the running
//! gateway swaps its chain over its control socket and the outcome, or the
//! exact error, is printed on the operator's terminal.

use crate::common;
use crate::plugin_support;

use std::process::Command;

use common::{Gateway, LOCAL};

/// A config with one rcpt-allowlist entry at `path` accepting `domains`.
fn config(path: &std::path::Path, domains: &str) -> String {
    format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n\
         [[plugins]]\nname = \"allow\"\npath = {path:?}\n[plugins.config]\ndomains = [{domains}]\n",
        plugin_support::root().join("target/wasmtp-cache")
    )
}

fn rcpt_code(gw: &Gateway, rcpt: &str) -> u16 {
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    let code = c.cmd(&format!("RCPT TO:<{rcpt}>")).code;
    c.expect("QUIT", 221);
    code
}

#[test]
fn reload_reports_success_and_the_exact_error() {
    let allowlist = plugin_support::plugin_path("rcpt-allowlist");
    let junk = plugin_support::plugin_path("fixtures/not-a-plugin");
    let dir = tempfile::tempdir().unwrap();
    let mut text = common::test_config(dir.path(), &["smtp"], "");
    text.push_str(&config(&allowlist, "\"localhost\""));
    let gw = Gateway::start_text(dir, &text, 1);
    // Opened right after the listeners are logged.
    gw.wait_log("control socket open");
    assert_eq!(rcpt_code(&gw, "bob@example.test"), 550);

    // A good config: the new chain is live when the command returns.
    let mut text = common::test_config(gw.dir.path(), &["smtp"], "");
    text.push_str(&config(&allowlist, "\"localhost\", \"example.test\""));
    std::fs::write(&gw.config_path, &text).unwrap();
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(ok, "{stderr}\n{}", gw.log_text());
    assert!(
        stdout.contains("ok: plugin chain reloaded (allow)"),
        "{stdout}"
    );
    assert_eq!(rcpt_code(&gw, "bob@example.test"), 250);

    // A broken plugin: the error on the terminal, the old chain serving.
    let mut text = common::test_config(gw.dir.path(), &["smtp"], "");
    text.push_str(&config(&junk, "\"localhost\""));
    std::fs::write(&gw.config_path, &text).unwrap();
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("reload failed"), "{stderr}");
    assert!(stderr.contains("plugin \"allow\""), "{stderr}");
    assert!(stderr.contains("not-a-plugin.wasm"), "{stderr}");
    assert!(
        stderr.contains("does not export the wasmtp:plugin/hooks interface"),
        "{stderr}"
    );
    assert_eq!(rcpt_code(&gw, "bob@example.test"), 250);

    // The chain line is logged once per successful reload.
    let reloaded = gw.log_text().matches("plugin chain reloaded").count();
    assert_eq!(reloaded, 1, "{}", gw.log_text());
}

#[test]
fn reload_without_a_running_gateway_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, LOCAL).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["reload", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("control socket"), "{stderr}");
}
