//! The Python `greylist` plugin (`example-plugins/python/greylist`) in the
//! real gateway: the `wasmtp` binary over TCP, its state in the embedded
//! key-value store (across a restart of the process) and in a real
//! `redis-server` shared by two gateways.
//!
//! No assertion depends on timing: a retry that must be early runs against a
//! one-hour delay, and a retry that must pass comes after sleeping longer
//! than a one-second delay.

use crate::common;
use crate::plugin_support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Gateway, LOCAL, Reply, Smtp, alice_auth, plain_auth};
use plugin_support::{plugin_path, root};

/// Longer than a one-second `delay_s`.
const PAST_DELAY: Duration = Duration::from_millis(1300);

/// The `[kv]` section of the embedded store in `dir`.
fn embedded(dir: &Path) -> String {
    format!(
        "[kv]\nbackend = \"embedded\"\npath = {:?}\n",
        dir.join("kv")
    )
}

/// The `[kv]` section of a Redis store.
fn redis(url: &str) -> String {
    format!("[kv]\nbackend = \"redis\"\nurl = {url:?}\nkey_prefix = \"wasmtp-test:\"\n")
}

/// A gateway config: `kv` section, extra sections, the greylist plugin with
/// its grant (`grant` false: no `kv` grant) and its config.
fn config(kv: &str, extra: &str, grant: bool, plugin: &str) -> String {
    format!(
        "{LOCAL}\n{extra}\n{kv}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n\
         [[plugins]]\nname = \"greylist\"\npath = {:?}\n{}\n[plugins.config]\n{plugin}\n",
        root().join("target/wasmtp-cache"),
        plugin_path("greylist"),
        if grant { "kv = [\"greylist\"]" } else { "" },
    )
}

fn start(text: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}{text}", common::test_config(dir.path(), &["smtp"], ""));
    Gateway::start_text(dir, &text, 1)
}

/// EHLO, MAIL and RCPT on a fresh connection; the RCPT reply.
fn rcpt(gw: &Gateway, from: &str, to: &str) -> Reply {
    rcpt_on(gw.connect(), from, to)
}

fn rcpt_on(mut c: Smtp, from: &str, to: &str) -> Reply {
    c.expect("EHLO client.test", 250);
    c.expect(&format!("MAIL FROM:<{from}>"), 250);
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    c.cmd("QUIT");
    r
}

fn assert_greylisted(r: &Reply) {
    assert_eq!(r.code, 451, "{}", r.text);
    assert!(r.text.starts_with("451 4.7.1 Greylisted"), "{}", r.text);
}

fn stop(mut gw: Gateway) {
    gw.signal("TERM");
    assert!(gw.wait_exit().success());
}

#[test]
fn greylist_defers_a_new_triplet_and_passes_its_retry_after_the_delay() {
    let kv = tempfile::tempdir().unwrap();
    let gw = start(&config(
        &embedded(kv.path()),
        "",
        true,
        "delay_s = 1\nauto_allow_after = 0",
    ));
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    assert_greylisted(&c.cmd("RCPT TO:<bob@example.test>"));
    c.expect("RSET", 250);
    std::thread::sleep(PAST_DELAY);
    // The retry passes and the message is delivered; another recipient in
    // the same transaction is a new triplet.
    c.expect("MAIL FROM:<alice@example.org>", 250);
    c.expect("RCPT TO:<bob@example.test>", 250);
    assert_greylisted(&c.cmd("RCPT TO:<carol@example.test>"));
    c.expect("DATA", 354);
    c.send(b"Subject: retried\r\n\r\nhello\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    assert_eq!(gw.delivered().len(), 1);
    // Passed triplets stay passed; the same sender from the same /24 with
    // different case is the same triplet.
    assert_eq!(rcpt(&gw, "ALICE@example.org", "bob@example.test").code, 250);
    gw.wait_log("greylist passed");
}

#[test]
fn greylist_state_survives_a_gateway_restart() {
    let kv = tempfile::tempdir().unwrap();
    let long = "delay_s = 3600\nauto_allow_after = 0";
    let gw = start(&config(&embedded(kv.path()), "", true, long));
    assert_greylisted(&rcpt(&gw, "alice@example.org", "bob@example.test"));
    // A retry before the delay is refused again, with the time left.
    let r = rcpt(&gw, "alice@example.org", "bob@example.test");
    assert_greylisted(&r);
    assert!(r.text.contains("try again in"), "{}", r.text);
    stop(gw);

    // A new process on the same store: the triplet's first sight is
    // remembered, so with a one-second delay the retry passes...
    let gw = start(&config(
        &embedded(kv.path()),
        "",
        true,
        "delay_s = 1\nauto_allow_after = 0",
    ));
    std::thread::sleep(PAST_DELAY);
    assert_eq!(rcpt(&gw, "alice@example.org", "bob@example.test").code, 250);
    // ...while a triplet it never saw is new.
    assert_greylisted(&rcpt(&gw, "dave@example.org", "bob@example.test"));
    stop(gw);

    // And the pass itself is persistent.
    let gw = start(&config(&embedded(kv.path()), "", true, long));
    assert_eq!(rcpt(&gw, "alice@example.org", "bob@example.test").code, 250);
}

#[test]
fn greylist_auto_allows_a_network_after_passed_triplets() {
    let kv = tempfile::tempdir().unwrap();
    let gw = start(&config(
        &embedded(kv.path()),
        "",
        true,
        "delay_s = 1\nauto_allow_after = 1",
    ));
    assert_greylisted(&rcpt(&gw, "alice@example.org", "bob@example.test"));
    std::thread::sleep(PAST_DELAY);
    assert_eq!(rcpt(&gw, "alice@example.org", "bob@example.test").code, 250);
    // One passed triplet: 127.0.0.0/24 is trusted, new triplets pass at once.
    assert_eq!(
        rcpt(&gw, "erin@example.org", "frank@example.test").code,
        250
    );
}

/// A connection from the loopback address `source` (e.g. 127.0.0.2).
fn connect_from(source: &str, addr: SocketAddr) -> Smtp {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    let stream = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(source)?;
            s.connect(addr).await
        })
        .unwrap();
    let std: TcpStream = stream.into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    Smtp::from_stream(std)
}

