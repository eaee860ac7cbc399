//! The gateway core over real TCP against the real binary: delivery,
//! pipelining, relay policy, limits, timeouts, TLS, AUTH, shutdown, and the
//! attacks of SECURITY.md.

use crate::common;

use std::io::{BufReader, Write};
use std::time::Duration;

use common::{Gateway, LOCAL, Smtp};

const BODY: &[u8] = b"From: a@client.test\r\nTo: user@example.test\r\nSubject: hello\r\n\r\nline one\r\n..dot-stuffed\r\nlast\r\n";
const UNSTUFFED: &[u8] = b"From: a@client.test\r\nTo: user@example.test\r\nSubject: hello\r\n\r\nline one\r\n.dot-stuffed\r\nlast\r\n";

#[test]
fn maildir_is_byte_exact_after_received() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    assert_eq!(c.greeting.code, 220);
    let r = c.send_mail("a@client.test", &["user@example.test"], BODY);
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(r.text.contains("queued as"), "{}", r.text);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let (received, rest) = common::split_received(&msgs[0]);
    assert_eq!(rest, UNSTUFFED);
    assert!(
        received.starts_with("Received: from client.test (unknown [127.0.0.1])\r\n"),
        "{received}"
    );
    assert!(
        received.contains("by mx.test (wasmtp) with ESMTP id "),
        "{received}"
    );
    assert!(received.contains("for <user@example.test>;"), "{received}");
    let id = r.text.rsplit(' ').next().unwrap();
    assert!(received.contains(&format!("id {id}")), "{received} / {id}");
}

#[test]
fn pipelined_transaction_answered_in_order() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("PIPELINING"), "{}", ehlo.text);
    c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<y@remote.test>\r\nRCPT TO:<z@example.test>\r\nDATA\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 550);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 354);
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let (received, rest) = common::split_received(&msgs[0]);
    assert_eq!(rest, b"Subject: p\r\n\r\nbody\r\n");
    assert!(!received.contains("for <"), "two recipients: no for clause");
}

#[test]
fn relay_is_denied_including_address_tricks() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    for rcpt in [
        "<user@remote.test>",
        "<user%remote.test@example.test>",
        "<remote.test!user@example.test>",
        "<@example.test:user@remote.test>",
        "<\"user@remote.test\"@example.test>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        assert!(
            r.code == 550 || r.code == 553 || r.code == 501,
            "{rcpt} -> {}",
            r.text
        );
        if r.code == 550 {
            assert!(r.text.contains("5.7.1"), "{rcpt} -> {}", r.text);
        }
    }
    c.expect("RCPT TO:<user@example.test>", 250);
    c.expect("RCPT TO:<Postmaster@LOCALHOST>", 250);
    c.expect("QUIT", 221);
}

#[test]
fn smuggling_variants_never_split_a_message() {
    let gw = Gateway::start(LOCAL);
    let variants: &[&[u8]] = &[
        b"\n.\n",
        b"\r.\r",
        b"\r.\n",
        b"\n.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n\x00.\r\n",
        b"\r\n.\x00\r\n",
    ];
    let mut accepted = 0;
    for v in variants {
        let mut c = gw.connect();
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<a@client.test>", 250);
        c.expect("RCPT TO:<user@example.test>", 250);
        c.expect("DATA", 354);
        let mut data = b"Subject: s\r\n\r\nfirst".to_vec();
        data.extend_from_slice(v);
        data.extend_from_slice(b"MAIL FROM:<evil@client.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSmuggled: yes\r\n\r\nsmuggled\r\n.\r\n");
        c.send(&data);
        let r = c.reply();
        assert!(r.code == 250 || r.code == 550, "{v:?} -> {}", r.text);
        if r.code == 250 {
            accepted += 1;
        }
        // Nothing else was answered: the next reply is the one to QUIT.
        let q = c.cmd("QUIT");
        assert_eq!(
            q.code, 221,
            "{v:?}: smuggled commands were answered: {}",
            q.text
        );
    }
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), accepted);
    for m in &msgs {
        let (_, rest) = common::split_received(m);
        assert!(
            rest.starts_with(b"Subject: s\r\n"),
            "a smuggled message was delivered on its own"
        );
    }
}

