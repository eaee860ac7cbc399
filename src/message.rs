//! The message as received and as edited by plugins.
//!
//! The raw bytes stay untouched until a plugin edits something: a message
//! nobody edited is delivered from the very buffer it was received in. Header
//! edits work on a parsed list of fields; a body replacement swaps the body.

use std::ops::Range;

/// One header field: name and the raw value (may contain folds, no trailing CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// Field name as written.
    pub name: String,
    /// Raw value after the colon, folds (CRLF + WSP) kept, without the final CRLF.
    pub raw_value: String,
}

impl HeaderField {
    /// The value with folding removed and surrounding white space trimmed.
    pub fn value(&self) -> String {
        let mut out = String::with_capacity(self.raw_value.len());
        for part in self.raw_value.split("\r\n") {
            out.push_str(part);
        }
        out.trim().to_string()
    }
}

/// Why a header edit or body replacement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The field name is empty or has characters outside printable US-ASCII minus ':'.
    #[error("invalid header name {0:?}")]
    BadName(String),
    /// The value contains CR, LF or NUL (which would inject a header or a command).
    #[error("header value contains CR, LF or NUL")]
    BadValue,
    /// A body line ends in a bare CR or LF, or contains NUL.
    #[error("body contains a bare CR or LF or a NUL")]
    BadBody,
    /// The edited message would exceed the message size limit.
    #[error("message would exceed the size limit of {0} octets")]
    TooLarge(u64),
}

/// A received message: header block plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The bytes as received (dot-unstuffed, CRLF line endings).
    raw: Vec<u8>,
    /// Where the body starts in `raw` (after the empty line; `raw.len()` if none).
    body_start: usize,
    /// Parsed header fields.
    headers: Vec<HeaderField>,
    /// True once a header was edited: serialize from `headers`, not `raw`.
    headers_edited: bool,
    /// A replacement body set by a plugin.
    body_override: Option<Vec<u8>>,
}

/// Returns true for a valid header field name (RFC 5322 ftext).
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Returns true if a header value may be written as given (no CR, LF, NUL).
pub fn valid_header_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Finds the end of the header block: the index just past the empty line
/// (`\r\n\r\n`), or `None` if the block is not complete yet.
pub fn header_block_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\r\n") {
        return Some(2);
    }
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

fn parse_headers(block: &[u8]) -> Vec<HeaderField> {
    let mut fields: Vec<HeaderField> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.raw_value.push_str("\r\n");
                last.raw_value.push_str(&text);
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => fields.push(HeaderField {
                name: name.trim_end().to_string(),
                raw_value: value.to_string(),
            }),
            // Not a header line: keep it as a nameless field so nothing is lost.
            None => fields.push(HeaderField {
                name: String::new(),
                raw_value: text.into_owned(),
            }),
        }
    }
    fields
}

impl Message {
    /// Parses a complete message (or a prefix holding at least the header block).
    pub fn parse(raw: Vec<u8>) -> Self {
        let body_start = header_block_end(&raw).unwrap_or(raw.len());
        let headers = parse_headers(&raw[..body_start]);
        Self {
            raw,
            body_start,
            headers,
            headers_edited: false,
            body_override: None,
        }
    }

    /// Appends more body bytes to a message parsed from a prefix.
    pub fn append_body(&mut self, more: &[u8]) {
        match &mut self.body_override {
            Some(b) => b.extend_from_slice(more),
            None => self.raw.extend_from_slice(more),
        }
    }

    /// The header fields, in order.
    pub fn headers(&self) -> &[HeaderField] {
        &self.headers
    }

