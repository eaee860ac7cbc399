//! Backscatter guards of store-and-forward through the real binary (issue
//! 14 item 8), against an upstream sink that refuses `nobody@`:
//! - a client that is neither authenticated nor a relay client gets no
//!   bounce for a recipient the upstream refuses later (its sender may be
//!   forged); a relay client's sender does;
//! - with `verify_recipients`, the upstream is probed at RCPT time: a
//!   refused recipient gets `550 5.1.1` in the session, probes are cached,
//!   an unreachable upstream gives `450 4.1.1`, relay clients and the
//!   postmaster are not probed, and a verified recipient that fails later
//!   is bounced even for an untrusted client;
//! - `[server] hostname` is the outbound EHLO name and the bounces'
//!   reporting MTA (issue 12 item 2).

use crate::common;
use crate::delivery_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Gateway, LOCAL, Smtp};
use delivery_support::{Sink, SinkConfig};

/// A gateway in store-and-forward mode relaying to `upstream`; 127.0.0.2 is
/// its only relay network, so clients on 127.0.0.1 are untrusted.
async fn gateway(upstream: SocketAddr, spool_extra: &str) -> Gateway {
    let spool_extra = spool_extra.to_string();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let text = format!(
            "[server]\nhostname = \"mx.test\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
             {LOCAL}relay_networks = [\"127.0.0.2\"]\n\n\
             [delivery]\nmode = \"store-and-forward\"\n\
             [delivery.forward]\nupstreams = [\"{upstream}\"]\ntls = \"none\"\n\
             [delivery.spool]\ndir = {spool:?}\nfirst_retry = \"1s\"\n{spool_extra}\n",
            spool = spool.display().to_string(),
        );
        Gateway::start_text(dir, &text, 1)
    })
    .await
    .unwrap()
}

/// The sink refuses `nobody@` (at every RCPT, probes included).
fn refusing_sink() -> SinkConfig {
    SinkConfig {
        rcpt: Arc::new(|rcpt: &str, _| {
            if rcpt.contains("nobody@") {
                "550 5.1.1 No such user here".to_string()
            } else {
                "250 2.1.5 Ok".to_string()
            }
        }),
        ..SinkConfig::default()
    }
}

