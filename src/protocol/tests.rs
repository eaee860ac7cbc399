//! Engine-level tests: whole sessions fed as bytes, decisions made by a
//! closure, replies checked on the wire form.

use std::sync::Arc;

use super::replies;
use super::reply::{EnhancedCode, Reply};
use super::*;
use crate::context::HelloKind;

/// A config with STARTTLS and plaintext AUTH on, so every command is usable.
fn cfg() -> EngineConfig {
    EngineConfig {
        starttls: true,
        auth: true,
        auth_plaintext: true,
        ..EngineConfig::default()
    }
}

/// What one `drive` call produced.
#[derive(Debug, Default)]
struct Run {
    /// The output written.
    out: String,
    /// Events seen, in order.
    events: Vec<Event>,
    /// The message taken at each MessageComplete.
    messages: Vec<Vec<u8>>,
    /// `message_so_far` at each DataHeaders.
    headers: Vec<Vec<u8>>,
    /// The action that ended the run.
    last: Option<Action>,
}

impl Run {
    /// The reply codes in the output (one per reply, multi-line folded).
    fn codes(&self) -> Vec<u16> {
        self.out
            .split("\r\n")
            .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
            .filter_map(|l| l[..3].parse().ok())
            .collect()
    }

    fn count(&self, e: &Event) -> usize {
        self.events.iter().filter(|x| *x == e).count()
    }
}

/// The decision a well-behaved driver makes by default.
fn accept(e: &Event) -> Decision {
    match e {
        Event::MessageComplete => {
            Decision::Reply(Reply::new(250, EnhancedCode::new(2, 0, 0), "queued"))
        }
        _ => Decision::Default,
    }
}

/// Feeds `input` and answers events until the engine needs input (or stops).
fn drive(e: &mut SmtpEngine, input: &[u8], decide: &mut dyn FnMut(&Event) -> Decision) -> Run {
    let mut run = Run::default();
    e.receive(input);
    loop {
        match e.poll() {
            Action::Event(ev) => {
                match ev {
                    Event::MessageComplete => run.messages.push(e.take_message()),
                    Event::DataHeaders => run.headers.push(e.message_so_far().to_vec()),
                    _ => {}
                }
                let d = decide(&ev);
                run.events.push(ev);
                e.decide(d);
            }
            other => {
                run.last = Some(other);
                break;
            }
        }
    }
    run.out = String::from_utf8_lossy(e.output()).into_owned();
    e.clear_output();
    run
}

/// A session past the greeting.
fn session(config: EngineConfig) -> SmtpEngine {
    let mut e = SmtpEngine::new(Arc::new(config), false);
    let r = drive(&mut e, b"", &mut accept);
    assert_eq!(r.events, [Event::Connect]);
    assert_eq!(r.out, "220 localhost ESMTP wasmtp\r\n");
    e
}

/// Feeds the input in pieces split at `splits` and merges the runs.
fn drive_split(
    e: &mut SmtpEngine,
    input: &[u8],
    splits: &[usize],
    decide: &mut dyn FnMut(&Event) -> Decision,
) -> Run {
    let mut all = Run::default();
    let mut bounds = vec![0];
    bounds.extend(splits.iter().copied().filter(|&s| s <= input.len()));
    bounds.push(input.len());
    for w in bounds.windows(2) {
        let r = drive(e, &input[w[0]..w[1]], decide);
        all.out.push_str(&r.out);
        all.events.extend(r.events);
        all.messages.extend(r.messages);
        all.headers.extend(r.headers);
        all.last = r.last;
    }
    all
}

const TXN: &[u8] = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";

#[test]
fn greeting_default_and_refused() {
    let mut e = SmtpEngine::new(Arc::new(cfg()), false);
    // poll while pending returns the same event
    assert_eq!(e.poll(), Action::Event(Event::Connect));
    assert_eq!(e.poll(), Action::Event(Event::Connect));
    e.decide(Decision::Default);
    assert_eq!(e.poll(), Action::NeedInput);
    assert_eq!(e.output(), b"220 localhost ESMTP wasmtp\r\n");
    // decide without a pending event is ignored
    e.clear_output();
    e.decide(Decision::Default);
    assert_eq!(e.output(), b"");

    let mut e = SmtpEngine::new(Arc::new(cfg()), false);
    let r = drive(&mut e, b"", &mut |_| {
        Decision::Reply(Reply::new(554, EnhancedCode::new(5, 7, 1), "go away"))
    });
    assert_eq!(r.codes(), [554]);
    let r = drive(
        &mut e,
        b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\nQUIT\r\nNOOP\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [503, 503, 503, 221]);
    assert!(r.events.is_empty());
    assert_eq!(r.last, Some(Action::Close));
    assert_eq!(e.poll(), Action::Close);

    let mut e = SmtpEngine::new(Arc::new(cfg()), false);
    let r = drive(&mut e, b"EHLO x\r\n", &mut |_| {
        Decision::Disconnect(replies::too_many_connections("localhost"))
    });
    assert_eq!(r.codes(), [421]);
    assert_eq!(r.last, Some(Action::Close));
    e.receive(b"NOOP\r\n");
    assert_eq!(e.poll(), Action::Close);
    assert_eq!(e.buffered_len(), 0);
}

