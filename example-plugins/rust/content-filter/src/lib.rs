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
//! block alone gives the subject, and the body is the text.

use mail_parser::{Message, MessageParser};
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
        let msg = MessageParser::default().parse(&raw)?;
        self.matched_mime(&msg)
    }

    /// The first rule matching a parsed message's subject, text and HTML parts.
    fn matched_mime(&self, msg: &Message<'_>) -> Option<String> {
        let texts = (0..msg.text_body_count()).filter_map(|i| msg.body_text(i));
        let htmls = (0..msg.html_body_count()).filter_map(|i| msg.body_html(i));
        self.first_match(msg.subject().unwrap_or(""), texts.chain(htmls))
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
