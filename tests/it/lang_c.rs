//! The C example plugin (`example-plugins/c/fast-guard`), built from source
//! by `cargo xtask plugins` (clang-14 + wit-bindgen-c + wit-component) and
//! run through the real plugin host.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

fn guard(config: &str) -> PluginConfig {
    entry("fast-guard", "fast-guard", config)
}

const LIMITS: &str = "max_message_size = 100\nmax_recipients = 2\nstamp_header = \"X-Guard\"";

#[tokio::test]
async fn helo_localhost_is_refused_from_a_remote_client_only() {
    let host = load(&[guard("")]).await;

    let mut remote = client_ctx();
    let mut session = host.session();
    let v = session.run(Hook::Helo("localhost"), &mut remote).await;
    assert_eq!(reply_text(&v), "550 5.7.1 You are not localhost");
    assert_eq!(
        remote.conn.notes.get("helo-check").map(String::as_str),
        Some("localhost")
    );
    let v = session
        .run(Hook::Ehlo("LOCALHOST.localdomain"), &mut remote)
        .await;
    assert_eq!(reply(&v).code(), 550);

    let mut local = ctx_from("127.0.0.1:50000");
    let mut session = host.session();
    assert_eq!(
        session.run(Hook::Ehlo("localhost"), &mut local).await,
        Verdict::Declined
    );
    assert_eq!(
        local.conn.notes.get("helo-check").map(String::as_str),
        Some("ok")
    );
}

#[tokio::test]
async fn helo_bare_ip_is_refused_and_an_address_literal_accepted() {
    let host = load(&[guard("literal_must_match = true")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    let v = session.run(Hook::Helo("203.0.113.7"), &mut ctx).await;
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 An address literal must be in brackets, e.g. [192.0.2.1]"
    );
    let v = session.run(Hook::Ehlo("2001:db8::1"), &mut ctx).await;
    assert_eq!(reply(&v).code(), 550);
    assert_eq!(
        session.run(Hook::Ehlo("[203.0.113.7]"), &mut ctx).await,
        Verdict::Declined
    );
    let v = session.run(Hook::Ehlo("[192.0.2.1]"), &mut ctx).await;
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 Address literal does not match your address"
    );
    let v = session.run(Hook::Ehlo("[192.0.2.1"), &mut ctx).await;
    assert_eq!(reply_text(&v), "550 5.7.1 Malformed address literal");
    assert_eq!(
        session.run(Hook::Ehlo("mx.example.org"), &mut ctx).await,
        Verdict::Declined
    );
    // Without require_fqdn a dotless name is fine.
    assert_eq!(
        session.run(Hook::Ehlo("mailhost"), &mut ctx).await,
        Verdict::Declined
    );
}