    /// Values (unfolded) of every field with this name, case-insensitive.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(HeaderField::value)
            .collect()
    }

    fn checked(name: &str, value: &str) -> Result<HeaderField, EditError> {
        if !valid_header_name(name) {
            return Err(EditError::BadName(name.to_string()));
        }
        if !valid_header_value(value) {
            return Err(EditError::BadValue);
        }
        Ok(HeaderField {
            name: name.to_string(),
            raw_value: format!(" {value}"),
        })
    }

    /// Appends a field at the end of the header block.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        self.headers.push(f);
        self.headers_edited = true;
        Ok(())
    }

    /// Inserts a field at the top of the header block.
    pub fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        self.headers.insert(0, f);
        self.headers_edited = true;
        Ok(())
    }

    /// Removes every field with this name; returns how many.
    pub fn remove_header(&mut self, name: &str) -> u32 {
        let before = self.headers.len();
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
        let n = before - self.headers.len();
        if n > 0 {
            self.headers_edited = true;
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Replaces every field with this name by one, where the first one was.
    pub fn replace_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        let pos = self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name));
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
        match pos {
            Some(p) => self.headers.insert(p.min(self.headers.len()), f),
            None => self.headers.push(f),
        }
        self.headers_edited = true;
        Ok(())
    }

    /// The body (after the empty line).
    pub fn body(&self) -> &[u8] {
        match &self.body_override {
            Some(b) => b,
            None => &self.raw[self.body_start..],
        }
    }

    /// The body as received (dot-unstuffed), whatever replaced it since.
    pub fn received_body(&self) -> &[u8] {
        &self.raw[self.body_start..]
    }

    /// Replaces the body; lines must end in CRLF and the whole message must fit `limit`.
    pub fn replace_body(&mut self, body: Vec<u8>, limit: u64) -> Result<(), EditError> {
        if has_bare_cr_lf_or_nul(&body) {
            return Err(EditError::BadBody);
        }
        let size = self.header_bytes_len() as u64 + body.len() as u64;
        if size > limit {
            return Err(EditError::TooLarge(limit));
        }
        self.body_override = Some(body);
        Ok(())
    }

    /// Whether a plugin changed anything.
    pub fn is_edited(&self) -> bool {
        self.headers_edited || self.body_override.is_some()
    }

    fn header_bytes_len(&self) -> usize {
        if !self.headers_edited {
            return self.body_start;
        }
        self.headers
            .iter()
            // a nameless field (a line that was not a header) is written without a colon
            .map(|h| h.name.len() + usize::from(!h.name.is_empty()) + h.raw_value.len() + 2)
            .sum::<usize>()
            + 2
    }

    /// Writes the header block (with the empty line) to `out`.
    pub fn write_header_block(&self, out: &mut Vec<u8>) {
        if !self.headers_edited {
            out.extend_from_slice(&self.raw[..self.body_start]);
            if self.body_start == self.raw.len() && !self.raw.ends_with(b"\r\n\r\n") {
                // No empty line was received; end the block so a body can follow.
                if !self.raw.is_empty() && !self.raw.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
                if !self.raw.starts_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            return;
        }
        for h in &self.headers {
            if h.name.is_empty() {
                out.extend_from_slice(h.raw_value.as_bytes());
            } else {
                out.extend_from_slice(h.name.as_bytes());
                out.push(b':');
                out.extend_from_slice(h.raw_value.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Size in octets of the message as it would be delivered.
    pub fn len(&self) -> usize {
        if !self.is_edited() {
            return self.raw.len();
        }
        self.header_bytes_len() + self.body().len()
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message as it will be delivered. Borrows the received buffer when
    /// nothing was edited.
    pub fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        if !self.is_edited() {
            return std::borrow::Cow::Borrowed(&self.raw);
        }
        let mut out = Vec::with_capacity(self.len() + 2);
        self.write_header_block(&mut out);
        out.extend_from_slice(self.body());
        std::borrow::Cow::Owned(out)
    }

    /// Byte range of the body in the received buffer (diagnostics and tests).
    pub fn raw_body_range(&self) -> Range<usize> {
        self.body_start..self.raw.len()
    }
}

/// True if `data` has a CR not followed by LF, an LF not preceded by CR, or a NUL.
pub fn has_bare_cr_lf_or_nul(data: &[u8]) -> bool {
    // Jumps from one CR, LF or NUL to the next (memchr3 is vectorised); a
    // CRLF's LF is stepped over with its CR.
    let mut i = 0;
    while let Some(off) = memchr::memchr3(0, b'\r', b'\n', &data[i..]) {
        let at = i + off;
        if data[at] != b'\r' || data.get(at + 1) != Some(&b'\n') {
            return true;
        }
        i = at + 2;
    }
    false
}

/// Whether `data` holds an octet above 127. Checks 32 octets at a time:
/// `<[u8]>::is_ascii` compiles to a byte-at-a-time loop on x86_64, which
/// showed in profiles of 100 KiB messages.
pub fn has_8bit(data: &[u8]) -> bool {
    let (chunks, rest) = data.as_chunks::<32>();
    chunks
        .iter()
        .any(|c| c.iter().fold(0u8, |acc, &b| acc | b) >= 0x80)
        || rest.iter().any(|&b| b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Subject: hi\r\nX-A: 1\r\n folded\r\nFrom: a@b\r\n\r\nbody\r\n";

    #[test]
    fn eight_bit_found_at_every_position() {
        for len in [0usize, 1, 31, 32, 33, 64, 100, 1000] {
            let clean = vec![b'a'; len];
            assert!(!has_8bit(&clean), "{len}");
            for at in 0..len {
                let mut v = clean.clone();
                v[at] = 0x80 | (at as u8);
                assert!(has_8bit(&v), "{len} {at}");
            }
        }
    }

    #[test]
    fn unedited_is_byte_exact() {
        let m = Message::parse(MSG.to_vec());
        assert_eq!(m.to_bytes().as_ref(), MSG);
        assert_eq!(m.header_values("x-a"), vec!["1 folded".to_string()]);
        assert_eq!(m.body(), b"body\r\n");
    }

    #[test]
    fn edits_reach_the_output() {
        let mut m = Message::parse(MSG.to_vec());
        m.prepend_header("X-Top", "t").unwrap();
        m.replace_header("subject", "new").unwrap();
        assert_eq!(m.remove_header("From"), 1);
        m.replace_body(b"other\r\n".to_vec(), 1000).unwrap();
        assert_eq!(
            m.to_bytes().as_ref(),
            b"X-Top: t\r\nsubject: new\r\nX-A: 1\r\n folded\r\n\r\nother\r\n"
        );
        assert_eq!(m.len(), m.to_bytes().len());
    }

    #[test]
    fn injection_refused() {
        let mut m = Message::parse(MSG.to_vec());
        assert_eq!(m.add_header("X", "a\r\nBcc: x"), Err(EditError::BadValue));
        assert!(matches!(
            m.add_header("Bad Name", "v"),
            Err(EditError::BadName(_))
        ));
        assert_eq!(
            m.replace_body(b"a\nb".to_vec(), 100),
            Err(EditError::BadBody)
        );
        assert_eq!(
            m.replace_body(vec![b'a'; 200], 100),
            Err(EditError::TooLarge(100))
        );
    }

    #[test]
    fn bare_detection() {
        assert!(!has_bare_cr_lf_or_nul(b"a\r\nb\r\n"));
        assert!(has_bare_cr_lf_or_nul(b"a\nb"));
        assert!(has_bare_cr_lf_or_nul(b"a\rb"));
        assert!(has_bare_cr_lf_or_nul(b"a\r"));
        assert!(has_bare_cr_lf_or_nul(b"a\0"));
        assert!(has_bare_cr_lf_or_nul(b"\nab"));
        assert!(has_bare_cr_lf_or_nul(b"a\r\n\nb"));
        assert!(has_bare_cr_lf_or_nul(b"a\r\r\nb"));
        assert!(!has_bare_cr_lf_or_nul(b""));
        assert!(!has_bare_cr_lf_or_nul(b"\r\n\r\n"));
        let mut long = b"0123456789\r\n".repeat(1000);
        assert!(!has_bare_cr_lf_or_nul(&long));
        long.push(b'\n');
        assert!(has_bare_cr_lf_or_nul(&long));
    }
}
