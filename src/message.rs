//! The message as received and as edited by plugins.
//!
//! The received bytes are held once, in a shared buffer ([`Bytes`]): the
//! header fields are byte ranges into it (no per-field copies), the body is
//! a slice of it, and delivery gets the same buffer (reference counted, not
//! cloned). A message nobody edited is delivered byte for byte as received.
//!
//! Header edits keep every field they do not touch byte-exact (8-bit
//! octets, `Name :` spacing, folding), since DKIM signatures cover them:
//! received fields are written back from their ranges, and only fields a
//! plugin added are new bytes, folded to RFC 5322's line limits (78
//! recommended, 998 octets hard).
//!
//! The header section ends at the first empty line, or at the first line
//! that is neither a header field nor a continuation (Postfix does the
//! same): that line starts the body, and an edited message gets the empty
//! line inserted so fields added by plugins stay in the header section.
//! [`HeaderLimits`] bounds the section (fields and octets) before any
//! field is parsed.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::mime::{MimeError, MimeTree};

/// Bounds on the header section of a received message (`[limits]`
/// `max_header_fields` / `max_header_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most header fields.
    pub max_fields: usize,
    /// Most octets of the header section (fields and their CRLFs).
    pub max_bytes: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        Self {
            max_fields: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// Why a received header section was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More header fields than allowed.
    #[error("more than {0} header fields")]
    TooManyFields(usize),
    /// A header section larger than allowed.
    #[error("header section larger than {0} octets")]
    TooLarge(usize),
}

/// Longest header line RFC 5322 2.1.1 allows, without its CRLF.
pub const MAX_HEADER_LINE: usize = 998;
/// The line length RFC 5322 2.1.1 recommends; added fields are folded to it
/// where they have white space to fold at.
pub const FOLD_AT: usize = 78;

/// Why a header edit or body replacement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The field name is empty or has characters outside printable US-ASCII minus ':'.
    #[error("invalid header name {0:?}")]
    BadName(String),
    /// The value contains CR, LF or NUL (which would inject a header or a command).
    #[error("header value contains CR, LF or NUL")]
    BadValue,
    /// The field cannot be folded into lines of at most 998 octets (RFC 5322 2.1.1).
    #[error("header field has a line longer than {MAX_HEADER_LINE} octets that cannot be folded")]
    LineTooLong,
    /// A body line ends in a bare CR or LF, or contains NUL.
    #[error("body contains a bare CR or LF or a NUL")]
    BadBody,
    /// The edited message would exceed the message size limit.
    #[error("message would exceed the size limit of {0} octets")]
    TooLarge(u64),
    /// A per-message bound on plugin header edits was reached.
    #[error("{0}")]
    Limit(String),
}

/// Where a field's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldText {
    /// A range of the received buffer, without the final CRLF.
    Received(Range<usize>),
    /// A field added by a plugin, folded, without the final CRLF.
    Added(Box<[u8]>),
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    text: FieldText,
    /// Octets of the name at the start of the text (white space before
    /// the colon excluded); 0 for a line that is not a field.
    name_len: usize,
}

/// A header field as seen through [`Message::fields`]: borrowed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// The whole field as it will be written, without its final CRLF.
    pub raw: &'a [u8],
    name_len: usize,
}

impl<'a> FieldRef<'a> {
    /// The field name as written (without white space before the colon).
    pub fn name(&self) -> &'a [u8] {
        &self.raw[..self.name_len]
    }

    /// The name as text (invalid UTF-8 replaced).
    pub fn name_str(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.name())
    }

    /// The value with folding removed and surrounding white space trimmed
    /// (invalid UTF-8 replaced).
    pub fn value(&self) -> String {
        let after = match memchr::memchr(b':', self.raw) {
            Some(p) => &self.raw[p + 1..],
            None => self.raw,
        };
        let mut out = Vec::with_capacity(after.len());
        let mut rest = after;
        while let Some(p) = memchr::memmem::find(rest, b"\r\n") {
            out.extend_from_slice(&rest[..p]);
            rest = &rest[p + 2..];
        }
        out.extend_from_slice(rest);
        String::from_utf8_lossy(&out).trim().to_string()
    }

    /// Whether the field is named `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name_len > 0 && self.name().eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The message's MIME view ([`crate::mime`]), parsed at the first request
