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
//! The parts come from the gateway's MIME view (`wasmtp_plugin_sdk::mime`):
//! the host parsed the message once for the whole chain and says where each
//! part's body ends in the message body, so the plugin reads only the text
//! of the text/plain parts (to skip those already carrying the footer) and
//! the body once, to splice the footers in. Parts of nested messages
//! (`message/rfc822`) are not touched. Replacing the body makes the host
//! parse the new one for any later plugin that asks.

use wasmtp_plugin_sdk::mime::{Mime, Part, PartKind};
use wasmtp_plugin_sdk::{Config, Connection, Hooks, Plugin, Transaction, Verdict, export_plugin};

/// How a footer is written into a part.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// As is (7bit, 8bit, binary).
    None,
    /// Quoted-printable.
    QuotedPrintable,
}

/// Most octets of a part's text looked at for an existing footer.
const MAX_TEXT: u32 = 32 << 20;

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
            Encoding::None => lines.cloned().collect(),
        };
        lines.join("\r\n")
    }

    /// Whether the footer is already in `text` (a message passing twice).
    fn already_in(&self, text: &str) -> bool {
        self.lines
            .first()
            .is_some_and(|l| text.contains(l.as_str()))
    }

    /// The footer as inserted at offset `end` of `body` (the end of a text
    /// part): on a line of its own, before a following boundary line.
    fn insert_at(&self, body: &[u8], end: usize, encoding: Encoding) -> Vec<u8> {
        let footer = self.footer(encoding);
        let insert = if body[end..].starts_with(b"\r\n--") {
            format!("\r\n{footer}")
        } else if end == 0 || body[..end].ends_with(b"\r\n") {
            format!("{footer}\r\n")
        } else {
            format!("\r\n{footer}\r\n")
        };
        insert.into_bytes()
    }

    /// The new body and how many parts got a footer; `None` when no part
    /// needs one.
    fn rewrite(&self, txn: &Transaction) -> Option<(Vec<u8>, usize)> {
        let mime = match Mime::of(txn) {
            Ok(m) => m,
            Err(e) => {
                txn.set_note("disclaimer.skipped", &e.reason());
                return None;
            }
        };
        let body = txn.body();
        let mut inserts: Vec<(usize, Vec<u8>)> = Vec::new();
        for part in self.targets(&mime.parts) {
            let encoding = match part.transfer_encoding.as_str() {
                "base64" => {
                    txn.set_note("disclaimer.skipped", "base64 text part");
                    continue;
                }
                "quoted-printable" => Encoding::QuotedPrintable,
                _ => Encoding::None,
            };
            let text = mime.text(part, MAX_TEXT).unwrap_or_default();
            if self.already_in(&text) {
                continue;
            }
            let Some((_, end)) = part.body_range else {
                continue;
            };
            let Some(end) = usize::try_from(end).ok().filter(|&e| e <= body.len()) else {
                continue;
            };
            inserts.push((end, self.insert_at(&body, end, encoding)));
        }
        if inserts.is_empty() {
            return None;
        }
        let count = inserts.len();
        inserts.sort_by_key(|(at, _)| *at);
        let grown: usize = inserts.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(body.len() + grown);
        let mut from = 0;
        for (at, bytes) in inserts {
            out.extend_from_slice(&body[from..at]);
            out.extend_from_slice(&bytes);
            from = at;
        }
        out.extend_from_slice(&body[from..]);
        Some((out, count))
    }

    /// The text/plain parts that are not attachments and not inside a
    /// nested message.
    fn targets<'p>(&self, parts: &'p [Part]) -> impl Iterator<Item = &'p Part> {
        parts.iter().filter(move |p| {
            p.kind == PartKind::Text
                && p.content_type == "text/plain"
                && p.disposition.as_deref() != Some("attachment")
                && !in_message(parts, p)
        })
    }
}

/// Whether `part` is inside a `message/rfc822` part.
fn in_message(parts: &[Part], part: &Part) -> bool {
    let mut at = part.parent;
    // Parents come first: each step goes to a lower index, so this ends.
    while let Some(i) = at {
        let Some(p) = parts.get(i as usize).filter(|p| p.index < part.index) else {
            return false;
        };
        if p.kind == PartKind::Message {
            return true;
        }
        at = p.parent.filter(|&q| q < i);
    }
    false
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