#[test]
fn end_of_data_split_across_writes() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.expect("DATA", 354);
    for b in b"Subject: split\r\n\r\nbody\r\n.\r\n" {
        c.send(&[*b]);
        c.tcp().flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    let (_, rest) = common::split_received(&gw.delivered()[0]);
    assert_eq!(rest, b"Subject: split\r\n\r\nbody\r\n");
}

#[test]
fn oversized_command_is_refused_with_bounded_memory() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 17000));
    line.extend_from_slice(b"\r\n");
    c.send(&line);
    let r = c.reply();
    assert_eq!(r.code / 100, 5, "{}", r.text);
    // The gateway still serves.
    let mut d = gw.connect();
    d.expect("NOOP", 250);
}

#[test]
fn recipients_past_the_limit_get_452_and_the_session_goes_on() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    let mut pipelined = Vec::new();
    for i in 0..101 {
        pipelined.extend_from_slice(format!("RCPT TO:<u{i}@example.test>\r\n").as_bytes());
    }
    c.send(&pipelined);
    for i in 0..100 {
        assert_eq!(c.reply().code, 250, "recipient {i}");
    }
    let r = c.reply();
    assert_eq!(r.code, 452, "{}", r.text);
    c.expect("DATA", 354);
    c.send(b"Subject: many\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
}

#[test]
fn size_limit_552() {
    let gw = Gateway::start(&format!("{LOCAL}[limits]\nmax_message_size = 2000\n"));
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("SIZE 2000"), "{}", ehlo.text);
    let r = c.cmd("MAIL FROM:<a@client.test> SIZE=5000");
    assert_eq!(r.code, 552, "{}", r.text);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.expect("DATA", 354);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(&[b'y'; 78]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    let r = c.reply();
    assert_eq!(r.code, 552, "{}", r.text);
    c.expect("NOOP", 250);
    c.expect("QUIT", 221);
    assert!(gw.delivered().is_empty());
}

#[test]
fn bdat_cases() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("CHUNKING"), "{}", ehlo.text);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.send(b"BDAT 18\r\nSubject: chunk\r\n\r\n");
    assert_eq!(c.reply().code, 250);
    c.send(b"BDAT 6 LAST\r\nbody\r\n");
    let r = c.reply();
    assert_eq!(r.code, 250, "{}", r.text);
    // A chunk size past 2^64.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    let r = c.cmd("BDAT 99999999999999999999999 LAST");
    assert_eq!(r.code / 100, 5, "{}", r.text);
    // The chunk cannot be skipped safely: the engine closes the session.
    assert!(c.closed());
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    // DATA after BDAT.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.send(b"BDAT 4\r\nab\r\n");
    assert_eq!(c.reply().code, 250);
    let r = c.cmd("DATA");
    assert_eq!(r.code, 503, "{}", r.text);
    c.expect("RSET", 250);
    // BDAT 0 LAST on an empty transaction still ends it with a reply.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    let r = c.cmd("BDAT 0 LAST");
    assert!(matches!(r.code / 100, 2 | 5), "{}", r.text);
    c.expect("QUIT", 221);
    // Maildir file names do not sort by arrival within a second: find the
    // chunked message among what was delivered.
    let bodies: Vec<Vec<u8>> = gw
        .delivered()
        .iter()
        .map(|m| common::split_received(m).1)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.as_slice() == b"Subject: chunk\r\n\r\nbody\r\n"),
        "{bodies:?}"
    );
}

#[test]
fn early_talker_refused() {
    let gw = Gateway::start(&format!("{LOCAL}[timeouts]\ngreeting_delay = \"1s\"\n"));
    let mut c = Smtp::connect_raw(gw.smtp());
    c.send(b"EHLO early.test\r\n");
    let r = c.reply();
    assert_eq!(r.code, 554, "{}", r.text);
    assert!(c.closed());
    // A patient client is served.
    let d = gw.connect();
    assert_eq!(d.greeting.code, 220);
}

#[test]
fn per_ip_cap_421() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(dir.path(), &["smtp"], LOCAL).replace(
        "shutdown_grace = \"30s\"",
        "shutdown_grace = \"30s\"\nmax_connections_per_ip = 2",
    );
    let gw = Gateway::start_text(dir, &text, 1);
    let a = gw.connect();
    let b = gw.connect();
    let mut c = Smtp::connect_raw(gw.smtp());
    let r = c.reply();
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("4.7.0"), "{}", r.text);
    assert!(c.closed());
    drop(a);
    drop(b);
    // Slots are released when sessions end.
    gw.wait_log("disconnected");
    let mut ok = false;
    for _ in 0..100 {
        let mut d = Smtp::connect_raw(gw.smtp());
        if d.reply().code == 220 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "slots never released");
}

