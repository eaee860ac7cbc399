//! The JavaScript, Python and C SDKs' DNS and key-value wrappers (and the
//! JS `lifecycle` export) in the real gateway: the `js-services`,
//! `py-services` and `c-services` fixtures, built from source by `cargo
//! xtask plugins`, answer unknown commands (`XDNS`, `XREV`, `XKV`, `XLIFE`)
//! with what the SDK call returned, against a DNS server the test runs on
//! 127.0.0.1 and the embedded key-value store. The JS fixture's `XFETCH`
//! awaits `fetch` (wasi:http, limited by the `http` grant); the Python
//! fixture's `XCONNECT` and `XFETCH` use Python's own `socket` and `urllib`
//! (wasi:sockets, limited by the `connect` grant, host names resolved by
//! the gateway's resolver only with `dns = true`), all against HTTP servers
//! the test runs on loopback.

use crate::common;
use crate::dns_support;
use crate::plugin_support;

use std::sync::atomic::Ordering;

use common::{Gateway, LOCAL, Smtp};
use dns_support::{DnsServer, Zone};
use plugin_support::{plugin_path, root};

fn zone() -> Zone {
    Zone::new()
        .a("host.test", "192.0.2.1")
        .aaaa("host.test", "2001:db8::1")
        .mx("mail.test", 10, "mx1.mail.test")
        .txt("2.0.0.127.bl.test", &["listed", " here"])
        .ptr("192.0.2.10", "client.test")
        .servfail("broken.test")
        .a("svc.test", "127.0.0.1")
}

/// A gateway with one fixture (`file`) granted `grants`, the test DNS
/// server as resolver and (with `with_kv`) an embedded store in its own
/// temp dir.
fn gateway(
    dns: &DnsServer,
    name: &str,
    file: &str,
    grants: &str,
    with_kv: bool,
) -> (Gateway, tempfile::TempDir) {
    let kv = tempfile::tempdir().unwrap();
    let kv_section = if with_kv {
        format!(
            "[kv]\nbackend = \"embedded\"\npath = {:?}\n",
            kv.path().join("kv")
        )
    } else {
        String::new()
    };
    let config = format!(
        "{LOCAL}\n{}\n{kv_section}\n\
         [plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n\
         [[plugins]]\nname = {name:?}\npath = {:?}\n{grants}\n",
        dns.config(""),
        root().join("target/wasmtp-cache"),
        plugin_path(file),
    );
    (Gateway::start(&config), kv)
}

/// The reply to `line` as "<code> <text>", without the enhanced status
/// code the gateway adds (`250 2.0.0 ...`).
fn ask(c: &mut Smtp, line: &str) -> String {
    let r = c.cmd(line);
    let text = r.text.get(4..).unwrap_or("");
    let text = match text.split_once(' ') {
        Some((esc, rest)) if esc.split('.').count() == 3 && esc.starts_with(['2', '4', '5']) => {
            rest
        }
        _ if text.split('.').count() == 3 && text.starts_with(['2', '4', '5']) => "",
        _ => text,
    };
    format!("{} {text}", r.code)
}

#[test]
fn js_plugin_uses_dns_and_lifecycle_through_the_sdk() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(
        &dns,
        "js-services",
        "fixtures/js-services",
        "dns = true",
        false,
    );
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    assert_eq!(ask(&mut c, "XDNS A host.test"), "250 300 192.0.2.1");
    assert_eq!(ask(&mut c, "XDNS aaaa host.test"), "250 300 2001:db8::1");
    assert_eq!(ask(&mut c, "XDNS MX mail.test"), "250 300 10:mx1.mail.test");
    assert_eq!(
        ask(&mut c, "XDNS TXT 2.0.0.127.bl.test"),
        "250 300 listed here"
    );
    assert_eq!(ask(&mut c, "XREV 192.0.2.10"), "250 300 client.test");
    assert_eq!(ask(&mut c, "XDNS A nowhere.test"), "450 DnsError nx-domain");
    assert_eq!(ask(&mut c, "XDNS MX host.test"), "450 DnsError no-data");
    assert!(ask(&mut c, "XDNS A broken.test").starts_with("450 DnsError server-failure"));
    // The lifecycle export: MAIL then RSET ends a transaction.
    assert_eq!(ask(&mut c, "XLIFE"), "250 (none)");
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RSET", 250);
    assert_eq!(ask(&mut c, "XLIFE"), "250 reset");
    c.expect("QUIT", 221);
}

