//! The plugin chain through the real binary over TCP: the example chain's
//! effects in delivered mail, a hostile plugin contained with the policy
//! reply, and a plugin file replaced + SIGHUP changing behaviour without a
//! restart.

use crate::common;
use crate::plugin_support;

use std::path::Path;

use common::{Gateway, LOCAL};

/// `[plugin_host]` with a cache shared by the TCP tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}

fn entry(name: &str, path: &Path, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n\n",
        path.display().to_string()
    )
}

fn example_chain() -> String {
    let w = plugin_support::wasm;
    let mut c = String::from(LOCAL);
    c.push('\n');
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "helo-check",
        &w("helo-check"),
        "",
        "our_names = ['mx.test']",
    ));
    c.push_str(&entry(
        "rcpt-allowlist",
        &w("rcpt-allowlist"),
        "",
        "domains = ['example.test']",
    ));
    c.push_str(&entry("attachment-block", &w("attachment-block"), "", ""));
    c.push_str(&entry(
        "content-filter",
        &w("content-filter"),
        "memory_mb = 128",
        "body = ['cheap\\s+rolex']",
    ));
    c.push_str(&entry(
        "disclaimer",
        &w("disclaimer"),
        "memory_mb = 128",
        "text = 'Scanned by wasmtp.'",
    ));
    c.push_str(&entry(
        "header-stamp",
        &w("header-stamp"),
        "",
        "notes = ['content_filter.result']",
    ));
    c
}

#[test]
fn example_chain_over_smtp() {
    let gw = Gateway::start(&example_chain());
    let mut s = gw.connect();
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    let r = s.cmd("EHLO 192.0.2.1");
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(r.text.contains("HELO refused: bare IP"), "{}", r.text);
    s.expect("EHLO client.example.net", 250);
    s.expect("MAIL FROM:<alice@example.net>", 250);
    let r = s.cmd("RCPT TO:<bob@elsewhere.example>");
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(r.text.contains("recipient not accepted here"), "{}", r.text);
    s.expect("RCPT TO:<bob@example.test>", 250);
    s.expect("DATA", 354);
    s.send(b"From: alice@example.net\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{}", r.text);

    s.expect("MAIL FROM:<alice@example.net>", 250);
    s.expect("RCPT TO:<bob@example.test>", 250);
    s.expect("DATA", 354);
    s.send(b"Subject: deal\r\n\r\nBuy cheap   Rolex now\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 554, "{}", r.text);
    assert!(
        r.text.contains("5.7.1 message content rejected by policy"),
        "{}",
        r.text
    );
    s.expect("QUIT", 221);

    let mail = gw.delivered();
    assert_eq!(mail.len(), 1);
    let text = String::from_utf8_lossy(&mail[0]);
    assert!(text.contains("X-Wasmtp-Client: 127.0.0.1 port="), "{text}");
    assert!(text.contains("ehlo=client.example.net"), "{text}");
    assert!(
        text.contains("X-Wasmtp-Note: content_filter.result=clean\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("See you at noon.\r\n-- \r\nScanned by wasmtp.\r\n"),
        "{text}"
    );
}

#[test]
fn hostile_plugin_gets_the_policy_reply_and_the_gateway_keeps_serving() {
    let mut c = String::from(LOCAL);
    c.push('\n');
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "hostile",
        &plugin_support::wasm("hostile"),
        "cpu_ms = 50",
        "mode = 'loop'\nhook = 'rcpt'",
    ));
    let gw = Gateway::start(&c);
    for _ in 0..2 {
        let mut s = gw.connect();
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<alice@example.net>", 250);
        let r = s.cmd("RCPT TO:<bob@example.test>");
        assert_eq!(r.code, 451, "{}", r.text);
        assert!(r.text.starts_with("451 4.3.0 "), "{}", r.text);
        s.expect("NOOP", 250);
        s.expect("QUIT", 221);
    }
}

#[test]
fn replacing_a_plugin_file_and_sighup_changes_behaviour() {
    let live = tempfile::tempdir().unwrap();
    let file = live.path().join("policy.wasm");
    std::fs::copy(plugin_support::wasm("rcpt-allowlist"), &file).unwrap();
    let mut c = String::from(LOCAL);
    c.push('\n');
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "policy",
        &file,
        "",
        "domains = ['example.test']\non_match = 'declined'\nrelay_clients = false",
    ));
    let gw = Gateway::start(&c);

    let rcpt_reply = |gw: &Gateway| {
        let mut s = gw.connect();
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<alice@example.net>", 250);
        let r = s.cmd("RCPT TO:<bob@elsewhere.example>");
        s.expect("QUIT", 221);
        r
    };
    let before = rcpt_reply(&gw);
    assert!(
        before.text.contains("recipient not accepted here"),
        "{}",
        before.text
    );

    // A broken file + SIGHUP: refused, the old chain keeps serving.
    std::fs::write(&file, b"not wasm").unwrap();
    gw.signal("HUP");
    gw.wait_log("policy");
    let still = rcpt_reply(&gw);
    assert!(
        still.text.contains("recipient not accepted here"),
        "{}",
        still.text
    );

    // Another component at the same path + SIGHUP: the probe declines, so the
    // core's relay policy answers now.
    std::fs::copy(plugin_support::wasm("probe"), &file).unwrap();
    gw.signal("HUP");
    gw.wait_log("plugin chain reloaded");
    let after = rcpt_reply(&gw);
    assert!(
        !after.text.contains("recipient not accepted here"),
        "{}",
        after.text
    );
    assert_eq!(after.code / 100, 5, "{}", after.text);
}