#[test]
fn auth_over_plaintext_refused() {
    let gw = Gateway::start(&format!("{LOCAL}{}", common::alice_auth(false)));
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(
        !ehlo.text.contains("AUTH"),
        "AUTH offered in plaintext: {}",
        ehlo.text
    );
    let r = c.cmd(&format!(
        "AUTH PLAIN {}",
        common::plain_auth("alice", "s3cret")
    ));
    assert_eq!(r.code / 100, 5, "{}", r.text);
    // Not authenticated: still no relay.
    c.expect("MAIL FROM:<alice@client.test>", 250);
    let r = c.cmd("RCPT TO:<x@remote.test>");
    assert_eq!(r.code, 550, "{}", r.text);
}

#[test]
fn auth_failures_disconnect_and_success_allows_relay() {
    let gw = Gateway::start(&format!("{LOCAL}{}", common::alice_auth(true)));
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("AUTH"), "{}", ehlo.text);
    c.expect(
        &format!("AUTH PLAIN {}", common::plain_auth("alice", "s3cret")),
        235,
    );
    c.expect("MAIL FROM:<alice@client.test>", 250);
    c.expect("RCPT TO:<x@remote.test>", 250);
    c.expect("QUIT", 221);

    let mut d = gw.connect();
    d.expect("EHLO client.test", 250);
    d.expect(
        &format!("AUTH PLAIN {}", common::plain_auth("alice", "nope")),
        535,
    );
    d.expect(
        &format!("AUTH PLAIN {}", common::plain_auth("mallory", "s3cret")),
        535,
    );
    let r = d.cmd(&format!(
        "AUTH PLAIN {}",
        common::plain_auth("alice", "again")
    ));
    assert!(r.code == 421 || r.code == 535, "{}", r.text);
    if r.code == 535 {
        assert_eq!(d.reply().code, 421);
    }
    assert!(d.closed());
}

#[test]
fn idle_and_dripping_clients_hit_the_deadlines() {
    let gw = Gateway::start(&format!(
        "{LOCAL}[timeouts]\ncommand = \"1s\"\nsession = \"3s\"\n"
    ));
    // Idle.
    let mut c = gw.connect();
    let r = c.reply();
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("4.4.2"), "{}", r.text);
    assert!(c.closed());
    // One byte every 100 ms never completes a command in time.
    let d = gw.connect();
    let mut got = None;
    for _ in 0..200 {
        if d.tcp().write_all(b"N").is_err() {
            break;
        }
        d.tcp().set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut d.tcp(), &mut buf);
        d.tcp().set_nonblocking(false).unwrap();
        if let Ok(n) = n
            && n > 0
        {
            got = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = got.expect("no reply to a dripping client");
    assert!(got.starts_with("421 4.4.2"), "{got}");
}

#[test]
fn graceful_shutdown_421s_open_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(dir.path(), &["smtp"], LOCAL)
        .replace("shutdown_grace = \"30s\"", "shutdown_grace = \"1s\"");
    let mut gw = Gateway::start_text(dir, &text, 1);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    let addr = gw.smtp();
    gw.signal("TERM");
    let r = c.reply();
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("4.3.2"), "{}", r.text);
    let status = gw.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn starttls_injection_discarded_and_state_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, der) = common::tls_section(dir.path());
    let extra = format!("{LOCAL}{tls}");
    let text = common::test_config(dir.path(), &["smtp"], &extra);
    let gw = Gateway::start_text(dir, &text, 1);
    let mut c = gw.connect();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    c.send(b"STARTTLS\r\nRSET\r\n");
    let r = c.reply();
    assert_eq!(r.code, 220, "{}", r.text);
    let tcp = c.tcp().try_clone().unwrap();
    let mut tls = BufReader::new(common::tls_client(tcp, &der));
    // The first reply over TLS answers our EHLO, not the injected RSET.
    tls.get_mut().write_all(b"EHLO client.test\r\n").unwrap();
    let r = common::read_reply(&mut tls).unwrap();
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(!r.text.contains("STARTTLS"), "{}", r.text);
    // The transaction from before TLS is gone.
    tls.get_mut()
        .write_all(b"RCPT TO:<user@example.test>\r\n")
        .unwrap();
    let r = common::read_reply(&mut tls).unwrap();
    assert_eq!(r.code, 503, "{}", r.text);
    tls.get_mut()
        .write_all(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        .unwrap();
    for code in [250, 250, 354] {
        assert_eq!(common::read_reply(&mut tls).unwrap().code, code);
    }
    tls.get_mut()
        .write_all(b"Subject: tls\r\n\r\nsecret\r\n.\r\n")
        .unwrap();
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 250);
    let (received, rest) = common::split_received(&gw.delivered()[0]);
    assert_eq!(rest, b"Subject: tls\r\n\r\nsecret\r\n");
    assert!(received.contains("with ESMTPS id"), "{received}");
    assert!(
        received.contains("(using TLSv1.3 with cipher "),
        "{received}"
    );
}

