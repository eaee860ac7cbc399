//! The host-service example plugins (issue 13) through the real binary over
//! TCP, against real servers: `dnsbl` against the in-process test DNS server
//! (tests/dns_support), `ratelimit` on the embedded key-value store, and
//! `spam-scanner` against a real SpamAssassin `spamd` on loopback (started
//! once for this test binary, `--local`, ended by PID when the binary exits).
//! Each also shows what happens when the operator did not grant the service:
//! the plugin's failure path runs and the session goes on.

use crate::common;
use crate::dns_support;
use crate::plugin_support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{Gateway, LOCAL};
use dns_support::{DnsServer, Zone};

/// `[plugin_host]` with a compile cache shared by the TCP tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}

/// One `[[plugins]]` entry of an example plugin with its grants (`extra`).
fn entry(name: &str, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n\n",
        plugin_support::wasm(name).display().to_string()
    )
}

// ------------------------------------------------------------------ dnsbl

/// The DNSBL zone: 127.0.0.2 listed with a TXT text, 127.0.0.4 listed
/// without one, 127.0.0.3's entry answers SERVFAIL; the rest is NXDOMAIN.
fn bl_zone() -> Zone {
    Zone::new()
        .a("2.0.0.127.bl.test", "127.0.0.2")
        .txt(
            "2.0.0.127.bl.test",
            &["Listed by bl.test: see https://bl.test/q?127.0.0.2"],
        )
        .a("4.0.0.127.bl.test", "127.0.0.10")
        .servfail("3.0.0.127.bl.test")
}

fn dnsbl_gateway(dns: &DnsServer, grant: &str, config: &str) -> Gateway {
    let mut c = format!("{LOCAL}\n{}", dns.config(""));
    c.push_str(&plugin_host());
    c.push_str(&entry("dnsbl", grant, config));
    Gateway::start(&c)
}

