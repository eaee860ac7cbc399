//! The BDAT receiver (RFC 3030): exactly `n` raw octets follow the command
//! line. No dot-stuffing and no end marker, so nothing in the chunk can be
//! mistaken for a command; the content still goes through [`TextChecks`]
//! (bare CR/LF, long lines, header end) unless BODY=BINARYMIME, because a
//! text message received by BDAT may later be relayed with DATA.

use super::body::{MessageBuffer, TextChecks};

/// One chunk being received (or skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Octets still to come.
    pub remaining: u64,
    /// `BDAT n LAST`.
    pub last: bool,
    /// Chunk size as announced (for the `250 <n> octets received` reply).
    pub size: u64,
}

impl Chunk {
    /// A chunk of `size` octets.
    pub fn new(size: u64, last: bool) -> Self {
        Self {
            remaining: size,
            last,
            size,
        }
    }

    /// Whether all octets arrived.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// How many of `available` octets belong to this chunk.
    pub fn take(&self, available: usize) -> usize {
        usize::try_from(self.remaining).map_or(available, |r| r.min(available))
    }

    /// Consumes chunk octets from `input` into `buf` through `text`. Returns
    /// the octets consumed and whether the header block ended (then call
    /// again with the rest).
    pub fn feed(
        &mut self,
        input: &[u8],
        text: &mut TextChecks,
        buf: &mut MessageBuffer,
    ) -> (usize, bool) {
        let n = self.take(input.len());
        let (used, headers_end) = text.feed(&input[..n], buf);
        self.remaining -= used as u64;
        (used, headers_end)
    }

    /// Skips chunk octets without storing them (a refused chunk).
    pub fn skip(&mut self, input: &[u8]) -> usize {
        let n = self.take(input.len());
        self.remaining -= n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::BareLineEndings;

    #[test]
    fn table() {
        // (chunk size, input, consumed, stored)
        let cases: &[(u64, &[u8], usize, &[u8])] = &[
            (0, b"QUIT\r\n", 0, b""),
            (3, b"abcQUIT\r\n", 3, b"abc"),
            (10, b"abc", 3, b"abc"),
            (u64::MAX, b"abc", 3, b"abc"),
            (5, b"\r\n.\r\nX", 5, b"\r\n.\r\n"),
        ];
        for (size, input, consumed, stored) in cases {
            let mut c = Chunk::new(*size, true);
            let mut t = TextChecks::new(1000, BareLineEndings::Reject, false);
            let mut b = MessageBuffer::new(1 << 20);
            let mut used = 0;
            loop {
                let (n, _) = c.feed(&input[used..], &mut t, &mut b);
                used += n;
                if n == 0 || c.is_done() || used == input.len() {
                    break;
                }
            }
            assert_eq!(used, *consumed, "{input:?}");
            assert_eq!(b.bytes(), *stored);
            assert_eq!(c.remaining, size - *consumed as u64);
        }
    }

    #[test]
    fn skip_counts_down() {
        let mut c = Chunk::new(4, false);
        assert_eq!(c.skip(b"ab"), 2);
        assert_eq!(c.skip(b"cdEF"), 2);
        assert!(c.is_done());
    }
}
