//! Whole-config reload through the real binary: TLS certificate rotation
//! (and a broken certificate refused), `[limits]`, `[relay]` and `[auth]`
//! applied to new sessions while sessions opened before finish on their
//! settings, a listener address change reported as needing a restart, and
//! a reload from one plugin to a six-plugin chain (a new engine) while
//! clients keep sending.

use crate::common;
use crate::plugin_support;

use std::io::{BufReader, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Gateway, LOCAL, Smtp};

/// A session upgraded with STARTTLS, trusting only `der`.
struct TlsSession {
    tls: BufReader<common::TlsStream>,
}

impl TlsSession {
    fn start(gw: &Gateway, der: &[u8]) -> Self {
        let mut c = gw.connect();
        c.expect("EHLO client.test", 250);
        c.expect("STARTTLS", 220);
        let tcp = c.tcp().try_clone().unwrap();
        let mut me = Self {
            tls: BufReader::new(common::tls_client(tcp, der)),
        };
        assert_eq!(me.say("EHLO client.test").code, 250);
        me
    }

    fn say(&mut self, line: &str) -> common::Reply {
        self.tls
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        common::read_reply(&mut self.tls).unwrap()
    }

    /// The DER of the certificate the server presented.
    fn served(&self) -> Vec<u8> {
        let conn = &self.tls.get_ref().conn;
        conn.peer_certificates().unwrap()[0].to_vec()
    }
}

/// Writes a fresh certificate for "localhost" over `dir/cert.pem` and
/// `dir/key.pem`; returns its DER.
fn rotate(dir: &std::path::Path) -> Vec<u8> {
    let fresh = tempfile::tempdir().unwrap();
    let (cert, key, der) = common::write_cert(fresh.path());
    std::fs::copy(key, dir.join("key.pem")).unwrap();
    std::fs::copy(cert, dir.join("cert.pem")).unwrap();
    der
}

#[test]
fn tls_certificate_rotates_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, first) = common::tls_section(dir.path());
    let extra = format!("{LOCAL}{tls}");
    let text = common::test_config(dir.path(), &["smtp"], &extra);
    let gw = Gateway::start_text(dir, &text, 1);
    gw.wait_log("control socket open");

    // A session in TLS on the first certificate, mid-transaction.
    let mut before = TlsSession::start(&gw, &first);
    assert_eq!(before.served(), first);
    assert_eq!(before.say("MAIL FROM:<a@client.test>").code, 250);
    assert_eq!(before.say("RCPT TO:<user@example.test>").code, 250);

    let second = rotate(gw.dir.path());
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(ok, "{stderr}\n{}", gw.log_text());
    assert!(
        stdout.contains("changed: tls certificate rotated: ") && stdout.contains("cert.pem"),
        "{stdout}"
    );
    gw.wait_log("tls certificate rotated");

    // The session opened before goes on and completes its message.
    assert_eq!(before.say("DATA").code, 354);
    assert_eq!(before.say("Subject: before\r\n\r\nold cert\r\n.").code, 250);
    assert_eq!(before.say("QUIT").code, 221);

    // A new session is served the new certificate.
    let mut after = TlsSession::start(&gw, &second);
    assert_eq!(after.served(), second);
    assert_eq!(after.say("MAIL FROM:<a@client.test>").code, 250);
    assert_eq!(after.say("RCPT TO:<user@example.test>").code, 250);
    assert_eq!(after.say("DATA").code, 354);
    assert_eq!(after.say("Subject: after\r\n\r\nnew cert\r\n.").code, 250);
    assert_eq!(gw.delivered().len(), 2);

    // The same files again: nothing rotates.
    let (ok, stdout, _) = gw.reload_command();
    assert!(ok);
    assert!(stdout.contains("no setting changed"), "{stdout}");

    // A broken certificate file: the reload fails naming the key and the
    // file (`wasmtp reload` checks the config before asking the gateway;
    // the gateway checks it again on SIGHUP) and the second certificate
    // is still served.
    std::fs::write(gw.dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("key `tls.cert`"), "{stderr}");
    assert!(stderr.contains("no certificate found in"), "{stderr}");
    assert!(stderr.contains("cert.pem"), "{stderr}");
    gw.signal("HUP");
    gw.wait_log("reload failed; the running config and chain stay");
    let log = gw.log_text();
    let failed = log.lines().find(|l| l.contains("reload failed")).unwrap();
    assert!(failed.contains("cert.pem"), "{failed}");
    let mut still = TlsSession::start(&gw, &second);
    assert_eq!(still.served(), second);
    assert_eq!(still.say("QUIT").code, 221);
}

/// A config whose one listener is at `address`, with `extra` sections.
fn settings_config(dir: &std::path::Path, address: &str, extra: &str) -> String {
    format!(
        "[server]\nhostname = \"mx.test\"\n\n[[listeners]]\naddress = \"{address}\"\nmode = \"smtp\"\n\n{}{extra}\n",
        common::delivery_section(dir)
    )
}

