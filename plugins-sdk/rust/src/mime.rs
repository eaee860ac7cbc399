//! The message's MIME structure, parsed once per message by the gateway
//! (the `mime` interface).
//!
//! Instead of bundling a MIME parser and reading the whole body into the
//! plugin, ask the host: [`Mime::of`] gives every part (content type,
//! charset, disposition, decoded file name, sizes, where its body is), and
//! [`Mime::text`] / [`Mime::content`] give one part's decoded text or
//! octets on request. Every plugin of the chain shares one parse; a plugin
//! that replaces the body (or edits a `Content-*` header) makes the next
//! call see the new message. Meaningful from `data-post` on.
//!
//! ```no_run
//! use wasmtp_plugin_sdk::mime::Mime;
//! # fn f(txn: &wasmtp_plugin_sdk::Transaction) {
//! let Ok(mime) = Mime::of(txn) else { return };
//! for part in mime.attachments() {
//!     if part.extension().as_deref() == Some("exe") {
//!         println!("{:?} is an executable", part.filename);
//!     }
//! }
//! for part in mime.body_texts() {
//!     let text = mime.text(part, 1 << 20).unwrap_or_default();
//!     println!("{}: {} chars", part.content_type, text.chars().count());
//! }
//! # }
//! ```
//!
//! A message over the host's bounds (more than 1000 parts, nesting deeper
//! than 32) is [`MimeError::TooComplex`]: refuse it rather than pass what
//! could not be examined.

use crate::Transaction;
use crate::bindings::wasmtp::plugin::mime as raw;

pub use raw::{MimeError, Part, PartKind};

/// Largest piece `content` returns per call.
const READ_CHUNK: u32 = 1 << 20;

/// The parts of one transaction's message.
pub struct Mime<'a> {
    txn: &'a Transaction,
    /// Every part, depth-first; index 0 is the message itself.
    pub parts: Vec<Part>,
}

impl<'a> Mime<'a> {
    /// The MIME view of `txn`'s message (one host call).
    pub fn of(txn: &'a Transaction) -> Result<Self, MimeError> {
        Ok(Self {
            txn,
            parts: raw::parts(txn)?,
        })
    }

    /// Parts that are attachments: a `Content-Disposition: attachment` or
    /// a file name, excluding multiparts.
    pub fn attachments(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| p.is_attachment())
    }

    /// The readable text of the message: `text/plain` and `text/html`
    /// parts that are not attachments (every alternative of a
    /// `multipart/alternative`, and text inside nested messages).
    pub fn body_texts(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| {
            p.kind == PartKind::Text
                && matches!(p.content_type.as_str(), "text/plain" | "text/html")
                && p.disposition.as_deref() != Some("attachment")
        })
    }

    /// A text part's content in UTF-8, at most `max_len` octets.
    pub fn text(&self, part: &Part, max_len: u32) -> Result<String, MimeError> {
        raw::text(self.txn, part.index, max_len)
    }

    /// A part's whole transfer-decoded content, read in 1 MiB pieces.
    pub fn content(&self, part: &Part) -> Result<Vec<u8>, MimeError> {
        let mut out = Vec::with_capacity(usize::try_from(part.decoded_size).unwrap_or(0));
        while (out.len() as u64) < part.decoded_size {
            let piece = raw::content(self.txn, part.index, out.len() as u64, READ_CHUNK)?;
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// A part's own header fields (for index 0, the message's).
    pub fn headers(&self, part: &Part) -> Result<Vec<crate::Header>, MimeError> {
        raw::part_headers(self.txn, part.index)
    }
}

impl Part {
    /// Whether the part is an attachment: not a multipart, and either
    /// `Content-Disposition: attachment` or a file name.
    pub fn is_attachment(&self) -> bool {
        self.kind != PartKind::Multipart
            && (self.disposition.as_deref() == Some("attachment") || self.filename.is_some())
    }

    /// The file name's extension, lower-cased, without the dot.
    pub fn extension(&self) -> Option<String> {
        let name = self.filename.as_deref()?;
        let (_, ext) = name.rsplit_once('.')?;
        Some(ext.trim().to_ascii_lowercase())
    }
}

impl MimeError {
    /// The reason as text.
    pub fn reason(&self) -> String {
        match self {
            MimeError::Unavailable(m) | MimeError::TooComplex(m) | MimeError::Unparsable(m) => {
                m.clone()
            }
            MimeError::NoSuchPart(i) => format!("no MIME part {i}"),
            MimeError::NotText(i) => format!("MIME part {i} is not text"),
        }
    }
}
