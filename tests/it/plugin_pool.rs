//! Warm instance pools and body chunks through the real binary over TCP.
//!
//! The probe counts, in its own memory, the connections an instance has
//! served (`{connections}` in a reply text): with `instances = "pooled"`
//! the second connection is served by the first one's instance, with the
//! default per-connection instances it is not; host notes never cross
//! connections; a trapped instance is never reused; after a SIGHUP the new
//! chain's instances serve. Body chunks reach a plugin in order, exactly,
//! for a message larger than one chunk, and a deny in `body-chunk` is the
//! transaction's reply.

use crate::common;
use crate::plugin_support;

use std::path::Path;

use common::{Gateway, LOCAL, Smtp};

/// `[plugin_host]` with a cache shared by the TCP tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}

/// A gateway with one probe entry: `extra` keys of the entry, `config` its table.
fn gateway(extra: &str, config: &str) -> Gateway {
    let mut c = String::from(LOCAL);
    c.push('\n');
    c.push_str(&plugin_host());
    c.push_str(&format!(
        "[[plugins]]\nname = \"probe\"\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n",
        plugin_support::wasm("probe").display().to_string()
    ));
    Gateway::start(&c)
}

/// The probe config of the pool tests: NOOP answers with the instance's
/// connection count and the connection note `pool.mark`, VRFY sets that
/// note, HELP traps.
const COUNTING: &str = r#"
hooks = ["connect", "noop", "vrfy", "help"]
verdicts = { noop = "done:250::connections={connections} mark={note:pool.mark}" }
actions = { vrfy = ["conn-note:pool.mark:set"], help = ["trap"] }
"#;

const POOLED: &str = "instances = \"pooled\"\npool_size = 2";

/// NOOP's reply text on `s`.
fn noop(s: &mut Smtp) -> String {
    s.expect("NOOP", 250).text
}

/// One connection: NOOP, then QUIT; returns the NOOP reply and waits until
/// the session (the `n`th) is finished.
fn one_connection(gw: &Gateway, n: usize) -> String {
    let mut s = gw.connect();
    let r = noop(&mut s);
    s.expect("QUIT", 221);
    drop(s);
    gw.wait_disconnects(n);
    r
}

#[test]
fn pooled_instance_serves_the_next_connection_with_fresh_host_state() {
    let gw = gateway(POOLED, COUNTING);
    let mut s = gw.connect();
    let r = noop(&mut s);
    assert!(r.contains("connections=1 mark=<none>"), "{r}");
    s.expect("VRFY someone", 252);
    let r = noop(&mut s);
    assert!(r.contains("connections=1 mark=set"), "{r}");
    s.expect("QUIT", 221);
    drop(s);
    gw.wait_disconnects(1);

    // The same instance (its memory counts on), but the note set in the
    // first connection is gone.
    let r = one_connection(&gw, 2);
    assert!(r.contains("connections=2 mark=<none>"), "{r}");
}

#[test]
fn per_connection_instances_are_not_reused() {
    let gw = gateway("", COUNTING);
    for n in 1..=2 {
        let r = one_connection(&gw, n);
        assert!(
            r.contains("connections=1 mark=<none>"),
            "connection {n}: {r}"
        );
    }
}

#[test]
fn a_trapped_instance_is_never_reused() {
    let gw = gateway(POOLED, COUNTING);
    assert!(one_connection(&gw, 1).contains("connections=1 "));

    // The warm instance serves, then traps: the failure policy answers.
    let mut s = gw.connect();
    let r = noop(&mut s);
    assert!(r.contains("connections=2 "), "{r}");
    let r = s.cmd("HELP");
    assert!(r.text.starts_with("451 4.3.0 "), "{}", r.text);
    s.expect("QUIT", 221);
    drop(s);
    gw.wait_disconnects(2);

    // A fresh instance, which is pooled in turn.
    let r = one_connection(&gw, 3);
    assert!(r.contains("connections=1 "), "{r}");
    let r = one_connection(&gw, 4);
    assert!(r.contains("connections=2 "), "{r}");
}

#[test]
fn after_sighup_the_new_chain_instances_serve() {
    let gw = gateway(POOLED, COUNTING);
    assert!(one_connection(&gw, 1).contains("connections=1 "));
    assert!(one_connection(&gw, 2).contains("connections=2 "));
    gw.signal("HUP");
    gw.wait_log("plugin chain reloaded");
    // The old generation's warm instance is not handed to the new chain.
    let r = one_connection(&gw, 3);
    assert!(r.contains("connections=1 "), "{r}");
    let r = one_connection(&gw, 4);
    assert!(r.contains("connections=2 "), "{r}");
}