/// Every command in every state: the reply code.
#[test]
fn command_state_table() {
    let plain = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let auth = format!("AUTH PLAIN {}", plain("\0u\0p"));
    let commands: Vec<(&str, [u16; 5])> = vec![
        // command          fresh ehlo  mail  rcpt  refused
        ("HELO x.example", [250, 250, 250, 250, 503]),
        ("EHLO x.example", [250, 250, 250, 250, 503]),
        ("MAIL FROM:<a@b.example>", [503, 250, 503, 503, 503]),
        ("RCPT TO:<c@d.example>", [503, 503, 250, 250, 503]),
        ("DATA", [503, 503, 554, 354, 503]),
        ("RSET", [250, 250, 250, 250, 503]),
        ("NOOP", [250, 250, 250, 250, 503]),
        ("VRFY bob", [252, 252, 252, 252, 503]),
        ("EXPN list", [502, 502, 502, 502, 503]),
        ("HELP", [214, 214, 214, 214, 503]),
        ("QUIT", [221, 221, 221, 221, 221]),
        ("STARTTLS", [220, 220, 503, 503, 503]),
        (&auth, [503, 235, 503, 503, 503]),
        ("BDAT 0 LAST", [503, 503, 554, 250, 503]),
        ("XYZZY", [500, 500, 500, 500, 503]),
        ("MAIL FROM:<bad", [501, 501, 501, 501, 503]),
        ("HELO", [501, 501, 501, 501, 503]),
    ];
    let setups: [&[u8]; 4] = [
        b"",
        b"EHLO c.example\r\n",
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n",
        TXN,
    ];
    for (cmd, want) in &commands {
        for (state, expect) in want.iter().enumerate() {
            let mut e = if state == 4 {
                let mut e = SmtpEngine::new(Arc::new(cfg()), false);
                drive(&mut e, b"", &mut |_| {
                    Decision::Reply(Reply::new(554, EnhancedCode::new(5, 3, 2), "no"))
                });
                e
            } else {
                let mut e = session(cfg());
                let r = drive(&mut e, setups[state], &mut accept);
                assert!(
                    r.codes().iter().all(|c| *c == 250),
                    "setup {state}: {}",
                    r.out
                );
                e
            };
            let line = format!("{cmd}\r\n");
            let r = drive(&mut e, line.as_bytes(), &mut accept);
            assert_eq!(r.codes(), [*expect], "{cmd:?} in state {state}: {}", r.out);
        }
    }
}

#[test]
fn ehlo_and_helo_replies() {
    let mut e = session(cfg());
    let r = drive(&mut e, b"EHLO c.example\r\n", &mut accept);
    assert_eq!(
        r.out,
        "250-localhost\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n\
         250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
    );
    assert_eq!(e.hello(), HelloKind::Ehlo);
    let r = drive(&mut e, b"HELO c.example\r\n", &mut accept);
    assert_eq!(r.out, "250 localhost\r\n");
    assert_eq!(e.hello(), HelloKind::Helo);
    // params are ESMTP-only
    let r = drive(&mut e, b"MAIL FROM:<a@b.example> SIZE=10\r\n", &mut accept);
    assert_eq!(r.codes(), [555]);
    // a refused EHLO does not count as a greeting
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO bad.example\r\nMAIL FROM:<a@b.example>\r\n",
        &mut |ev| match ev {
            Event::Ehlo { .. } => {
                Decision::Reply(Reply::new(550, EnhancedCode::new(5, 7, 1), "no"))
            }
            _ => Decision::Default,
        },
    );
    assert_eq!(r.codes(), [550, 503]);
    // invalid names
    for bad in ["EHLO -x", "EHLO a b", "HELO [1.2.3]", "EHLO a..b"] {
        let mut e = session(cfg());
        let r = drive(&mut e, format!("{bad}\r\n").as_bytes(), &mut accept);
        assert_eq!(r.codes(), [501], "{bad}");
    }
    // EHLO resets a transaction
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    assert!(e.in_transaction());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nRCPT TO:<x@y.example>\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 503]);
}

#[test]
fn pipelined_transaction_in_one_write() {
    let mut e = session(cfg());
    let input = b"EHLO c.example\r\nMAIL FROM:<a@b.example> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<c@d.example>\r\n\
RCPT TO:<e@f.example>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<g@h.example>\r\nDATA\r\n\
.\r\nQUIT\r\n";
    let r = drive(&mut e, input, &mut accept);
    assert_eq!(
        r.codes(),
        [250, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
    );
    assert_eq!(
        r.messages,
        [b"Subject: hi\r\n\r\nbody\r\n".to_vec(), Vec::new()]
    );
    assert_eq!(r.headers, [b"Subject: hi\r\n\r\n".to_vec(), Vec::new()]);
    assert_eq!(r.last, Some(Action::Close));
    assert_eq!(
        r.events[1],
        Event::Mail {
            sender: "a@b.example".into(),
            params: vec![
                crate::context::Param {
                    key: "SIZE".into(),
                    value: Some("20".into())
                },
                crate::context::Param {
                    key: "BODY".into(),
                    value: Some("8BITMIME".into())
                }
            ]
        }
    );
    // the same session split at every byte boundary gives the same answer
    for split in 0..=input.len() {
        let mut e = session(cfg());
        let r2 = drive_split(&mut e, input, &[split], &mut accept);
        assert_eq!(r2.out, r.out, "split {split}");
        assert_eq!(r2.messages, r.messages, "split {split}");
    }
}

#[test]
fn refused_data_lines_are_commands_again() {
    // a client that pipelines its message after DATA although DATA failed:
    // the lines are then commands (answered, never delivered)
    let mut e = session(cfg());
    let input = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nNOOP\r\n.\r\n";
    let r = drive(&mut e, input, &mut |ev| match ev {
        Event::Data => Decision::Reply(Reply::new(451, EnhancedCode::new(4, 3, 0), "later")),
        _ => Decision::Default,
    });
    assert_eq!(r.codes(), [250, 250, 250, 451, 250, 500]);
    assert!(r.messages.is_empty());
    // a positive non-354 reply to DATA still gives 354
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
        &mut |ev| match ev {
            Event::Data => Decision::Reply(replies::ok()),
            _ => Decision::Default,
        },
    );
    assert_eq!(r.codes(), [250, 250, 250, 354]);
}

