//! Forward mode and Maildir delivery against real sockets: an in-process
//! SMTP sink (tests/delivery_support) and, when installed, Postfix's
//! smtp-sink.

use crate::delivery_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use delivery_support::{Sink, SinkConfig, TestPki, dead_port};
use wasmtp::context::Recipient;
use wasmtp::delivery::client::dotstuff;
use wasmtp::delivery::{
    Deliverer, DeliveryConfig, DeliveryMode, Envelope, ForwardConfig, TlsPolicy,
};
use wasmtp::protocol::params::BodyType;

fn fwd(upstreams: Vec<SocketAddr>, tls: TlsPolicy) -> DeliveryConfig {
    DeliveryConfig {
        mode: DeliveryMode::Forward,
        forward: ForwardConfig {
            upstreams,
            tls,
            helo_name: Some("gw.test".into()),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(10),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn env(id: &str, sender: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        id: id.into(),
        sender: sender.into(),
        recipients: rcpts
            .iter()
            .map(|a| Recipient {
                address: a.to_string(),
                params: vec![],
            })
            .collect(),
        ..Default::default()
    }
}

const RECEIVED: &[u8] = b"Received: from client.test (127.0.0.1) by gw.test with ESMTP id Q1\r\n\tfor <bob@example.net>; Sun, 22 Nov 2026 00:00:00 +0000\r\n";

fn tricky_body() -> Vec<u8> {
    let mut b = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: dots\r\n\r\n".to_vec();
    b.extend_from_slice(b".leading dot\r\n..two dots\r\n.\r\nmiddle\r\n. \r\n");
    // A long body so the stuffer crosses its chunk size.
    for i in 0..20_000 {
        b.extend_from_slice(format!(".line {i} with some text to make it longer\r\n").as_bytes());
    }
    b.extend_from_slice(b"last line\r\n");
    b
}

/// A BODY=BINARYMIME message: everything DATA cannot carry (bare LF, NUL,
/// a lone CR, a line over 1000 octets, a would-be end of DATA, every octet
/// value, no final CRLF), larger than the client's 256 KiB write chunk.
fn binary_body() -> Vec<u8> {
    let mut b = b"From: alice@example.org\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    b.extend_from_slice(b"bare LF\nNUL \0 here\r\nlone CR\rthere\r\n.\r\n..\r\n");
    b.extend(std::iter::repeat_n(b'x', 1500));
    b.extend_from_slice(b"\r\n");
    b.extend((0..=255u8).cycle().take(300_000));
    b.extend_from_slice(b"no final CRLF");
    b
}

fn binary_env(id: &str) -> Envelope {
    Envelope {
        body: BodyType::BinaryMime,
        ..env(id, "alice@example.org", &["bob@example.net"])
    }
}

fn command_lines(sink: &Sink) -> Vec<String> {
    sink.commands().into_iter().map(|(_, _, c)| c).collect()
}

#[tokio::test]
async fn binarymime_is_sent_byte_exact_with_bdat() {
    for pipelining in [true, false] {
        let sink = Sink::start(SinkConfig {
            pipelining,
            chunking: true,
            binarymime: true,
            ..Default::default()
        })
        .await;
        let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
            .await
            .unwrap();
        let body = binary_body();
        let r = d.deliver(&binary_env("B1"), &[RECEIVED, &body]).await;
        assert_eq!(r.code(), 250, "{r}");
        let mut whole = RECEIVED.to_vec();
        whole.extend_from_slice(&body);
        let msgs = sink.messages();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].bdat, "sent with BDAT");
        assert_eq!(msgs[0].data.len(), whole.len());
        assert!(
            msgs[0].data == whole,
            "byte-exact (pipelining {pipelining})"
        );
        assert_eq!(
            msgs[0].mail_line,
            format!(
                "MAIL FROM:<alice@example.org> SIZE={} BODY=BINARYMIME",
                whole.len()
            )
        );
        let cmds = command_lines(&sink);
        assert!(
            cmds.contains(&format!("BDAT {} LAST", whole.len())),
            "{cmds:?}"
        );
        assert!(!cmds.iter().any(|c| c == "DATA"), "{cmds:?}");

        // A plain message on the same connection still goes with DATA.
        let r = d
            .deliver(
                &env("T1", "alice@example.org", &["bob@example.net"]),
                &[b"Subject: x\r\n\r\nhi\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
        let msgs = sink.messages();
        assert!(!msgs[1].bdat);
        assert!(
            !msgs[1].mail_line.contains("BODY="),
            "{}",
            msgs[1].mail_line
        );
        assert_eq!(d.upstream_connections_opened(), Some(1));
    }
}

#[tokio::test]
async fn binarymime_refused_with_5_6_3_when_the_upstream_lacks_it() {
    let lacking = [
        SinkConfig::default(),
        SinkConfig {
            chunking: true,
            ..Default::default()
        },
        SinkConfig {
            binarymime: true,
            ..Default::default()
        },
    ];
    for cfg in lacking {
        let (chunking, binarymime) = (cfg.chunking, cfg.binarymime);
        let sink = Sink::start(cfg).await;
        let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
            .await
            .unwrap();
        let r = d
            .deliver(&binary_env("B2"), &[RECEIVED, &binary_body()])
            .await;
        assert_eq!(r.code(), 554, "{r}");
        assert_eq!(
            r.enhanced().map(|e| e.to_string()).as_deref(),
            Some("5.6.3"),
            "{r}"
        );
        assert!(sink.messages().is_empty());
        let cmds = command_lines(&sink);
        assert!(
            !cmds
                .iter()
                .any(|c| c.starts_with("MAIL") || c.starts_with("BDAT") || c == "DATA"),
            "nothing of the transaction sent (CHUNKING {chunking}, BINARYMIME {binarymime}): {cmds:?}"
        );
        // The connection is still good for a text message.
        let r = d
            .deliver(
                &env("T2", "alice@example.org", &["bob@example.net"]),
                &[b"Subject: x\r\n\r\nhi\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
        assert_eq!(sink.messages().len(), 1);
        assert_eq!(d.upstream_connections_opened(), Some(1));
    }
}

#[tokio::test]
async fn binarymime_goes_to_the_upstream_that_offers_it() {
    let plain = Sink::start(SinkConfig::default()).await;
    let binary = Sink::start(SinkConfig {
        chunking: true,
        binarymime: true,
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&fwd(vec![plain.addr, binary.addr], TlsPolicy::None))
        .await
        .unwrap();
    let body = binary_body();
    for id in ["B3", "B4"] {
        let r = d.deliver(&binary_env(id), &[RECEIVED, &body]).await;
        assert_eq!(r.code(), 250, "{r}");
    }
    assert!(plain.messages().is_empty());
    let got = binary.messages();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|m| m.bdat && m.data.len() == RECEIVED.len() + body.len())
    );
    assert_eq!(
        d.upstream_connections_opened(),
        Some(2),
        "the second message reused a pooled connection"
    );
}

#[tokio::test]
async fn eight_bit_passes_body_8bitmime_when_offered_else_sent_as_is() {
    let body = b"Subject: caf\xc3\xa9\r\n\r\nna\xefve\r\n".to_vec();
    for offered in [true, false] {
        let sink = Sink::start(SinkConfig {
            eight_bit_mime: offered,
            ..Default::default()
        })
        .await;
        let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
            .await
            .unwrap();
        for declared in [BodyType::EightBitMime, BodyType::SevenBit] {
            let e = Envelope {
                body: declared,
                ..env("E8", "alice@example.org", &["bob@example.net"])
            };
            let r = d.deliver(&e, &[RECEIVED, &body]).await;
            assert_eq!(r.code(), 250, "{r}");
        }
        // Declared 8BITMIME, 7-bit content: the declaration is passed on.
        let e = Envelope {
            body: BodyType::EightBitMime,
            ..env("E7", "alice@example.org", &["bob@example.net"])
        };
        let r = d.deliver(&e, &[b"Subject: ascii\r\n\r\nx\r\n"]).await;
        assert_eq!(r.code(), 250, "{r}");
        let msgs = sink.messages();
        assert_eq!(msgs.len(), 3);
        let mut whole = RECEIVED.to_vec();
        whole.extend_from_slice(&body);
        for m in &msgs[..2] {
            assert_eq!(m.data, whole, "unchanged (8BITMIME offered: {offered})");
        }
        for m in &msgs {
            assert_eq!(
                m.mail_line.ends_with(" BODY=8BITMIME"),
                offered,
                "{}",
                m.mail_line
            );
        }
    }
}

#[tokio::test]
async fn smtputf8_passed_on_or_refused_with_5_6_7() {
    let utf8 = Envelope {
        smtputf8: true,
        ..env("U1", "j\u{f6}rg@example.org", &["bob@example.net"])
    };
    let ascii_declared = Envelope {
        smtputf8: true,
        ..env("U2", "alice@example.org", &["bob@example.net"])
    };
    let utf8_header = Envelope {
        smtputf8: true,
        ..env("U3", "alice@example.org", &["bob@example.net"])
    };
    let plain: &[u8] = b"Subject: x\r\n\r\nhi\r\n";
    let header8: &[u8] = b"Subject: \xc3\xa9\r\n\r\nhi\r\n";

    let sink = Sink::start(SinkConfig {
        smtputf8: true,
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    for (e, m) in [
        (&utf8, plain),
        (&ascii_declared, plain),
        (&utf8_header, header8),
    ] {
        let r = d.deliver(e, &[m]).await;
        assert_eq!(r.code(), 250, "{r}");
    }
    let msgs = sink.messages();
    assert_eq!(msgs[0].mail_from, "j\u{f6}rg@example.org");
    for m in &msgs {
        assert!(m.mail_line.ends_with(" SMTPUTF8"), "{}", m.mail_line);
    }

    let sink = Sink::start(SinkConfig::default()).await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    for (e, m) in [(&utf8, plain), (&utf8_header, header8)] {
        let r = d.deliver(e, &[m]).await;
        assert_eq!(r.code(), 553, "{r}");
        assert_eq!(
            r.enhanced().map(|e| e.to_string()).as_deref(),
            Some("5.6.7")
        );
    }
    assert!(
        !command_lines(&sink).iter().any(|c| c.starts_with("MAIL")),
        "nothing sent"
    );
    // Declared but not needed (ASCII envelope and header): sent without it.
    let r = d.deliver(&ascii_declared, &[plain]).await;
    assert_eq!(r.code(), 250, "{r}");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].mail_line.contains("SMTPUTF8"));
}

#[tokio::test]
async fn forwards_byte_exact_with_dot_stuffing() {
    let sink = Sink::start(SinkConfig::default()).await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    let body = tricky_body();
    let reply = d
        .deliver(
            &env(
                "Q1",
                "alice@example.org",
                &["bob@example.net", "carol@example.net"],
            ),
            &[RECEIVED, &body],
        )
        .await;
    assert_eq!(reply.code(), 250, "{reply}");
    let text = reply.to_string();
    assert!(text.contains("queued as Q1"), "{text}");
    assert!(text.contains("SINK0"), "upstream id mentioned: {text}");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.mail_from, "alice@example.org");
    assert_eq!(m.rcpts, vec!["bob@example.net", "carol@example.net"]);
    let mut whole = RECEIVED.to_vec();
    whole.extend_from_slice(&body);
    assert_eq!(
        m.data, whole,
        "unstuffed data is the message, byte for byte"
    );
    assert_eq!(
        m.wire,
        dotstuff::stuff(&[RECEIVED, &body]),
        "wire form is dot-stuffed"
    );
    assert!(m.wire.starts_with(RECEIVED));
    assert!(
        m.wire.windows(17).any(|w| w == b"\r\n..leading dot\r\n"),
        "leading dot doubled on the wire"
    );
}

#[tokio::test]
async fn reuses_connections_across_messages() {
    let sink = Sink::start(SinkConfig::default()).await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    for i in 0..5 {
        let r = d
            .deliver(
                &env(&format!("R{i}"), "a@example.org", &["b@example.net"]),
                &[b"Subject: x\r\n\r\nhi\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
    }
    assert_eq!(sink.messages().len(), 5);
    assert_eq!(sink.sessions(), 1, "one upstream session for five messages");
    assert_eq!(d.upstream_connections_opened(), Some(1));
    let rsets = sink
        .commands()
        .iter()
        .filter(|(_, _, c)| c == "RSET")
        .count();
    assert_eq!(rsets, 4, "RSET between messages");
}

#[tokio::test]
async fn dead_pooled_connection_is_replaced_transparently() {
    // This sink closes the connection after each message (without QUIT),
    // so the pooled connection is dead when the next message comes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let mut n = 0;
        loop {
            let (s, _) = l.accept().await.unwrap();
            n += 1;
            let mut s = BufReader::new(s);
            s.get_mut().write_all(b"220 closer\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                if in_data {
                    if line == ".\r\n" {
                        s.get_mut()
                            .write_all(format!("250 2.0.0 Ok: queued as C{n}\r\n").as_bytes())
                            .await
                            .unwrap();
                        break; // close right after the message
                    }
                    continue;
                }
                let r: &[u8] = if line.starts_with("EHLO") {
                    b"250-closer\r\n250 PIPELINING\r\n"
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else {
                    b"250 2.0.0 Ok\r\n"
                };
                s.get_mut().write_all(r).await.unwrap();
            }
        }
    });
    let d = Deliverer::new(&fwd(vec![addr], TlsPolicy::None))
        .await
        .unwrap();
    for i in 0..3 {
        let r = d
            .deliver(
                &env(&format!("D{i}"), "a@example.org", &["b@example.net"]),
                &[b"Subject: x\r\n\r\nhi\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "message {i}: {r}");
    }
    assert!(d.upstream_connections_opened().unwrap() >= 3);
    task.abort();
}

#[tokio::test]
async fn fails_over_to_the_next_upstream() {
    let sink = Sink::start(SinkConfig::default()).await;
    let down = dead_port().await;
    let d = Deliverer::new(&fwd(vec![down, sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("F1", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 250, "{r}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn all_upstreams_down_is_451_441() {
    let d = Deliverer::new(&fwd(
        vec![dead_port().await, dead_port().await],
        TlsPolicy::None,
    ))
    .await
    .unwrap();
    let r = d
        .deliver(
            &env("X", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 451);
    assert_eq!(r.enhanced().unwrap().to_string(), "4.4.1");
}

fn refusing_sink() -> SinkConfig {
    SinkConfig {
        rcpt: Arc::new(|a, _| {
            if a.starts_with("perm") {
                "550 5.1.1 No such user".into()
            } else if a.starts_with("temp") {
                "450 4.2.0 Mailbox busy".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn partial_refusal_is_a_temporary_failure_and_nothing_is_sent() {
    for pipelining in [true, false] {
        let sink = Sink::start(SinkConfig {
            pipelining,
            ..refusing_sink()
        })
        .await;
        let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
            .await
            .unwrap();
        let r = d
            .deliver(
                &env(
                    "P1",
                    "a@example.org",
                    &["ok@example.net", "perm@example.net"],
                ),
                &[b"\r\nx\r\n"],
            )
            .await;
        assert_eq!(r.code(), 451, "{r}");
        assert!(r.to_string().contains("perm@example.net"), "{r}");
        assert!(sink.messages().is_empty(), "no partial delivery");
        // All refused permanently: 5xx.
        let r = d
            .deliver(
                &env(
                    "P2",
                    "a@example.org",
                    &["perm1@example.net", "perm2@example.net"],
                ),
                &[b"\r\nx\r\n"],
            )
            .await;
        assert_eq!(r.code(), 550, "{r}");
        // Temporarily refused: 4xx.
        let r = d
            .deliver(
                &env("P3", "a@example.org", &["temp@example.net"]),
                &[b"\r\nx\r\n"],
            )
            .await;
        assert_eq!(r.class(), 4, "{r}");
        // The pool still works afterwards.
        let r = d
            .deliver(
                &env("P4", "a@example.org", &["ok@example.net"]),
                &[b"\r\nfine\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
        let msgs = sink.messages();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].data, b"\r\nfine\r\n");
    }
}

#[tokio::test]
async fn data_refusal_is_relayed() {
    let sink = Sink::start(SinkConfig {
        data: Arc::new(|_, _| "554 5.7.1 Spam".into()),
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::None))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("S", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 554, "{r}");
    assert_eq!(r.enhanced().unwrap().to_string(), "5.7.1");
}

#[tokio::test]
async fn required_tls_never_sends_mail_in_plaintext() {
    let sink = Sink::start(SinkConfig::default()).await; // no STARTTLS
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::Required))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("T", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 451, "{r}");
    assert_eq!(r.enhanced().unwrap().to_string(), "4.7.5");
    let cmds = sink.commands();
    assert!(!cmds.is_empty(), "the sink was contacted");
    assert!(
        !cmds
            .iter()
            .any(|(_, _, c)| c.starts_with("MAIL") || c.starts_with("RCPT") || c == "DATA"),
        "no envelope in plaintext: {cmds:?}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn starttls_with_configured_ca() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig {
        tls: Some(pki.server.clone()),
        ..Default::default()
    })
    .await;
    let mut c = fwd(vec![sink.addr], TlsPolicy::Required);
    c.forward.ca_file = Some(pki.write_ca(dir.path()));
    let d = Deliverer::new(&c).await.unwrap();
    for i in 0..2 {
        let r = d
            .deliver(
                &env(&format!("TLS{i}"), "a@example.org", &["b@example.net"]),
                &[RECEIVED, b"Subject: t\r\n\r\n.secret\r\n"],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
    }
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.tls), "sent over TLS");
    assert_eq!(sink.sessions(), 1, "TLS connection reused");
    let cmds = sink.commands();
    assert!(
        cmds.iter()
            .filter(|(_, tls, _)| !tls)
            .all(|(_, _, c)| c.starts_with("EHLO") || c == "STARTTLS"),
        "only EHLO and STARTTLS in plaintext: {cmds:?}"
    );
    assert!(
        cmds.iter().any(|(_, tls, c)| *tls && c.starts_with("EHLO")),
        "EHLO again after TLS"
    );
    let mut whole = RECEIVED.to_vec();
    whole.extend_from_slice(b"Subject: t\r\n\r\n.secret\r\n");
    assert_eq!(msgs[0].data, whole);
}

#[tokio::test]
async fn required_tls_with_untrusted_certificate_fails_without_mail() {
    let pki = TestPki::generate();
    let sink = Sink::start(SinkConfig {
        tls: Some(pki.server.clone()),
        ..Default::default()
    })
    .await;
    // No ca_file: webpki roots, which do not know the test CA.
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::Required))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("U", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 451, "{r}");
    assert!(
        !sink
            .commands()
            .iter()
            .any(|(_, _, c)| c.starts_with("MAIL"))
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn opportunistic_tls_encrypts_without_verifying() {
    let pki = TestPki::generate();
    let sink = Sink::start(SinkConfig {
        tls: Some(pki.server.clone()),
        ..Default::default()
    })
    .await;
    let d = Deliverer::new(&fwd(vec![sink.addr], TlsPolicy::Opportunistic))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("O", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 250, "{r}");
    assert!(sink.messages()[0].tls);
    // And plaintext when not offered.
    let plain = Sink::start(SinkConfig::default()).await;
    let d = Deliverer::new(&fwd(vec![plain.addr], TlsPolicy::Opportunistic))
        .await
        .unwrap();
    let r = d
        .deliver(
            &env("O2", "a@example.org", &["b@example.net"]),
            &[b"\r\nx\r\n"],
        )
        .await;
    assert_eq!(r.code(), 250, "{r}");
    assert!(!plain.messages()[0].tls);
}

#[tokio::test]
async fn maildir_files_are_complete_in_new() {
    let dir = tempfile::tempdir().unwrap();
    let c = DeliveryConfig {
        maildir: dir.path().join("maildir"),
        ..Default::default()
    };
    let d = Deliverer::new(&c).await.unwrap();
    let body = tricky_body();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("M{i}");
        let r = d
            .deliver(
                &env(&id, "a@example.org", &["b@example.net", "c@example.net"]),
                &[RECEIVED, &body],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
        assert!(r.to_string().contains(&format!("queued as {id}")));
        ids.push(id);
    }
    let new: Vec<_> = std::fs::read_dir(c.maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        new.len(),
        3,
        "one file per message, whatever the recipients"
    );
    let mut whole = RECEIVED.to_vec();
    whole.extend_from_slice(&body);
    for p in &new {
        assert_eq!(std::fs::read(p).unwrap(), whole, "{}", p.display());
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains('/') && !name.contains(':'), "{name}");
    }
    assert_eq!(
        std::fs::read_dir(c.maildir.join("tmp")).unwrap().count(),
        0,
        "tmp/ is empty"
    );
    assert!(c.maildir.join("cur").is_dir());
}

/// A running Postfix smtp-sink (killed, by its PID, on drop) dumping each
/// message with its envelope (`X-Mail-Args: ...`) into `dump`.
struct SmtpSink {
    child: std::process::Child,
    addr: SocketAddr,
    dump: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Starts `/usr/sbin/smtp-sink` on a free port; `None` (with a loud
    /// message) when it is not installed.
    async fn start(test: &str) -> Option<SmtpSink> {
        let bin = "/usr/sbin/smtp-sink";
        if !std::path::Path::new(bin).exists() {
            eprintln!(
                "\n!!!!!!!! SKIPPED {test}: {bin} is not installed (cargo xtask test installs postfix) !!!!!!!!\n"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
        let addr = dead_port().await;
        let mut cmd = std::process::Command::new(bin);
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg("-d")
            .arg(format!("{}/%M.", dump.display()))
            .arg(addr.to_string())
            .arg("100")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut sink = SmtpSink {
            child,
            addr,
            dump,
            _dir: dir,
        };
        // Wait until it listens.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Some(sink);
            }
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("smtp-sink exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("smtp-sink did not start");
    }

    /// The dumped messages (LF line ends), once `n` of them match `pred`.
    async fn wait_dumped(&self, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut found = Vec::new();
        for _ in 0..100 {
            found = walk(&self.dump)
                .iter()
                .map(|p| {
                    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default())
                        .replace("\r\n", "\n")
                })
                .filter(|t| pred(t))
                .collect();
            if found.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found
    }
}

/// Postfix's smtp-sink as the upstream (installed by `cargo xtask test`).
#[tokio::test]
async fn forwards_to_postfix_smtp_sink() {
    let Some(pf) = SmtpSink::start("forwards_to_postfix_smtp_sink").await else {
        return;
    };
    let d = Deliverer::new(&fwd(vec![pf.addr], TlsPolicy::None))
        .await
        .unwrap();
    let body =
        b"From: a@example.org\r\nSubject: to postfix\r\n\r\n.dot line\r\nplain line\r\n".to_vec();
    for i in 0..3 {
        let r = d
            .deliver(
                &env(&format!("PF{i}"), "a@example.org", &["b@example.net"]),
                &[RECEIVED, &body],
            )
            .await;
        assert_eq!(r.code(), 250, "{r}");
    }
    assert_eq!(
        d.upstream_connections_opened(),
        Some(1),
        "connection reused with smtp-sink"
    );
    d.close().await;
    // The dump files hold the unstuffed message lines.
    let found = pf
        .wait_dumped(3, |t| {
            t.contains("Subject: to postfix\n\n.dot line\nplain line\n")
        })
        .await;
    assert_eq!(
        found.len(),
        3,
        "smtp-sink dumped the three messages, dot-unstuffed intact"
    );
}

/// smtp-sink (Postfix 3.x) offers 8BITMIME but neither CHUNKING nor
/// BINARYMIME: a binary message is refused with 5.6.3 and never sent, an
/// 8-bit one goes with BODY=8BITMIME.
#[tokio::test]
async fn postfix_smtp_sink_gets_8bitmime_and_no_binarymime() {
    let Some(pf) = SmtpSink::start("postfix_smtp_sink_gets_8bitmime_and_no_binarymime").await
    else {
        return;
    };
    let d = Deliverer::new(&fwd(vec![pf.addr], TlsPolicy::None))
        .await
        .unwrap();
    let r = d
        .deliver(&binary_env("PFB"), &[RECEIVED, &binary_body()])
        .await;
    assert_eq!(r.code(), 554, "{r}");
    assert_eq!(
        r.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.6.3")
    );
    let body = b"Subject: caf\xc3\xa9\r\n\r\nna\xefve 8-bit\r\n".to_vec();
    let e = Envelope {
        body: BodyType::EightBitMime,
        ..env("PF8", "a@example.org", &["b@example.net"])
    };
    let r = d.deliver(&e, &[RECEIVED, &body]).await;
    assert_eq!(r.code(), 250, "{r}");
    assert_eq!(d.upstream_connections_opened(), Some(1));
    d.close().await;
    let found = pf.wait_dumped(1, |t| t.contains("8-bit")).await;
    assert_eq!(found.len(), 1, "the 8-bit message was dumped");
    assert!(
        found[0].contains("X-Mail-Args: <a@example.org> BODY=8BITMIME\n"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("na\u{fffd}ve 8-bit"), "8-bit octet kept");
    assert_eq!(
        walk(&pf.dump).len(),
        1,
        "the binary message never reached smtp-sink"
    );
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
