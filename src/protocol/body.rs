//! What DATA and BDAT share: the bounded message buffer and the line checks
//! on message content (bare CR/LF, NUL, text line length, end of the header
//! block).
//!
//! The header block ends at the first empty line, or at the first line that
//! is not a header field (no `name:`, not a continuation): there the empty
//! line is inserted (as Postfix does), so every parser sees that line as the
//! body's first and fields the gateway or plugins add stay in the header
//! section.

use super::event::BareLineEndings;

/// The message being received, with size accounting.
///
/// Octets past `limit` are counted but not stored: the buffer is dropped
/// and the receiver keeps reading and discarding, so memory stays bounded
/// while the client finishes (RFC 5321 4.5.3.1.7; reply 552 at the end).
#[derive(Debug, Default)]
pub struct MessageBuffer {
    /// Stored octets (empty once discarding).
    data: Vec<u8>,
    /// Octets received, stored or not.
    size: u64,
    /// Max octets stored.
    limit: u64,
    /// Stop storing (over the limit, or the message is already refused).
    discard: bool,
}

impl MessageBuffer {
    /// An empty buffer that stores at most `limit` octets.
    pub fn new(limit: u64) -> Self {
        Self {
            data: Vec::new(),
            size: 0,
            limit,
            discard: false,
        }
    }

    /// Appends content octets.
    pub fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.discard {
            return;
        }
        if self.size > self.limit {
            self.discard();
            return;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Counts `n` octets that will arrive, before they do (a BDAT chunk
    /// size): a chunk that cannot fit is discarded from its first octet.
    pub fn announce(&mut self, n: u64) {
        if self.size.saturating_add(n) > self.limit {
            self.discard();
        }
    }

    /// Drops what is stored and stores nothing more (the size still counts).
    pub fn discard(&mut self) {
        self.discard = true;
        self.data = Vec::new();
    }

    /// More than `limit` octets arrived.
    pub fn overflow(&self) -> bool {
        self.size > self.limit
    }

    /// Octets received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored octets.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Octets stored so far (0 once discarding).
    pub fn stored_len(&self) -> usize {
        self.data.len()
    }

    /// Inserts octets at `at` (of the stored octets), with size accounting;
    /// ignored once discarding.
    pub fn insert(&mut self, at: usize, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.discard {
            return;
        }
        if self.size > self.limit || at > self.data.len() {
            self.discard();
            return;
        }
        let tail = self.data.split_off(at);
        self.data.extend_from_slice(bytes);
        self.data.extend_from_slice(&tail);
    }

    /// Takes the stored octets, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}

/// How far the current header-block line is known to be a header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderLine {
    /// Nothing seen on this line yet.
    Start,
    /// Field-name octets so far (RFC 5322 ftext).
    Name,
    /// White space after the name (obsolete `Name :` syntax).
    NameSpace,
    /// A field (`name:` seen) or a continuation line: a header line.
    Header,
    /// Not a header field.
    Invalid,
}

/// Line checks on message content (after dot-unstuffing for DATA).
///
/// Tracks bare CR and bare LF (a CR not followed by LF, a LF not preceded
/// by CR), NUL octets, text lines longer than the limit, and the end of
/// the header block (the first empty line, or the first line that is not a
/// header field, before which an empty line is inserted). With
/// [`BareLineEndings::Normalize`] each bare CR or LF is written as CRLF;
/// otherwise content is stored unchanged.
#[derive(Debug)]
pub struct TextChecks {
    /// The previous octet was a CR whose LF has not been seen yet.
    pending_cr: bool,
    /// Octets of the current line, line ending excluded.
    line_len: usize,
    /// Max text line including CRLF.
    max_line: usize,
    /// Check bare CR/LF and line length (off for BODY=BINARYMIME).
    check: bool,
    /// Write bare CR/LF as CRLF.
    normalize: bool,
    /// Still inside the header block.
    in_headers: bool,
    /// A bare CR or LF was seen.
    bare: bool,
    /// A line longer than `max_line` was seen.
    long_line: bool,
    /// A NUL octet was seen (text content only).
    nul: bool,
    /// What the current header-block line is so far.
    header_line: HeaderLine,
    /// Where the current line starts in the stored octets.
    line_start: usize,
    /// A header field was seen (a continuation needs one before it).
    seen_field: bool,
}

impl TextChecks {
    /// Checks for text content (`binary` = BODY=BINARYMIME turns the line
    /// checks off and stores octets unchanged).
    pub fn new(max_line: usize, policy: BareLineEndings, binary: bool) -> Self {
        Self {
            pending_cr: false,
            line_len: 0,
            max_line,
            check: !binary,
            normalize: !binary && policy == BareLineEndings::Normalize,
            in_headers: true,
            bare: false,
            long_line: false,
            nul: false,
            header_line: HeaderLine::Start,
            line_start: 0,
            seen_field: false,
        }
    }

    /// The same checks with the header block already over (tests of the
    /// body-only receivers).
    #[cfg(test)]
    pub(crate) fn in_body(mut self) -> Self {
        self.in_headers = false;
        self
    }

    /// A NUL octet was seen in text content (RFC 5322 2.3, RFC 6152: only
    /// BODY=BINARYMIME may carry it).
    pub fn nul(&self) -> bool {
        self.nul
    }

    /// A bare CR or LF was seen (and not normalised away).
    pub fn bare(&self) -> bool {
        self.bare
    }

    /// A text line was longer than the limit.
    pub fn long_line(&self) -> bool {
        self.long_line
    }

    /// The last octet fed was a CR whose LF has not arrived yet.
    pub fn pending_cr(&self) -> bool {
        self.pending_cr
    }

    /// Whether the header block is still open.
    pub fn in_headers(&self) -> bool {
        self.in_headers
    }

    /// Feeds content. Stops right after the line ending that closes the
    /// header block and returns `(consumed, true)` then; otherwise consumes
    /// everything and returns `(input.len(), false)`.
    pub fn feed(&mut self, input: &[u8], buf: &mut MessageBuffer) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.pending_cr {
                self.pending_cr = false;
                if input[i] == b'\n' {
                    buf.push(b"\r\n");
                    i += 1;
                    if self.end_line(buf) {
                        return (i, true);
                    }
                } else if self.bare_ending(b"\r", buf) {
                    return (i, true);
                }
                continue;
            }
            let j = memchr::memchr2(b'\r', b'\n', &input[i..]).map_or(input.len(), |p| i + p);
            if j > i {
                let run = &input[i..j];
                self.line_len = self.line_len.saturating_add(run.len());
                if self.check && self.line_len.saturating_add(2) > self.max_line {
                    self.long_line = true;
                }
                if self.check && memchr::memchr(0, run).is_some() {
                    self.nul = true;
                }
                if self.in_headers {
                    self.header_bytes(run);
                }
                buf.push(run);
                i = j;
            }
            if i < input.len() {
                i += 1;
                if input[j] == b'\r' {
                    self.pending_cr = true;
                } else if self.bare_ending(b"\n", buf) {
                    return (i, true);
                }
            }
        }
        (i, false)
    }

