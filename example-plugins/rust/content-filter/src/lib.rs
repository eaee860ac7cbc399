//! Reject or tag messages whose subject or body matches patterns, after MIME
//! decoding (encoded words, base64, quoted-printable, charsets) with
//! `mail-parser`.
//!
//! Config keys: `subject` and `body` (lists of regular expressions, matched
//! case-insensitively against the decoded subject and the decoded text and
//! HTML parts), `action` ("reject" or "tag", default "reject"), `header`
//! (header added when tagging, default "X-Content-Filter"), `subject_tag`
//! (text put in front of the subject when tagging, optional).
//! Leaves the transaction note `content_filter.result` ("clean" or the rule).
//!
//! A message whose body is one plain-text part needing no decoding (see the
//! `plain-text` crate) is matched without parsing the body: the header
//! block alone gives the subject, and the body is the text. Any other
//! message is walked by its MIME structure and only its text and HTML parts
//! are decoded, never its attachments.

use mail_parser::{MessageParser, MimeHeaders};
use plain_text::mime;
use regex::{Regex, RegexBuilder};
use wasmtp_plugin_sdk::{Config, Connection, Hooks, Plugin, Transaction, Verdict, export_plugin};

struct ContentFilter {
    subject: Vec<Regex>,
    body: Vec<Regex>,
    reject: bool,
    header: String,
    subject_tag: Option<String>,
}

fn compile(config: &Config, key: &str) -> Result<Vec<Regex>, String> {
    config
        .strings(key)
        .iter()
        .map(|p| {
            RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{key}: bad pattern {p:?}: {e}"))
        })
        .collect()
}

impl ContentFilter {
    /// The first rule matching the subject or one of the texts, as
    /// "subject:<pattern>" or "body:<pattern>".
    fn first_match<T: AsRef<str>>(
        &self,
        subject: &str,
        texts: impl Iterator<Item = T>,
    ) -> Option<String> {
        if let Some(r) = self.subject.iter().find(|r| r.is_match(subject)) {
            return Some(format!("subject:{}", r.as_str()));
        }
        for text in texts {
            if let Some(r) = self.body.iter().find(|r| r.is_match(text.as_ref())) {
                return Some(format!("body:{}", r.as_str()));
            }
        }
        None
    }

    /// The first rule matching the decoded message of `txn`. The body is
    /// held once: read by itself for a plain single part, else read
    /// straight into one buffer after the header block for the MIME parse.
    fn matched(&self, txn: &Transaction) -> Option<String> {
        let head = txn.header_block();
        if let Some(parsed) = plain_text::parse_head(&head)
            && plain_text::single_plain_part(&parsed)
        {
            let body = txn.body();
            if let Some(text) = plain_text::identity_text(&parsed, &body) {
                let subject = parsed.subject().unwrap_or("");
                return self.first_match(subject, std::iter::once(text));
            }
        }
        let raw = plain_text::whole_message(head, txn.body_size(), |o, n| txn.read_body(o, n));
        let (head, _) = mime::split_entity(&raw);
        let parsed = MessageParser::default().parse(head);
        let subject = parsed.as_ref().and_then(|m| m.subject()).unwrap_or("");
        let mut texts = Vec::new();
        collect_texts(&raw, 0, &mut texts);
        self.first_match(subject, texts.iter())
    }
}

/// Multipart nesting looked into (no mail client nests this deep).
const MAX_NESTING: u32 = 32;

/// The decoded text and HTML body parts of `entity` and its parts, walked
/// by MIME structure (`plain_text::mime`): each text part is decoded on
/// its own (transfer encoding, charset; HTML also as text), attachments
/// and nested messages are never decoded.
fn collect_texts(entity: &[u8], nesting: u32, out: &mut Vec<String>) {
    let (head, body) = mime::split_entity(entity);
    let Some(head) = MessageParser::default().parse(head) else {
        return;
    };
    let (main, sub) = mime::media_type(&head);
    if main == "multipart" {
        let Some(boundary) = head.content_type().and_then(|ct| ct.attribute("boundary")) else {
            return;
        };
        if nesting < MAX_NESTING {
            for part in mime::split_multipart(body, boundary.as_bytes()) {
                collect_texts(part, nesting + 1, out);
            }
        }
        return;
    }
    let attachment = head
        .content_disposition()
        .is_some_and(|d| d.is_attachment());
    if main != "text" || !matches!(sub.as_str(), "plain" | "html") || attachment {
        return;
    }
    let Some(part) = MessageParser::default().parse(entity) else {
        return;
    };
    if let Some(text) = part.body_text(0) {
        out.push(text.into_owned());
    }
    if sub == "html"
        && let Some(html) = part.body_html(0)
    {
        out.push(html.into_owned());
    }
}

impl Plugin for ContentFilter {
    fn init(config: &Config) -> Result<Self, String> {
        let reject = match config.str("action").unwrap_or("reject") {
            "reject" => true,
            "tag" => false,
            other => {
                return Err(format!(
                    "action must be \"reject\" or \"tag\", not {other:?}"
                ));
            }
        };
        Ok(Self {
            subject: compile(config, "subject")?,
            body: compile(config, "body")?,
            reject,
            header: config
                .str("header")
                .unwrap_or("X-Content-Filter")
                .to_string(),
            subject_tag: config.str("subject_tag").map(str::to_string),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, _conn: &Connection, txn: &Transaction) -> Verdict {
        let Some(rule) = self.matched(txn) else {
            txn.set_note("content_filter.result", "clean");
            return Verdict::Declined;
        };
        txn.set_note("content_filter.result", &rule);
        if self.reject {
            return Verdict::deny("5.7.1", "message content rejected by policy");
        }
        if let Err(e) = txn.add_header(&self.header, &format!("matched {rule}")) {
            wasmtp_plugin_sdk::warn(&format!("cannot tag: {e}"));
        }
        if let Some(tag) = &self.subject_tag {
            let subject = txn.header("Subject").into_iter().next().unwrap_or_default();
            if !subject.starts_with(tag.as_str()) {
                let _ = txn.replace_header("Subject", &format!("{tag} {subject}"));
            }
        }
        Verdict::Declined
    }
}

export_plugin!(ContentFilter);