#[test]
fn submission_requires_tls_and_auth_smtps_is_implicit() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, der) = common::tls_section(dir.path());
    let extra = format!("{LOCAL}{}{tls}", common::alice_auth(false));
    let text = common::test_config(dir.path(), &["submission", "smtps"], &extra);
    let gw = Gateway::start_text(dir, &text, 2);

    let mut c = Smtp::connect(gw.addr("submission"));
    c.expect("EHLO client.test", 250);
    let r = c.cmd("MAIL FROM:<alice@client.test>");
    assert_eq!(r.code, 530, "{}", r.text);

    let tcp = std::net::TcpStream::connect(gw.addr("smtps")).unwrap();
    tcp.set_read_timeout(Some(common::IO_GUARD)).unwrap();
    let mut tls = BufReader::new(common::tls_client(tcp, &der));
    assert_eq!(common::read_reply(&mut tls).unwrap().code, 220);
    let mut say = |line: &str| {
        tls.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        common::read_reply(&mut tls).unwrap()
    };
    let ehlo = say("EHLO client.test");
    assert!(ehlo.text.contains("AUTH"), "{}", ehlo.text);
    assert_eq!(say("MAIL FROM:<alice@client.test>").code, 530);
    assert_eq!(
        say(&format!(
            "AUTH PLAIN {}",
            common::plain_auth("alice", "s3cret")
        ))
        .code,
        235
    );
    assert_eq!(say("MAIL FROM:<alice@client.test>").code, 250);
    assert_eq!(say("RCPT TO:<bob@remote.test>").code, 250);
    assert_eq!(say("DATA").code, 354);
    assert_eq!(say("Subject: sub\r\n\r\nhi\r\n.").code, 250);
    let (received, _) = common::split_received(&gw.delivered()[0]);
    assert!(received.contains("with ESMTPSA id"), "{received}");
}

#[test]
fn bare_lf_in_data_rejected() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: x\r\n\r\nbare\nlf\r\n",
    );
    assert_eq!(r.code, 550, "{}", r.text);
    c.expect("QUIT", 221);
    assert!(gw.delivered().is_empty());
}

#[test]
fn logs_carry_the_session_id() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    c.expect("QUIT", 221);
    gw.wait_log("disconnected");
    let log = gw.log_text();
    let line = log.lines().find(|l| l.contains("\"connected\"")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let id = v["span"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 20);
    let closing = log
        .lines()
        .find(|l| l.contains("\"disconnected\""))
        .unwrap();
    assert!(closing.contains(&id));
}

/// The questions a test DNS server was asked, as `"<qtype> <name>"`.
type DnsLog = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A tiny DNS server on 127.0.0.1 (raw UDP) answering PTR for 127.0.0.1
/// with `name` and A for `name` with 127.0.0.1 (`name` None: it knows
/// nothing and answers every question with no record). It logs every
/// question, so a test can see that the gateway asked it.
fn start_dns(name: Option<&'static str>) -> (std::net::SocketAddr, DnsLog) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let log = DnsLog::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // Question: labels, then qtype and qclass.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 && i + 1 + q[i] as usize <= n {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_lowercase());
                i += 1 + len;
            }
            let qend = i + 5;
            if qend > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let qname = labels.join(".");
            seen.lock().unwrap().push(format!("{qtype} {qname}"));
            let mut answer = Vec::new();
            if let Some(name) = name {
                if qtype == 12 && qname == "1.0.0.127.in-addr.arpa" {
                    for l in name.split('.') {
                        answer.push(l.len() as u8);
                        answer.extend_from_slice(l.as_bytes());
                    }
                    answer.push(0);
                } else if qtype == 1 && qname == name {
                    answer = vec![127, 0, 0, 1];
                }
            }
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]);
            r.extend_from_slice(&[
                0x81,
                0x80,
                0,
                1,
                0,
                u8::from(!answer.is_empty()),
                0,
                0,
                0,
                0,
            ]);
            r.extend_from_slice(&q[12..qend]);
            if !answer.is_empty() {
                r.extend_from_slice(&[0xc0, 0x0c]);
                r.extend_from_slice(&qtype.to_be_bytes());
                r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
                r.extend_from_slice(&(answer.len() as u16).to_be_bytes());
                r.extend_from_slice(&answer);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    (addr, log)
}

