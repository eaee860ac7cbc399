//! The fuzz targets' bodies, as plain functions: libFuzzer calls them from
//! `fuzz_targets/*.rs` (nightly, `cargo fuzz run <target>`), and the stable
//! test `tests/it/fuzz_replay.rs` of the main crate includes this file and
//! replays the checked-in corpus plus generated inputs through them.
//!
//! Each function panics when an invariant breaks; nothing else may panic.
//!
//! - [`engine`]: the protocol engine with arbitrary reads and decisions,
//!   and message sizes up to megabytes (a chunk can be repeated, so a
//!   small input makes a large message).
//! - [`headers`]: the message header parser and editor.
//! - [`upstream_reply`]: the parser of replies read from an upstream.

use std::sync::Arc;

use wasmtp::delivery::client::reply::{MAX_REPLY_BYTES, Parsed, parse};
use wasmtp::message::{Message, header_block_end};
use wasmtp::protocol::{
    Action, BareLineEndings, Decision, EngineConfig, EnhancedCode, Event, Reply, SmtpEngine,
    replies,
};

/// Most octets one input may expand to (a chunk repeated).
pub const MAX_EXPANDED: usize = 4 << 20;

/// Feeds `data` to an engine: the first two bytes pick the config, then
/// chunks `len, repeat, bytes[len]` (the chunk is fed `repeat` times, so
/// messages of megabytes come from small inputs); the decisions depend on
/// the chunk. Checks: no panic, bounded buffers, `Close` is final, every
/// reply line well formed, and every message accepted as text has only
/// header fields in its header section and no NUL.
pub fn engine(data: &[u8]) {
    let [ctl, ctl2, rest @ ..] = data else {
        return;
    };
    let (ctl, ctl2) = (*ctl, *ctl2);
    let max_message_size = match ctl2 & 3 {
        0 => 4096,
        1 => 64 * 1024,
        2 => 1 << 20,
        _ => 35 << 20,
    };
    let config = EngineConfig {
        starttls: ctl & 1 != 0,
        auth: ctl & 2 != 0,
        auth_plaintext: ctl & 4 != 0,
        chunking: ctl & 8 != 0,
        bare_line_endings: if ctl & 16 != 0 {
            BareLineEndings::Normalize
        } else {
            BareLineEndings::Reject
        },
        strict_envelopes: ctl & 64 != 0,
        forbid_unauth_pipelining: ctl & 128 != 0,
        max_message_size,
        max_junk_commands: usize::from(ctl2 >> 2) + 1,
        ..EngineConfig::default()
    };
    let limit = config.max_command_line + config.command_line_extension;
    let mut e = SmtpEngine::new(Arc::new(config), ctl & 32 != 0);
    let mut input = rest;
    let mut expanded = 0usize;
    let mut binary = false;
    while let [len, repeat, tail @ ..] = input {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        input = next;
        let times = 1 + usize::from(*repeat) * usize::from(*repeat) * 4;
        for _ in 0..times {
            if expanded + chunk.len() > MAX_EXPANDED {
                return;
            }
            expanded += chunk.len();
            e.receive(chunk);
            if step(&mut e, *len, limit, max_message_size, &mut binary) {
                return;
            }
        }
    }
}

/// Polls until the engine needs input; true once it closed.
fn step(e: &mut SmtpEngine, len: u8, limit: usize, max: u64, binary: &mut bool) -> bool {
    let mut events = 0usize;
    let closed = loop {
        match e.poll() {
            Action::Event(ev) => {
                events += 1;
                assert!(events < 100_000);
                match &ev {
                    Event::Mail { params, .. } => {
                        *binary = params.iter().any(|p| {
                            p.key == "BODY"
                                && p.value
                                    .as_deref()
                                    .is_some_and(|v| v.eq_ignore_ascii_case("BINARYMIME"))
                        });
                    }
                    Event::MessageComplete => check_message(&e.take_message(), *binary),
                    _ => {}
                }
                e.decide(match (usize::from(len) + events) % 5 {
                    1 => Decision::Reply(replies::ok()),
                    2 => Decision::Reply(Reply::new(550, EnhancedCode::new(5, 7, 1), "no")),
                    3 => Decision::Reply(Reply::plain(354, "go")),
                    _ => Decision::Default,
                });
            }
            Action::StartTls => e.tls_established(),
            Action::Close => break true,
            Action::NeedInput => {
                assert!(e.buffered_len() <= limit, "buffered {}", e.buffered_len());
                break false;
            }
        }
    };
    assert!(e.message_so_far().len() as u64 <= max + 2);
    for line in e.output().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 4 && line.ends_with(b"\r"), "{line:?}");
        assert!(line[..3].iter().all(u8::is_ascii_digit));
        assert!(!line[..line.len() - 1].contains(&b'\r'));
    }
    e.clear_output();
    if closed {
        assert_eq!(e.poll(), Action::Close);
    }
    closed
}