/// FNV-1a 64, as the probe computes it.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A body of a bit more than two 64 KiB chunks, with lines that start
/// with a dot: (as sent, dot-stuffed; as received, unstuffed).
fn big_body() -> (Vec<u8>, Vec<u8>) {
    let mut sent = Vec::new();
    let mut body = Vec::new();
    let mut n = 0;
    while body.len() < 140_000 {
        let line = if n % 7 == 0 {
            format!(".line {n} starts with a dot\r\n")
        } else {
            format!("line {n}: the quick brown fox jumps over the lazy dog\r\n")
        };
        if line.starts_with('.') {
            sent.push(b'.');
        }
        sent.extend_from_slice(line.as_bytes());
        body.extend_from_slice(line.as_bytes());
        n += 1;
    }
    (sent, body)
}

#[test]
fn body_chunks_carry_the_exact_body_in_order() {
    let gw = gateway(
        "",
        r#"
hooks = ["body-chunk", "data-post"]
verdicts = { "data-post" = "done:250::chunks={chunks} fnv={body-fnv}" }
"#,
    );
    let (sent, body) = big_body();
    let mut message = b"From: alice@example.net\r\nSubject: big\r\n\r\n".to_vec();
    message.extend_from_slice(&sent);
    let mut s = gw.connect();
    let r = s.send_mail("alice@example.net", &["bob@example.test"], &message);
    assert_eq!(r.code, 250, "{}", r.text);
    let chunk = 64 * 1024;
    let expected = format!(
        "chunks=0+{chunk},{chunk}+{chunk},{}+{} fnv={:016x}",
        2 * chunk,
        body.len() - 2 * chunk,
        fnv(&body)
    );
    assert!(r.text.contains(&expected), "{} (wanted {expected})", r.text);
    s.expect("QUIT", 221);
}

#[test]
fn deny_in_body_chunk_is_the_transaction_reply() {
    let gw = gateway(
        "",
        r#"
hooks = ["body-chunk", "data-post"]
verdicts = { "body-chunk" = "deny:554:5.7.1:chunk refused", "data-post" = "deny:554:5.7.1:data-post reached" }
"#,
    );
    let (sent, _) = big_body();
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    message.extend_from_slice(&sent);
    let mut s = gw.connect();
    let r = s.send_mail("alice@example.net", &["bob@example.test"], &message);
    assert_eq!(r.code, 554, "{}", r.text);
    assert!(r.text.contains("5.7.1 chunk refused"), "{}", r.text);
    // The transaction is over; the session goes on.
    s.expect("MAIL FROM:<alice@example.net>", 250);
    s.expect("QUIT", 221);
    assert!(gw.delivered().is_empty());
}

/// `[[plugins]]` with one `probe` entry and the given extra keys.
fn plugins_toml(extra: &str) -> String {
    format!("[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\n{extra}\n")
}

#[test]
fn instance_settings_are_checked_with_key_and_position() {
    use wasmtp::config::Config;
    use wasmtp::plugin::InstanceMode;

    let ok = Config::from_str(&plugins_toml(POOLED), "gw.toml").unwrap();
    assert_eq!(ok.plugins[0].instances, InstanceMode::Pooled);
    assert_eq!(ok.plugins[0].idle_instances(), 2);
    let default = Config::from_str(&plugins_toml(""), "gw.toml").unwrap();
    assert_eq!(default.plugins[0].instances, InstanceMode::PerConnection);
    assert_eq!(default.plugins[0].idle_instances(), 0);
    let bare = Config::from_str(&plugins_toml("instances = \"pooled\""), "gw.toml").unwrap();
    assert_eq!(
        bare.plugins[0].idle_instances(),
        wasmtp::plugin::DEFAULT_POOL_SIZE
    );

    let cases = [
        (
            "instances = \"shared\"",
            "gw.toml:4:13: key `plugins[0].instances`:",
        ),
        ("pool_size = 3", "gw.toml:4:13: key `plugins[0].pool_size`:"),
        (
            "instances = \"pooled\"\npool_size = 0",
            "gw.toml:5:13: key `plugins[0].pool_size`:",
        ),
    ];
    for (extra, prefix) in cases {
        let e = Config::from_str(&plugins_toml(extra), "gw.toml").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(prefix), "{extra:?}: {text}");
    }
}
