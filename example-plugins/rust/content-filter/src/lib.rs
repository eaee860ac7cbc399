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
//! The text comes from the gateway's MIME view (`wasmtp_plugin_sdk::mime`),
//! parsed once by the host for the whole chain: only the text and HTML
//! parts that are not attachments (nested messages included) cross into
//! the plugin, already decoded to UTF-8; HTML is matched both as written
//! and as text. The subject is decoded here from the header block alone.

use mail_parser::MessageParser;
use mail_parser::decoders::html::html_to_text;
use regex::{Regex, RegexBuilder};
use wasmtp_plugin_sdk::mime::Mime;
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
        let parsed = MessageParser::default().parse(&head);
        let subject = parsed.as_ref().and_then(|m| m.subject()).unwrap_or("");
        let mut texts = Vec::new();
        match Mime::of(txn) {
            Ok(mime) => {
                for part in mime.body_texts() {
                    let Ok(text) = mime.text(part, MAX_TEXT) else {
                        continue;
                    };
                    if part.content_type == "text/html" {
                        texts.push(html_to_text(&text));
                    }
                    texts.push(text);
                }
            }
            Err(e) => wasmtp_plugin_sdk::warn(&format!("no MIME view: {}", e.reason())),
        }
        self.first_match(subject, texts.iter())
    }
}

/// Most octets of one part's text matched (the message size bounds it too).
const MAX_TEXT: u32 = 32 << 20;

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