#[test]
fn dnsbl_refuses_a_listed_client_at_rcpt_with_the_zone_text_and_lets_postmaster_through() {
    let dns = DnsServer::start(bl_zone());
    let gw = dnsbl_gateway(&dns, "dns = true", "zones = ['bl.test']");

    let mut s = common::connect_from(gw.smtp(), "127.0.0.2");
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    s.expect("EHLO client.example.net", 250);
    s.expect("MAIL FROM:<spammer@example.net>", 250);
    let r = s.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(r.code, 554, "{}", r.text);
    assert_eq!(
        r.text,
        "554 5.7.1 Listed by bl.test: see https://bl.test/q?127.0.0.2"
    );
    // RFC 5321 4.5.1: postmaster stays reachable (allow_recipients default).
    s.expect("RCPT TO:<postmaster@example.test>", 250);
    s.expect("QUIT", 221);

    // A listed entry without TXT: the fallback text names the zone.
    let mut s = common::connect_from(gw.smtp(), "127.0.0.4");
    s.expect("EHLO client.example.net", 250);
    s.expect("MAIL FROM:<a@example.net>", 250);
    let r = s.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(r.text, "554 5.7.1 127.0.0.4 is listed in bl.test");
    s.expect("QUIT", 221);

    // 127.0.0.1 is not in the zone (NXDOMAIN): the mail is delivered.
    let mut s = common::connect_from(gw.smtp(), "127.0.0.1");
    let r = s.send_mail(
        "alice@example.net",
        &["bob@example.test"],
        b"Subject: hi\r\n\r\nnot listed\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    assert_eq!(gw.delivered().len(), 1);
    assert!(dns.queries_for("2.0.0.127.bl.test") >= 1);
    assert!(dns.queries_for("1.0.0.127.bl.test") >= 1);
}

#[test]
fn dnsbl_at_connect_refuses_the_greeting() {
    let dns = DnsServer::start(bl_zone());
    let gw = dnsbl_gateway(&dns, "dns = true", "zones = ['bl.test']\nhook = 'connect'");
    let mut s = common::connect_from(gw.smtp(), "127.0.0.2");
    assert_eq!(s.greeting.code, 554, "{}", s.greeting.text);
    assert!(
        s.greeting.text.contains("5.7.1 Listed by bl.test"),
        "{}",
        s.greeting.text
    );
    assert!(s.closed());
    let s = common::connect_from(gw.smtp(), "127.0.0.5");
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
}

#[test]
fn dnsbl_servfail_passes_with_a_note_by_default_and_tempfails_when_configured() {
    let dns = DnsServer::start(bl_zone());
    let pass = dnsbl_gateway(&dns, "dns = true", "zones = ['bl.test']");
    let mut s = common::connect_from(pass.smtp(), "127.0.0.3");
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        b"Subject: x\r\n\r\nservfail\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    pass.wait_log("dnsbl lookup failed");
    assert!(
        pass.log_text().contains("server failure"),
        "{}",
        pass.log_text()
    );

    let tempfail = dnsbl_gateway(
        &dns,
        "dns = true",
        "zones = ['bl.test']\non_error = 'tempfail'",
    );
    let mut s = common::connect_from(tempfail.smtp(), "127.0.0.3");
    s.expect("EHLO client.example.net", 250);
    s.expect("MAIL FROM:<a@example.net>", 250);
    let r = s.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(
        r.text,
        "451 4.4.3 blocklist bl.test unavailable, try again later"
    );
    // The session goes on.
    s.expect("RSET", 250);
    s.expect("QUIT", 221);
}

#[test]
fn dnsbl_timeout_follows_on_error() {
    // Every answer waits 5 s; the gateway gives up after 300 ms.
    let dns = DnsServer::start(bl_zone().delay(Duration::from_secs(5)));
    let mut c = format!("{LOCAL}\n{}", dns.config("timeout = \"300ms\""));
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "dnsbl",
        "dns = true",
        "zones = ['bl.test']\non_error = 'tempfail'",
    ));
    let gw = Gateway::start(&c);
    let mut s = common::connect_from(gw.smtp(), "127.0.0.2");
    s.expect("EHLO client.example.net", 250);
    s.expect("MAIL FROM:<a@example.net>", 250);
    let r = s.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(r.code, 451, "{}", r.text);
    assert!(
        r.text.starts_with("451 4.4.3 blocklist bl.test"),
        "{}",
        r.text
    );
    gw.wait_log("timeout");
    s.expect("QUIT", 221);
}

#[test]
fn dnsbl_without_the_dns_grant_takes_its_failure_path_and_the_session_goes_on() {
    let dns = DnsServer::start(bl_zone());
    // [dns] resolver is configured, but this plugin was not granted DNS.
    let gw = dnsbl_gateway(&dns, "", "zones = ['bl.test']");
    let mut s = common::connect_from(gw.smtp(), "127.0.0.2");
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        b"Subject: x\r\n\r\nungranted\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    gw.wait_log("dnsbl lookup failed");
    assert!(gw.log_text().contains("refused"), "{}", gw.log_text());
    // (The gateway's own reverse lookup of the client may reach it; the
    // plugin's query must not.)
    assert_eq!(
        dns.queries_for("2.0.0.127.bl.test"),
        0,
        "an ungranted lookup must not reach the server"
    );
    assert_eq!(gw.delivered().len(), 1);
}

// ------------------------------------------------------------------ ratelimit

fn kv_embedded(dir: &Path) -> String {
    format!(
        "[kv]\nbackend = \"embedded\"\npath = {:?}\n\n",
        dir.join("kv").display().to_string()
    )
}

#[test]
fn ratelimit_refuses_the_message_past_the_limit() {
    let state = tempfile::tempdir().unwrap();
    let mut c = format!("{LOCAL}\n{}", kv_embedded(state.path()));
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "ratelimit",
        "kv = [\"ratelimit\"]",
        "limit = 3\nwindow = '1h'",
    ));
    let gw = Gateway::start(&c);
    for n in 1..=3 {
        // A new connection each time: the count is per client IP, not per session.
        let mut s = gw.connect();
        let r = s.send_mail(
            "a@example.net",
            &["bob@example.test"],
            format!("Subject: {n}\r\n\r\nmessage {n}\r\n").as_bytes(),
        );
        assert_eq!(r.code, 250, "message {n}: {}", r.text);
        s.expect("QUIT", 221);
    }
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        b"Subject: 4\r\n\r\nmessage 4\r\n",
    );
    assert_eq!(
        r.text,
        "451 4.7.0 rate limit exceeded (3 per 3600 s), try again later"
    );
    // Another client address has its own counter.
    let mut other = common::connect_from(gw.smtp(), "127.0.0.9");
    let r = other.send_mail(
        "a@example.net",
        &["bob@example.test"],
        b"Subject: 5\r\n\r\nfrom elsewhere\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(gw.delivered().len(), 4);
}