const VARIANTS: &[&[u8]] = &[
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

/// SECURITY.md: no variant ends the data or splits the message, in one
/// piece or split at any byte. With `Normalize` exactly one message with
/// the exact bytes; with `Reject` one 550 (or the message when the variant
/// has no bare CR/LF), and the injected MAIL is never a command.
#[test]
fn smuggling_variants_through_the_engine() {
    let expected_normalized: [&[u8]; 10] = [
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n.\r\n",
        b"\r\n\x00.\r\n",
        b"\r\n\x00\r\n",
    ];
    for (v, norm) in VARIANTS.iter().zip(expected_normalized) {
        let mut input = b"Subject: x\r\n\r\nline1".to_vec();
        input.extend_from_slice(v);
        input.extend_from_slice(b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n");
        let mut want = b"Subject: x\r\n\r\nline1".to_vec();
        want.extend_from_slice(norm);
        want.extend_from_slice(
            b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\nsmuggled\r\n",
        );
        let has_bare = !v.starts_with(b"\r\n\x00") && !v.starts_with(b"\r\n.\x00");
        let has_nul = v.contains(&0);
        for policy in [BareLineEndings::Normalize, BareLineEndings::Reject] {
            for split in 0..=input.len() {
                let config = EngineConfig {
                    bare_line_endings: policy,
                    ..cfg()
                };
                let mut e = session(config);
                let r0 = drive(&mut e, b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", &mut accept);
                assert_eq!(r0.codes(), [250, 250, 250, 354]);
                let r = drive_split(&mut e, &input, &[split], &mut accept);
                let ctx = format!("variant {v:?} {policy:?} split {split}: {}", r.out);
                assert!(
                    !r.events.iter().any(|e| matches!(e, Event::Mail { .. })),
                    "{ctx}"
                );
                if has_nul {
                    // NUL in content is refused whatever the bare CR/LF policy
                    assert_eq!(r.codes(), [550, 250], "{ctx}");
                    assert!(r.out.starts_with("550 5.6.0 "), "{ctx}");
                    assert_eq!(r.count(&Event::MessageComplete), 0, "{ctx}");
                } else if policy == BareLineEndings::Reject && has_bare {
                    assert_eq!(r.codes(), [550, 250], "{ctx}");
                    assert!(
                        r.out
                            .starts_with("550 5.5.2 Message contains bare CR or LF\r\n"),
                        "{ctx}"
                    );
                    assert_eq!(r.count(&Event::MessageComplete), 0, "{ctx}");
                } else {
                    assert_eq!(r.codes(), [250, 250], "{ctx}");
                    assert_eq!(r.messages, [want.clone()], "{ctx}");
                }
            }
        }
    }
}

#[test]
fn oversize_command_lines() {
    let mut e = session(cfg());
    let mut big = b"NOOP ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 17000));
    e.receive(&big);
    assert_eq!(e.poll(), Action::NeedInput);
    assert!(e.buffered_len() <= 1024, "buffered {}", e.buffered_len());
    assert_eq!(e.output(), b"");
    let r = drive(&mut e, b"\r\nNOOP\r\n", &mut accept);
    assert_eq!(r.codes(), [500, 250]);
    assert!(r.out.starts_with("500 5.5.2 Line too long\r\n"));
    // in one write with its CRLF
    big.extend_from_slice(b"\r\nNOOP\r\n");
    let r = drive(&mut e, &big, &mut accept);
    assert_eq!(r.codes(), [500, 250]);
    assert_eq!(e.buffered_len(), 0);
    // 512 octets including CRLF is fine, 513 is not; MAIL gets 512 more
    let ok = format!("NOOP {}\r\n", "x".repeat(512 - 7));
    let long = format!("NOOP {}\r\n", "x".repeat(513 - 7));
    let r = drive(&mut e, format!("{ok}{long}").as_bytes(), &mut accept);
    assert_eq!(r.codes(), [250, 500]);
    let mail = format!(
        "EHLO c.example\r\nMAIL FROM:<a@b.example> AUTH={}\r\n",
        "x".repeat(700)
    );
    let r = drive(&mut e, mail.as_bytes(), &mut accept);
    assert_eq!(r.codes(), [250, 250]);
    // a bare LF ends a line but the line is refused
    let r = drive(&mut e, b"RSET\nNOOP\r\n", &mut accept);
    assert_eq!(r.codes(), [500, 250]);
}

#[test]
fn path_limits_and_smtputf8() {
    let mut e = session(cfg());
    drive(&mut e, b"EHLO c.example\r\n", &mut accept);
    let cases: Vec<(String, u16)> = vec![
        (format!("MAIL FROM:<{}@b.example>", "a".repeat(64)), 250),
        ("RSET".into(), 250),
        (format!("MAIL FROM:<{}@b.example>", "a".repeat(65)), 501),
        (format!("MAIL FROM:<a@{}.example>", "b".repeat(64)), 501),
        (
            format!("MAIL FROM:<a@{}example>", "bbbbbbbbb.".repeat(26)),
            501,
        ),
        ("MAIL FROM:<ü@b.example>".into(), 553),
        ("MAIL FROM:<ü@b.example> SMTPUTF8".into(), 250),
        ("RCPT TO:<ö@c.example>".into(), 250),
        ("RCPT TO:<>".into(), 501),
        ("RCPT TO:<Postmaster>".into(), 250),
        ("RCPT TO:<@hop.example:d@c.example>".into(), 250),
        ("RCPT TO:<d@c.example> NOTIFY=NEVER".into(), 555),
        ("RSET".into(), 250),
        ("MAIL FROM:<a@b.example>".into(), 250),
        ("RCPT TO:<ö@c.example>".into(), 553),
        ("RSET".into(), 250),
        ("MAIL FROM:<a@b.example> SIZE=36700161".into(), 552),
        ("MAIL FROM:<a@b.example> FOO=BAR".into(), 555),
        ("MAIL FROM:<a@b.example> BODY=BINARYMIME".into(), 250),
        ("RCPT TO:<d@c.example>".into(), 250),
        ("DATA".into(), 503),
    ];
    for (line, code) in cases {
        let r = drive(&mut e, format!("{line}\r\n").as_bytes(), &mut accept);
        assert_eq!(r.codes(), [code], "{line}: {}", r.out);
    }
    // the route is stripped in the event
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<@hop.example:d@c.example>\r\n",
        &mut accept,
    );
    assert_eq!(
        r.events[2],
        Event::Rcpt {
            recipient: "d@c.example".into(),
            params: vec![]
        }
    );
}

#[test]
fn recipient_limit_and_refusals() {
    let mut e = session(EngineConfig {
        max_recipients: 2,
        ..cfg()
    });
    let input = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<no@d.example>\r\nRCPT TO:<x@d.example>\r\n\
RCPT TO:<y@d.example>\r\nRCPT TO:<z@d.example>\r\nDATA\r\n.\r\n";
    let r = drive(&mut e, input, &mut |ev| match ev {
        Event::Rcpt { recipient, .. } if recipient.starts_with("no@") => {
            Decision::Reply(Reply::new(550, EnhancedCode::new(5, 7, 1), "relay denied"))
        }
        other => accept(other),
    });
    // the refused one does not count; the third accepted one is over the limit
    assert_eq!(r.codes(), [250, 250, 550, 250, 250, 452, 354, 250]);
    assert!(r.out.contains("452 4.5.3 Too many recipients\r\n"));
    // all refused: DATA has no valid recipients
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@d.example>\r\nDATA\r\n",
        &mut |ev| match ev {
            Event::Rcpt { .. } => {
                Decision::Reply(Reply::new(550, EnhancedCode::new(5, 1, 1), "unknown"))
            }
            other => accept(other),
        },
    );
    assert_eq!(r.codes(), [250, 250, 550, 554]);
    assert!(r.out.ends_with("554 5.5.1 No valid recipients\r\n"));
}

#[test]
fn message_limits() {
    let small = || EngineConfig {
        max_message_size: 100,
        max_text_line: 50,
        ..cfg()
    };
    // over the size limit: read to the end, then 552; the session goes on
    let mut e = session(small());
    drive(&mut e, TXN, &mut accept);
    let mut input = b"DATA\r\n".to_vec();
    for _ in 0..1000 {
        input.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let mut max_msg = 0;
    let mut max_buf = 0;
    let mut out = String::new();
    for chunk in input.chunks(64) {
        let r = drive(&mut e, chunk, &mut accept);
        out.push_str(&r.out);
        max_msg = max_msg.max(e.message_so_far().len());
        max_buf = max_buf.max(e.buffered_len());
        assert_eq!(r.count(&Event::MessageComplete), 0);
    }
    assert!(max_msg <= 100 && max_buf == 0, "{max_msg} {max_buf}");
    assert_eq!(
        out,
        "354 End data with <CR><LF>.<CR><LF>\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"
    );
    assert!(!e.in_transaction());

    // a long text line: refused at the end
    let mut e = session(small());
    drive(&mut e, TXN, &mut accept);
    let line = format!("DATA\r\n{}\r\n.\r\n", "x".repeat(49));
    let r = drive(&mut e, line.as_bytes(), &mut accept);
    assert_eq!(r.codes(), [354, 500]);
    assert!(
        r.out
            .ends_with("500 5.5.2 Message contains a line longer than the limit\r\n")
    );

    // bare LF rejected, session goes on
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"DATA\r\na\nb\r\n.\r\nRSET\r\n", &mut accept);
    assert_eq!(r.codes(), [354, 550, 250]);
    assert_eq!(r.count(&Event::MessageComplete), 0);
}

#[test]
fn data_headers_event() {
    // emitted once, at the empty line; a refusal there is sent at the end
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"DATA\r\nA: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n.\r\nNOOP\r\n",
        &mut |ev| match ev {
            Event::DataHeaders => {
                Decision::Reply(Reply::new(554, EnhancedCode::new(5, 7, 1), "spam"))
            }
            other => accept(other),
        },
    );
    assert_eq!(r.headers, [b"A: 1\r\nB: 2\r\n\r\n".to_vec()]);
    assert_eq!(r.count(&Event::DataHeaders), 1);
    assert_eq!(r.count(&Event::MessageComplete), 0);
    assert_eq!(r.codes(), [354, 554, 250]);
    assert!(!e.in_transaction());
    // without an empty line: at the end, with the whole message
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"DATA\r\nA: 1\r\n.\r\n", &mut accept);
    assert_eq!(r.headers, [b"A: 1\r\n".to_vec()]);
    assert_eq!(
        r.events,
        [Event::Data, Event::DataHeaders, Event::MessageComplete]
    );
    // Disconnect at MessageComplete closes
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"DATA\r\nA: 1\r\n.\r\nNOOP\r\n",
        &mut |ev| match ev {
            Event::MessageComplete => Decision::Disconnect(replies::local_error()),
            other => accept(other),
        },
    );
    assert_eq!(r.codes(), [354, 451]);
    assert_eq!(r.last, Some(Action::Close));
}