#[test]
fn js_plugin_uses_kv_through_the_sdk() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(
        &dns,
        "js-services",
        "fixtures/js-services",
        "kv = [\"probe\"]",
        true,
    );
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    assert_eq!(ask(&mut c, "XKV GET probe k"), "250 (absent)");
    assert_eq!(ask(&mut c, "XKV SET probe k v1"), "250 set");
    assert_eq!(ask(&mut c, "XKV GET probe k"), "250 v1");
    assert_eq!(ask(&mut c, "XKV CAS probe k v0 v2"), "250 false");
    assert_eq!(ask(&mut c, "XKV CAS probe k v1 v2"), "250 true");
    assert_eq!(ask(&mut c, "XKV CAS probe new - first"), "250 true");
    assert_eq!(ask(&mut c, "XKV GET probe k"), "250 v2");
    assert_eq!(ask(&mut c, "XKV INCR probe n 5"), "250 5");
    assert_eq!(ask(&mut c, "XKV INCR probe n 2"), "250 7");
    // A negative delta is refused by the JS SDK (componentize-js traps on
    // lowering a negative s64); the instance keeps serving.
    assert!(
        ask(&mut c, "XKV INCR probe n -2").starts_with("450 KvError invalid"),
        "negative delta"
    );
    assert_eq!(ask(&mut c, "XKV GET probe n"), "250 7");
    assert!(
        ask(&mut c, "XKV INCR probe k 1").starts_with("450 KvError invalid"),
        "incrementing a value that is not an integer"
    );
    assert_eq!(ask(&mut c, "XKV DEL probe k"), "250 true");
    assert_eq!(ask(&mut c, "XKV DEL probe k"), "250 false");
    assert!(
        ask(&mut c, "XKV GET other k").starts_with("450 KvError not-granted"),
        "a bucket outside the grant"
    );
    c.expect("QUIT", 221);
    // A new connection sees the state of the last one.
    let mut c = gw.connect();
    assert_eq!(ask(&mut c, "XKV INCR probe n 1"), "250 8");
}

#[test]
fn js_plugin_without_grants_gets_clean_errors() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(&dns, "js-services", "fixtures/js-services", "", false);
    let mut c = gw.connect();
    assert!(ask(&mut c, "XDNS A host.test").starts_with("450 DnsError refused"));
    assert!(ask(&mut c, "XKV GET probe k").starts_with("450 KvError not-granted"));
    // The plugin keeps working.
    assert_eq!(ask(&mut c, "XLIFE"), "250 (none)");
    // (The gateway's own reverse lookup of the client is not the plugin's.)
    assert_eq!(
        dns.queries_for("host.test"),
        0,
        "an ungranted lookup never reaches the server"
    );
}

#[test]
fn js_plugin_fetches_only_from_its_http_grant() {
    let dns = DnsServer::start(zone());
    let (granted, granted_hits) = common::http_server("granted");
    let (other, other_hits) = common::http_server("other");
    let grant = format!("http = [\"http://{granted}\"]");
    let (gw, _kv) = gateway(&dns, "js-services", "fixtures/js-services", &grant, false);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    // An async hook awaiting `fetch`: the body comes back in the reply.
    assert_eq!(
        ask(&mut c, &format!("XFETCH http://{granted}/check?x=1")),
        "250 200 granted /check?x=1"
    );
    assert_eq!(granted_hits.load(Ordering::SeqCst), 1);
    // Another port on the same address: refused before any connection,
    // as a rejected promise the plugin catches; the session goes on.
    let refused = ask(&mut c, &format!("XFETCH http://{other}/"));
    assert!(refused.starts_with("450 fetch "), "{refused}");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    assert_eq!(
        ask(&mut c, &format!("XFETCH http://{granted}/again")),
        "250 200 granted /again"
    );
    c.expect("QUIT", 221);

    // Without the grant every origin is refused.
    let (gw, _kv) = gateway(&dns, "js-services", "fixtures/js-services", "", false);
    let mut c = gw.connect();
    let refused = ask(&mut c, &format!("XFETCH http://{granted}/"));
    assert!(refused.starts_with("450 fetch "), "{refused}");
    assert_eq!(granted_hits.load(Ordering::SeqCst), 2);
}

#[test]
fn c_plugin_uses_dns_through_the_sdk() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(
        &dns,
        "c-services",
        "fixtures/c-services",
        "dns = true",
        false,
    );
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    assert_eq!(ask(&mut c, "XDNS A host.test"), "250 300 192.0.2.1");
    assert_eq!(ask(&mut c, "XDNS MX mail.test"), "250 300 10:mx1.mail.test");
    assert_eq!(
        ask(&mut c, "XDNS TXT 2.0.0.127.bl.test"),
        "250 300 listed here"
    );
    assert_eq!(ask(&mut c, "XDNS A nowhere.test"), "450 DnsError nx-domain");
    c.expect("QUIT", 221);
}