#[test]
fn ratelimit_counts_authenticated_users_across_addresses() {
    let state = tempfile::tempdir().unwrap();
    let mut c = format!(
        "{LOCAL}\n{}{}\n",
        kv_embedded(state.path()),
        common::alice_auth(true)
    );
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "ratelimit",
        "kv = [\"ratelimit\"]",
        "limit = 100\nuser_limit = 1\nwindow = 600",
    ));
    let gw = Gateway::start(&c);
    let auth = format!("AUTH PLAIN {}", common::plain_auth("alice", "s3cret"));
    for (source, code) in [("127.0.0.1", 250), ("127.0.0.7", 451)] {
        let mut s = common::connect_from(gw.smtp(), source);
        s.expect("EHLO client.example.net", 250);
        s.expect(&auth, 235);
        s.expect("MAIL FROM:<alice@example.test>", 250);
        s.expect("RCPT TO:<bob@example.test>", 250);
        s.expect("DATA", 354);
        s.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n");
        let r = s.reply();
        assert_eq!(r.code, code, "from {source}: {}", r.text);
        s.expect("QUIT", 221);
    }
}

#[test]
fn ratelimit_without_the_kv_grant_passes_with_a_warning() {
    let state = tempfile::tempdir().unwrap();
    let mut c = format!("{LOCAL}\n{}", kv_embedded(state.path()));
    c.push_str(&plugin_host());
    c.push_str(&entry("ratelimit", "", "limit = 1"));
    let gw = Gateway::start(&c);
    for _ in 0..2 {
        let mut s = gw.connect();
        let r = s.send_mail(
            "a@example.net",
            &["bob@example.test"],
            b"Subject: x\r\n\r\nx\r\n",
        );
        assert_eq!(r.code, 250, "{}", r.text);
        s.expect("QUIT", 221);
    }
    gw.wait_log("rate limit counter unavailable");
    assert!(gw.log_text().contains("not granted"), "{}", gw.log_text());
}

// ------------------------------------------------------------------ spam-scanner