#[test]
fn bdat() {
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let input = b"BDAT 5\r\nhelloBDAT 8 LAST\r\n world\r\nNOOP\r\n";
    let r = drive(&mut e, input, &mut accept);
    assert_eq!(
        r.out,
        "250 2.0.0 5 octets received\r\n250 2.0.0 queued\r\n250 2.0.0 Ok\r\n"
    );
    // no header field: the empty line is inserted before the body
    assert_eq!(r.messages, [b"\r\nhello world\r\n".to_vec()]);
    assert_eq!(
        r.events,
        [
            Event::Data,
            Event::DataHeaders,
            Event::MessageComplete,
            Event::Noop { arg: "".into() }
        ]
    );
    for split in 0..=input.len() {
        let mut e = session(cfg());
        drive(&mut e, TXN, &mut accept);
        let r2 = drive_split(&mut e, input, &[split], &mut accept);
        assert_eq!(
            (r2.out, r2.messages),
            (r.out.clone(), r.messages.clone()),
            "split {split}"
        );
    }
    // BDAT 0 LAST: an empty message
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"BDAT 0 LAST\r\n", &mut accept);
    assert_eq!(r.messages, [Vec::<u8>::new()]);
    assert_eq!(r.codes(), [250]);
    // DATA after BDAT: 503; BDAT content is never a command
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"BDAT 6\r\nQUIT\r\nDATA\r\nBDAT 0 LAST\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 503, 250]);
    assert_eq!(r.messages, [b"\r\nQUIT\r\n".to_vec()]);
    // sizes past 2^64 or not numbers: 501 and close
    for bad in [
        "BDAT 18446744073709551616 LAST",
        "BDAT 99999999999999999999999",
        "BDAT x",
        "BDAT",
    ] {
        let mut e = session(cfg());
        drive(&mut e, TXN, &mut accept);
        let r = drive(&mut e, format!("{bad}\r\nNOOP\r\n").as_bytes(), &mut accept);
        assert_eq!(r.codes(), [501], "{bad}");
        assert_eq!(r.last, Some(Action::Close));
    }
    // a huge (valid) size over the limit: read and discarded with bounded memory
    let mut e = session(EngineConfig {
        max_message_size: 100,
        ..cfg()
    });
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"BDAT 18446744073709551615\r\n", &mut accept);
    assert_eq!(r.codes(), Vec::<u16>::new());
    for _ in 0..100 {
        let r = drive(&mut e, &[b'x'; 1000], &mut accept);
        assert!(r.out.is_empty());
        assert!(e.message_so_far().is_empty() && e.buffered_len() == 0);
    }
    // over the size limit: 552 at LAST
    let mut e = session(EngineConfig {
        max_message_size: 10,
        ..cfg()
    });
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"BDAT 8\r\n12345678BDAT 8 LAST\r\n12345678NOOP\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 552, 250]);
    assert_eq!(r.count(&Event::MessageComplete), 0);
    // without MAIL: 503, and the chunk is skipped, not read as commands
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 503, 250]);
    // first chunk refused at the Data event: chunk skipped, transaction over
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"BDAT 6\r\nQUIT\r\nBDAT 3 LAST\r\nabcNOOP\r\n",
        &mut |ev| match ev {
            Event::Data => Decision::Reply(Reply::new(451, EnhancedCode::new(4, 7, 1), "later")),
            other => accept(other),
        },
    );
    assert_eq!(r.codes(), [451, 503, 250]);
    // bare LF in a text BDAT message is refused; BINARYMIME is stored as is
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"BDAT 4 LAST\r\na\nb\n", &mut accept);
    assert_eq!(r.codes(), [550]);
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\nBDAT 5 LAST\r\na\nb\x00\r",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 250, 250, 250]);
    assert_eq!(r.messages, [b"a\nb\x00\r".to_vec()]);
    // without CHUNKING: 502, chunk skipped
    let mut e = session(EngineConfig {
        chunking: false,
        ..cfg()
    });
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", &mut accept);
    assert_eq!(r.codes(), [502, 250]);
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut e = session(cfg());
    drive(&mut e, b"EHLO c.example\r\n", &mut accept);
    let r = drive(
        &mut e,
        b"STARTTLS\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n",
        &mut accept,
    );
    assert_eq!(r.out, "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(r.last, Some(Action::StartTls));
    assert!(r.events.is_empty());
    assert_eq!(e.buffered_len(), 0);
    // still StartTls; plaintext before the handshake is ignored
    e.receive(b"NOOP\r\n");
    assert_eq!(e.poll(), Action::StartTls);
    e.tls_established();
    assert!(e.tls_active());
    assert_eq!(e.hello(), HelloKind::None);
    let r = drive(
        &mut e,
        b"MAIL FROM:<a@b.example>\r\nEHLO c.example\r\nSTARTTLS\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [503, 250, 503]);
    assert!(!r.out.contains("STARTTLS\r\n"));
    assert!(r.out.contains("AUTH PLAIN LOGIN"));
    // not offered / with arguments / in a transaction
    let mut e = session(EngineConfig {
        starttls: false,
        ..cfg()
    });
    let r = drive(&mut e, b"STARTTLS\r\n", &mut accept);
    assert_eq!(r.codes(), [454]);
    let mut e = session(cfg());
    let r = drive(&mut e, b"STARTTLS now\r\n", &mut accept);
    assert_eq!(r.codes(), [501]);
    // state reset: authentication is lost
    let mut e = session(cfg());
    drive(
        &mut e,
        b"EHLO c.example\r\nAUTH PLAIN AHUAcA==\r\n",
        &mut accept,
    );
    assert!(e.is_authenticated());
    drive(&mut e, b"STARTTLS\r\n", &mut accept);
    e.tls_established();
    assert!(!e.is_authenticated());
}

#[test]
fn submission_requirements() {
    let sub = EngineConfig {
        require_tls: true,
        require_auth: true,
        auth_plaintext: false,
        ..cfg()
    };
    let mut e = session(sub.clone());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN AHUAcA==\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 530, 538]);
    assert!(
        r.out
            .contains("530 5.7.0 Must issue a STARTTLS command first\r\n")
    );
    assert!(
        r.out
            .contains("538 5.7.11 Encryption required for requested authentication mechanism\r\n")
    );
    assert!(!r.out.contains("AUTH PLAIN"));
    let mut e = SmtpEngine::new(Arc::new(sub), true);
    drive(&mut e, b"", &mut accept);
    let r = drive(&mut e, b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@b.example>\r\n", &mut accept);
    assert_eq!(r.codes(), [250, 530, 235, 250]);
    assert!(r.out.contains("530 5.7.0 Authentication required\r\n"));
}

