//! Async host calls through the real binary: a plugin waiting on DNS parks
//! its fiber and holds no gateway thread. 200 sessions wait on a DNS server
//! that answers after 500 ms while other sessions on the same gateway keep
//! getting replies (they complete; no timing is asserted). The wait counts
//! against the plugin's wall-clock `timeout_ms`, not its `cpu_ms`.

use crate::common;
use crate::dns_support;
use crate::plugin_support;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::Gateway;
use dns_support::{DnsServer, Zone};

/// A whole config: one smtp listener, room for many sessions from
/// loopback, the test DNS server, and a probe whose HELO looks up
/// `slow.test` and answers with the outcome (other commands do not touch
/// the plugin).
fn config(dir: &Path, dns: &DnsServer, limits: &str) -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[server]\nhostname = \"mx.test\"\nmax_connections = 1000\nmax_connections_per_ip = 1000\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n{delivery}\
         [relay]\nlocal_domains = [\"example.test\"]\n\n{dns}\n\
         [plugin_host]\ncache_dir = {cache:?}\nmax_connections = 300\nmax_memory_mb = 64\n\n\
         [[plugins]]\nname = \"probe\"\npath = {wasm:?}\ndns = true\n{limits}\n\
         [plugins.config]\nhooks = [\"helo\"]\n[plugins.config.actions]\nhelo = [\"dns:a:A:slow.test\"]\n\
         [plugins.config.verdicts]\nhelo = \"done:250::a={{note:a}}\"\n",
        delivery = common::delivery_section(dir),
        dns = dns.config(""),
        cache = cache.display().to_string(),
        wasm = plugin_support::wasm("probe").display().to_string(),
    )
}

fn start(dns: &DnsServer, limits: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), dns, limits);
    Gateway::start_text(dir, &text, 1)
}

fn slow_zone() -> Zone {
    Zone::new()
        .ttl(1)
        .a("slow.test", "192.0.2.7")
        .delay(Duration::from_millis(500))
}

#[test]
fn sessions_waiting_on_dns_hold_no_thread() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(slow_zone());
    // cpu_ms = 50: the 500 ms wait is not CPU time.
    let gw = start(&dns, "cpu_ms = 50\ntimeout_ms = 5000");
    let addr = gw.smtp();
    const WAITING: usize = 200;
    const OTHERS: usize = 40;
    // Every waiting session has sent HELO before the others start.
    let sent = Arc::new(Barrier::new(WAITING + 1));
    let mut waiting = Vec::new();
    for i in 0..WAITING {
        let sent = sent.clone();
        waiting.push(std::thread::spawn(move || {
            let mut s = common::Smtp::connect(addr);
            assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
            s.send(format!("HELO waiting{i}.test\r\n").as_bytes());
            sent.wait();
            s.reply()
        }));
    }
    sent.wait();
    // Sessions that do not reach the plugin's DNS wait get their replies.
    let others: Vec<_> = (0..OTHERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = common::Smtp::connect(addr);
                assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
                s.expect("NOOP", 250);
                s.expect("RSET", 250);
                s.expect("VRFY bob", 252);
                s.expect("QUIT", 221);
            })
        })
        .collect();
    for o in others {
        o.join().expect("a session without the DNS wait failed");
    }
    let mut ok = 0;
    for w in waiting {
        let r = w.join().unwrap();
        assert_eq!(r.code, 250, "{}", r.text);
        assert!(r.text.contains("a=ok ttl=1 a=192.0.2.7"), "{}", r.text);
        ok += 1;
    }
    assert_eq!(ok, WAITING);
    assert!(dns.queries() >= 1);
}

#[test]
fn the_dns_wait_counts_against_timeout_ms() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(slow_zone());
    // 500 ms of waiting does not fit a 200 ms wall-clock limit: the
    // failure policy (tempfail) answers, and the session goes on.
    let gw = start(&dns, "timeout_ms = 200");
    let mut s = gw.connect();
    let r = s.cmd("HELO a.test");
    assert_eq!(r.code, 451, "{}", r.text);
    assert!(r.text.contains("4.3.0"), "{}", r.text);
    s.expect("NOOP", 250);
    gw.wait_log("\"reason\":\"timeout\"");
}