#[tokio::test]
async fn helo_require_fqdn_and_disabled_checks() {
    let host = load(&[guard("require_fqdn = true")]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    let v = session.run(Hook::Helo("mailhost"), &mut ctx).await;
    assert_eq!(
        reply_text(&v),
        "550 5.7.1 HELO/EHLO requires a fully qualified domain name"
    );

    let host = load(&[guard("helo_checks = false")]).await;
    let mut session = host.session();
    assert_eq!(
        session.run(Hook::Helo("localhost"), &mut ctx).await,
        Verdict::Declined
    );
}

#[tokio::test]
async fn recipients_beyond_the_limit_are_deferred() {
    let host = load(&[guard(LIMITS)]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &["a@example.test"]);
    assert_eq!(
        session
            .run(Hook::Rcpt("b@example.test", &[]), &mut ctx)
            .await,
        Verdict::Declined
    );
    begin(
        &mut ctx,
        "alice@example.org",
        &["a@example.test", "b@example.test"],
    );
    let v = session
        .run(Hook::Rcpt("c@example.test", &[]), &mut ctx)
        .await;
    assert!(matches!(v, Verdict::DenySoft(_)), "{v:?}");
    assert_eq!(reply_text(&v), "452 4.5.3 Too many recipients");
}

#[tokio::test]
async fn size_is_checked_at_mail_and_at_the_end_of_data() {
    let host = load(&[guard(LIMITS)]).await;
    let mut session = host.session();
    let mut ctx = client_ctx();
    begin(&mut ctx, "alice@example.org", &[]);
    let big = [param("SIZE", Some("5000")), param("BODY", Some("8BITMIME"))];
    let v = session
        .run(Hook::Mail("alice@example.org", &big), &mut ctx)
        .await;
    assert_eq!(
        reply_text(&v),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    let small = [param("SIZE", Some("50"))];
    assert_eq!(
        session
            .run(Hook::Mail("alice@example.org", &small), &mut ctx)
            .await,
        Verdict::Declined
    );

    // A body over the limit (SIZE= can lie or be absent).
    begin(&mut ctx, "alice@example.org", &["a@example.test"]);
    set_message(&mut ctx, &format!("Subject: big\n\n{}\n", "x".repeat(200)));
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(reply(&v).code(), 552);

    // A small one passes and gets the stamp header.
    begin(
        &mut ctx,
        "alice@example.org",
        &["a@example.test", "b@example.test"],
    );
    set_message(&mut ctx, "Subject: small\n\nhello\n");
    assert_eq!(
        session.run(Hook::DataPost, &mut ctx).await,
        Verdict::Declined
    );
    assert_eq!(header(&ctx, "X-Guard"), vec!["rcpts=2 body=7".to_string()]);
}

#[tokio::test]
async fn a_bad_limit_refuses_the_plugin_at_load() {
    let err = PluginHost::load(&shared_host_config(), &[guard("max_recipients = \"many\"")])
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("fast-guard"), "{msg}");
    assert!(msg.contains("max_recipients"), "{msg}");
}

/// Every connection and transaction helper of the C SDK, read and used by
/// the `c-session` fixture at data-post (`plugins-sdk/c/fixtures/c-session`).
#[tokio::test]
async fn the_c_sdk_reads_and_edits_the_whole_session() {
    use wasmtp::context::{HelloKind, TlsInfo};

    let host = load(&[entry(
        "c-session",
        "fixtures/c-session",
        "new_sender = \"bounce@example.net\"\nadd_rcpt = \"added@example.test\"\ndrop_rcpt = \"DROP@example.test\"",
    )])
    .await;
    let mut ctx = client_ctx();
    ctx.conn.remote_host = Some("mx.client.example".into());
    ctx.conn.hello = HelloKind::Ehlo;
    ctx.conn.hello_host = "client.example".into();
    ctx.conn.auth_user = Some("alice".into());
    ctx.conn.tls = Some(TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        sni: Some("mx.example.test".into()),
    });
    begin(
        &mut ctx,
        "a@example.org",
        &["keep@example.test", "drop@example.test"],
    );
    set_message(
        &mut ctx,
        "Received: from a\nReceived: from b\nSubject: folded\n  subject\n\nline one\n.dot line\n",
    );
    let mut session = host.session();
    let v = session.run(Hook::DataPost, &mut ctx).await;
    assert_eq!(v, Verdict::Declined);

    let note = |k: &str| txn_note(&ctx, k).unwrap_or_else(|| panic!("note {k} missing"));
    assert_eq!(
        note("c.conn"),
        "id=test-session remote=203.0.113.7:40000 host=mx.client.example local=127.0.0.1:25 \
         hello=ehlo/client.example auth=alice relay=0"
    );
    assert_eq!(
        note("c.tls"),
        "TLSv1.3 TLS13_AES_128_GCM_SHA256 sni=mx.example.test"
    );
    assert_eq!(note("c.conn-edits"), "ok");
    assert!(!ctx.conn.relay_client, "the relay grant was taken back");
    assert!(!ctx.conn.notes.contains_key("c.scratch"));
    assert_eq!(note("c.txn"), "id=txn-1 sender=a@example.org body=21");
    assert_eq!(note("c.rcpts"), "keep@example.test,drop@example.test");
    assert_eq!(note("c.received"), "2");
    assert_eq!(note("c.headers"), "Received,Received,Subject");
    assert_eq!(note("c.raw-subject"), "Subject: folded\r\n  subject");
    assert_eq!(note("c.body"), "line one\r\n.dot line\r\n");
    assert_eq!(note("c.removed"), "1");
    assert_eq!(note("c.bad-rcpt"), "refused");
    assert!(txn_note(&ctx, "c.scratch").is_none());

    let txn = ctx.txn.as_ref().expect("transaction");
    assert_eq!(txn.sender, "bounce@example.net");
    let rcpts: Vec<&str> = txn.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["keep@example.test", "added@example.test"]);
    let out = delivered(&ctx);
    assert!(
        out.starts_with("X-First: on top\r\nReceived: from a\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\n[c-session]\r\nline one\r\n.dot line\r\n"),
        "{out}"
    );
}