#[test]
fn auth_flows() {
    let b64 = |s: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let auth_event = |m: &str, z: &str, u: &str, p: &str| Event::Auth {
        mechanism: m.into(),
        authzid: z.into(),
        username: u.into(),
        password: p.into(),
    };
    // (script after EHLO, codes, the Auth event if any)
    let cases: Vec<(String, Vec<u16>, Option<Event>)> = vec![
        (
            format!("AUTH PLAIN {}\r\n", b64(b"\0bob\0pw")),
            vec![235],
            Some(auth_event("PLAIN", "", "bob", "pw")),
        ),
        (
            format!("AUTH PLAIN\r\n{}\r\n", b64(b"adm\0bob\0pw")),
            vec![334, 235],
            Some(auth_event("PLAIN", "adm", "bob", "pw")),
        ),
        (
            format!("AUTH LOGIN\r\n{}\r\n{}\r\n", b64(b"bob"), b64(b"pw")),
            vec![334, 334, 235],
            Some(auth_event("LOGIN", "", "bob", "pw")),
        ),
        (
            format!("AUTH LOGIN {}\r\n{}\r\n", b64(b"bob"), b64(b"pw")),
            vec![334, 235],
            Some(auth_event("LOGIN", "", "bob", "pw")),
        ),
        (
            "AUTH PLAIN\r\n*\r\nNOOP\r\n".into(),
            vec![334, 501, 250],
            None,
        ),
        ("AUTH LOGIN\r\n*\r\n".into(), vec![334, 501], None),
        ("AUTH PLAIN !!!\r\n".into(), vec![501], None),
        ("AUTH PLAIN =\r\n".into(), vec![501], None),
        ("AUTH CRAM-MD5\r\n".into(), vec![504], None),
        ("AUTH\r\n".into(), vec![501], None),
        (
            format!("AUTH PLAIN {}\r\nAUTH PLAIN {0}\r\n", b64(b"\0u\0p")),
            vec![235, 503],
            None,
        ),
        (
            format!(
                "MAIL FROM:<a@b.example>\r\nAUTH PLAIN {}\r\n",
                b64(b"\0u\0p")
            ),
            vec![250, 503],
            None,
        ),
    ];
    for (script, codes, ev) in cases {
        let mut e = session(cfg());
        drive(&mut e, b"EHLO c.example\r\n", &mut accept);
        let r = drive(&mut e, script.as_bytes(), &mut accept);
        assert_eq!(r.codes(), codes, "{script:?}: {}", r.out);
        if let Some(ev) = ev {
            assert_eq!(r.events, std::slice::from_ref(&ev));
            assert!(!format!("{ev:?}").contains("pw\""), "password in Debug");
            let r_line = r.out.lines().last().unwrap_or("");
            assert_eq!(r_line, "235 2.7.0 Authentication successful");
        }
        assert!(!r.out.contains("pw"));
    }
    // AUTH before EHLO, and not offered
    let mut e = session(cfg());
    assert_eq!(
        drive(&mut e, b"AUTH PLAIN AHUAcA==\r\n", &mut accept).codes(),
        [503]
    );
    let mut e = session(EngineConfig {
        auth: false,
        ..cfg()
    });
    drive(&mut e, b"EHLO c.example\r\n", &mut accept);
    assert_eq!(
        drive(&mut e, b"AUTH PLAIN AHUAcA==\r\n", &mut accept).codes(),
        [502]
    );
    // failures: the max_auth_failures-th gets 421 and closes
    let mut e = session(EngineConfig {
        max_auth_failures: 2,
        ..cfg()
    });
    drive(&mut e, b"EHLO c.example\r\n", &mut accept);
    let mut deny = |ev: &Event| match ev {
        Event::Auth { .. } => Decision::Reply(Reply::new(
            535,
            EnhancedCode::new(5, 7, 8),
            "bad credentials",
        )),
        other => accept(other),
    };
    let r = drive(
        &mut e,
        b"AUTH PLAIN AHUAcA==\r\nAUTH PLAIN AHUAcA==\r\nNOOP\r\n",
        &mut deny,
    );
    assert_eq!(r.codes(), [535, 421]);
    assert_eq!(r.last, Some(Action::Close));
    assert!(!e.is_authenticated());
}

