//! Scale-out behind a real HAProxy (Debian's `haproxy`, started by the test
//! on loopback, `-db` in the foreground, ended by PID): two gateways share
//! one `redis-server` for their key-value state and take PROXY protocol v2
//! (`send-proxy-v2`) from HAProxy, which health-checks them with `option
//! smtpchk` (sent with a PROXY header, `check-send-proxy`).
//!
//! The client connects from 127.0.0.7, HAProxy from 127.0.0.1: the Received
//! header, the plugins' connection handle (`header-stamp`), the greylist
//! triplet and the rate-limit counter all carry 127.0.0.7. HAProxy has one
//! frontend per gateway (so the test knows which gateway a session reaches)
//! and one balancing over both (`balance roundrobin`). A triplet greylisted
//! by gateway A passes on gateway B after the delay; the rate limit counts
//! messages through both. The health checks leave no warning or error in
//! either gateway's log.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{self, Gateway, LOCAL, Reply, Smtp, split_received};
use crate::kv_support;
use crate::plugin_support;

use wasmtp::kv::{BackendKind, KvConfig, KvStore};

/// The client's own address (HAProxy and the gateways see it; the
/// gateways' TCP peer is HAProxy on 127.0.0.1).
const CLIENT: &str = "127.0.0.7";
/// Longer than the greylist's one-second `delay_s`.
const PAST_DELAY: Duration = Duration::from_millis(1300);

/// A running `haproxy -db`, killed by PID on drop.
struct HaProxy {
    child: Child,
    dir: tempfile::TempDir,
}

impl HaProxy {
    /// Writes `config` to a temp dir and starts HAProxy on it.
    /// `config` is given the path of the stats socket.
    fn start(config: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config(&dir.path().join("haproxy.sock"))).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy must be installed (cargo xtask test installs it)");
        assert!(
            check.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, dir }
    }

    /// HAProxy's view of the servers it checks, from its stats socket
    /// (`show stat`): `backend/server` → (`status`, `check_status`), e.g.
    /// ("UP", "L7OK") once an SMTP check passed.
    fn servers(&self) -> Vec<(String, String, String)> {
        use std::io::{Read as _, Write as _};
        let mut sock =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("haproxy.sock")).unwrap();
        sock.write_all(b"show stat\n").unwrap();
        let mut text = String::new();
        sock.read_to_string(&mut text).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (px, sv, st, ck) = (
            col("pxname"),
            col("svname"),
            col("status"),
            col("check_status"),
        );
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > ck && !matches!(f[sv], "FRONTEND" | "BACKEND"))
            .map(|f| {
                (
                    format!("{}/{}", f[px], f[sv]),
                    f[st].to_string(),
                    f[ck].to_string(),
                )
            })
            .collect()
    }

    /// What HAProxy printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Panics with HAProxy's output if it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("haproxy exited ({status}): {}", self.output());
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HAProxy config: frontends `a` and `b` reach one gateway each,
/// `mx` balances over both; every server gets PROXY v2 and an SMTP health
/// check (every 300 ms, so the test sees several).
fn haproxy_config(sock: &Path, a: SocketAddr, b: SocketAddr, fa: u16, fb: u16, mx: u16) -> String {
    let sock = sock.display();
    format!(
        "global\n    maxconn 256\n    stats socket {sock} mode 600 level user\n\n\
defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
    option smtpchk EHLO haproxy.test\n\n\
frontend a\n    bind 127.0.0.1:{fa}\n    default_backend gw_a\n\n\
frontend b\n    bind 127.0.0.1:{fb}\n    default_backend gw_b\n\n\
frontend mx\n    bind 127.0.0.1:{mx}\n    default_backend gateways\n\n\
backend gw_a\n    server a {a} send-proxy-v2 check check-send-proxy inter 300ms\n\n\
backend gw_b\n    server b {b} send-proxy-v2 check check-send-proxy inter 300ms\n\n\
backend gateways\n    balance roundrobin\n\
    server a {a} send-proxy-v2 track gw_a/a\n\
    server b {b} send-proxy-v2 track gw_b/b\n"
    )
}