#[test]
fn limits_relay_and_auth_apply_to_new_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{LOCAL}[limits]\nmax_message_size = \"1M\"\n");
    let text = settings_config(dir.path(), "127.0.0.1:0", &extra);
    let gw = Gateway::start_text(dir, &text, 1);
    gw.wait_log("control socket open");

    let mut before = gw.connect();
    let ehlo = before.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("SIZE 1048576"), "{}", ehlo.text);
    assert!(!ehlo.text.contains("AUTH"), "{}", ehlo.text);
    before.expect("MAIL FROM:<a@client.test>", 250);
    before.expect("RCPT TO:<bob@remote.test>", 550);

    // New limits, relay networks and an AUTH user; and a listener address
    // that cannot change without a restart.
    let extra = format!(
        "{LOCAL}relay_networks = [\"127.0.0.1/32\"]\n[limits]\nmax_message_size = \"2M\"\n{}",
        common::alice_auth(true)
    );
    let text = settings_config(gw.dir.path(), "127.0.0.1:1", &extra);
    std::fs::write(&gw.config_path, &text).unwrap();
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(ok, "{stderr}\n{}", gw.log_text());
    for line in [
        "changed: limits.max_message_size \"1M\" → \"2M\"",
        "changed: relay.relay_networks (unset) → [\"127.0.0.1/32\"]",
        "changed: auth.users[0] (unset) → { password_hash = \"(hidden)\", username = \"alice\" }",
        "needs a restart (not applied): listeners[0].address \"127.0.0.1:0\" → \"127.0.0.1:1\"",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    // (the log is read by another thread: wait for the line)
    gw.wait_log("needs a restart, not applied");
    let log = gw.log_text();
    assert!(!log.contains("s3cret") && !log.contains("$argon2"), "{log}");

    // New sessions: the new limits, relay networks and users, on the
    // listener as bound.
    let mut after = gw.connect();
    let ehlo = after.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("SIZE 2097152"), "{}", ehlo.text);
    assert!(ehlo.text.contains("AUTH"), "{}", ehlo.text);
    after.expect("MAIL FROM:<a@client.test>", 250);
    after.expect("RCPT TO:<bob@remote.test>", 250);
    after.expect("QUIT", 221);
    let mut auth = gw.connect();
    auth.expect("EHLO client.test", 250);
    auth.expect(
        &format!("AUTH PLAIN {}", common::plain_auth("alice", "s3cret")),
        235,
    );
    auth.expect("QUIT", 221);

    // The session opened before keeps the settings it started with.
    let ehlo = before.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("SIZE 1048576"), "{}", ehlo.text);
    before.expect("MAIL FROM:<a@client.test>", 250);
    before.expect("RCPT TO:<bob@remote.test>", 550);
    before.expect("QUIT", 221);

    // Every reload reports the pending restart again.
    let (ok, stdout, _) = gw.reload_command();
    assert!(ok);
    assert!(stdout.contains("no setting changed"), "{stdout}");
    assert!(
        stdout.contains("needs a restart (not applied): listeners[0].address"),
        "{stdout}"
    );
}

/// `n` header-stamp plugins, `stamp1`..`stampN`, each adding `X-Stamp-i`.
fn stamps(n: usize) -> String {
    let wasm = plugin_support::wasm("header-stamp");
    let mut text = format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 4\n\n",
        plugin_support::root().join("target/wasmtp-cache")
    );
    for i in 1..=n {
        text.push_str(&format!(
            "[[plugins]]\nname = \"stamp{i}\"\npath = {wasm:?}\n[plugins.config.static]\nX-Stamp-{i} = \"{i}\"\n\n"
        ));
    }
    text
}

/// A gateway for 8 connections (its plugin pool sized for 4) with a chain of `n` stamps.
fn chain_config(dir: &std::path::Path, n: usize) -> String {
    common::test_config(dir, &["smtp"], &format!("{LOCAL}{}", stamps(n)))
        .replace("[server]\n", "[server]\nmax_connections = 8\n")
}

#[test]
fn reload_into_a_longer_chain_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let text = chain_config(dir.path(), 1);
    let gw = Gateway::start_text(dir, &text, 1);
    let addr = gw.smtp();

    // A session mid-transaction across the reload.
    let mut held = gw.connect();
    held.expect("EHLO client.test", 250);
    held.expect("MAIL FROM:<a@client.test>", 250);
    held.expect("RCPT TO:<user@example.test>", 250);

    // Two clients sending mail in a loop through the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Acquire) || i < 3 {
                    let mut c = Smtp::connect(addr);
                    let body = format!("Subject: load {t}-{i}\r\n\r\nhi\r\n");
                    let r = c.send_mail("a@client.test", &["user@example.test"], body.as_bytes());
                    codes.push(r.code);
                    c.expect("QUIT", 221);
                    i += 1;
                }
                codes
            })
        })
        .collect();

    let text = chain_config(gw.dir.path(), 6);
    std::fs::write(&gw.config_path, &text).unwrap();
    gw.signal("HUP");
    gw.wait_log("plugin chain reloaded");
    let log = gw.log_text();
    assert!(log.contains("plugin engine rebuilt"), "{log}");

    // Sessions after the reload run the six-plugin chain.
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: after\r\n\r\nsix\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    stop.store(true, Ordering::Release);
    let codes: Vec<u16> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    assert!(codes.len() >= 6, "{codes:?}");
    // None dropped: each got 250 or a clean temporary refusal.
    assert!(
        codes.iter().all(|&c| c == 250 || (400..500).contains(&c)),
        "{codes:?}"
    );

    // The held session finishes on the one-plugin chain it started with.
    held.expect("DATA", 354);
    held.send(b"Subject: held\r\n\r\nold chain\r\n.\r\n");
    assert_eq!(held.reply().code, 250);
    held.expect("QUIT", 221);

    let delivered: Vec<String> = gw
        .delivered()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let find = |subject: &str| {
        delivered
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("{subject} not delivered"))
            .clone()
    };
    let after = find("after");
    for i in 1..=6 {
        assert!(after.contains(&format!("X-Stamp-{i}: {i}")), "{after}");
    }
    let held = find("held");
    assert!(held.contains("X-Stamp-1: 1"), "{held}");
    assert!(!held.contains("X-Stamp-2"), "{held}");
    assert_eq!(
        delivered.len(),
        codes.iter().filter(|&&c| c == 250).count() + 2
    );
}