#[test]
fn error_limit_closes() {
    let mut e = session(EngineConfig {
        max_errors: 3,
        ..cfg()
    });
    let r = drive(
        &mut e,
        b"FOO\r\nMAIL FROM:<a@b.example>\r\nBAR\r\nNOOP\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [500, 503, 421]);
    assert!(
        r.out
            .ends_with("421 4.7.0 Too many errors, closing connection\r\n")
    );
    assert_eq!(r.last, Some(Action::Close));
    assert_eq!(e.poll(), Action::Close);
    // plugin-accepted unknown verbs are not errors
    let mut e = session(EngineConfig {
        max_errors: 1,
        ..cfg()
    });
    let r = drive(&mut e, b"XCLIENT a\r\nXCLIENT b\r\n", &mut |_| {
        Decision::Reply(replies::ok())
    });
    assert_eq!(r.codes(), [250, 250]);
}

#[test]
fn simple_commands_and_defaults() {
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"NOOP hi\r\nVRFY bob\r\nHELP\r\nEXPN x\r\nXYZZY 1\r\nRSET\r\nQUIT\r\n",
        &mut accept,
    );
    assert_eq!(
        r.out,
        "250 2.0.0 Ok\r\n252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n\
214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH\r\n\
502 5.5.1 Command not implemented\r\n500 5.5.1 Command unrecognized\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"
    );
    assert_eq!(
        r.events,
        [
            Event::Noop { arg: "hi".into() },
            Event::Vrfy { arg: "bob".into() },
            Event::Help { arg: "".into() },
            Event::Unrecognized {
                verb: "XYZZY".into(),
                args: "1".into()
            },
            Event::Rset,
            Event::Quit
        ]
    );
    assert_eq!(r.last, Some(Action::Close));
    // a 421 from the driver closes the session
    let mut e = session(cfg());
    let r = drive(&mut e, b"NOOP\r\nNOOP\r\n", &mut |_| {
        Decision::Reply(replies::shutting_down("localhost"))
    });
    assert_eq!(r.codes(), [421]);
    assert_eq!(r.last, Some(Action::Close));
}

/// A deterministic pseudo-random byte soup with SMTP-ish fragments: no
/// panic, bounded buffers, `Close` is final.
#[test]
fn random_input_invariants() {
    let pieces: &[&[u8]] = &[
        b"EHLO x.example\r\n",
        b"MAIL FROM:<a@b.example>\r\n",
        b"RCPT TO:<c@d.example>\r\n",
        b"DATA\r\n",
        b"BDAT 3\r\n",
        b"BDAT 2 LAST\r\n",
        b".\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"AUTH LOGIN\r\n",
        b"STARTTLS\r\n",
        b"RSET\r\n",
        b"x",
        b"\x00",
        b"NOOP ",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let config = EngineConfig {
            max_message_size: 200,
            max_errors: 50,
            ..cfg()
        };
        let mut e = session(config);
        let mut closed = false;
        for _ in 0..60 {
            let mut input = Vec::new();
            for _ in 0..(next() % 6) {
                input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let n = next();
            e.receive(&input);
            loop {
                match e.poll() {
                    Action::Event(_) => e.decide(match n % 4 {
                        0 => Decision::Default,
                        1 => Decision::Reply(replies::ok()),
                        2 => Decision::Reply(Reply::new(550, EnhancedCode::new(5, 7, 1), "no")),
                        _ => Decision::Reply(Reply::plain(354, "go")),
                    }),
                    Action::StartTls => {
                        e.tls_established();
                    }
                    Action::Close => {
                        closed = true;
                        break;
                    }
                    Action::NeedInput => break,
                }
            }
            assert!(e.buffered_len() <= 1024 + input.len());
            assert!(e.message_so_far().len() <= 200);
            e.clear_output();
            if closed {
                assert_eq!(e.poll(), Action::Close);
                break;
            }
        }
    }
}

#[test]
fn starttls_injection_split_anywhere() {
    let input = b"STARTTLS\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n";
    for split in 0..=input.len() {
        let mut e = session(cfg());
        drive(&mut e, b"EHLO c.example\r\n", &mut accept);
        let r = drive_split(&mut e, input, &[split], &mut accept);
        assert_eq!(r.out, "220 2.0.0 Ready to start TLS\r\n", "split {split}");
        assert!(r.events.is_empty(), "split {split}");
        assert_eq!(r.last, Some(Action::StartTls));
        e.tls_established();
        let r = drive(&mut e, b"EHLO c.example\r\n", &mut accept);
        assert_eq!(r.codes(), [250], "split {split}");
    }
}

#[test]
fn bdat_headers_mid_chunk() {
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"BDAT 19 LAST\r\nA: 1\r\n\r\nbody text\r\n",
        &mut accept,
    );
    assert_eq!(r.headers, [b"A: 1\r\n\r\n".to_vec()]);
    assert_eq!(r.messages, [b"A: 1\r\n\r\nbody text\r\n".to_vec()]);
    assert_eq!(r.codes(), [250]);
}