/// and dropped when the body or a MIME header field changes. A cache does
/// not change what the message is: it never makes two messages unequal.
#[derive(Debug, Clone, Default)]
struct MimeCache(OnceLock<Arc<Result<MimeTree, MimeError>>>);

impl PartialEq for MimeCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MimeCache {}

/// Whether editing a field named `name` can change the MIME view: the
/// top-level `Content-*` fields and `MIME-Version`.
fn shapes_mime(name: &str) -> bool {
    name.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("content-"))
        || name.eq_ignore_ascii_case("mime-version")
}

/// A received message: header section plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The bytes as received (dot-unstuffed, CRLF line endings); until the
    /// message is complete, only the header section.
    raw: Bytes,
    /// Octets of the message the parse saw (the header section and any body
    /// octets that came with it), for [`Message::complete`].
    seen: usize,
    /// End of the last header field, its CRLF included.
    fields_end: usize,
    /// Where the body starts in `raw` (after the empty line, at the first
    /// line that is not a field, or `raw.len()`).
    body_start: usize,
    /// Header fields, in order.
    fields: Vec<Field>,
    /// True once a header was edited: serialize from `fields`, not `raw`.
    headers_edited: bool,
    /// A replacement body set by a plugin.
    body_override: Option<Bytes>,
    /// Fields plugins added or replaced in this message.
    edits: usize,
    /// Octets of the fields plugins added.
    added_bytes: usize,
    /// The parsed MIME view, once asked for.
    mime: MimeCache,
}

/// Returns true for a valid header field name (RFC 5322 ftext).
pub fn valid_header_name(name: &str) -> bool {
    valid_name_bytes(name.as_bytes())
}

fn valid_name_bytes(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
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
    memchr::memmem::find(data, b"\r\n\r\n").map(|p| p + 4)
}

/// The layout of a header section, found without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Number of fields.
    fields: usize,
    /// End of the last field (CRLF included).
    fields_end: usize,
    /// Where the body starts.
    body_start: usize,
}

/// Length of a field name at the start of `line` (white space before the
/// colon allowed, RFC 5322 obs-optional), or `None` if the line is not a
/// header field.
fn field_name_len(line: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let trimmed = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    valid_name_bytes(&name[..trimmed]).then_some(trimmed)
}

/// Scans the header section of `data`: stops at the empty line, at a line
/// that is neither a field nor a continuation, or past the limits.
fn scan(data: &[u8], limits: &HeaderLimits) -> Result<Layout, HeaderError> {
    let mut fields = 0usize;
    let mut pos = 0usize;
    let mut fields_end = 0usize;
    while pos < data.len() {
        let eol = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |p| pos + p + 1);
        let line = &data[pos..eol];
        let content = line
            .strip_suffix(b"\n")
            .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
        if content.is_empty() && line.ends_with(b"\n") {
            // The empty line: the body follows it.
            return Ok(Layout {
                fields,
                fields_end,
                body_start: eol,
            });
        }
        let continuation = matches!(content.first(), Some(b' ' | b'\t')) && fields > 0;
        if !continuation {
            if field_name_len(content).is_none() {
                // Not a header field: the body starts on this line.
                return Ok(Layout {
                    fields,
                    fields_end,
                    body_start: pos,
                });
            }
            fields += 1;
            if fields > limits.max_fields {
                return Err(HeaderError::TooManyFields(limits.max_fields));
            }
        }
        if eol > limits.max_bytes {
            return Err(HeaderError::TooLarge(limits.max_bytes));
        }
        pos = eol;
        fields_end = eol;
    }
    Ok(Layout {
        fields,
        fields_end,
        body_start: data.len(),
    })
}

/// Splits the header section `data[..fields_end]` into fields.
fn split_fields(data: &[u8], layout: &Layout) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::with_capacity(layout.fields);
    let mut pos = 0usize;
    while pos < layout.fields_end {
        let eol = memchr::memchr(b'\n', &data[pos..layout.fields_end])
            .map_or(layout.fields_end, |p| pos + p + 1);
        let line = &data[pos..eol];
        let content_len = line
            .strip_suffix(b"\n")
            .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l))
            .len();
        let end = pos + content_len;
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation
            && let Some(Field {
                text: FieldText::Received(r),
                ..
            }) = fields.last_mut()
        {
            r.end = end;
        } else {
            fields.push(Field {
                text: FieldText::Received(pos..end),
                name_len: field_name_len(line).unwrap_or(0),
            });
        }
        pos = eol;
    }
    fields
}