#[test]
fn c_plugin_uses_kv_through_the_sdk() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(
        &dns,
        "c-services",
        "fixtures/c-services",
        "kv = [\"probe\"]",
        true,
    );
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    assert_eq!(ask(&mut c, "XKV GET probe k"), "250 (absent)");
    assert_eq!(ask(&mut c, "XKV SET probe k hello"), "250 set");
    assert_eq!(ask(&mut c, "XKV GET probe k"), "250 hello");
    assert_eq!(ask(&mut c, "XKV INCR probe n 7"), "250 7");
    assert_eq!(ask(&mut c, "XKV INCR probe n 1"), "250 8");
    assert!(ask(&mut c, "XKV GET other k").starts_with("450 KvError not-granted"));
    c.expect("QUIT", 221);
}

#[test]
fn python_plugin_uses_dns_and_kv_through_the_sdk() {
    let dns = DnsServer::start(zone());
    let (gw, _kv) = gateway(
        &dns,
        "py-services",
        "fixtures/py-services",
        "dns = true\nkv = [\"counts\"]",
        true,
    );
    let mut c = gw.connect();
    let a = ask(&mut c, "XDNS A host.test");
    assert!(a.starts_with("250 ") && a.ends_with(" 192.0.2.1"), "{a}");
    let nx = ask(&mut c, "XDNS A nothing.test");
    assert!(nx.starts_with("450 NxDomain nx-domain"), "{nx}");
    assert_eq!(ask(&mut c, "XKV INCR counts k 2"), "250 2");
    assert_eq!(ask(&mut c, "XKV INCR counts k 3"), "250 5");
    assert_eq!(ask(&mut c, "XKV GET counts k"), "250 5");
    let other = ask(&mut c, "XKV GET other k");
    assert!(other.starts_with("450 NotGranted not-granted"), "{other}");
}

#[test]
fn python_socket_and_urllib_reach_only_the_connect_grant() {
    let dns = DnsServer::start(zone());
    let (granted, granted_hits) = common::http_server("granted");
    let (other, other_hits) = common::http_server("other");
    let port = granted.port();
    let grants = format!("dns = true\nconnect = [\"{granted}\"]");
    let (gw, _kv) = gateway(&dns, "py-services", "fixtures/py-services", &grants, false);
    let mut c = gw.connect();
    // A plain socket, then urllib, to an IP literal in the grant.
    assert_eq!(
        ask(&mut c, &format!("XCONNECT 127.0.0.1 {port} /sock")),
        "250 HTTP/1.1 200 OK"
    );
    assert_eq!(
        ask(&mut c, &format!("XFETCH http://127.0.0.1:{port}/u?x=1")),
        "250 200 granted /u?x=1"
    );
    // A host name, resolved by the gateway's resolver (the test's server).
    assert_eq!(
        ask(&mut c, &format!("XFETCH http://svc.test:{port}/named")),
        "250 200 granted /named"
    );
    assert!(dns.queries_for("svc.test") >= 1);
    assert_eq!(granted_hits.load(Ordering::SeqCst), 3);
    // Outside the grant: refused before any connection is made.
    let refused = ask(&mut c, &format!("XFETCH http://{other}/"));
    assert!(refused.starts_with("450 fetch URLError"), "{refused}");
    let refused = ask(&mut c, &format!("XCONNECT 127.0.0.1 {} /", other.port()));
    assert!(
        refused.starts_with("450 connect PermissionError"),
        "{refused}"
    );
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    // A name the zone does not have.
    let missing = ask(&mut c, &format!("XFETCH http://missing.test:{port}/"));
    assert!(missing.starts_with("450 fetch URLError"), "{missing}");
    assert_eq!(granted_hits.load(Ordering::SeqCst), 3);
    // The session keeps working.
    assert_eq!(c.cmd("NOOP").code, 250);
}

#[test]
fn python_networking_without_grants_fails_cleanly() {
    let dns = DnsServer::start(zone());
    let (server, hits) = common::http_server("server");
    let port = server.port();
    // A connect grant but no dns grant: IP literals work, names do not.
    let grants = format!("connect = [\"{server}\"]");
    let (gw, _kv) = gateway(&dns, "py-services", "fixtures/py-services", &grants, false);
    let mut c = gw.connect();
    let named = ask(&mut c, &format!("XFETCH http://svc.test:{port}/"));
    assert!(named.starts_with("450 fetch URLError"), "{named}");
    assert_eq!(
        dns.queries_for("svc.test"),
        0,
        "no lookup without dns = true"
    );
    assert_eq!(
        ask(&mut c, &format!("XFETCH http://127.0.0.1:{port}/ip")),
        "250 200 server /ip"
    );
    drop(c);
    drop(gw);
    // No grant at all: every connect is refused.
    let (gw, _kv) = gateway(&dns, "py-services", "fixtures/py-services", "", false);
    let mut c = gw.connect();
    let refused = ask(&mut c, &format!("XCONNECT 127.0.0.1 {port} /"));
    assert!(
        refused.starts_with("450 connect PermissionError"),
        "{refused}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(c.cmd("NOOP").code, 250);
}