/// The spamd of this test binary: started at first use, ended by PID when
/// the binary exits (a watchdog shell waits on our pipe, then kills it).
struct Spamd {
    addr: SocketAddr,
    _watchdog: Mutex<(Child, ChildStdin)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spamd() -> SocketAddr {
    static SPAMD: OnceLock<Spamd> = OnceLock::new();
    SPAMD
        .get_or_init(|| {
            assert!(
                common::have("spamd"),
                "spamd is missing: cargo xtask test installs it (apt-get install spamd spamassassin)"
            );
            let port = free_port();
            let dir = std::env::temp_dir().join(format!("wasmtp-spamd-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pidfile = dir.join("spamd.pid");
            // spamd in the foreground, offline (--local: no DNS or network
            // tests), on loopback only; the shell kills it by PID once our
            // end of its stdin closes (this process exited).
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(
                    "spamd --local --nouser-config --syslog=stderr \
                     --listen \"127.0.0.1:$1\" --allowed-ips=127.0.0.1 \
                     --pidfile \"$2\" --max-children=2 --min-children=1 2>\"$3\" & \
                     pid=$!; echo \"$pid\"; read _; kill \"$pid\"; wait \"$pid\"",
                )
                .arg("sh")
                .arg(port.to_string())
                .arg(&pidfile)
                .arg(dir.join("spamd.log"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start spamd");
            let stdin = child.stdin.take().unwrap();
            let mut pid = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut pid)
                .unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // Hang guard while spamd loads its rules (several seconds).
            for _ in 0..1200 {
                if TcpStream::connect(addr).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                TcpStream::connect(addr).is_ok(),
                "spamd (pid {}) did not listen on {addr}: {}",
                pid.trim(),
                std::fs::read_to_string(dir.join("spamd.log")).unwrap_or_default()
            );
            Spamd {
                addr,
                _watchdog: Mutex::new((child, stdin)),
            }
        })
        .addr
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.net>\r\nTo: Bob <bob@example.test>\r\n\
         Subject: {subject}\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject}@example.net>\r\nX-Spam-Status: forged by the sender\r\n\
         \r\n{body}\r\n"
    )
    .into_bytes()
}

fn scanner_gateway(address: SocketAddr, grant: bool, on_error: &str) -> Gateway {
    let grant = if grant {
        format!("connect = [\"{address}\"]\ntimeout_ms = 60000")
    } else {
        "timeout_ms = 60000".to_string()
    };
    let mut c = format!("{LOCAL}\n");
    c.push_str(&plugin_host());
    c.push_str(&entry(
        "spam-scanner",
        &grant,
        &format!("address = '{address}'\non_error = '{on_error}'\ntimeout_ms = 50000"),
    ));
    Gateway::start(&c)
}

#[test]
fn spam_scanner_refuses_gtube_and_tags_a_clean_message() {
    let gw = scanner_gateway(spamd(), true, "tempfail");
    let mut s = gw.connect();
    let r = s.send_mail(
        "alice@example.net",
        &["bob@example.test"],
        &message("gtube", &format!("This is the GTUBE test.\r\n{GTUBE}")),
    );
    assert_eq!(r.code, 554, "{}\n{}", r.text, gw.log_text());
    assert!(
        r.text
            .starts_with("554 5.7.1 message refused as spam (score 1"),
        "{}",
        r.text
    );
    // The session goes on: a clean message next.
    s.expect("MAIL FROM:<alice@example.net>", 250);
    s.expect("RCPT TO:<bob@example.test>", 250);
    s.expect("DATA", 354);
    s.send(&message(
        "lunch",
        "Hi Bob,\r\n\r\nshall we have lunch on Thursday at noon?\r\n\r\nAlice",
    ));
    s.send(b".\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), 1);
    let text = String::from_utf8_lossy(&delivered[0]).into_owned();
    let score = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Score: "))
        .unwrap_or_else(|| panic!("no X-Spam-Score:\n{text}"));
    assert!(score.parse::<f64>().unwrap() < 5.0, "{text}");
    let status = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Status: "))
        .unwrap_or_else(|| panic!("no X-Spam-Status:\n{text}"));
    assert!(
        status.starts_with(&format!("No, score={score} required=5.0 tests=")),
        "{status}"
    );
    assert!(!text.contains("forged by the sender"), "{text}");
    assert!(text.contains("shall we have lunch"), "{text}");
}

#[test]
fn spam_scanner_down_follows_on_error() {
    // Nothing listens on this granted address: the scanner is down.
    let down: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = scanner_gateway(down, true, "tempfail");
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        &message("down", "hello"),
    );
    assert_eq!(
        r.text,
        "451 4.7.1 spam scanner unavailable, try again later"
    );
    s.expect("QUIT", 221);
    gw.wait_log("spam scan failed");

    let gw = scanner_gateway(down, true, "pass");
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        &message("down2", "hello"),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    let text = String::from_utf8_lossy(&gw.delivered()[0]).into_owned();
    assert!(!text.contains("X-Spam-Score"), "{text}");
}

#[test]
fn spam_scanner_without_the_connect_grant_fails_cleanly() {
    // spamd is up, but the plugin may not connect to it.
    let gw = scanner_gateway(spamd(), false, "tempfail");
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@example.net",
        &["bob@example.test"],
        &message("ungranted", GTUBE),
    );
    assert_eq!(
        r.text,
        "451 4.7.1 spam scanner unavailable, try again later"
    );
    s.expect("RSET", 250);
    s.expect("QUIT", 221);
    gw.wait_log("cannot connect to spamd");
}
