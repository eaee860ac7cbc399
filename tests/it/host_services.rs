//! Host services through the real binary over TCP: the plugins' `dns`
//! interface against a DNS server the test runs on 127.0.0.1 (every record
//! type, every error kind, the cache, the per-session budget, the grant),
//! TCP connects limited to the `connect` grant, wasi:http requests limited
//! to the `http` grant, the `lifecycle` export told
//! every end of a transaction, and grants checked by `check-config`.
//!
//! The probe fixture performs the lookups in its NOOP hook and answers NOOP
//! with one reply line per outcome (`{note:K}`), so the test reads exactly
//! what the plugin saw.

use crate::common;
use crate::dns_support;
use crate::plugin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

use common::{Gateway, LOCAL};
use dns_support::{DnsServer, Zone};

/// `[plugin_host]` with a cache shared by these tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 64\n\n",
        cache.display().to_string()
    )
}

/// A probe entry whose NOOP runs `actions` and answers with the notes `keys`.
fn probe(grants: &str, actions: &[&str], keys: &[&str]) -> String {
    let wasm = plugin_support::wasm("probe");
    let actions: Vec<String> = actions.iter().map(|a| format!("{a:?}")).collect();
    let text: Vec<String> = keys.iter().map(|k| format!("{k}={{note:{k}}}")).collect();
    format!(
        "[[plugins]]\nname = \"probe\"\npath = {:?}\n{grants}\n[plugins.config]\nhooks = [\"noop\"]\n\
         [plugins.config.actions]\nnoop = [{}]\n[plugins.config.verdicts]\nnoop = \"done:250::{}\"\n\n",
        wasm.display().to_string(),
        actions.join(", "),
        text.join("|")
    )
}

fn zone() -> Zone {
    Zone::new()
        .a("host.test", "192.0.2.1")
        .a("host.test", "192.0.2.2")
        .aaaa("host.test", "2001:db8::1")
        .txt("host.test", &["v=spf1 -all"])
        .txt("2.0.0.127.bl.test", &["listed", " see http://bl.test"])
        .mx("test", 10, "mx1.test")
        .ns("test", "ns1.test")
        .cname("alias.test", "host.test")
        .ptr("192.0.2.10", "client.test")
        .servfail("broken.test")
}

/// The NOOP reply lines as `key=value` pairs.
fn noop(s: &mut common::Smtp) -> String {
    let r = s.cmd("NOOP");
    assert_eq!(r.code, 250, "{}", r.text);
    r.text
}

#[test]
fn dns_record_types_and_errors() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(zone());
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&dns.config(""));
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe(
        "dns = true",
        &[
            "dns:a:A:host.test",
            "dns:aaaa:AAAA:host.test.",
            "dns:mx:MX:test",
            "dns:txt:TXT:2.0.0.127.bl.test",
            "reverse:ptr:192.0.2.10",
            "dns:cname:CNAME:alias.test",
            "dns:chain:A:alias.test",
            "dns:ns:NS:test",
            "dns:nx:A:missing.test",
            "dns:nodata:MX:host.test",
            "dns:sf:A:broken.test",
            "dns:bad:A:bad name.test",
            "reverse:badip:not-an-ip",
        ],
        &[
            "a", "aaaa", "mx", "txt", "ptr", "cname", "chain", "ns", "nx", "nodata", "sf", "bad",
            "badip",
        ],
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    for want in [
        "a=ok ttl=300 a=192.0.2.1 a=192.0.2.2",
        "aaaa=ok ttl=300 aaaa=2001:db8::1",
        "mx=ok ttl=300 mx=10/mx1.test",
        "txt=ok ttl=300 txt=listed+ see http://bl.test",
        "ptr=ok ttl=300 ptr=client.test",
        "cname=ok ttl=300 cname=host.test",
        "chain=ok ttl=300 a=192.0.2.1 a=192.0.2.2",
        "ns=ok ttl=300 ns=ns1.test",
        "nx=nx-domain",
        "nodata=no-data",
        "sf=server-failure(",
        "bad=invalid(",
        "badip=invalid(",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The session goes on normally after every kind of answer.
    s.expect("EHLO client.test", 250);
    s.expect("QUIT", 221);
}

#[test]
fn dns_cache_and_session_budget() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(zone());
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&dns.config("max_queries_per_session = 3"));
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe(
        "dns = true",
        &["dns:first:A:host.test", "dns:second:A:host.test"],
        &["first", "second"],
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("first=ok ttl=300 a=192.0.2.1"), "{text}");
    assert!(text.contains("second=ok ttl=300 a=192.0.2.1"), "{text}");
    // The second lookup was answered from the host's cache.
    assert_eq!(dns.queries_for("host.test"), 1);
    // Two more lookups: the third fits the budget of 3, the fourth does not.
    let text = noop(&mut s);
    assert!(text.contains("first=ok"), "{text}");
    assert!(text.contains("second=refused("), "{text}");
    assert!(text.contains("max_queries_per_session"), "{text}");
    // A new session has a fresh budget, and the cache still answers.
    let mut s2 = gw.connect();
    let text = noop(&mut s2);
    assert!(
        text.contains("first=ok") && text.contains("second=ok"),
        "{text}"
    );
    assert_eq!(dns.queries_for("host.test"), 1);
}

