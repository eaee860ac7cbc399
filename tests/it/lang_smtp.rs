//! The JavaScript, Python and C example plugins (and the mixed chain with a
//! Rust plugin) in the real gateway: the `wasmtp` binary started with a
//! `[[plugins]]` chain, real SMTP over TCP, the message read back from the
//! Maildir it was delivered to.

use crate::common;
use crate::plugin_support;

use common::{Gateway, LOCAL};
use plugin_support::{plugin_path, root};

/// `[plugin_host]` for tests plus `[[plugins]]` entries (name, file, config TOML).
fn chain_config(plugins: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n",
        root().join("target/wasmtp-cache")
    );
    for (name, file, config) in plugins {
        text.push_str(&format!(
            "[[plugins]]\nname = {name:?}\npath = {:?}\n[plugins.config]\n{config}\n\n",
            plugin_path(file)
        ));
    }
    text
}

fn header_names(msg: &str) -> Vec<String> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

fn field<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
        .collect()
}

const JS_RULES: &str = r#"
[[plugins.config.rules]]
name = "no-message-id"
header = "Message-ID"
absent = true
score = 1.5
[[plugins.config.rules]]
name = "bulk-mailer"
header = "X-Mailer"
pattern = "bulk"
score = 3
"#;

#[test]
fn js_header_rules_stamps_the_delivered_message() {
    let gw = Gateway::start(&chain_config(&[("header-rules", "header-rules", JS_RULES)]));
    let mut c = gw.connect();
    let r = c.send_mail(
        "alice@example.org",
        &["bob@example.test"],
        b"From: alice@example.org\r\nSubject: hi\r\nX-Mailer: bulk 1.0\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let msg = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert_eq!(
        field(&msg, "X-Rule-Score"),
        ["4.5 (no-message-id, bulk-mailer)"]
    );
    assert!(msg.ends_with("\r\n\r\nhello\r\n"), "{msg}");
}

#[test]
fn python_spam_score_rejects_spam_and_tags_ham_over_smtp() {
    let gw = Gateway::start(&chain_config(&[(
        "spam-score",
        "spam-score",
        "threshold = 5\nwords = { viagra = 4, casino = 2 }",
    )]));
    let mut c = gw.connect();
    let r = c.send_mail(
        "alice@example.org",
        &["bob@example.test"],
        b"Subject: offer\r\n\r\nviagra and casino\r\n",
    );
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(r.text.contains("5.7.1"), "{}", r.text);
    assert!(r.text.contains("score 6"), "{}", r.text);
    // The session goes on: a clean message is accepted and tagged.
    c.expect("MAIL FROM:<alice@example.org>", 250);
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: casino night\r\n\r\nsee you\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1, "only the clean message is delivered");
    let msg = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert_eq!(field(&msg, "X-Spam-Score"), ["2/5 (casino)"]);
}

#[test]
fn c_fast_guard_refuses_a_bare_ip_helo_and_too_many_recipients() {
    let gw = Gateway::start(&chain_config(&[(
        "fast-guard",
        "fast-guard",
        "max_recipients = 1\nmax_message_size = 1000",
    )]));
    let mut c = gw.connect();
    let r = c.cmd("HELO 127.0.0.1");
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(r.text.contains("brackets"), "{}", r.text);
    c.expect("EHLO [127.0.0.1]", 250);
    let r = c.cmd("MAIL FROM:<alice@example.org> SIZE=5000");
    assert_eq!(r.code, 552, "{}", r.text);
    c.expect("MAIL FROM:<alice@example.org> SIZE=100", 250);
    c.expect("RCPT TO:<a@example.test>", 250);
    let r = c.cmd("RCPT TO:<b@example.test>");
    assert_eq!(r.code, 452, "{}", r.text);
    c.expect("DATA", 354);
    c.send(b"Subject: one\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    assert_eq!(gw.delivered().len(), 1);
}

#[test]
fn mixed_chain_of_four_languages_over_smtp() {
    let gw = Gateway::start(&chain_config(&[
        (
            "fast-guard",
            "fast-guard",
            "max_recipients = 10\nstamp_header = \"X-Guard\"",
        ),
        ("header-rules", "header-rules", JS_RULES),
        (
            "spam-score",
            "spam-score",
            "threshold = 6\nreject = false\nwords = { casino = 2 }",
        ),
        (
            "header-stamp",
            "header-stamp",
            "notes = [\"helo-check\", \"rule-score\", \"spam-score\"]",
        ),
    ]));
    let mut c = gw.connect();
    let r = c.send_mail(
        "alice@example.org",
        &["bob@example.test"],
        b"From: alice@example.org\r\nSubject: casino\r\nX-Mailer: bulk 1.0\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let msg = String::from_utf8_lossy(&msgs[0]).into_owned();
    let names = header_names(&msg);
    let ours: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("X-"))
        .collect();
    assert_eq!(
        ours,
        [
            "X-Mailer",
            "X-Guard",
            "X-Rule-Score",
            "X-Spam-Score",
            "X-Wasmtp-Session",
            "X-Wasmtp-Client",
            "X-Wasmtp-Note",
            "X-Wasmtp-Note",
            "X-Wasmtp-Note",
        ],
        "{msg}"
    );
    assert_eq!(field(&msg, "X-Guard"), ["rcpts=1 body=7"]);
    assert_eq!(
        field(&msg, "X-Spam-Score"),
        ["6.5/6 (casino, rule-score=4.5)"]
    );
    assert_eq!(
        field(&msg, "X-Wasmtp-Note"),
        ["helo-check=ok", "rule-score=4.5", "spam-score=6.5"]
    );
}

#[test]
fn trapping_js_and_python_plugins_are_contained_over_smtp() {
    let gw = Gateway::start(&chain_config(&[
        ("js-trap", "fixtures/js-trap", ""),
        ("py-trap", "fixtures/py-trap", ""),
    ]));
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    // js-trap throws for trap* recipients: the default policy answers 451.
    let r = c.cmd("RCPT TO:<trap@example.test>");
    assert_eq!(r.code, 451, "{}", r.text);
    // Both plugins run fine for the next recipient; the message is delivered.
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: after a trap\r\n\r\nstill here\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    // A second connection is served normally.
    let mut c2 = gw.connect();
    let r = c2.send_mail(
        "carol@example.org",
        &["bob@example.test"],
        b"Subject: second\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(gw.delivered().len(), 2);
}
