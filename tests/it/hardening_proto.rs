//! Issue 14 (items 6, 7, 9, 12) and issue 12 item 1 through the real binary
//! over TCP: RFC conformance gaps, abuse limits, log forgery, the state
//! reset after STARTTLS and the timeout after a message the engine refused.

use crate::common;
use crate::plugin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

use common::{Gateway, IO_GUARD, LOCAL, Smtp, alice_auth, plain_auth, split_received};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The delivered message's header section (up to the first empty line).
fn header_section(msg: &[u8]) -> String {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no empty line");
    String::from_utf8_lossy(&msg[..end + 2]).into_owned()
}

// ---- item 12: conformance ----

#[test]
fn postmaster_without_domain_is_accepted_and_delivered_to_ours() {
    // rcpt-allowlist (as in the shipped config) refused "Postmaster" with 550
    let chain = format!(
        "{LOCAL}{}[[plugins]]\nname = \"rcpt-allowlist\"\npath = {:?}\n[plugins.config]\ndomains = ['example.test', 'localhost']\n",
        plugin_host(),
        plugin_support::wasm("rcpt-allowlist").display().to_string()
    );
    let gw = Gateway::start(&chain);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RCPT TO:<postmaster>", 250);
    s.expect("DATA", 354);
    s.send(b"Subject: hello postmaster\r\n\r\nhi\r\n.\r\n");
    assert_eq!(s.reply().code, 250);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let (received, _) = split_received(&msgs[0]);
    assert!(
        received.contains("for <postmaster@example.test>"),
        "{received}"
    );
}

#[test]
fn sloppy_envelopes_accepted_by_default_refused_when_strict() {
    let gw = Gateway::start(LOCAL);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM: a@client.test", 250);
    s.expect("RCPT TO: user@example.test", 250);
    s.expect("RCPT TO:other@example.test", 250);
    s.expect("DATA", 354);
    s.send(b"Subject: sloppy\r\n\r\nhi\r\n.\r\n");
    assert_eq!(s.reply().code, 250);
    assert_eq!(gw.delivered().len(), 1);

    let gw = Gateway::start(&format!("{LOCAL}[limits]\nstrict_envelopes = true\n"));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    let r = s.expect("MAIL FROM: <a@client.test>", 501);
    assert!(r.text.starts_with("501 5.5.4"), "{}", r.text);
    s.expect("MAIL FROM:a@client.test", 501);
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RCPT TO: user@example.test", 501);
    s.expect("RCPT TO:<user@example.test>", 250);
}

#[test]
fn malformed_auth_counts_towards_max_failures() {
    let gw = Gateway::start(&format!("{LOCAL}{}", alice_auth(true)));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("AUTH PLAIN !!!not-base64", 501);
    s.expect("AUTH PLAIN ====", 501);
    let r = s.cmd("AUTH PLAIN @@@");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(s.closed());
}

#[test]
fn nul_in_message_refused_at_every_position() {
    let gw = Gateway::start(LOCAL);
    let cases: &[&[u8]] = &[
        b"Subject: a\x00b\r\n\r\nbody\r\n.\r\n",
        b"Subject: a\r\n\r\nbo\x00dy\r\n.\r\n",
        // a downstream dropping NULs would see CRLF.CRLF in these two
        b"Subject: a\r\n\r\nbody\r\n\x00.\r\nMAIL FROM:<x@y.test>\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r\n.\x00\r\nMAIL FROM:<x@y.test>\r\n.\r\n",
        b"\x00\r\n.\r\n",
    ];
    for content in cases {
        let mut s = gw.connect();
        s.expect("EHLO client.test", 250);
        s.expect("MAIL FROM:<a@client.test>", 250);
        s.expect("RCPT TO:<user@example.test>", 250);
        s.expect("DATA", 354);
        s.send(content);
        let r = s.reply();
        assert_eq!(r.code, 550, "{content:?}: {}", r.text);
        assert!(r.text.contains("5.6.0"), "{}", r.text);
        // the session goes on, and nothing was smuggled as a command
        s.expect("NOOP", 250);
        s.expect("QUIT", 221);
    }
    assert!(gw.delivered().is_empty());
}