#[test]
fn dns_not_granted_is_refused_and_the_session_goes_on() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(zone());
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&dns.config(""));
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe("", &["dns:a:A:host.test"], &["a"]));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("a=refused(dns is not granted"), "{text}");
    // (The gateway's own reverse lookup of the client may reach it.)
    assert_eq!(
        dns.queries_for("host.test"),
        0,
        "an ungranted lookup reached the server"
    );
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<a@client.test>", 250);
}

#[test]
fn dns_timeout_is_told_apart() {
    plugin_support::plugins_built();
    let dns = DnsServer::start(zone().delay(std::time::Duration::from_millis(1500)));
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&dns.config("timeout = \"200ms\""));
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe("dns = true", &["dns:a:A:host.test"], &["a"]));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("a=timeout"), "{text}");
}

/// A loopback TCP server answering each line with `PONG`.
fn pong_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                if r.read_line(&mut line).is_ok() {
                    let _ = s.write_all(b"PONG\n");
                }
            });
        }
    });
    addr
}

#[test]
fn tcp_connect_only_to_the_grant() {
    plugin_support::plugins_built();
    let granted = pong_server();
    let other = pong_server();
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe(
        &format!("connect = [\"{granted}\"]"),
        &[&format!("tcp:ok:{granted}"), &format!("tcp:no:{other}")],
        &["ok", "no"],
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("ok=ok PONG"), "{text}");
    assert!(text.contains("no=error("), "{text}");
    s.expect("EHLO client.test", 250);

    // Without any grant TCP is off altogether.
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe("", &[&format!("tcp:ok:{granted}")], &["ok"]));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("ok=error("), "{text}");
}