/// Sends one message to bob and nobody from `source` (a loopback address).
fn send_two(gw: &Gateway, source: &str, sender: &str) {
    let mut s = common::connect_from(gw.smtp(), source);
    s.expect("EHLO client.example.net", 250);
    s.expect(&format!("MAIL FROM:<{sender}>"), 250);
    s.expect("RCPT TO:<bob@example.test>", 250);
    s.expect("RCPT TO:<nobody@example.test>", 250);
    s.expect("DATA", 354);
    s.send(b"Subject: two\r\n\r\nhello\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
}

/// MAIL commands the sink saw from the null sender (probes and bounces).
fn null_mails(sink: &Sink) -> usize {
    sink.commands()
        .iter()
        .filter(|(_, _, c)| c.starts_with("MAIL FROM:<>"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_sender_gets_no_bounce_a_relay_client_does() {
    let sink = Sink::start(refusing_sink()).await;
    let gw = gateway(sink.addr, "").await;

    let gw = tokio::task::spawn_blocking(move || {
        send_two(&gw, "127.0.0.1", "forged@victim.example");
        gw.wait_log("bounce suppressed");
        gw
    })
    .await
    .unwrap();
    // bob's copy arrived; no bounce was queued for the forged sender.
    let messages = sink
        .wait_for(|m| m.iter().any(|m| m.rcpts == ["bob@example.test"]))
        .await;
    assert!(
        messages.iter().all(|m| !m.mail_from.is_empty()),
        "{messages:?}"
    );
    let log = gw.log_text();
    assert!(!log.contains("bounce queued"), "{log}");
    let suppressed = log
        .lines()
        .find(|l| l.contains("bounce suppressed"))
        .unwrap_or_default();
    assert!(suppressed.contains("nobody@example.test"), "{suppressed}");
    assert!(suppressed.contains("forged@victim.example"), "{suppressed}");

    // The same from the relay network: the sender is ours, it is told.
    let gw = tokio::task::spawn_blocking(move || {
        send_two(&gw, "127.0.0.2", "alice@example.test");
        gw.wait_log("bounce queued");
        gw
    })
    .await
    .unwrap();
    let messages = sink
        .wait_for(|m| m.iter().any(|m| m.mail_from.is_empty()))
        .await;
    let bounces: Vec<_> = messages.iter().filter(|m| m.mail_from.is_empty()).collect();
    assert_eq!(bounces.len(), 1, "{messages:?}");
    assert_eq!(bounces[0].rcpts, ["alice@example.test"]);
    let dsn = String::from_utf8_lossy(&bounces[0].data).into_owned();
    assert!(dsn.contains("nobody@example.test"), "{dsn}");
    assert!(dsn.contains("Subject: two"), "{dsn}");
    // Headers only: the body of the failed message is not quoted.
    assert!(!dsn.contains("hello"), "{dsn}");
    // `[server] hostname` names the gateway upstream and in its reports.
    assert!(dsn.contains("MAILER-DAEMON@mx.test"), "{dsn}");
    assert!(
        sink.commands().iter().any(|(_, _, c)| c == "EHLO mx.test"),
        "{:?}",
        sink.commands()
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_verified_at_rcpt_and_cached() {
    let sink = Sink::start(refusing_sink()).await;
    let gw = gateway(sink.addr, "verify_recipients = true\n").await;
    let gw = tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            let mut s = common::connect_from(gw.smtp(), "127.0.0.1");
            s.expect("EHLO client.example.net", 250);
            s.expect("MAIL FROM:<someone@elsewhere.example>", 250);
            let r = s.cmd("RCPT TO:<nobody@example.test>");
            assert_eq!(r.code, 550, "{}", r.text);
            assert!(r.text.contains("5.1.1"), "{}", r.text);
            assert!(r.text.contains("No such user here"), "{}", r.text);
            s.expect("RCPT TO:<bob@example.test>", 250);
            // The postmaster is never probed (RFC 5321 4.5.1).
            s.expect("RCPT TO:<postmaster@example.test>", 250);
            s.expect("DATA", 354);
            s.send(b"Subject: verified\r\n\r\nhi\r\n.\r\n");
            assert_eq!(s.reply().code, 250);
            s.expect("QUIT", 221);
        }
        // A relay client is not probed: nobody@ is accepted (and bounced
        // later, to a sender who is ours).
        let mut s: Smtp = common::connect_from(gw.smtp(), "127.0.0.2");
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<alice@example.test>", 250);
        s.expect("RCPT TO:<nobody@example.test>", 250);
        s.expect("RSET", 250);
        s.expect("QUIT", 221);
        gw
    })
    .await
    .unwrap();
    sink.wait_for(|m| {
        m.iter()
            .filter(|m| m.mail_from == "someone@elsewhere.example")
            .count()
            == 2
    })
    .await;
    // One probe for each address, however often it was asked for.
    assert_eq!(null_mails(&sink), 2, "{:?}", sink.commands());
    // The probes: RCPTs of a transaction from the null sender.
    let mut null_sender = std::collections::HashMap::new();
    let mut probed = Vec::new();
    for (session, _, c) in sink.commands() {
        if c.starts_with("MAIL FROM:") {
            null_sender.insert(session, c.starts_with("MAIL FROM:<>"));
        } else if c.starts_with("RCPT TO:") && null_sender.get(&session) == Some(&true) {
            probed.push(c);
        }
    }
    assert_eq!(
        probed,
        [
            "RCPT TO:<nobody@example.test>",
            "RCPT TO:<bob@example.test>"
        ],
        "{:?}",
        sink.commands()
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_defers_the_recipient() {
    let dead = delivery_support::dead_port().await;
    let gw = gateway(dead, "verify_recipients = true\nverify_timeout = \"5s\"\n").await;
    tokio::task::spawn_blocking(move || {
        let mut s = common::connect_from(gw.smtp(), "127.0.0.1");
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<someone@elsewhere.example>", 250);
        let r = s.cmd("RCPT TO:<bob@example.test>");
        assert_eq!(r.code, 450, "{}", r.text);
        assert!(r.text.contains("4.1.1"), "{}", r.text);
        // Not cached: asked again, the upstream is asked again.
        let r = s.cmd("RCPT TO:<bob@example.test>");
        assert_eq!(r.code, 450, "{}", r.text);
        s.expect("QUIT", 221);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_recipient_that_fails_later_is_bounced() {
    // The upstream accepts carol@ when probed, refuses her at delivery.
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let sink = Sink::start(SinkConfig {
        rcpt: Arc::new(move |rcpt: &str, _| {
            if rcpt.contains("carol@") && seen.fetch_add(1, Ordering::SeqCst) > 0 {
                "550 5.2.1 Mailbox disabled".to_string()
            } else {
                "250 2.1.5 Ok".to_string()
            }
        }),
        ..SinkConfig::default()
    })
    .await;
    let gw = gateway(sink.addr, "verify_recipients = true\n").await;
    let gw = tokio::task::spawn_blocking(move || {
        let mut s = common::connect_from(gw.smtp(), "127.0.0.1");
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<someone@elsewhere.example>", 250);
        s.expect("RCPT TO:<carol@example.test>", 250);
        s.expect("DATA", 354);
        s.send(b"Subject: later\r\n\r\nhi\r\n.\r\n");
        assert_eq!(s.reply().code, 250);
        s.expect("QUIT", 221);
        gw.wait_log("bounce queued");
        gw
    })
    .await
    .unwrap();
    let messages = sink
        .wait_for(|m| m.iter().any(|m| m.mail_from.is_empty()))
        .await;
    let bounce = messages.iter().find(|m| m.mail_from.is_empty()).unwrap();
    assert_eq!(bounce.rcpts, ["someone@elsewhere.example"]);
    assert_eq!(asked.load(Ordering::SeqCst), 2, "one probe, one delivery");
    drop(gw);
}
