//! Refuse messages carrying attachments with banned file extensions or MIME
//! types, looking into nested messages (`message/rfc822`).
//!
//! Config keys: `extensions` (list, case-insensitive, without dot; default a
//! list of Windows executables and scripts), `types` (list of MIME types,
//! `type/subtype` or `type/*`; default executables), `max_depth` (nested
//! message depth examined, default 3), `max_parts` (MIME entities examined
//! before the message is refused as too complex, default 1000, which is
//! also the gateway's own bound).
//!
//! The message's structure comes from the gateway's MIME view
//! (`wasmtp_plugin_sdk::mime`): parsed once by the host for the whole
//! chain, file names decoded (RFC 2231, RFC 2047). Only names and types
//! matter, so no part body crosses into the plugin. A message the host
//! finds too complex to describe (too many parts, nesting too deep) is
//! refused: what cannot be examined is not passed.

use wasmtp_plugin_sdk::mime::{Mime, MimeError, Part, PartKind};
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
    max_parts: usize,
}

impl AttachmentBlock {
    fn banned_type(&self, ctype: &str) -> bool {
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(main) => ctype.split('/').next() == Some(main),
            None => *t == ctype,
        })
    }

    /// The reason one part's own name or type is banned.
    fn banned(&self, part: &Part) -> Option<String> {
        if let Some(ext) = part.extension()
            && self.extensions.contains(&ext)
        {
            let name = part.filename.as_deref().unwrap_or("").to_ascii_lowercase();
            return Some(format!("attachment {name:?} has a banned extension"));
        }
        self.banned_type(&part.content_type)
            .then(|| format!("attachment type {} is not accepted", part.content_type))
    }

    /// The first banned part, or why the message cannot be examined.
    fn check(&self, parts: &[Part]) -> Option<String> {
        if parts.len() > self.max_parts {
            return Some(format!(
                "message has more than {} MIME parts",
                self.max_parts
            ));
        }
        // Nested-message depth of each part: parts come parents first.
        let mut nested = vec![0u64; parts.len()];
        for (i, part) in parts.iter().enumerate() {
            if let Some(p) = part.parent.map(|p| p as usize)
                && p < i
            {
                let inside = u64::from(parts[p].kind == PartKind::Message);
                nested[i] = nested[p] + inside;
            }
            if nested[i] > self.max_depth {
                continue;
            }
            if let Some(reason) = self.banned(part) {
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
        let found = match Mime::of(txn) {
            Ok(mime) => self.check(&mime.parts),
            Err(MimeError::TooComplex(reason)) => Some(reason),
            Err(e) => {
                wasmtp_plugin_sdk::warn(&format!("no MIME view: {}", e.reason()));
                None
            }
        };
        match found {
            Some(reason) => {
                txn.set_note("attachment_block.reason", &reason);
                Verdict::deny("5.7.1", reason)
            }
            None => Verdict::Declined,
        }
    }
}

export_plugin!(AttachmentBlock);