/// Folds `name: value` at white space so lines stay within [`FOLD_AT`]
/// where possible; refuses a line that would exceed [`MAX_HEADER_LINE`].
pub fn fold_field(name: &str, value: &str) -> Result<Vec<u8>, EditError> {
    let v = value.as_bytes();
    let mut out = Vec::with_capacity(name.len() + 2 + v.len() + v.len() / 32);
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let mut col = out.len();
    // Segments: white space then non-white space; the first one is the
    // value's start after the single space we put after the colon.
    let wsp = |b: &u8| *b == b' ' || *b == b'\t';
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut start = 0usize;
    let mut i = 0usize;
    while i < v.len() {
        while i < v.len() && wsp(&v[i]) {
            i += 1;
        }
        while i < v.len() && !wsp(&v[i]) {
            i += 1;
        }
        segments.push(&v[start..i]);
        start = i;
    }
    out.push(b' ');
    col += 1;
    if col > MAX_HEADER_LINE {
        return Err(EditError::LineTooLong);
    }
    for (n, seg) in segments.iter().enumerate() {
        let has_text = seg.iter().any(|b| !wsp(b));
        if n > 0
            && has_text
            && col + seg.len() > FOLD_AT
            && matches!(seg.first(), Some(b)
            if wsp(b))
        {
            out.extend_from_slice(b"\r\n");
            col = 0;
        }
        out.extend_from_slice(seg);
        col += seg.len();
        if col > MAX_HEADER_LINE {
            return Err(EditError::LineTooLong);
        }
    }
    Ok(out)
}

impl Message {
    /// Parses a complete message (or a prefix holding at least the header
    /// section) with the default [`HeaderLimits`] raised to the input's
    /// size: for callers that built the bytes themselves (tests, tools).
    pub fn parse(raw: Vec<u8>) -> Self {
        let limits = HeaderLimits {
            max_fields: usize::MAX,
            max_bytes: usize::MAX,
        };
        let layout = match scan(&raw, &limits) {
            Ok(l) => l,
            // Unreachable with unlimited bounds; an empty section is safe.
            Err(_) => Layout {
                fields: 0,
                fields_end: 0,
                body_start: 0,
            },
        };
        let fields = split_fields(&raw, &layout);
        let seen = raw.len();
        Self::with_layout(Bytes::from(raw), seen, layout, fields)
    }

    /// Parses the header section of the received prefix `data` within
    /// `limits`, copying only the header section (the body comes with
    /// [`Message::complete`]). Scans before it allocates: a refused section
    /// costs no per-field memory.
    pub fn parse_prefix(data: &[u8], limits: &HeaderLimits) -> Result<Self, HeaderError> {
        let layout = scan(data, limits)?;
        let fields = split_fields(data, &layout);
        let head = Bytes::copy_from_slice(&data[..layout.body_start]);
        Ok(Self::with_layout(head, data.len(), layout, fields))
    }

    /// Parses a complete message within `limits`, keeping `raw` as the one
    /// copy of its bytes.
    pub fn parse_bounded(raw: Vec<u8>, limits: &HeaderLimits) -> Result<Self, HeaderError> {
        let layout = scan(&raw, limits)?;
        let fields = split_fields(&raw, &layout);
        let seen = raw.len();
        Ok(Self::with_layout(Bytes::from(raw), seen, layout, fields))
    }

    fn with_layout(raw: Bytes, seen: usize, layout: Layout, fields: Vec<Field>) -> Self {
        Self {
            raw,
            seen,
            fields_end: layout.fields_end,
            body_start: layout.body_start,
            fields,
            headers_edited: false,
            body_override: None,
            edits: 0,
            added_bytes: 0,
            mime: MimeCache::default(),
        }
    }

