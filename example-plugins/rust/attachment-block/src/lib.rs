//! Refuse messages carrying attachments with banned file extensions or MIME
//! types, looking into nested messages (`message/rfc822`).
//!
//! Config keys: `extensions` (list, case-insensitive, without dot; default a
//! list of Windows executables and scripts), `types` (list of MIME types,
//! `type/subtype` or `type/*`; default executables), `max_depth` (nested
//! message depth examined, default 3).
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

struct AttachmentBlock {
    extensions: Vec<String>,
    types: Vec<String>,
    max_depth: u64,
}

impl AttachmentBlock {
    fn banned_type(&self, ctype: &str) -> bool {
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(main) => ctype.split('/').next() == Some(main),
            None => *t == ctype,
        })
    }

    /// The first banned attachment as a human-readable reason.
    fn find(&self, msg: &Message<'_>, depth: u64) -> Option<String> {
        for part in msg.attachments() {
            let name = part.attachment_name().unwrap_or("").to_ascii_lowercase();
            if let Some((_, ext)) = name.rsplit_once('.')
                && self.extensions.iter().any(|e| e == ext)
            {
                return Some(format!("attachment {name:?} has a banned extension"));
            }
            if let Some(ct) = part.content_type() {
                let ctype = match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                }
                .to_ascii_lowercase();
                if self.banned_type(&ctype) {
                    return Some(format!("attachment type {ctype} is not accepted"));
                }
            }
            if let Some(inner) = part.message()
                && depth < self.max_depth
                && let Some(reason) = self.find(inner, depth + 1)
            {
                return Some(reason);
            }
        }
        None
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
        // One buffer for the whole message (bounded copies: a 30 MiB
        // message fits the default 64 MiB cap with its decoded parts).
        let raw = plain_text::whole_message(head, txn.body_size(), |o, n| txn.read_body(o, n));
        let Some(msg) = MessageParser::default().parse(&raw) else {
            return Verdict::Declined;
        };
        match self.find(&msg, 0) {
            Some(reason) => {
                txn.set_note("attachment_block.reason", &reason);
                Verdict::deny("5.7.1", reason)
            }
            None => Verdict::Declined,
        }
    }
}

export_plugin!(AttachmentBlock);