#[test]
fn greylist_never_defers_authenticated_or_relay_clients() {
    let kv = tempfile::tempdir().unwrap();
    // LOCAL holds [relay]: add the relay network to it.
    let text = config(
        &embedded(kv.path()),
        &alice_auth(true),
        true,
        "delay_s = 3600",
    )
    .replacen(
        "[relay]\n",
        "[relay]\nrelay_networks = [\"127.0.0.2\"]\n",
        1,
    );
    let gw = start(&text);
    // An ordinary client is greylisted...
    assert_greylisted(&rcpt(&gw, "alice@example.org", "bob@example.test"));
    // ...an authenticated one is not,
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect(
        &format!("AUTH PLAIN {}", plain_auth("alice", "s3cret")),
        235,
    );
    c.expect("MAIL FROM:<alice@example.org>", 250);
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("QUIT", 221);
    // ...nor one from a relay network.
    let r = rcpt_on(
        connect_from("127.0.0.2", gw.smtp()),
        "alice@example.org",
        "bob@example.test",
    );
    assert_eq!(r.code, 250, "{}", r.text);
}

#[test]
fn greylist_without_its_grant_fails_cleanly_by_its_policy() {
    let kv = tempfile::tempdir().unwrap();
    // Default policy: let the recipient through and log the refusal.
    let gw = start(&config(&embedded(kv.path()), "", false, "delay_s = 3600"));
    assert_eq!(rcpt(&gw, "alice@example.org", "bob@example.test").code, 250);
    gw.wait_log("not-granted");
    drop(gw);
    // "tempfail": 451 4.3.0.
    let gw = start(&config(
        &embedded(kv.path()),
        "",
        false,
        "delay_s = 3600\non_kv_error = \"tempfail\"",
    ));
    let r = rcpt(&gw, "alice@example.org", "bob@example.test");
    assert_eq!(r.code, 451, "{}", r.text);
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
}

/// A `redis-server` on a free loopback port, without persistence, killed by
/// PID on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed by cargo xtask test)");
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        redis.wait_ready();
        redis
    }

    /// Waits (hang guard) until the server answers PING.
    fn wait_ready(&self) {
        use std::io::{Read, Write};
        for _ in 0..300 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(common::IO_GUARD)).unwrap();
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn two_gateways_on_one_redis_share_the_greylist() {
    let redis = Redis::start();
    let plugin = "delay_s = 1\nauto_allow_after = 0";
    let a = start(&config(&self::redis(&redis.url()), "", true, plugin));
    let b = start(&config(&self::redis(&redis.url()), "", true, plugin));
    assert_greylisted(&rcpt(&a, "alice@example.org", "bob@example.test"));
    std::thread::sleep(PAST_DELAY);
    // Seen on A, retried on B after the delay: passes.
    assert_eq!(rcpt(&b, "alice@example.org", "bob@example.test").code, 250);
    // B greylists what it has not seen; A sees the pass B recorded.
    assert_greylisted(&rcpt(&b, "carol@example.org", "bob@example.test"));
    assert_eq!(rcpt(&a, "alice@example.org", "bob@example.test").code, 250);
    b.wait_log("greylist passed");
}
