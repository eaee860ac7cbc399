//! Dot-stuffing (RFC 5321 4.5.2) for the DATA we send upstream, in large
//! buffers: the message is fed part by part and written in chunks of at
//! least [`CHUNK`] bytes, never line by line (see the Nagle + delayed ACK
//! note in the module doc of [`super`]).

/// Write granularity: the stuffed output is flushed to the socket once it
/// reaches this size.
pub const CHUNK: usize = 256 * 1024;

/// Streaming dot-stuffer. Input must use CRLF line endings.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    last: [u8; 2],
    total: u64,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// At the start of the message.
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            last: [0, 0],
            total: 0,
        }
    }

    /// Appends `input`, stuffed, to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        out.reserve(input.len() + input.len() / 32 + 2);
        if self.at_line_start && input[0] == b'.' {
            out.push(b'.');
        }
        // Only LF followed by a dot needs work: find those pairs directly.
        let mut start = 0;
        for nl in memchr::memmem::find_iter(input, b"\n.") {
            out.extend_from_slice(&input[start..=nl]);
            out.push(b'.');
            start = nl + 1;
        }
        out.extend_from_slice(&input[start..]);
        self.at_line_start = input[input.len() - 1] == b'\n';
        self.last = if input.len() >= 2 {
            [input[input.len() - 2], input[input.len() - 1]]
        } else {
            [self.last[1], input[0]]
        };
        self.total += input.len() as u64;
    }

    /// Appends the end of data: CRLF when the message did not end with one,
    /// then `.` CRLF.
    pub fn finish(&self, out: &mut Vec<u8>) {
        if self.total > 0 && self.last != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Stuffs a whole message given as parts (convenience for tests and small messages).
pub fn stuff(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = DotStuffer::new();
    let mut out = Vec::new();
    for p in parts {
        d.feed(p, &mut out);
    }
    d.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffs_leading_dots_across_parts() {
        assert_eq!(
            stuff(&[b".a\r\n.b\r\nc.\r\n"]),
            b"..a\r\n..b\r\nc.\r\n.\r\n"
        );
        assert_eq!(stuff(&[b"x\r\n", b".\r\n"]), b"x\r\n..\r\n.\r\n");
        assert_eq!(stuff(&[b"x\r", b"\n.y"]), b"x\r\n..y\r\n.\r\n");
        assert_eq!(stuff(&[b"x\r\n", b"", b"."]), b"x\r\n..\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
        assert_eq!(stuff(&[b"no newline"]), b"no newline\r\n.\r\n");
    }

    #[test]
    fn every_split_matches_whole() {
        let msg = b"Subject: x\r\n\r\n.\r\n..\r\nabc\r\n.def\r\n\r\n.";
        let whole = stuff(&[msg]);
        for i in 0..=msg.len() {
            for j in i..=msg.len() {
                assert_eq!(stuff(&[&msg[..i], &msg[i..j], &msg[j..]]), whole, "{i} {j}");
            }
        }
    }
}