    /// The whole received message arrived: `full` starts with the prefix
    /// this message was parsed from. It becomes the message's one buffer
    /// (no copy); the parsed fields and the edits made so far stay. A body
    /// a plugin replaced before gets the octets received since appended.
    pub fn complete(&mut self, full: Vec<u8>) {
        self.mime = MimeCache::default();
        if !full.starts_with(&self.raw[..self.body_start.min(self.raw.len())]) {
            // Not the same message: start over from what was received.
            let limits = HeaderLimits {
                max_fields: usize::MAX,
                max_bytes: usize::MAX,
            };
            if let Ok(layout) = scan(&full, &limits) {
                self.fields = split_fields(&full, &layout);
                self.fields_end = layout.fields_end;
                self.body_start = layout.body_start;
                self.headers_edited = false;
            }
        }
        if let Some(b) = self.body_override.take() {
            let mut v = Vec::from(b);
            v.extend_from_slice(full.get(self.seen..).unwrap_or_default());
            self.body_override = Some(Bytes::from(v));
        }
        self.seen = full.len();
        self.raw = Bytes::from(full);
    }

    /// Appends more body bytes to a message parsed from a prefix.
    pub fn append_body(&mut self, more: &[u8]) {
        self.mime = MimeCache::default();
        match self.body_override.take() {
            Some(b) => {
                let mut v = Vec::from(b);
                v.extend_from_slice(more);
                self.body_override = Some(Bytes::from(v));
            }
            None => {
                let mut v = Vec::from(std::mem::take(&mut self.raw));
                v.extend_from_slice(more);
                self.seen = v.len();
                self.raw = Bytes::from(v);
            }
        }
    }

    fn field_ref<'a>(&'a self, f: &'a Field) -> FieldRef<'a> {
        let raw: &[u8] = match &f.text {
            FieldText::Received(r) => self.raw.get(r.clone()).unwrap_or_default(),
            FieldText::Added(b) => &b[..],
        };
        FieldRef {
            raw,
            name_len: f.name_len.min(raw.len()),
        }
    }