/// A message the engine accepted: no NUL (unless BINARYMIME) and only
/// header fields or continuations before the first empty line.
fn check_message(msg: &[u8], binary: bool) {
    if binary {
        return;
    }
    assert!(!msg.contains(&0), "NUL accepted");
    let end = header_block_end(msg).unwrap_or(msg.len());
    let mut first = true;
    for line in msg[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            assert!(!first, "continuation first: {line:?}");
            continue;
        }
        first = false;
        let colon = line.iter().position(|&b| b == b':');
        let name = colon.map(|c| &line[..c]).unwrap_or(line);
        let name = name.trim_ascii_end();
        assert!(
            colon.is_some() && !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b)),
            "not a header field in the header section: {line:?}"
        );
    }
}

/// Parses `data` as a message, applies edits chosen by its first bytes and
/// checks that the result parses back with the edits in place.
pub fn headers(data: &[u8]) {
    let [ops, rest @ ..] = data else {
        return;
    };
    // The engine never delivers a header block whose first line is a
    // continuation or has an empty name (that line starts the body); such
    // input makes `Message` misplace the line (finding left to the message
    // rewrite, see the harden-proto report), so it is not generated here.
    if matches!(rest.first(), Some(b' ' | b'\t' | b':')) {
        return;
    }
    let mut m = Message::parse(rest.to_vec());
    let names = ["Subject", "X-A", "Received", "From"];
    let name = names[usize::from(*ops) % names.len()];
    let value = format!("v{ops}");
    match ops % 4 {
        0 => m.add_header(name, &value).expect("valid field"),
        1 => m.prepend_header(name, &value).expect("valid field"),
        2 => {
            m.remove_header(name);
        }
        _ => m.replace_header(name, &value).expect("valid field"),
    }
    // refused edits leave the message alone
    assert!(m.add_header("Bad Name", "x").is_err());
    assert!(m.add_header("X-B", "a\r\nInjected: 1").is_err());
    let out = m.to_bytes().into_owned();
    assert_eq!(out.len(), m.len());
    let again = Message::parse(out.clone());
    let values = again.header_values(name);
    match ops % 4 {
        2 => assert!(values.is_empty(), "{name} still there: {out:?}"),
        3 => assert_eq!(values, std::slice::from_ref(&value), "{out:?}"),
        _ => assert!(values.contains(&value), "{value} lost: {out:?}"),
    }
    if m.is_edited() {
        assert!(
            header_block_end(&out).is_some(),
            "no header block end: {out:?}"
        );
    }
}

/// Parses `data` as upstream replies, one after the other. Checks: no panic,
/// progress, codes 200-599, replies within [`MAX_REPLY_BYTES`], and a reply
/// parses the same whatever follows it.
pub fn upstream_reply(data: &[u8]) {
    let mut pos = 0;
    while pos < data.len() {
        match parse(&data[pos..]) {
            Parsed::Reply(r, used) => {
                assert!(used > 0 && used <= data.len() - pos);
                assert!(used <= MAX_REPLY_BYTES + 2, "{used}");
                assert!((200..600).contains(&r.code()), "{}", r.code());
                assert!(!r.lines().is_empty());
                match parse(&data[pos..pos + used]) {
                    Parsed::Reply(r2, used2) => assert_eq!((r2, used2), (r, used)),
                    other => panic!("prefix parsed as {other:?}"),
                }
                pos += used;
            }
            Parsed::Incomplete => {
                assert!(data.len() - pos <= MAX_REPLY_BYTES + 1024);
                break;
            }
            Parsed::Invalid(_) => break,
        }
    }
}
