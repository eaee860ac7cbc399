//! The JavaScript example plugin (`example-plugins/js/header-rules`) and the
//! JavaScript trap fixture, built from source by `cargo xtask plugins` and
//! run through the real plugin host.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

const RULES: &str = r#"
[[rules]]
name = "no-message-id"
header = "Message-ID"
absent = true
score = 1.5

[[rules]]
name = "bulk-mailer"
header = "X-Mailer"
pattern = "mass ?mail|bulk"
score = 3

[[rules]]
name = "shouting-subject"
header = "Subject"
pattern = "^[^a-z]*[A-Z]{6,}[^a-z]*$"
flags = ""
score = 2
"#;

fn header_rules(extra: &str) -> PluginConfig {
    entry("header-rules", "header-rules", &format!("{extra}\n{RULES}"))
}

#[tokio::test]
async fn header_rules_scores_adds_header_and_note() {
    let host = load(&[header_rules("")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(
        &mut ctx,
        "From: alice@example.org\nSubject: BUY NOW CHEAPEST\nX-Mailer: MassMail 2.0\n\nhello\n",
    );
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(v, Verdict::Declined);
    assert_eq!(
        header(&ctx, "X-Rule-Score"),
        vec!["6.5 (no-message-id, bulk-mailer, shouting-subject)".to_string()]
    );
    assert_eq!(txn_note(&ctx, "rule-score").as_deref(), Some("6.5"));
    // The header is appended to the header block; the body is untouched.
    let out = delivered(&ctx);
    assert!(
        out.contains("X-Mailer: MassMail 2.0\r\nX-Rule-Score: 6.5 ("),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nhello\r\n"), "{out}");
}

#[tokio::test]
async fn header_rules_clean_message_scores_zero() {
    let host = load(&[header_rules("")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(
        &mut ctx,
        "From: alice@example.org\nMessage-ID: <1@example.org>\nSubject: Lunch?\n\nhi\n",
    );
    assert_eq!(
        session.run(Hook::DataPost, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(header(&ctx, "X-Rule-Score"), vec!["0".to_string()]);
    assert_eq!(txn_note(&ctx, "rule-score").as_deref(), Some("0"));
}

#[tokio::test]
async fn header_rules_rejects_at_threshold_and_the_instance_serves_the_next_message() {
    let host = load(&[header_rules("reject_at = 4")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(&mut ctx, "Subject: hi\nX-Mailer: bulk sender\n\nx\n");
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert!(matches!(v, Verdict::Deny(_)), "{v:?}");
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 Message refused by header rules (score 4.5)"
    );
    // Same connection, next transaction: the same instance scores again.
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(&mut ctx, "Message-ID: <2@x>\nSubject: fine\n\nx\n");
    assert_eq!(
        session.run(Hook::DataPost, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(header(&ctx, "X-Rule-Score"), vec!["0".to_string()]);
}

#[tokio::test]
async fn header_rules_hooks_it_does_not_want_decline() {
    let host = load(&[header_rules("")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    assert_eq!(
        session.run(Hook::Connect, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(
        session.run(Hook::Helo("mx.example.org"), &mut ctx).await,
        Verdict::Declined
    );
    begin(&mut ctx, "alice@example.org", &[]);
    assert_eq!(
        session
            .run(Hook::Rcpt("bob@example.test", &[]), &mut ctx)
            .await,
        Verdict::Declined
    );
}

#[tokio::test]
async fn header_rules_bad_config_refuses_the_plugin_at_load() {
    let bad = entry(
        "header-rules",
        "header-rules",
        "[[rules]]\nname = \"broken\"\nheader = \"Subject\"\npattern = \"(unclosed\"\n",
    );
    let err = PluginHost::load(&shared_host_config(), &[bad])
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("header-rules"), "{msg}");
    assert!(msg.contains("broken"), "{msg}");
}

#[tokio::test]
async fn a_throwing_js_plugin_is_contained_by_its_failure_policy() {
    let host = load(&[entry("js-trap", "fixtures/js-trap", "")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &[]);
    // The hook throws: the default policy answers 451 4.3.0.
    let v = session
        .run(Hook::Rcpt("trap@example.test", &[]), &mut ctx)
        .await;
    assert!(matches!(v, Verdict::DenySoft(_)), "{v:?}");
    assert_eq!(reply(&v).code(), 451);
    // The failed instance was discarded; a fresh one serves the next call.
    let v = session
        .run(Hook::Rcpt("fine@example.test", &[]), &mut ctx)
        .await;
    assert_eq!(v, Verdict::Declined);
    // Another connection is not affected either.
    let mut other = host.session();
    let mut ctx2 = ctx_from("198.51.100.9:1234");
    begin(&mut ctx2, "carol@example.org", &[]);
    assert_eq!(
        other
            .run(Hook::Rcpt("fine@example.test", &[]), &mut ctx2)
            .await,
        Verdict::Declined
    );
}

#[tokio::test]
async fn a_looping_js_plugin_is_stopped_by_its_cpu_budget() {
    let mut p = entry("js-trap", "fixtures/js-trap", "mode = \"loop\"");
    p.failure_policy = wasmtp::plugin::FailurePolicy::Reject;
    let host = load(&[p]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &[]);
    let v = session
        .run(Hook::Rcpt("trap@example.test", &[]), &mut ctx)
        .await;
    assert_eq!(reply(&v).code(), 554, "{v:?}");
    let v = session
        .run(Hook::Rcpt("fine@example.test", &[]), &mut ctx)
        .await;
    assert_eq!(v, Verdict::Declined);
}
