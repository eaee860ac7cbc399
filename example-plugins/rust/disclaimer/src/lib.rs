//! Appends a footer to the text/plain parts of a message, MIME-aware: the
//! footer goes at the end of each text/plain part (single-part messages and
//! every text/plain part of a multipart message), in that part's transfer
//! encoding (none/7bit/8bit or quoted-printable; base64 parts are left alone
//! and noted). HTML parts and attachments are never touched.
//!
//! Config keys: `text` (the footer; "\n" separates lines; required),
//! `separator` (line put before the footer, default "-- ").
//! Leaves the transaction note `disclaimer.parts` = number of parts changed.
//!
//! A message whose body is one plain-text part needing no decoding (see the
//! `plain-text` crate) gets its footer appended without a MIME parse; any
//! other is walked by its MIME structure, and only its text/plain parts
//! are decoded (a message of large attachments costs a boundary scan).

use mail_parser::{Encoding, MessageParser, MimeHeaders};
use plain_text::mime;
use wasmtp_plugin_sdk::{Config, Connection, Hooks, Plugin, Transaction, Verdict, export_plugin};

/// Multipart nesting looked into (no mail client nests this deep).
const MAX_NESTING: u32 = 32;

struct Disclaimer {
    lines: Vec<String>,
    separator: String,
}

/// Quoted-printable encoding of one footer line (RFC 2045 section 6.7).
fn qp(line: &str) -> String {
    let mut out = String::new();
    for b in line.bytes() {
        if (b == b' ' || b.is_ascii_graphic()) && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("=20");
    }
    out
}

impl Disclaimer {
    fn footer(&self, encoding: Encoding) -> String {
        let lines = std::iter::once(&self.separator).chain(self.lines.iter());
        let lines: Vec<String> = match encoding {
            Encoding::QuotedPrintable => lines.map(|l| qp(l)).collect(),
            _ => lines.cloned().collect(),
        };
        lines.join("\r\n")
    }

    /// Whether the footer is already in `text` (a message passing twice).
    fn already_in(&self, text: &str) -> bool {
        self.lines
            .first()
            .is_some_and(|l| text.contains(l.as_str()))
    }

    /// The footer as inserted at offset `end` of `raw`: on a line of its own,
    /// before a following boundary line.
    fn insert_at(&self, raw: &[u8], end: usize, encoding: Encoding) -> Vec<u8> {
        let footer = self.footer(encoding);
        let insert = if raw[end..].starts_with(b"\r\n--") {
            format!("\r\n{footer}")
        } else if raw[..end].ends_with(b"\r\n") {
            format!("{footer}\r\n")
        } else {
            format!("\r\n{footer}\r\n")
        };
        insert.into_bytes()
    }

    /// Returns the new body, or None when there was nothing to change.
    ///
    /// Memory: the body is held once for the MIME parse (read straight
    /// after the header block), the parse is dropped before the new body
    /// is built, and the new body is assembled from slices of the old one:
    /// at most twice the body at any moment, never the four copies of
    /// reading, appending, splicing and splitting.
    fn rewrite(&self, txn: &Transaction) -> Option<(Vec<u8>, usize)> {
        let head = txn.header_block();
        if let Some(parsed) = plain_text::parse_head(&head)
            && plain_text::single_plain_part(&parsed)
        {
            let mut body = txn.body();
            if let Some(text) = plain_text::identity_text(&parsed, &body) {
                if self.already_in(text) {
                    return None;
                }
                // The part ends where the message ends; an empty body ends
                // right after the header block's CRLF.
                let footer = if body.is_empty() {
                    self.insert_at(&head, head.len(), Encoding::None)
                } else {
                    self.insert_at(&body, body.len(), Encoding::None)
                };
                body.extend_from_slice(&footer);
                return Some((body, 1));
            }
        }
        let head_len = head.len();
        let raw = plain_text::whole_message(head, txn.body_size(), |o, n| txn.read_body(o, n));
        let mut inserts = self.inserts(txn, &raw, head_len)?;
        let count = inserts.len();
        inserts.sort_by_key(|(at, _)| *at);
        let grown: usize = inserts.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(raw.len() - head_len + grown);
        let mut from = head_len;
        for (at, bytes) in inserts {
            out.extend_from_slice(&raw[from..at]);
            out.extend_from_slice(&bytes);
            from = at;
        }
        out.extend_from_slice(&raw[from..]);
        Some((out, count))
    }

    /// Where footers go in `raw` (offsets past the header block) and their
    /// bytes; `None` when nothing changes. The message is walked by its
    /// MIME structure (`plain_text::mime`): only text/plain parts are
    /// parsed (to read their decoded text), attachments never are.
    fn inserts(
        &self,
        txn: &Transaction,
        raw: &[u8],
        head_len: usize,
    ) -> Option<Vec<(usize, Vec<u8>)>> {
        let mut inserts: Vec<(usize, Vec<u8>)> = Vec::new();
        self.walk(txn, raw, raw, 0, &mut inserts);
        inserts.retain(|(at, _)| *at >= head_len && *at <= raw.len());
        (!inserts.is_empty()).then_some(inserts)
    }

    /// Collects the footers of `entity` (a slice of `raw`) and its parts.
    fn walk(
        &self,
        txn: &Transaction,
        raw: &[u8],
        entity: &[u8],
        nesting: u32,
        inserts: &mut Vec<(usize, Vec<u8>)>,
    ) {
        let (head, body) = mime::split_entity(entity);
        let Some(head) = MessageParser::default().parse(head) else {
            return;
        };
        let (main, sub) = mime::media_type(&head);
        if main == "multipart" {
            let Some(boundary) = head.content_type().and_then(|ct| ct.attribute("boundary")) else {
                return;
            };
            if nesting >= MAX_NESTING {
                return;
            }
            for part in mime::split_multipart(body, boundary.as_bytes()) {
                self.walk(txn, raw, part, nesting + 1, inserts);
            }
            return;
        }
        let attachment = head
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        if main != "text" || sub != "plain" || attachment {
            return;
        }
        let encoding = match head.content_transfer_encoding() {
            Some(cte) if cte.eq_ignore_ascii_case("base64") => {
                txn.set_note("disclaimer.skipped", "base64 text part");
                return;
            }
            Some(cte) if cte.eq_ignore_ascii_case("quoted-printable") => Encoding::QuotedPrintable,
            _ => Encoding::None,
        };
        // This part alone, decoded, to see whether the footer is there.
        let text = MessageParser::default()
            .parse(entity)
            .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
            .unwrap_or_default();
        if self.already_in(&text) {
            return;
        }
        let end = mime::offset_in(raw, entity) + entity.len();
        inserts.push((end, self.insert_at(raw, end, encoding)));
    }
}

impl Plugin for Disclaimer {
    fn init(config: &Config) -> Result<Self, String> {
        let text = config.str("text").ok_or("disclaimer needs `text`")?;
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        if lines.iter().any(|l| l.contains('\0')) {
            return Err("`text` contains NUL".into());
        }
        Ok(Self {
            lines,
            separator: config.str("separator").unwrap_or("-- ").to_string(),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, _conn: &Connection, txn: &Transaction) -> Verdict {
        if let Some((body, parts)) = self.rewrite(txn) {
            match txn.replace_body(&body) {
                Ok(()) => txn.set_note("disclaimer.parts", &parts.to_string()),
                Err(e) => wasmtp_plugin_sdk::warn(&format!("footer not added: {e}")),
            }
        }
        Verdict::Declined
    }
}

export_plugin!(Disclaimer);