    /// End of the content: a trailing CR is bare. Returns true when the
    /// header block ends here (the message had no empty line).
    pub fn finish(&mut self, buf: &mut MessageBuffer) -> bool {
        let mut ended = false;
        if self.pending_cr {
            self.pending_cr = false;
            ended = self.bare_ending(b"\r", buf);
        }
        if self.check
            && self.in_headers
            && self.line_len > 0
            && self.header_line != HeaderLine::Header
        {
            // an unterminated last line that is not a header field (BDAT)
            buf.insert(self.line_start, b"\r\n");
        }
        std::mem::replace(&mut self.in_headers, false) || ended
    }

    /// A bare CR or LF; returns true when it closed the header block.
    fn bare_ending(&mut self, raw: &[u8], buf: &mut MessageBuffer) -> bool {
        if self.normalize {
            buf.push(b"\r\n");
        } else {
            buf.push(raw);
            if self.check {
                self.bare = true;
            }
        }
        self.end_line(buf)
    }

    /// Follows the header-line state over octets of one header-block line.
    fn header_bytes(&mut self, run: &[u8]) {
        use HeaderLine::*;
        for &b in run {
            self.header_line = match (self.header_line, b) {
                (Header | Invalid, _) => break,
                (Start, b' ' | b'\t') if self.seen_field => Header,
                (Start, b':') => Invalid,
                (Name | NameSpace, b':') => Header,
                (Start | Name, 33..=126) => Name,
                (Name | NameSpace, b' ' | b'\t') => NameSpace,
                _ => Invalid,
            };
        }
    }

