//! One chain of four languages: C (`fast-guard`) → JavaScript
//! (`header-rules`) → Python (`spam-score`) → Rust (`header-stamp`), every
//! one built from source. The delivered message shows that each plugin acted,
//! in chain order, and notes written in one language are read in another.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, Verdict};

fn chain(spam_reject: bool) -> Vec<PluginConfig> {
    vec![
        entry(
            "fast-guard",
            "fast-guard",
            "max_recipients = 10\nmax_message_size = 100000\nstamp_header = \"X-Guard\"",
        ),
        entry(
            "header-rules",
            "header-rules",
            r#"
            [[rules]]
            name = "no-message-id"
            header = "Message-ID"
            absent = true
            score = 1.5
            [[rules]]
            name = "bulk-mailer"
            header = "X-Mailer"
            pattern = "bulk"
            score = 3
            "#,
        ),
        entry(
            "spam-score",
            "spam-score",
            &format!(
                "threshold = 6\nreject = {spam_reject}\nwords = {{ casino = 2 }}\nimport_notes = [\"rule-score\"]"
            ),
        ),
        entry(
            "header-stamp",
            "header-stamp",
            r#"notes = ["helo-check", "rule-score", "spam-score"]"#,
        ),
    ]
}

/// Connect, EHLO, MAIL, RCPT through the chain.
async fn envelope(
    session: &mut wasmtp::plugin::PluginSession,
    ctx: &mut wasmtp::context::SessionContext,
) {
    assert_eq!(session.run(Hook::Connect, ctx).await, Verdict::Declined);
    assert_eq!(
        session.run(Hook::Ehlo("mx.example.org"), ctx).await,
        Verdict::Declined
    );
    begin(ctx, "alice@example.org", &[]);
    assert_eq!(
        session.run(Hook::Mail("alice@example.org", &[]), ctx).await,
        Verdict::Declined
    );
    assert_eq!(
        session.run(Hook::Rcpt("bob@example.test", &[]), ctx).await,
        Verdict::Declined
    );
    begin(ctx, "alice@example.org", &["bob@example.test"]);
}

#[tokio::test]
async fn four_languages_act_in_order_and_read_each_others_notes() {
    // spam-score in tagging mode, so the chain runs to the end.
    let host = load(&chain(false)).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    envelope(&mut session, &mut ctx).await;
    set_message(
        &mut ctx,
        "From: alice@example.org\nSubject: casino\nX-Mailer: bulk 1.0\n\nhello\n",
    );
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(v, Verdict::Declined);

    let out = delivered(&ctx);
    let names: Vec<String> = out
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    // The original fields, then one field per plugin, in chain order.
    assert_eq!(
        names,
        [
            "From",
            "Subject",
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
        "{out}"
    );
    // C counted the envelope; JS scored the headers.
    assert_eq!(header(&ctx, "X-Guard"), vec!["rcpts=1 body=7"]);
    assert_eq!(
        header(&ctx, "X-Rule-Score"),
        vec!["4.5 (no-message-id, bulk-mailer)"]
    );
    // Python read the JavaScript plugin's note and added it: 2 + 4.5.
    assert_eq!(
        header(&ctx, "X-Spam-Score"),
        vec!["6.5/6 (casino, rule-score=4.5)"]
    );
    // Rust read the notes left by C (connection), JS and Python (transaction).
    assert_eq!(
        header(&ctx, "X-Wasmtp-Note"),
        vec!["helo-check=ok", "rule-score=4.5", "spam-score=6.5"]
    );
    assert!(out.ends_with("\r\n\r\nhello\r\n"), "{out}");
}

#[tokio::test]
async fn a_python_rejection_driven_by_a_javascript_note_stops_the_chain() {
    let host = load(&chain(true)).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    envelope(&mut session, &mut ctx).await;
    // "casino" alone scores 2 (< 6); with the JS rule score of 4.5 it is 6.5.
    set_message(
        &mut ctx,
        "From: alice@example.org\nSubject: casino\nX-Mailer: bulk 1.0\n\nhello\n",
    );
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 Message looks like spam (score 6.5)"
    );
    // The Rust plugin after the rejecting one did not run.
    assert!(header(&ctx, "X-Wasmtp-Session").is_empty());
    assert_eq!(txn_note(&ctx, "header_stamp.done"), None);
}
