//! The DATA receiver: dot-unstuffing and end-of-data detection (RFC 5321
//! 4.1.1.4 and 4.5.2), safe against SMTP smuggling.
//!
//! Only `CRLF "." CRLF` ends the data, where the first CRLF may be the
//! (virtual) one just before the first octet, so `.\r\n` right after the
//! 354 is an empty message. A "line start", for both dot-unstuffing and end
//! detection, exists only after a real CRLF: `\n.\n`, `\r.\r`, `\r\n.\n`,
//! `\r.\r\n`, `\r\n\x00.\r\n`, `\r\n.\x00\r\n` and the like are ordinary
//! content (with bare CR/LF that [`TextChecks`] flags or normalises).
//!
//! Dot-unstuffing: a line starting with `.` followed by other octets loses
//! its first dot. A dot followed by a *bare* CR or LF is kept, so a
//! normalised message can never contain a line that ends the data when
//! relayed.

use super::body::{MessageBuffer, TextChecks};

/// Where the receiver is relative to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after a real CRLF, or the first octet).
    LineStart,
    /// A `.` at line start.
    Dot,
    /// `.` CR at line start.
    DotCr,
    /// Inside a line.
    Text,
}

/// What a call to [`DataReceiver::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStep {
    /// All input consumed; the data goes on.
    NeedMore,
    /// The header block just ended; call again with the rest.
    HeadersEnd,
    /// `CRLF.CRLF` seen: the message is complete.
    End,
}

/// Receives the DATA phase into a [`MessageBuffer`], passing the unstuffed
/// content through [`TextChecks`] (owned by the caller, shared with BDAT).
#[derive(Debug, Clone, Copy)]
pub struct DataReceiver {
    /// Line position.
    state: State,
}

impl Default for DataReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DataReceiver {
    /// A receiver at the start of the data.
    pub fn new() -> Self {
        Self {
            state: State::LineStart,
        }
    }