    /// A line ended; returns true when it ended the header block: the empty
    /// line, or a line that is not a header field (the empty line is then
    /// inserted before it).
    fn end_line(&mut self, buf: &mut MessageBuffer) -> bool {
        let empty = self.line_len == 0;
        let state = std::mem::replace(&mut self.header_line, HeaderLine::Start);
        let start = std::mem::replace(&mut self.line_start, buf.stored_len());
        self.line_len = 0;
        if !self.in_headers {
            return false;
        }
        if empty {
            self.in_headers = false;
            return true;
        }
        if state == HeaderLine::Header || !self.check {
            // (BODY=BINARYMIME content is stored unchanged)
            self.seen_field = true;
            return false;
        }
        // Not a header field: the body starts with this line.
        buf.insert(start, b"\r\n");
        self.line_start = buf.stored_len();
        self.in_headers = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], policy: BareLineEndings) -> (Vec<u8>, bool, bool, Option<usize>) {
        let mut t = TextChecks::new(10, policy, false);
        let mut b = MessageBuffer::new(1000);
        let mut header_end = None;
        let mut pos = 0;
        while pos < input.len() {
            let (n, h) = t.feed(&input[pos..], &mut b);
            pos += n;
            if h {
                header_end = Some(pos);
            }
        }
        if t.finish(&mut b) {
            header_end = Some(pos);
        }
        (b.take(), t.bare(), t.long_line(), header_end)
    }

    #[test]
    fn table() {
        use BareLineEndings::*;
        type Case<'a> = (
            &'a [u8],
            BareLineEndings,
            &'a [u8],
            bool,
            bool,
            Option<usize>,
        );
        let cases: &[Case] = &[
            (
                b"a: b\r\n\r\nbody\r\n",
                Reject,
                b"a: b\r\n\r\nbody\r\n",
                false,
                false,
                Some(8),
            ),
            // a line that is not a header field starts the body
            (
                b"a: b\r\nbody\r\n",
                Reject,
                b"a: b\r\n\r\nbody\r\n",
                false,
                false,
                Some(12),
            ),
            (b"\r\nbody", Reject, b"\r\nbody", false, false, Some(2)),
            (b"a:\n b\r\n", Reject, b"a:\n b\r\n", true, false, Some(7)),
            (b"a:\r b\r\n", Reject, b"a:\r b\r\n", true, false, Some(7)),
            (b"a:\r", Reject, b"a:\r", true, false, Some(3)),
            (
                b"a:\n b\r\n",
                Normalize,
                b"a:\r\n b\r\n",
                false,
                false,
                Some(7),
            ),
            (
                b"a:\r\r b\r\n",
                Normalize,
                b"a:\r\n\r\n b\r\n",
                false,
                false,
                Some(4),
            ),
            (
                b"1234567:\r\n",
                Reject,
                b"1234567:\r\n",
                false,
                false,
                Some(10),
            ),
            (
                b"12345678:\r\n",
                Reject,
                b"12345678:\r\n",
                false,
                true,
                Some(11),
            ),
            // not header fields: the empty line goes before them
            (b"a\nb\r\n", Reject, b"\r\na\nb\r\n", true, false, Some(2)),
            (b"a\r", Reject, b"\r\na\r", true, false, Some(2)),
            (
                b" x: y\r\n",
                Reject,
                b"\r\n x: y\r\n",
                false,
                false,
                Some(7),
            ),
        ];
        for (input, policy, out, bare, long, hend) in cases {
            let got = check(input, *policy);
            assert_eq!(got, (out.to_vec(), *bare, *long, *hend), "{input:?}");
        }
    }

    #[test]
    fn buffer_limit() {
        let mut b = MessageBuffer::new(5);
        b.push(b"abc");
        b.push(b"de");
        assert!(!b.overflow());
        b.push(b"f");
        assert!(b.overflow());
        assert_eq!(b.bytes(), b"");
        b.push(b"more");
        assert_eq!(b.size(), 10);
        assert!(b.bytes().is_empty());
    }
}