#[test]
fn input_before_the_greeting_decision_is_kept() {
    // early talkers are the driver's business; the engine just answers in order
    let mut e = SmtpEngine::new(Arc::new(cfg()), false);
    e.receive(b"EHLO c.example\r\n");
    let r = drive(&mut e, b"NOOP\r\n", &mut accept);
    assert_eq!(r.events[0], Event::Connect);
    assert_eq!(r.codes(), [220, 250, 250]);
}

#[test]
fn auth_password_never_in_debug() {
    let ev = Event::Auth {
        mechanism: "PLAIN".into(),
        authzid: String::new(),
        username: "bob".into(),
        password: "s3cret".into(),
    };
    let text = format!("{ev:?} {:?}", Action::Event(ev.clone()));
    assert!(!text.contains("s3cret") && text.contains("bob"));
}

// ---- issue 14: conformance and abuse limits ----

#[test]
fn postmaster_without_domain_is_accepted_as_ours() {
    let mut e = session(EngineConfig {
        postmaster: "postmaster@example.test".into(),
        ..cfg()
    });
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<PostMaster>\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 250, 250, 250]);
    let rcpts: Vec<_> = r
        .events
        .iter()
        .filter_map(|ev| match ev {
            Event::Rcpt { recipient, .. } => Some(recipient.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rcpts, ["postmaster@example.test"; 2]);
    // MAIL FROM:<postmaster> stays refused (a reverse-path needs a domain)
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<postmaster>\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 501]);
}

#[test]
fn sloppy_envelopes_accepted_unless_strict() {
    let script = b"EHLO c.example\r\nMAIL FROM: <a@b.example>\r\nRCPT TO: c@d.example\r\nRCPT TO:e@d.example\r\n";
    let mut e = session(cfg());
    let r = drive(&mut e, script, &mut accept);
    assert_eq!(r.codes(), [250, 250, 250, 250]);
    assert!(r.events.contains(&Event::Rcpt {
        recipient: "c@d.example".into(),
        params: vec![],
    }));
    let mut e = session(EngineConfig {
        strict_envelopes: true,
        ..cfg()
    });
    let r = drive(&mut e, script, &mut accept);
    // the syntax is checked before the sequence
    assert_eq!(r.codes(), [250, 501, 501, 501]);
    assert!(r.out.contains("501 5.5.4 "), "{}", r.out);
}

#[test]
fn malformed_auth_counts_as_failure() {
    // three undecodable responses: 501, 501, then 421 and close
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nAUTH PLAIN !!!\r\nAUTH PLAIN =\r\nAUTH LOGIN\r\n%%%\r\nNOOP\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 501, 501, 334, 421]);
    assert!(r.out.contains("421 4.7.0 Too many authentication failures"));
    assert_eq!(r.last, Some(Action::Close));
    // mixed with refused credentials, the count is shared
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nAUTH PLAIN AGJvYgBwdw==\r\nAUTH PLAIN !!!\r\nAUTH PLAIN AGJvYgBwdw==\r\n",
        &mut |ev| match ev {
            Event::Auth { .. } => {
                Decision::Reply(Reply::new(535, EnhancedCode::new(5, 7, 8), "no"))
            }
            other => accept(other),
        },
    );
    assert_eq!(r.codes(), [250, 535, 501, 421]);
}

#[test]
fn nul_in_content_refused_at_every_position() {
    let cases: &[&[u8]] = &[
        b"Subject: a\x00b\r\n\r\nbody\r\n.\r\n",
        b"Subject: a\r\n\r\nbo\x00dy\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r\n\x00.\r\nQUIT\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r\n.\x00\r\nQUIT\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\x00\r\n.\r\n",
        b"\x00\r\n.\r\n",
    ];
    for content in cases {
        for split in 0..content.len() {
            let mut e = session(cfg());
            drive(&mut e, TXN, &mut accept);
            let mut input = b"DATA\r\n".to_vec();
            input.extend_from_slice(content);
            input.extend_from_slice(b"NOOP\r\n");
            let r = drive_split(&mut e, &input, &[6 + split], &mut accept);
            assert_eq!(r.codes(), [354, 550, 250], "{content:?} split {split}");
            assert!(r.out.contains("550 5.6.0 Message contains NUL octets\r\n"));
            assert_eq!(r.count(&Event::MessageComplete), 0, "{content:?}");
        }
    }
    // BODY=BINARYMIME may carry NUL (BDAT only)
    let mut e = session(cfg());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\nBDAT 8 LAST\r\nA: \x00\r\n\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 250, 250, 250]);
    assert_eq!(r.messages, [b"A: \x00\r\n\r\n".to_vec()]);
}

