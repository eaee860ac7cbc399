//! tracing setup: text or JSON lines on stderr, filtered by `RUST_LOG` or
//! `[log] filter`. Every session runs in a `session{id=..}` span, so each of
//! its lines carries the session id (JSON: the `span`/`spans` fields).
//!
//! Client-supplied values (AUTH usernames, HELO names, addresses, plugin
//! texts) reach log fields. No value can forge a log line: in the text
//! format every control character inside a line (CR, LF, ESC, ...) is
//! written as a `\u{..}`-style escape by [`EscapingWriter`], and ANSI
//! colours are off; the JSON format escapes them as JSON does.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `filter`.
/// Calling it twice is harmless (the second call changes nothing).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(false)
            .with_writer(MakeEscaping(io::stderr))
            .try_init(),
        LogFormat::Json => builder
            .with_writer(io::stderr)
            .json()
            .with_current_span(true)
            .try_init(),
    };
    // Already initialised (tests that start several servers): keep the first.
    let _ = result;
}

/// Makes [`EscapingWriter`]s around another writer factory.
pub struct MakeEscaping<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MakeEscaping<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }
}

/// Writes formatted log lines with every control character but the final
/// line feed (and tabs) escaped, so one event is always one line.
///
/// The text formatter writes each event with one `write` of the whole line;
/// a line feed is kept only as the last octet of such a write.
pub struct EscapingWriter<W>(pub W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with control characters escaped (`\r` → `\r`, others `\x1b` style),
/// except a trailing line feed and tabs.
pub fn escape_line(buf: &[u8]) -> Vec<u8> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(b) => (b, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    let mut out = Vec::with_capacity(buf.len() + 8);
    for &b in body {
        match b {
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_escaped() {
        assert_eq!(
            escape_line(b"user=a\r\nFAKE line\x1b[31m\tx\n"),
            b"user=a\\r\\nFAKE line\\x1b[31m\tx\n".to_vec()
        );
        assert_eq!(escape_line(b"plain"), b"plain".to_vec());
        // UTF-8 passes unchanged
        assert_eq!(escape_line("é\n".as_bytes()), "é\n".as_bytes().to_vec());
    }
}
