//! Convenience methods on the generated handles.

use crate::Transaction;

/// Largest range `read-body` returns per call.
const READ_CHUNK: u32 = 1 << 20;

impl Transaction {
    /// The whole body (as edited so far), read in 1 MiB pieces.
    pub fn body(&self) -> Vec<u8> {
        let size = self.body_size();
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while (out.len() as u64) < size {
            let piece = self.read_body(out.len() as u64, READ_CHUNK);
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        out
    }

    /// The header block as `Name: value` lines (unfolded), ending with the
    /// empty line. Together with [`Transaction::body`] this is a message
    /// MIME parsers accept; body offsets start at the returned length.
    pub fn header_block(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for h in self.headers() {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The transaction's note `key`, or `default` when the note is not set
    /// (connection notes are not consulted: use
    /// [`Connection::note`](crate::Connection::note)).
    pub fn note_or(&self, key: &str, default: &str) -> String {
        self.note(key).unwrap_or_else(|| default.to_string())
    }
}