#[test]
fn non_header_line_starts_the_body() {
    let gw = Gateway::start(LOCAL);
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: x\r\nthis line is not a header\r\nX-Late: 1\r\n\r\nbody\r\n",
    );
    assert_eq!(r.code, 250);
    let msgs = gw.delivered();
    let (_, rest) = split_received(&msgs[0]);
    assert_eq!(
        rest,
        b"Subject: x\r\n\r\nthis line is not a header\r\nX-Late: 1\r\n\r\nbody\r\n"
    );
}

#[test]
fn unauthenticated_pipelining_after_data_refused_when_configured() {
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nforbid_unauth_pipelining = true\n"
    ));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RCPT TO:<user@example.test>", 250);
    s.expect("DATA", 354);
    s.send(b"Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@client.test>\r\n");
    let r = s.reply();
    assert_eq!(r.code, 554, "{}", r.text);
    assert!(s.closed());
    assert!(gw.delivered().is_empty());
    // a client that waits for the reply is served
    let mut s = gw.connect();
    let r = s.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: y\r\n\r\nok\r\n",
    );
    assert_eq!(r.code, 250);
    assert_eq!(gw.delivered().len(), 1);
}

// ---- item 7: error accounting ----

#[test]
fn recipient_probing_capped_by_max_errors() {
    let gw = Gateway::start(&format!("{LOCAL}[limits]\nmax_errors = 3\n"));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RCPT TO:<probe1@elsewhere.test>", 550);
    s.expect("RCPT TO:<user@example.test>", 250);
    s.expect("RCPT TO:<probe2@elsewhere.test>", 550);
    let r = s.cmd("RCPT TO:<probe3@elsewhere.test>");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(s.closed());
}

#[test]
fn junk_commands_capped_per_session() {
    let gw = Gateway::start(&format!("{LOCAL}[limits]\nmax_junk_commands = 5\n"));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    for cmd in ["NOOP", "VRFY x", "HELP", "RSET", "NOOP"] {
        assert!(s.cmd(cmd).code < 300, "{cmd}");
    }
    let r = s.cmd("NOOP");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("Too many commands"), "{}", r.text);
    assert!(s.closed());
}

// ---- item 6: AUTH abuse and log forgery ----

#[test]
fn auth_failures_limited_per_address_across_sessions() {
    let auth = alice_auth(true).replace(
        "max_failures = 3\n",
        "max_failures = 3\nmax_failures_per_ip = 2\nfailure_delay = \"10ms\"\n",
    );
    let extra = format!("{LOCAL}{auth}");
    let gw = Gateway::start(&extra);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect(
        &format!("AUTH PLAIN {}", plain_auth("alice", "wrong1")),
        535,
    );
    s.expect("QUIT", 221);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect(
        &format!("AUTH PLAIN {}", plain_auth("alice", "wrong2")),
        535,
    );
    s.expect("QUIT", 221);
    // a third session from the same address: even the right password is
    // refused without a check
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    let r = s.cmd(&format!("AUTH PLAIN {}", plain_auth("alice", "s3cret")));
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("from your address"), "{}", r.text);
    assert!(s.closed());
}

/// The binary with the text log format: (child, smtp address, log lines).
fn start_text_log(
    dir: &Path,
    extra: &str,
) -> (std::process::Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let text = common::test_config(dir, &["smtp"], extra);
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["run", "--config"])
        .arg(&path)
        .args(["--log-format", "text"])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(a) = line.split("address=").nth(1)
                {
                    let a = a.split(' ').next().unwrap_or_default().to_string();
                    let _ = tx.send(a);
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let addr = rx
        .recv_timeout(IO_GUARD)
        .expect("no listening line")
        .parse()
        .unwrap();
    (child, addr, log)
}