    /// Consumes input; returns the octets consumed and what was found.
    /// After [`DataStep::End`] the rest of `input` belongs to the next
    /// command.
    pub fn feed(
        &mut self,
        input: &[u8],
        text: &mut TextChecks,
        buf: &mut MessageBuffer,
    ) -> (usize, DataStep) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::LineStart => {
                    if b == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => match b {
                    b'\r' => {
                        self.state = State::DotCr;
                        i += 1;
                    }
                    b'\n' => {
                        // ".\n": the dot is content, the LF is bare
                        self.state = State::Text;
                        if text.feed(b".", buf).1 {
                            return (i, DataStep::HeadersEnd);
                        }
                    }
                    // "..x" or ".x": drop the stuffed dot
                    _ => self.state = State::Text,
                },
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::LineStart;
                        return (i + 1, DataStep::End);
                    }
                    // ".\r" + other: the dot is content, the CR is bare
                    self.state = State::Text;
                    if text.feed(b".\r", buf).1 {
                        return (i, DataStep::HeadersEnd);
                    }
                }
                State::Text => {
                    // pass a run up to and including the next CR or LF
                    let j = memchr::memchr2(b'\r', b'\n', &input[i..])
                        .map_or(input.len(), |p| i + p + 1);
                    let run = &input[i..j];
                    // a run ends at its first CR or LF, so a real CRLF is a
                    // lone LF right after a run that ended with CR
                    let after_crlf = run == b"\n" && text.pending_cr();
                    // the header block can end inside the run (at a bare
                    // CR that ends an empty line); the rest comes next call
                    let (n, headers_end) = text.feed(run, buf);
                    i += n;
                    if after_crlf && n == run.len() {
                        self.state = State::LineStart;
                    }
                    if headers_end {
                        return (i, DataStep::HeadersEnd);
                    }
                }
            }
        }
        (i, DataStep::NeedMore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::BareLineEndings;

    /// Runs `input` split at the given points; returns the message, the
    /// number of header-end stops, whether it ended and where, and flags.
    fn run(
        input: &[u8],
        splits: &[usize],
        policy: BareLineEndings,
    ) -> (Vec<u8>, Option<usize>, bool) {
        let mut r = DataReceiver::new();
        let mut text = TextChecks::new(1000, policy, false).in_body();
        let mut buf = MessageBuffer::new(1 << 20);
        let mut bounds = vec![0];
        bounds.extend_from_slice(splits);
        bounds.push(input.len());
        let mut consumed_total = 0;
        for w in bounds.windows(2) {
            let mut chunk = &input[w[0]..w[1]];
            while !chunk.is_empty() {
                let (n, step) = r.feed(chunk, &mut text, &mut buf);
                consumed_total += n;
                chunk = &chunk[n..];
                if step == DataStep::End {
                    return (buf.take(), Some(consumed_total), text.bare());
                }
            }
        }
        (buf.take(), None, text.bare())
    }

    /// Every smuggling variant of SECURITY.md: embedded in a message, it
    /// must not end it; the message ends only at the final CRLF.CRLF.
    #[test]
    fn smuggling_variants_do_not_end_data() {
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
        for v in variants {
            let mut input = b"Subject: x\r\n\r\nline1".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n.\r\nNEXT");
            let end = input.len() - 4;
            for split in 0..=input.len() {
                let (_, got_end, _) = run(&input, &[split], BareLineEndings::Reject);
                assert_eq!(got_end, Some(end), "variant {v:?} split {split}");
            }
        }
    }

    #[test]
    fn table() {
        use BareLineEndings::*;
        // (input, policy, message, end offset, bare)
        type Case<'a> = (&'a [u8], BareLineEndings, &'a [u8], Option<usize>, bool);
        let cases: &[Case] = &[
            (b".\r\n", Reject, b"", Some(3), false),
            (b".\r\nQUIT\r\n", Reject, b"", Some(3), false),
            (b"a\r\n.\r\n", Reject, b"a\r\n", Some(6), false),
            (b"..\r\n.\r\n", Reject, b".\r\n", Some(7), false),
            (b"..x\r\n.\r\n", Reject, b".x\r\n", Some(8), false),
            (b".x\r\n.\r\n", Reject, b"x\r\n", Some(7), false),
            (b"a\r\n..\r\n.\r\n", Reject, b"a\r\n.\r\n", Some(10), false),
            (b"a\r\n. \r\n.\r\n", Reject, b"a\r\n \r\n", Some(10), false),
            (b"a.\r\n.\r\n", Reject, b"a.\r\n", Some(7), false),
            (b"a\n.\n", Reject, b"a\n.\n", None, true),
            (b"a\n.\r\n", Reject, b"a\n.\r\n", None, true),
            (
                b"a\r\n.\na\r\n.\r\n",
                Reject,
                b"a\r\n.\na\r\n",
                Some(11),
                true,
            ),
            (
                b"a\r\n.\rx\r\n.\r\n",
                Reject,
                b"a\r\n.\rx\r\n",
                Some(11),
                true,
            ),
            (
                b"a\r\n.\na\r\n.\r\n",
                Normalize,
                b"a\r\n.\r\na\r\n",
                Some(11),
                false,
            ),
            (
                b"a\n.\nb\r\n.\r\n",
                Normalize,
                b"a\r\n.\r\nb\r\n",
                Some(10),
                false,
            ),
            (b"a\r\r\n.\r\n", Reject, b"a\r\r\n", Some(7), true),
            (b"\r\n.\r\n", Reject, b"\r\n", Some(5), false),
        ];
        for (input, policy, msg, end, bare) in cases {
            for split in 0..=input.len() {
                let got = run(input, &[split], *policy);
                let want_msg = if end.is_some() {
                    msg.to_vec()
                } else {
                    got.0.clone()
                };
                assert_eq!(got, (want_msg, *end, *bare), "{input:?} split {split}");
            }
        }
    }

    #[test]
    fn every_pair_of_splits() {
        let input = b"H: v\r\n\r\nx\r\n..y\r\n\r\n.\r\n";
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let got = run(input, &[a, b], BareLineEndings::Reject);
                assert_eq!(
                    got,
                    (
                        b"H: v\r\n\r\nx\r\n.y\r\n\r\n".to_vec(),
                        Some(input.len()),
                        false
                    )
                );
            }
        }
    }
}