/// The `[kv]` section: the shared `redis-server`, a prefix of this test.
fn kv_section() -> String {
    format!(
        "[kv]\nbackend = \"redis\"\nurl = {:?}\nkey_prefix = \"haproxy-{}:\"\n",
        kv_support::redis().url,
        std::process::id()
    )
}

fn plugin(name: &str, grant: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{grant}\n[plugins.config]\n{config}\n\n",
        plugin_support::wasm(name).display().to_string()
    )
}

/// A gateway taking PROXY headers from 127.0.0.1 only, with the greylist
/// (per client address: `ipv4_prefix = 32`), the rate limit (3 messages an
/// hour) and header-stamp.
fn gateway(name: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    let text = format!(
        "[server]\nhostname = \"{name}.test\"\nshutdown_grace = \"30s\"\n\n\
[[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\nproxy_protocol = true\n\
proxy_trusted = [\"127.0.0.1/32\"]\n\n{}{LOCAL}\n{}\n\
[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n{}{}{}",
        common::delivery_section(dir.path()),
        kv_section(),
        cache.display().to_string(),
        plugin(
            "greylist",
            "kv = [\"greylist\"]",
            "delay_s = 1\nauto_allow_after = 0\nipv4_prefix = 32"
        ),
        plugin(
            "ratelimit",
            "kv = [\"ratelimit\"]",
            "limit = 3\nwindow = \"1h\""
        ),
        plugin("header-stamp", "", ""),
    );
    Gateway::start_text(dir, &text, 1)
}

/// Sessions the gateway logged from HAProxy itself (its health checks: a
/// PROXY v2 LOCAL header keeps the TCP peer, 127.0.0.1).
fn checks(gw: &Gateway) -> usize {
    gw.log_text()
        .lines()
        .filter(|l| {
            l.contains("\"message\":\"connected\"") && l.contains("\"remote\":\"127.0.0.1:")
        })
        .count()
}