#[test]
fn non_header_line_starts_the_body() {
    // (content, message stored, DataHeaders prefix)
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        (
            b"Subject: x\r\nnot a header\r\nX-A: 1\r\n",
            b"Subject: x\r\n\r\nnot a header\r\nX-A: 1\r\n",
            b"Subject: x\r\n\r\nnot a header\r\n",
        ),
        (
            b"Subject: x\r\nbad name: y\r\n\r\nbody\r\n",
            b"Subject: x\r\n\r\nbad name: y\r\n\r\nbody\r\n",
            b"Subject: x\r\n\r\nbad name: y\r\n",
        ),
        (b"hello\r\n", b"\r\nhello\r\n", b"\r\nhello\r\n"),
        (b" lead\r\n", b"\r\n lead\r\n", b"\r\n lead\r\n"),
        (b":x\r\n", b"\r\n:x\r\n", b"\r\n:x\r\n"),
        // valid forms stay as they are: folding, `Name :`, empty value
        (
            b"Subject: x\r\n folded\r\nX-A : 1\r\nX-B:\r\n\r\nbody\r\nno colon\r\n",
            b"Subject: x\r\n folded\r\nX-A : 1\r\nX-B:\r\n\r\nbody\r\nno colon\r\n",
            b"Subject: x\r\n folded\r\nX-A : 1\r\nX-B:\r\n\r\n",
        ),
    ];
    for (content, message, prefix) in cases {
        for split in 0..content.len() {
            let mut e = session(cfg());
            drive(&mut e, TXN, &mut accept);
            let mut input = b"DATA\r\n".to_vec();
            input.extend_from_slice(content);
            input.extend_from_slice(b".\r\n");
            let r = drive_split(&mut e, &input, &[6 + split], &mut accept);
            assert_eq!(r.codes(), [354, 250], "{content:?}");
            assert_eq!(r.messages, [message.to_vec()], "{content:?} split {split}");
            assert_eq!(r.headers, [prefix.to_vec()], "{content:?} split {split}");
        }
    }
}

#[test]
fn unauthenticated_pipelining_after_data_refused_when_configured() {
    let script = b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    // off (default): answered in order
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, script, &mut accept);
    assert_eq!(r.codes(), [354, 250, 221]);
    // on: 554 and close, the message is not delivered
    let on = || EngineConfig {
        forbid_unauth_pipelining: true,
        ..cfg()
    };
    let mut e = session(on());
    drive(&mut e, TXN, &mut accept);
    let r = drive(&mut e, script, &mut accept);
    assert_eq!(r.codes(), [354, 554]);
    assert_eq!(r.count(&Event::MessageComplete), 0);
    assert_eq!(r.last, Some(Action::Close));
    // on, but the client waits for the reply: fine
    let mut e = session(on());
    drive(&mut e, TXN, &mut accept);
    let r = drive(
        &mut e,
        b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [354, 250]);
    assert_eq!(drive(&mut e, b"QUIT\r\n", &mut accept).codes(), [221]);
    // on, authenticated clients may pipeline
    let mut e = session(on());
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nAUTH PLAIN AGJvYgBwdw==\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 235, 250, 250]);
    let r = drive(&mut e, script, &mut accept);
    assert_eq!(r.codes(), [354, 250, 221]);
}

#[test]
fn refused_recipients_count_as_errors() {
    let mut e = session(EngineConfig {
        max_errors: 3,
        ..cfg()
    });
    let mut input = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n".to_vec();
    for i in 0..5 {
        input.extend_from_slice(format!("RCPT TO:<probe{i}@d.example>\r\n").as_bytes());
    }
    let r = drive(&mut e, &input, &mut |ev| match ev {
        Event::Rcpt { recipient, .. } if recipient.starts_with("probe1") => {
            Decision::Reply(Reply::new(450, EnhancedCode::new(4, 2, 0), "greylisted"))
        }
        Event::Rcpt { .. } => {
            Decision::Reply(Reply::new(550, EnhancedCode::new(5, 1, 1), "unknown"))
        }
        other => accept(other),
    });
    // 4xx refusals do not count; the third 5xx is replaced by 421
    assert_eq!(r.codes(), [250, 250, 550, 450, 550, 421]);
    assert_eq!(r.last, Some(Action::Close));
}

#[test]
fn junk_command_budget() {
    let mut e = session(EngineConfig {
        max_junk_commands: 4,
        ..cfg()
    });
    let r = drive(
        &mut e,
        b"EHLO c.example\r\nNOOP\r\nVRFY x\r\nHELP\r\nRSET\r\nNOOP\r\nQUIT\r\n",
        &mut accept,
    );
    assert_eq!(r.codes(), [250, 250, 252, 214, 250, 421]);
    assert!(
        r.out
            .ends_with("421 4.7.0 Too many commands, closing connection\r\n")
    );
    assert_eq!(r.last, Some(Action::Close));
    // the NOOP over the budget never reached the driver
    assert_eq!(
        r.events
            .iter()
            .filter(|e| matches!(e, Event::Noop { .. }))
            .count(),
        1
    );
}

#[test]
fn engine_owns_the_message_phase() {
    // a message the engine refuses by itself (552) ends the content phase
    // with no event: the driver must read commands with the command timeout
    let mut e = session(EngineConfig {
        max_message_size: 10,
        ..cfg()
    });
    drive(&mut e, TXN, &mut accept);
    assert!(!e.receiving_message());
    let r = drive(&mut e, b"DATA\r\nSubject: xxxxxxxxxx\r\n", &mut accept);
    assert_eq!(r.codes(), [354]);
    assert!(e.receiving_message());
    let r = drive(&mut e, b"\r\nbody\r\n.\r\n", &mut accept);
    assert_eq!(r.codes(), [552]);
    assert!(r.events.is_empty());
    assert!(!e.receiving_message());
    // SMTPUTF8 and the DataHeaders prefix come from the engine
    let mut e = session(cfg());
    drive(
        &mut e,
        b"EHLO c.example\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\nRCPT TO:<c@d.example>\r\n",
        &mut accept,
    );
    assert!(e.smtputf8());
    let mut seen = Vec::new();
    e.receive(b"DATA\r\nA: 1\r\n\r\nbody\r\n.\r\n");
    while let Action::Event(ev) = e.poll() {
        seen.push((ev.clone(), e.headers_len(), e.receiving_message()));
        e.decide(accept(&ev));
    }
    assert_eq!(
        seen,
        [
            (Event::Data, 0, false),
            (Event::DataHeaders, 8, true),
            (Event::MessageComplete, 8, false),
        ]
    );
    assert!(!e.smtputf8());
    // BDAT: between chunks the client sends commands
    let mut e = session(cfg());
    drive(&mut e, TXN, &mut accept);
    drive(&mut e, b"BDAT 4\r\nA: ", &mut accept);
    assert!(e.receiving_message());
    drive(&mut e, b"1", &mut accept);
    assert!(!e.receiving_message());
}
