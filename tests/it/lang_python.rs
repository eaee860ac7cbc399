//! The Python example plugin (`example-plugins/python/spam-score`) and the
//! Python trap fixture, built from source by `cargo xtask plugins` and run
//! through the real plugin host.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

const RULES: &str = r#"
threshold = 6
words = { viagra = 4, casino = 2, "act now" = 1.5 }
patterns = [
  { name = "money", pattern = '\$\d{3,}', score = 2 },
]
"#;

fn spam_score(extra: &str) -> PluginConfig {
    entry("spam-score", "spam-score", &format!("{extra}\n{RULES}"))
}

#[tokio::test]
async fn spam_score_below_threshold_tags_the_message() {
    let host = load(&[spam_score("")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(
        &mut ctx,
        "Subject: Casino night\n\nCome to the casino tonight!\n",
    );
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(v, Verdict::Declined);
    // "casino" twice (subject and body) at weight 2: 4, below 6.
    assert_eq!(
        header(&ctx, "X-Spam-Score"),
        vec!["4/6 (casinox2)".to_string()]
    );
    assert_eq!(txn_note(&ctx, "spam-score").as_deref(), Some("4"));
}

#[tokio::test]
async fn spam_score_reads_the_body_and_rejects_at_the_threshold() {
    let host = load(&[spam_score("")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(
        &mut ctx,
        "Subject: hello\n\nCheap viagra here.\nAct now, only $999.\n",
    );
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert!(matches!(v, Verdict::Deny(_)), "{v:?}");
    // viagra 4 + act now 1.5 + money 2 = 7.5
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 Message looks like spam (score 7.5)"
    );
    assert_eq!(txn_note(&ctx, "spam-score").as_deref(), Some("7.5"));
}

#[tokio::test]
async fn spam_score_tagging_mode_adds_the_header_and_note() {
    let host = load(&[spam_score("reject = false")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(&mut ctx, "Subject: VIAGRA\n\nviagra viagra\n");
    assert_eq!(
        session.run(Hook::DataPost, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(
        header(&ctx, "X-Spam-Score"),
        vec!["12/6 (viagrax3)".to_string()]
    );
    assert_eq!(txn_note(&ctx, "spam-score").as_deref(), Some("12"));
    assert!(delivered(&ctx).ends_with("X-Spam-Score: 12/6 (viagrax3)\r\n\r\nviagra viagra\r\n"));
}

#[tokio::test]
async fn spam_score_adds_a_score_another_plugin_left_in_a_note() {
    let host = load(&[spam_score("reject = false")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
    set_message(&mut ctx, "Subject: casino\n\nhello\n");
    ctx.txn
        .as_mut()
        .unwrap()
        .notes
        .insert("rule-score".into(), "3.5".into());
    assert_eq!(
        session.run(Hook::DataPost, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(
        header(&ctx, "X-Spam-Score"),
        vec!["5.5/6 (casino, rule-score=3.5)".to_string()]
    );
}

#[tokio::test]
async fn spam_score_bad_regex_refuses_the_plugin_at_load() {
    let bad = entry(
        "spam-score",
        "spam-score",
        "patterns = [ { name = \"oops\", pattern = \"(unclosed\" } ]",
    );
    let err = PluginHost::load(&shared_host_config(), &[bad])
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("spam-score"), "{msg}");
    assert!(msg.contains("patterns[0]"), "{msg}");
}

#[tokio::test]
async fn a_raising_python_plugin_is_contained_by_its_failure_policy() {
    let host = load(&[entry("py-trap", "fixtures/py-trap", "")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &[]);
    let v = session
        .run(Hook::Rcpt("trap@example.test", &[]), &mut ctx)
        .await;
    assert!(matches!(v, Verdict::DenySoft(_)), "{v:?}");
    assert_eq!(reply(&v).code(), 451);
    let v = session
        .run(Hook::Rcpt("fine@example.test", &[]), &mut ctx)
        .await;
    assert_eq!(v, Verdict::Declined);
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