    /// The header fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = FieldRef<'_>> + '_ {
        self.fields.iter().map(|f| self.field_ref(f))
    }

    /// Number of header fields.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// Values (unfolded) of every field with this name, case-insensitive.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.fields()
            .filter(|f| f.is(name))
            .map(|f| f.value())
            .collect()
    }

    fn checked(name: &str, value: &str) -> Result<Field, EditError> {
        if !valid_header_name(name) {
            return Err(EditError::BadName(name.to_string()));
        }
        if !valid_header_value(value) {
            return Err(EditError::BadValue);
        }
        let text = fold_field(name, value)?;
        Ok(Field {
            text: FieldText::Added(text.into_boxed_slice()),
            name_len: name.len(),
        })
    }

    fn added(&mut self, f: &Field) {
        self.headers_edited = true;
        self.edits += 1;
        if let FieldText::Added(b) = &f.text {
            self.added_bytes += b.len() + 2;
        }
    }

    /// Appends a field at the end of the header section.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        self.mime_field_edited(name);
        self.added(&f);
        self.fields.push(f);
        Ok(())
    }

    /// Inserts a field at the top of the header section.
    pub fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        self.mime_field_edited(name);
        self.added(&f);
        self.fields.insert(0, f);
        Ok(())
    }

    fn named(&self, f: &Field, name: &str) -> bool {
        self.field_ref(f).is(name)
    }

    /// Removes every field with this name; returns how many.
    pub fn remove_header(&mut self, name: &str) -> u32 {
        let keep: Vec<bool> = self.fields.iter().map(|f| !self.named(f, name)).collect();
        let before = self.fields.len();
        let mut it = keep.iter();
        self.fields.retain(|_| it.next().copied().unwrap_or(true));
        let n = before - self.fields.len();
        if n > 0 {
            self.headers_edited = true;
            self.mime_field_edited(name);
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Replaces every field with this name by one, where the first one was.
    pub fn replace_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        let f = Self::checked(name, value)?;
        self.mime_field_edited(name);
        let pos = self.fields.iter().position(|h| self.named(h, name));
        self.remove_header(name);
        self.added(&f);
        match pos {
            Some(p) => self.fields.insert(p.min(self.fields.len()), f),
            None => self.fields.push(f),
        }
        Ok(())
    }

    /// Header fields plugins added or replaced in this message.
    pub fn edits(&self) -> usize {
        self.edits
    }

    /// Octets of the header fields plugins added to this message.
    pub fn added_bytes(&self) -> usize {
        self.added_bytes
    }

    /// The body (after the header section).
    pub fn body(&self) -> &[u8] {
        match &self.body_override {
            Some(b) => &b[..],
            None => self.raw.get(self.body_start..).unwrap_or_default(),
        }
    }

    /// The body as a shared buffer (no copy).
    pub fn body_bytes(&self) -> Bytes {
        match &self.body_override {
            Some(b) => b.clone(),
            None => self.received_body_bytes(),
        }
    }

    /// The body as received (dot-unstuffed), whatever replaced it since.
    pub fn received_body(&self) -> &[u8] {
        self.raw.get(self.body_start..).unwrap_or_default()
    }

    /// [`Message::received_body`] as a shared buffer (no copy).
    pub fn received_body_bytes(&self) -> Bytes {
        self.raw.slice(self.body_start.min(self.raw.len())..)
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
        self.body_override = Some(Bytes::from(body));
        self.mime = MimeCache::default();
        Ok(())
    }

    /// The MIME view of the message as it is now, parsed at the first
    /// call and kept until the body or a MIME header field changes.
    pub fn mime(&self) -> Arc<Result<MimeTree, MimeError>> {
        self.mime
            .0
            .get_or_init(|| {
                let raw = self.to_bytes();
                let body_start = raw.len().saturating_sub(self.body().len());
                Arc::new(crate::mime::parse(&raw, body_start))
            })
            .clone()
    }

    /// Whether the MIME view is parsed and cached (for tests of the cache).
    pub fn mime_cached(&self) -> bool {
        self.mime.0.get().is_some()
    }

    /// Drops the MIME view if editing the field `name` can change it.
    fn mime_field_edited(&mut self, name: &str) {
        if shapes_mime(name) {
            self.mime = MimeCache::default();
        }
    }

    /// Whether a plugin changed anything.
    pub fn is_edited(&self) -> bool {
        self.headers_edited || self.body_override.is_some()
    }

    fn header_bytes_len(&self) -> usize {
        if !self.headers_edited {
            return self.body_start.min(self.raw.len());
        }
        self.fields().map(|f| f.raw.len() + 2).sum::<usize>() + 2
    }

    /// Writes the header section (with the empty line) to `out`.
    pub fn write_header_block(&self, out: &mut Vec<u8>) {
        if !self.headers_edited {
            let head = self.raw.get(..self.body_start).unwrap_or_default();
            out.extend_from_slice(head);
            if self.body_start < self.raw.len() && self.fields_end == self.body_start {
                // The body started at a line that is not a field: it stays
                // the body, after the empty line.
                out.extend_from_slice(b"\r\n");
            } else if self.body_start == self.raw.len() && !self.raw.ends_with(b"\r\n\r\n") {
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
        for f in self.fields() {
            out.extend_from_slice(f.raw);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The header section as it will be delivered (with the empty line):
    /// a slice of the received buffer when no header was edited.
    pub fn header_block_bytes(&self) -> Bytes {
        if !self.headers_edited && self.body_start > self.fields_end {
            // The empty line was received: the section is a slice of it.
            return self.raw.slice(..self.body_start.min(self.raw.len()));
        }
        let mut out = Vec::with_capacity(self.header_bytes_len() + 4);
        self.write_header_block(&mut out);
        Bytes::from(out)
    }

    /// The message as it will be delivered, as shared buffers: the header
    /// section and the body. Nothing of the received message is copied
    /// (only an edited header section is new bytes).
    pub fn delivery_parts(&self) -> [Bytes; 2] {
        if !self.is_edited() {
            return [self.raw.clone(), Bytes::new()];
        }
        [self.header_block_bytes(), self.body_bytes()]
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
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        if !self.is_edited() {
            return Cow::Borrowed(&self.raw[..]);
        }
        let mut out = Vec::with_capacity(self.len() + 2);
        self.write_header_block(&mut out);
        out.extend_from_slice(self.body());
        Cow::Owned(out)
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
mod tests;