/// Waits (hang guard) until each gateway has answered `n` health checks.
fn until_checked(haproxy: &mut HaProxy, gws: &[&Gateway], n: usize) {
    for _ in 0..600 {
        haproxy.assert_running();
        if gws.iter().all(|g| checks(g) >= n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "health checks never reached every gateway; haproxy: {}\nlogs:\n{}",
        haproxy.output(),
        gws.iter()
            .map(|g| g.log_text())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

/// A session from [`CLIENT`] through the HAProxy frontend on `port`.
fn client(port: u16) -> Smtp {
    let s = common::connect_from(SocketAddr::from(([127, 0, 0, 1], port)), CLIENT);
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    s
}

/// One message from alice to bob through the frontend on `port`: the reply
/// to RCPT if it was refused, else the reply to the end of DATA.
fn send(port: u16, subject: &str) -> Reply {
    let mut s = client(port);
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<alice@example.org>", 250);
    let r = s.cmd("RCPT TO:<bob@example.test>");
    if r.code != 250 {
        s.cmd("QUIT");
        return r;
    }
    s.expect("DATA", 354);
    s.send(format!("Subject: {subject}\r\n\r\nhello\r\n.\r\n").as_bytes());
    let r = s.reply();
    s.expect("QUIT", 221);
    r
}

/// A key of the shared store, read as the gateways' backend reads it.
fn stored(bucket: &str, key: &str) -> Option<String> {
    let config = KvConfig {
        backend: BackendKind::Redis,
        url: Some(kv_support::redis().url.clone()),
        key_prefix: format!("haproxy-{}:", std::process::id()),
        ..KvConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kv = KvStore::open(&config).await.unwrap();
        kv.get(bucket, key).await.unwrap()
    })
    .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn message_with(gw: &Gateway, subject: &str) -> Vec<u8> {
    gw.delivered()
        .into_iter()
        .find(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}\r\n")))
        .unwrap_or_else(|| panic!("{subject:?} was not delivered by this gateway"))
}

#[test]
fn two_gateways_behind_haproxy_share_greylist_and_rate_limit() {
    let a = gateway("mx-a");
    let b = gateway("mx-b");
    let (fa, fb, mx) = (
        kv_support::free_port(),
        kv_support::free_port(),
        kv_support::free_port(),
    );
    let mut haproxy = HaProxy::start(|sock| haproxy_config(sock, a.smtp(), b.smtp(), fa, fb, mx));
    // Both gateways answer HAProxy's checks: its SMTP check (layer 7) passed.
    until_checked(&mut haproxy, &[&a, &b], 2);
    let servers = haproxy.servers();
    assert_eq!(servers.len(), 4, "{servers:?}");
    for (name, status, check) in &servers {
        assert_eq!(status, "UP", "{name}: {servers:?}");
        if name.starts_with("gw_") {
            assert_eq!(check, "L7OK", "{name}: {servers:?}");
        }
    }

    // Greylisted on A: the triplet holds the client's address, not HAProxy's.
    let r = send(fa, "first");
    assert_eq!(r.code, 451, "{}", r.text);
    assert!(r.text.starts_with("451 4.7.1 Greylisted"), "{}", r.text);
    let triplet = format!("t:{CLIENT}/32|alice@example.org|bob@example.test");
    let seen = stored("greylist", &triplet);
    assert!(
        seen.as_deref().is_some_and(|v| v.starts_with("wait ")),
        "{triplet}: {seen:?}"
    );

    // Retried on B after the delay: passes, and B's Received header and
    // plugins name the client.
    std::thread::sleep(PAST_DELAY);
    let r = send(fb, "retried");
    assert_eq!(r.code, 250, "{}", r.text);
    b.wait_log("greylist passed");
    let (received, rest) = split_received(&message_with(&b, "retried"));
    assert!(received.contains(&format!("[{CLIENT}]")), "{received}");
    assert!(!received.contains("127.0.0.1"), "{received}");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains(&format!("X-Wasmtp-Client: {CLIENT} port=")),
        "{rest}"
    );
    assert_eq!(
        stored("ratelimit", &format!("ip:{CLIENT}")).as_deref(),
        Some("1")
    );

    // The rate limit (3 an hour) counts on both gateways: message 2 on A,
    // message 3 through the balancing frontend, then A and B both refuse.
    let r = send(fa, "second");
    assert_eq!(r.code, 250, "{}", r.text);
    message_with(&a, "second");
    let r = send(mx, "third");
    assert_eq!(r.code, 250, "{}", r.text);
    for (port, subject) in [(fa, "fourth"), (fb, "fifth")] {
        let r = send(port, subject);
        assert_eq!(
            r.text, "451 4.7.0 rate limit exceeded (3 per 3600 s), try again later",
            "{subject}"
        );
    }
    assert_eq!(
        stored("ratelimit", &format!("ip:{CLIENT}")).as_deref(),
        Some("5")
    );
    assert_eq!(a.delivered().len() + b.delivered().len(), 3);

    // More checks after the traffic; none left a warning or an error.
    let (ca, cb) = (checks(&a), checks(&b));
    for (gw, n) in [(&a, ca), (&b, cb)] {
        until_checked(&mut haproxy, &[gw], n + 2);
    }
    for gw in [&a, &b] {
        assert_eq!(gw.warnings(), Vec::<String>::new());
        // every session from HAProxy's own address was a check
        assert!(!gw.log_text().contains("PROXY"), "{}", gw.log_text());
    }
    haproxy.assert_running();
    assert!(haproxy.servers().iter().all(|s| s.1 == "UP"));
}