#[test]
fn client_values_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{LOCAL}{}", alice_auth(true));
    let (mut child, addr, log) = start_text_log(dir.path(), &extra);
    let forged = b"\0evil\r\nERROR FORGED fake=line\x1b[2J\0pw";
    let mut s = Smtp::connect(addr);
    s.expect("EHLO client.test", 250);
    s.expect(&format!("AUTH PLAIN {}", b64(forged)), 535);
    s.expect("QUIT", 221);
    drop(s);
    let wanted = "evil\\r\\nERROR FORGED fake=line\\x1b[2J";
    let mut found = false;
    for _ in 0..600 {
        if log.lock().unwrap().iter().any(|l| l.contains(wanted)) {
            found = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = log.lock().unwrap().clone();
    assert!(found, "escaped username not logged:\n{}", lines.join("\n"));
    for l in &lines {
        assert!(!l.starts_with("ERROR FORGED"), "forged line: {l:?}");
        assert!(!l.contains('\x1b') && !l.contains('\r'), "{l:?}");
    }

    // JSON: every line is one JSON object holding the raw value escaped
    let gw = Gateway::start(&extra);
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect(&format!("AUTH PLAIN {}", b64(forged)), 535);
    s.expect("QUIT", 221);
    gw.wait_log("authentication failed");
    let mut seen = false;
    for l in gw.log.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        if v["fields"]["user"] == "evil\r\nERROR FORGED fake=line\x1b[2J" {
            seen = true;
        }
    }
    assert!(seen);
}

// ---- item 9: STARTTLS resets plugin notes ----

#[test]
fn starttls_forgets_plugin_notes_set_before_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = common::write_cert(dir.path());
    let w = |n: &str| plugin_support::wasm(n).display().to_string();
    let extra = format!(
        "{LOCAL}[tls]\ncert = {:?}\nkey = {:?}\n{}\
[[plugins]]\nname = \"helo-check\"\npath = {:?}\n[plugins.config]\nour_names = ['mx.test']\naction = 'note'\n\n\
[[plugins]]\nname = \"header-stamp\"\npath = {:?}\n[plugins.config]\nnotes = ['helo_check.fail']\n",
        cert.display().to_string(),
        key.display().to_string(),
        plugin_host(),
        w("helo-check"),
        w("header-stamp"),
    );
    let text = common::test_config(dir.path(), &["smtp"], &extra);
    let gw = Gateway::start_text(dir, &text, 1);

    // without STARTTLS the note is stamped (the chain works)
    let mut c = gw.connect();
    c.expect("EHLO 192.0.2.7", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.expect("DATA", 354);
    // (also item 12: the line that is not a header field starts the body,
    // so the fields header-stamp adds stay in the header section)
    c.send(b"Subject: plain\r\nnot a header\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let plain = header_section(&gw.delivered()[0]);
    assert!(
        plain.contains("\r\nX-Wasmtp-Note: helo_check.fail="),
        "{plain}"
    );
    assert!(plain.contains("\r\nX-Wasmtp-Session: "), "{plain}");
    assert!(!plain.contains("not a header"), "{plain}");

    // a bare-IP EHLO noted before STARTTLS must not survive it
    let mut c = gw.connect();
    c.expect("EHLO 192.0.2.7", 250);
    c.expect("STARTTLS", 220);
    let tcp = c.tcp().try_clone().unwrap();
    let mut tls = BufReader::new(common::tls_client(tcp, &der));
    tls.get_mut()
        .write_all(b"EHLO client.example.net\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        .unwrap();
    for code in [250, 250, 250, 354] {
        assert_eq!(common::read_reply(&mut tls).unwrap().code, code);
    }
    tls.get_mut()
        .write_all(b"Subject: tls\r\n\r\nsecret\r\n.\r\n")
        .unwrap();
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 250);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 2);
    let after_tls = msgs
        .iter()
        .map(|m| header_section(m))
        .find(|h| h.contains("Subject: tls"))
        .unwrap();
    assert!(after_tls.contains("\r\nX-Wasmtp-TLS: "), "{after_tls}");
    assert!(!after_tls.contains("helo_check.fail"), "{after_tls}");
}

// ---- issue 12 item 1: the engine owns the message phase ----

#[test]
fn after_an_oversized_message_the_command_timeout_applies() {
    // data_block is long, command short: after the engine's own 552 the
    // next read must use the command timeout (421 4.4.2 arrives); with the
    // data-block timeout the client would wait an hour
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nmax_message_size = 1000\n[timeouts]\ncommand = \"2s\"\ndata_block = \"1h\"\n"
    ));
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    s.expect("MAIL FROM:<a@client.test>", 250);
    s.expect("RCPT TO:<user@example.test>", 250);
    s.expect("DATA", 354);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    big.extend_from_slice(b".\r\n");
    s.send(&big);
    assert_eq!(s.reply().code, 552);
    let r = s
        .try_reply()
        .expect("the command timeout closes the session");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("4.4.2"), "{}", r.text);
}

/// `[plugin_host]` with a cache shared by the tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}