#[test]
fn http_requests_only_to_the_grant() {
    plugin_support::plugins_built();
    let (granted, _) = common::http_server("granted");
    let (other, other_hits) = common::http_server("other");
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe(
        &format!("http = [\"http://{granted}\"]"),
        &[
            &format!("http:ok:http://{granted}/scan?x=1"),
            &format!("http:no:http://{other}/"),
            // A name is never resolved (the system resolver is not used),
            // so it cannot match the address grant.
            &format!("http:name:http://localhost:{}/", granted.port()),
        ],
        &["ok", "no", "name"],
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(text.contains("ok=ok 200 granted /scan?x=1"), "{text}");
    assert!(
        text.contains("no=error(ErrorCode::HttpRequestDenied)"),
        "{text}"
    );
    assert!(
        text.contains("name=error(ErrorCode::HttpRequestDenied)"),
        "{text}"
    );
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a refused request opened a connection"
    );
    s.expect("EHLO client.test", 250);
    drop(s);
    assert!(
        gw.log_text()
            .contains("HTTP request outside the http grant refused"),
        "the refusal is logged"
    );

    // Without the grant every request is refused.
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&plugin_host());
    cfg.push_str(&probe(
        "",
        &[&format!("http:ok:http://{granted}/")],
        &["ok"],
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    let text = noop(&mut s);
    assert!(
        text.contains("ok=error(ErrorCode::HttpRequestDenied)"),
        "{text}"
    );
}

#[test]
fn lifecycle_hears_every_transaction_end() {
    plugin_support::plugins_built();
    let wasm = plugin_support::wasm("lifecycle");
    let mut cfg = String::from(LOCAL);
    cfg.push_str(&plugin_host());
    cfg.push_str(&format!(
        "[[plugins]]\nname = \"lifecycle\"\npath = {:?}\n\n",
        wasm.display().to_string()
    ));
    let gw = Gateway::start(&cfg);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    // Delivered.
    let r = s.send_mail(
        "a@client.test",
        &["bob@example.test"],
        b"Subject: x\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    // RSET: the plugin's deny is ignored, RSET answers 250.
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RSET", 250);
    // A new EHLO ends the open transaction.
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("EHLO client.test", 250);
    // RSET without a transaction: nothing ended.
    s.expect("RSET", 250);
    // The log so far, read while a new transaction is open.
    s.expect("MAIL FROM:<a@client.test>", 250);
    let r = s.cmd("NOOP");
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(r.text.contains("ends=delivered,reset,hello"), "{}", r.text);
}

#[test]
fn lifecycle_around_starttls_and_at_disconnect() {
    plugin_support::plugins_built();
    let dir = tempfile::tempdir().unwrap();
    let (tls, der) = common::tls_section(dir.path());
    let mut extra = format!("{LOCAL}{tls}\n");
    extra.push_str(&plugin_host());
    extra.push_str(&format!(
        "[[plugins]]\nname = \"lifecycle\"\npath = {:?}\n\n",
        plugin_support::wasm("lifecycle").display().to_string()
    ));
    let text = common::test_config(dir.path(), &["smtp"], &extra);
    let gw = Gateway::start_text(dir, &text, 1);
    let ended = |why: &str| {
        gw.log_text()
            .matches(&format!("transaction-ended {why}"))
            .count()
    };

    // STARTTLS inside a transaction is refused and ends nothing; after
    // RSET (which ends it) TLS starts.
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    let r = c.cmd("STARTTLS");
    assert_eq!(r.code, 503, "{}", r.text);
    c.expect("RSET", 250);
    gw.wait_log("transaction-ended reset");
    c.expect("STARTTLS", 220);
    let tcp = c.tcp().try_clone().unwrap();
    let mut tls = BufReader::new(common::tls_client(tcp, &der));
    tls.get_mut().write_all(b"EHLO client.test\r\n").unwrap();
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 250);
    // The notes from before TLS are gone (RFC 3207 4.2): the plugin's log
    // of ends starts afresh.
    tls.get_mut().write_all(b"NOOP\r\n").unwrap();
    let r = common::read_reply(&mut tls).unwrap();
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(!r.text.contains("starttls"), "{}", r.text);
    // A transaction open when the client goes away ends with `disconnect`.
    tls.get_mut()
        .write_all(b"MAIL FROM:<a@client.test>\r\n")
        .unwrap();
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 250);
    drop(tls);
    drop(c);
    gw.wait_log("transaction-ended disconnect");

    // Without an open transaction neither STARTTLS nor QUIT ends one.
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    let tcp = c.tcp().try_clone().unwrap();
    let mut tls = BufReader::new(common::tls_client(tcp, &der));
    tls.get_mut()
        .write_all(b"EHLO client.test\r\nQUIT\r\n")
        .unwrap();
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 250);
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 221);
    gw.wait_disconnects(2);
    assert_eq!(ended("starttls"), 0, "{}", gw.log_text());
    assert_eq!(ended("disconnect"), 1, "{}", gw.log_text());
    assert_eq!(ended("reset"), 1, "{}", gw.log_text());
}

#[test]
fn check_config_names_a_malformed_grant() {
    let err = check_config_error(
        "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nconnect = [\"127.0.0.1:783\", \"somehost:25\"]\n",
    );
    assert!(err.contains("4:29"), "{err}");
    assert!(err.contains("plugins[0].connect[1]"), "{err}");
    assert!(err.contains("invalid connect grant"), "{err}");

    let err = check_config_error(
        "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkv = [\"ok\", \"no spaces\"]\nhttp = [\"ftp://x\"]\n",
    );
    assert!(
        err.contains("plugins[0].kv[1]") && err.contains("4:13"),
        "{err}"
    );

    // An http origin by name would need the system resolver: refused.
    let err = check_config_error(
        "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nhttp = [\"http://127.0.0.1:11333\", \"https://scanner.example\"]\n",
    );
    assert!(
        err.contains("plugins[0].http[1]") && err.contains("must be an IP address"),
        "{err}"
    );
}

/// Runs `wasmtp check-config` on `text`, asserts it fails, returns stderr.
fn check_config_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "check-config accepted:\n{text}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
