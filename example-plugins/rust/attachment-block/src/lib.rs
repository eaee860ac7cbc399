//! Refuse messages carrying attachments with banned file extensions or MIME
//! types, looking into nested messages (`message/rfc822`).
//!
//! Config keys: `extensions` (list, case-insensitive, without dot; default a
//! list of Windows executables and scripts), `types` (list of MIME types,
//! `type/subtype` or `type/*`; default executables), `max_depth` (nested
//! message depth examined, default 3), `max_parts` (MIME entities examined
//! before the message is refused as too complex, default 1000).
//!
//! Only names and types matter, so the message is walked by its structure:
//! each entity's header block is parsed (with `mail-parser`'s MIME header
//! rules, RFC 2231 names included) and multipart bodies are split at their
//! boundary lines, but no part body is decoded. A 30 MiB message of base64
//! attachments costs one scan for boundaries, not a decode of every part.
//! The one exception is a nested message sent base64 or quoted-printable
//! encoded, which has to be decoded to be looked into.
//!
//! A message whose body is one plain-text part (see the `plain-text` crate)
//! carries no attachment: it is passed from its header block alone, without
//! reading the body.

use mail_parser::{Message, MessageParser, MimeHeaders};
use wasmtp_plugin_sdk::{Config, Connection, Hooks, Plugin, Transaction, Verdict, export_plugin};

const DEFAULT_EXTENSIONS: &[&str] = &[
    "exe", "com", "bat", "cmd", "scr", "pif", "vbs", "vbe", "js", "jse", "wsf", "wsh", "msi",
    "msp", "ps1", "jar", "hta", "cpl", "lnk", "reg", "iso",
];
const DEFAULT_TYPES: &[&str] = &[
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/x-dosexec",
];
/// Multipart nesting beyond which a message is refused (no mail client
/// nests this deep; a hostile one would make the walk recurse).
const MAX_MULTIPART_NESTING: u32 = 32;

struct AttachmentBlock {
    extensions: Vec<String>,
    types: Vec<String>,
    max_depth: u64,
    max_parts: usize,
}

/// Why the walk stopped: a banned attachment, or a message too complex to
/// examine (both refuse the message).
type Found = String;

/// The walk's position: nested-message depth, multipart nesting, entities
/// seen so far.
#[derive(Clone, Copy)]
struct Depth {
    messages: u64,
    multipart: u32,
}

impl AttachmentBlock {
    fn banned_type(&self, ctype: &str) -> bool {
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(main) => ctype.split('/').next() == Some(main),
            None => *t == ctype,
        })
    }

    /// The reason one entity's own name or type is banned.
    fn banned(&self, head: &Message<'_>) -> Option<Found> {
        let name = head.attachment_name().unwrap_or("").to_ascii_lowercase();
        if let Some((_, ext)) = name.rsplit_once('.')
            && self.extensions.iter().any(|e| e == ext)
        {
            return Some(format!("attachment {name:?} has a banned extension"));
        }
        let ct = head.content_type()?;
        let ctype = match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        }
        .to_ascii_lowercase();
        self.banned_type(&ctype)
            .then(|| format!("attachment type {ctype} is not accepted"))
    }

    /// Walks one MIME entity (header block and body) and everything in it.
    fn walk(&self, entity: &[u8], at: Depth, seen: &mut usize) -> Option<Found> {
        *seen += 1;
        if *seen > self.max_parts {
            return Some(format!(
                "message has more than {} MIME parts",
                self.max_parts
            ));
        }
        let (head, body) = plain_text::mime::split_entity(entity);
        let head = MessageParser::default().parse(head)?;
        if let Some(reason) = self.banned(&head) {
            return Some(reason);
        }
        let (main, sub) = plain_text::mime::media_type(&head);
        match main.as_str() {
            "multipart" => {
                let boundary = head.content_type()?.attribute("boundary")?;
                if at.multipart >= MAX_MULTIPART_NESTING {
                    return Some("message nests MIME multiparts too deeply".to_string());
                }
                let inner = Depth {
                    multipart: at.multipart + 1,
                    ..at
                };
                for part in plain_text::mime::split_multipart(body, boundary.as_bytes()) {
                    if let Some(reason) = self.walk(part, inner, seen) {
                        return Some(reason);
                    }
                }
                None
            }
            "message" if matches!(sub.as_str(), "rfc822" | "global") => {
                if at.messages >= self.max_depth {
                    return None;
                }
                let inner = Depth {
                    messages: at.messages + 1,
                    multipart: at.multipart,
                };
                let encoded = head.content_transfer_encoding().is_some_and(|cte| {
                    cte.eq_ignore_ascii_case("base64")
                        || cte.eq_ignore_ascii_case("quoted-printable")
                });
                if !encoded {
                    return self.walk(body, inner, seen);
                }
                // Decoded by mail-parser: this entity only, not the message.
                let parsed = MessageParser::default().parse(entity)?;
                let nested = parsed.root_part().message()?;
                let raw = nested.raw_message();
                self.walk(raw, inner, seen)
            }
            _ => None,
        }
    }
}

impl Plugin for AttachmentBlock {
    fn init(config: &Config) -> Result<Self, String> {
        let list = |key: &str, default: &[&str]| -> Vec<String> {
            match config.get(key) {
                Some(_) => config
                    .strings(key)
                    .into_iter()
                    .map(|s| s.trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
                None => default.iter().map(|s| s.to_string()).collect(),
            }
        };
        Ok(Self {
            extensions: list("extensions", DEFAULT_EXTENSIONS),
            types: list("types", DEFAULT_TYPES),
            max_depth: config.u64("max_depth").unwrap_or(3),
            max_parts: config
                .u64("max_parts")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1000),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, _conn: &Connection, txn: &Transaction) -> Verdict {
        let head = txn.header_block();
        if plain_text::parse_head(&head).is_some_and(|head| plain_text::single_plain_part(&head)) {
            return Verdict::Declined;
        }
        // One buffer for the whole message; nothing is decoded from it.
        let raw = plain_text::whole_message(head, txn.body_size(), |o, n| txn.read_body(o, n));
        let top = Depth {
            messages: 0,
            multipart: 0,
        };
        match self.walk(&raw, top, &mut 0) {
            Some(reason) => {
                txn.set_note("attachment_block.reason", &reason);
                Verdict::deny("5.7.1", reason)
            }
            None => Verdict::Declined,
        }
    }
}

export_plugin!(AttachmentBlock);
