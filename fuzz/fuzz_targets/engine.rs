//! Feeds arbitrary bytes, split arbitrarily, with arbitrary decisions to the
//! protocol engine and checks its invariants: no panic, bounded buffers,
//! `Close` is final, every reply line is well formed.
//!
//! Run with `cargo +nightly fuzz run engine` from this directory.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wasmtp::protocol::{Action, Decision, Engine, EngineConfig, EnhancedCode, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let config = EngineConfig {
        starttls: ctl & 1 != 0,
        auth: ctl & 2 != 0,
        auth_plaintext: ctl & 4 != 0,
        chunking: ctl & 8 != 0,
        bare_line_endings: if ctl & 16 != 0 {
            wasmtp::protocol::BareLineEndings::Normalize
        } else {
            wasmtp::protocol::BareLineEndings::Reject
        },
        max_message_size: 4096,
        max_text_line: 200,
        ..EngineConfig::default()
    };
    let limit = config.max_command_line + config.command_line_extension;
    let mut e = Engine::new(Arc::new(config), ctl & 32 != 0);
    // the input: chunks prefixed by a length byte; the byte also picks decisions
    let mut input = rest;
    let mut closed = false;
    while let Some((&len, tail)) = input.split_first() {
        let n = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        input = next;
        e.receive(chunk);
        let mut events = 0;
        loop {
            match e.poll() {
                Action::Event(_) => {
                    events += 1;
                    assert!(events < 100_000);
                    e.decide(match (len as usize + events) % 5 {
                        0 => Decision::Default,
                        1 => Decision::Reply(Reply::ok()),
                        2 => Decision::Reply(Reply::new(550, EnhancedCode::new(5, 7, 1), "no")),
                        3 => Decision::Reply(Reply::plain(354, "go")),
                        _ => Decision::Default,
                    });
                }
                Action::StartTls => e.tls_established(),
                Action::Close => {
                    closed = true;
                    break;
                }
                Action::NeedInput => {
                    assert!(e.buffered_len() <= limit, "buffered {}", e.buffered_len());
                    break;
                }
            }
        }
        assert!(e.message_so_far().len() <= 4096);
        for line in e.output().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() >= 4 && line.ends_with(b"\r"), "{line:?}");
            assert!(line[..3].iter().all(u8::is_ascii_digit));
            assert!(!line[..line.len() - 1].contains(&b'\r'));
        }
        e.clear_output();
        if closed {
            assert_eq!(e.poll(), Action::Close);
            return;
        }
    }
});
