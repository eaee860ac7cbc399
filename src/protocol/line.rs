//! Bounded command-line reader.
//!
//! Command lines end with CRLF. A line longer than the limit is *discarded*
//! up to its terminating LF without being buffered: the reader swallows it
//! chunk by chunk and reports [`Line::TooLong`] once the LF arrives, so the
//! engine answers `500 5.5.2 Line too long` exactly once and memory stays
//! bounded whatever the client sends.
//!
//! A bare LF (not preceded by CR) also ends a line, so a client that sends
//! bare LFs gets an answer instead of a hang, but such a line is reported as
//! [`Line::BareLf`] and never executed (bare line endings are how SMTP
//! smuggling starts; Postfix's `smtpd_forbid_bare_newline` does the same).

/// One step of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A complete line of `len` octets without its CRLF; `consumed` octets
    /// (line + CRLF) must be dropped from the input.
    Complete {
        /// Length of the line without CRLF.
        len: usize,
        /// Octets to consume, CRLF included.
        consumed: usize,
    },
    /// A line longer than the limit ended; `consumed` octets must be dropped.
    TooLong {
        /// Octets to consume.
        consumed: usize,
    },
    /// A line ended with a bare LF; `consumed` octets must be dropped.
    BareLf {
        /// Octets to consume.
        consumed: usize,
    },
    /// No complete line yet; `consumed` octets (part of an overlong line)
    /// can be dropped already, the rest must be kept.
    NeedMore {
        /// Octets to consume (non-zero only while discarding).
        consumed: usize,
    },
}

/// Finds command lines in the input, discarding overlong ones.
#[derive(Debug, Default, Clone)]
pub struct LineReader {
    /// Inside an overlong line: drop everything up to the next LF.
    discarding: bool,
}

impl LineReader {
    /// A reader at the start of a line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the reader is discarding the rest of an overlong line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Forgets a partly discarded line (after STARTTLS).
    pub fn reset(&mut self) {
        self.discarding = false;
    }

    /// Looks for the next line in `input` with `limit` octets including CRLF.
    pub fn next_line(&mut self, input: &[u8], limit: usize) -> Line {
        let limit = limit.max(2);
        match memchr::memchr(b'\n', input) {
            Some(pos) => {
                let consumed = pos + 1;
                if self.discarding || consumed > limit {
                    self.discarding = false;
                    return Line::TooLong { consumed };
                }
                if pos > 0 && input[pos - 1] == b'\r' {
                    Line::Complete {
                        len: pos - 1,
                        consumed,
                    }
                } else {
                    Line::BareLf { consumed }
                }
            }
            None => {
                if self.discarding || input.len() >= limit {
                    // Keep one trailing CR so that a CRLF split across reads
                    // is not mistaken for a bare LF; nothing else is kept.
                    self.discarding = true;
                    let keep = usize::from(input.last() == Some(&b'\r'));
                    Line::NeedMore {
                        consumed: input.len() - keep,
                    }
                } else {
                    Line::NeedMore { consumed: 0 }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` through a reader with a buffer like the engine's and
    /// returns the events (`C<len>`, `L`, `B`) and the largest buffer seen.
    fn run(chunks: &[&[u8]], limit: usize) -> (Vec<String>, usize) {
        let mut r = LineReader::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut max = 0;
        for c in chunks {
            buf.extend_from_slice(c);
            loop {
                match r.next_line(&buf, limit) {
                    Line::Complete { len, consumed } => {
                        out.push(format!("C{}", String::from_utf8_lossy(&buf[..len])));
                        buf.drain(..consumed);
                    }
                    Line::TooLong { consumed } => {
                        out.push("L".into());
                        buf.drain(..consumed);
                    }
                    Line::BareLf { consumed } => {
                        out.push("B".into());
                        buf.drain(..consumed);
                    }
                    Line::NeedMore { consumed } => {
                        buf.drain(..consumed);
                        break;
                    }
                }
            }
            max = max.max(buf.len());
        }
        (out, max)
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a [&'a [u8]], usize, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[b"NOOP\r\n"], 512, &["CNOOP"]),
            (&[b"NO", b"OP\r", b"\n"], 512, &["CNOOP"]),
            (&[b"A\r\nB\r\n"], 512, &["CA", "CB"]),
            (&[b"\r\n"], 512, &["C"]),
            (&[b"A\nB\r\n"], 512, &["B", "CB"]),
            // exactly at the limit (8 = "1234567\r"... + LF)
            (&[b"123456\r\n"], 8, &["C123456"]),
            (&[b"1234567\r\n"], 8, &["L"]),
            (&[b"1234567", b"89\r\nOK\r\n"], 8, &["L", "COK"]),
            (
                &[b"12345678", b"9", b"\r", b"\n", b"X\r\n"],
                8,
                &["L", "CX"],
            ),
        ];
        for (chunks, limit, want) in cases {
            let (got, _) = run(chunks, *limit);
            assert_eq!(&got, want, "{chunks:?}");
        }
    }

    #[test]
    fn overlong_line_is_not_buffered() {
        let mut big = b"NOOP ".to_vec();
        big.extend(std::iter::repeat_n(b'x', 17000));
        // one byte at a time, and in 1000-byte reads: the buffer never holds
        // more than the limit
        let bytes: Vec<&[u8]> = big.chunks(1000).collect();
        let mut chunks = bytes.clone();
        chunks.push(b"\r\nQUIT\r\n");
        let (got, max) = run(&chunks, 512);
        assert_eq!(got, ["L", "CQUIT"]);
        assert!(max <= 1000, "buffered {max}");
        let singles: Vec<&[u8]> = big.chunks(1).chain([&b"\r\n"[..]]).collect();
        let (got, max) = run(&singles, 512);
        assert_eq!(got, ["L"]);
        assert!(max <= 512, "buffered {max}");
    }
}
