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

use mail_parser::MessageParser;
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
    /// The first rule that matches, as "subject:<pattern>" or "body:<pattern>".
    fn matched(&self, raw: &[u8]) -> Option<String> {
        let msg = MessageParser::default().parse(raw)?;
        let subject = msg.subject().unwrap_or("");
        if let Some(r) = self.subject.iter().find(|r| r.is_match(subject)) {
            return Some(format!("subject:{}", r.as_str()));
        }
        let texts = (0..msg.text_body_count()).filter_map(|i| msg.body_text(i));
        let htmls = (0..msg.html_body_count()).filter_map(|i| msg.body_html(i));
        for text in texts.chain(htmls) {
            if let Some(r) = self.body.iter().find(|r| r.is_match(&text)) {
                return Some(format!("body:{}", r.as_str()));
            }
        }
        None
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
        let mut raw = txn.header_block();
        raw.extend_from_slice(&txn.body());
        let Some(rule) = self.matched(&raw) else {
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