/// The Received header of the one message a gateway delivered, after one
/// transaction from 127.0.0.1.
fn received_of_one_message(gw: &Gateway) -> String {
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: r\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    c.expect("QUIT", 221);
    let (received, _) = common::split_received(&gw.delivered()[0]);
    received
}

#[test]
fn reverse_dns_only_from_the_configured_resolver() {
    // The name comes from our server alone: /etc/hosts and hickory's own
    // RFC 6761 answer would both say "localhost" for 127.0.0.1, and no
    // other resolver knows client.rdns.test.
    let (dns, log) = start_dns(Some("client.rdns.test"));
    let gw = Gateway::start(&format!("{LOCAL}[dns]\nresolver = \"{dns}\"\n"));
    let received = received_of_one_message(&gw);
    assert!(
        received.starts_with("Received: from client.test (client.rdns.test [127.0.0.1])"),
        "{received}"
    );
    let asked = log.lock().unwrap().clone();
    assert!(
        asked.contains(&"12 1.0.0.127.in-addr.arpa".to_string()),
        "PTR asked of the configured server: {asked:?}"
    );
    assert!(
        asked.contains(&"1 client.rdns.test".to_string()),
        "forward confirmation asked of the configured server: {asked:?}"
    );
    // A second connection within the records' TTL (60 s) is answered from
    // the cache: same name, no new query.
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: 2\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), 2);
    for m in &delivered {
        let (received, _) = common::split_received(m);
        assert!(
            received.contains("(client.rdns.test [127.0.0.1])"),
            "{received}"
        );
    }
    assert_eq!(log.lock().unwrap().clone(), asked, "asked again");
}

#[test]
fn reverse_dns_unknown_when_the_resolver_knows_nothing() {
    // No fallback to the hosts file, resolv.conf or the built-in localhost
    // answers: the configured server has no PTR, so the client is unknown.
    let (dns, log) = start_dns(None);
    let gw = Gateway::start(&format!("{LOCAL}[dns]\nresolver = \"{dns}\"\n"));
    let received = received_of_one_message(&gw);
    assert!(
        received.starts_with("Received: from client.test (unknown [127.0.0.1])"),
        "{received}"
    );
    let asked = log.lock().unwrap().clone();
    assert_eq!(asked, vec!["12 1.0.0.127.in-addr.arpa".to_string()]);
    // "Unknown" is remembered too (for a minute).
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: 2\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(log.lock().unwrap().len(), 1, "asked again");
}

#[test]
fn no_reverse_dns_without_a_resolver() {
    let gw = Gateway::start(LOCAL);
    let received = received_of_one_message(&gw);
    assert!(
        received.starts_with("Received: from client.test (unknown [127.0.0.1])"),
        "{received}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_server_on_port_zero() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(dir.path(), &["smtp"], LOCAL);
    let config = wasmtp::config::Config::from_str(&text, "in-process").unwrap();
    let server = wasmtp::server::Server::bind(config).await.unwrap();
    let addr = server.local_addrs()[0].1;
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let reply = tokio::task::spawn_blocking(move || {
        let mut c = Smtp::connect(addr);
        let r = c.send_mail(
            "a@client.test",
            &["user@example.test"],
            b"Subject: ip\r\n\r\nx\r\n",
        );
        c.expect("QUIT", 221);
        r
    })
    .await
    .unwrap();
    assert_eq!(reply.code, 250, "{}", reply.text);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    assert_eq!(
        common::maildir_messages(&common::maildir(dir.path())).len(),
        1
    );
}
