//! Host-level tests of the hook contract with real components built from
//! source (`tests/fixtures/probe`): every hook delivers the right data,
//! every verdict becomes the right reply, every mutation lands in the
//! session state, notes pass between plugins and hooks, and broken plugins
//! are refused at load with an error naming them.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::context::{HelloKind, Param, Recipient, TlsInfo};
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

const MSG: &str = "From: a@example.net\r\nSubject: hello\r\nX-Remove-Me: yes\r\n\r\nbody line\r\n";

#[tokio::test]
async fn probe_sees_every_hook_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::load(
        &host_config(dir.path()),
        &[plugin("p", "probe", "name = 'p'")],
    )
    .await
    .unwrap();
    let mut s = host.session();
    let mut c = ctx("sess-1");
    c.conn.remote_host = Some("client.example.net".into());
    assert_eq!(s.run(Hook::Connect, &mut c).await, Verdict::Declined);
    assert_eq!(
        s.run(Hook::Helo("mx.example.net"), &mut c).await,
        Verdict::Declined
    );
    c.conn.tls = Some(TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        sni: None,
    });
    assert_eq!(
        s.run(Hook::Ehlo("mx.example.net"), &mut c).await,
        Verdict::Declined
    );
    c.conn.hello = HelloKind::Ehlo;
    c.conn.hello_host = "mx.example.net".into();
    open_txn(&mut c, "a@example.net");
    let params = [
        Param {
            key: "SIZE".into(),
            value: Some("120".into()),
        },
        Param {
            key: "BODY".into(),
            value: Some("8BITMIME".into()),
        },
    ];
    s.run(Hook::Mail("a@example.net", &params), &mut c).await;
    s.run(
        Hook::Rcpt(
            "b@example.org",
            &[Param {
                key: "NOTIFY".into(),
                value: Some("NEVER".into()),
            }],
        ),
        &mut c,
    )
    .await;
    c.txn.as_mut().unwrap().recipients.push(Recipient {
        address: "b@example.org".into(),
        params: vec![],
    });
    s.run(Hook::Data, &mut c).await;
    set_raw_message(&mut c, "From: a@example.net\r\nSubject: hello\r\n\r\n");
    s.run(Hook::DataHeaders, &mut c).await;
    s.run(Hook::BodyChunk(0, b"body line\r\n"), &mut c).await;
    set_raw_message(&mut c, MSG);
    s.run(Hook::DataPost, &mut c).await;
    s.run(Hook::Queue, &mut c).await;
    s.run(Hook::Reset, &mut c).await;
    s.run(Hook::Noop("ping"), &mut c).await;
    s.run(Hook::Help("MAIL"), &mut c).await;
    s.run(Hook::Vrfy("postmaster"), &mut c).await;
    s.run(Hook::Unrecognized("XYZZY", "a b"), &mut c).await;
    s.run(Hook::Auth("PLAIN", "", "alice", "s3cret"), &mut c)
        .await;
    s.run(Hook::Quit, &mut c).await;
    s.disconnect(&mut c).await;

    let log = probe_log(&c, "p");
    let expected = [
        "connect(id=sess-1 remote=192.0.2.7:4567 local=127.0.0.1:2525 host=Some(\"client.example.net\") relay=false)",
        "helo(mx.example.net hello=HelloKind::None)",
        "ehlo(mx.example.net hello=HelloKind::None tls=Some(\"TLSv1.3\"))",
        "mail(a@example.net [SIZE=120 BODY=8BITMIME] helo=mx.example.net txn.sender=a@example.net)",
        "rcpt(b@example.org [NOTIFY=NEVER] so_far=)",
        "data(rcpts=1)",
        "data-headers(subject=[\"hello\"])",
        "body-chunk(0+11)",
        "data-post(size=11 subject=[\"hello\"])",
        "queue(id=txn-1)",
        "reset()",
        "noop(ping)",
        "help(MAIL)",
        "vrfy(postmaster)",
        "unrecognized-command(XYZZY a b)",
        "auth(PLAIN \"\" alice s3cret)",
        "quit()",
        "disconnect()",
    ];
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines, expected, "full log:\n{log}");
}

#[tokio::test]
async fn each_verdict_maps_to_its_reply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = r#"
        name = "v"
        [verdicts]
        connect = "declined"
        helo = "deny"
        ehlo = "deny-soft:452:4.3.1:busy|later"
        mail = "ok"
        rcpt = "deny-disconnect::5.7.2:go away"
        data = "done:354::go ahead"
        vrfy = "done:252:2.1.5:maybe"
        noop = "deny-soft-disconnect"
        auth = "deny"
        help = "deny::5.7.1"
    "#;
    let host = PluginHost::load(&host_config(dir.path()), &[plugin("v", "probe", cfg)])
        .await
        .unwrap();
    let mut s = host.session();
    let mut c = ctx("sess-v");
    open_txn(&mut c, "");
    let reply = |v: &Verdict| v.reply().map(|r| r.to_string()).unwrap_or_default();

    assert_eq!(s.run(Hook::Connect, &mut c).await, Verdict::Declined);
    let v = s.run(Hook::Helo("x.example"), &mut c).await;
    assert!(matches!(v, Verdict::Deny(_)));
    assert_eq!(reply(&v), "550 5.7.1 Denied by policy");
    let v = s.run(Hook::Ehlo("x.example"), &mut c).await;
    assert!(matches!(v, Verdict::DenySoft(_)));
    assert_eq!(reply(&v), "452-4.3.1 busy\r\n452 4.3.1 later");
    assert_eq!(s.run(Hook::Mail("", &[]), &mut c).await, Verdict::Ok);
    let v = s.run(Hook::Rcpt("b@example.org", &[]), &mut c).await;
    assert!(matches!(v, Verdict::DenyDisconnect(_)) && v.disconnects());
    assert_eq!(reply(&v), "554 5.7.2 go away");
    let v = s.run(Hook::Data, &mut c).await;
    assert!(matches!(v, Verdict::Done(_)));
    assert_eq!(reply(&v), "354 go ahead");
    assert_eq!(
        reply(&s.run(Hook::Vrfy("x"), &mut c).await),
        "252 2.1.5 maybe"
    );
    let v = s.run(Hook::Noop(""), &mut c).await;
    assert!(matches!(v, Verdict::DenySoftDisconnect(_)));
    assert_eq!(reply(&v), "421 4.7.0 Try again later, closing connection");
    assert_eq!(
        reply(&s.run(Hook::Auth("LOGIN", "", "u", "p"), &mut c).await),
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(
        reply(&s.run(Hook::Help(""), &mut c).await),
        "550 5.7.1 Denied by policy"
    );
}

fn actions_a() -> &'static str {
    r#"
    name = "a"
    hooks = ["mail", "rcpt", "data-headers", "data-post"]
    [actions]
    mail = ["set-sender:rewritten@example.net", "note:stage:a-mail", "conn-note:seen-by:a", "set-sender:not an address"]
    rcpt = ["add-rcpt:extra@example.org", "relay:true", "add-rcpt:<bad>"]
    data-headers = ["prepend-header:X-First:1", "add-header:X-Last:2", "replace-header:Subject:new subject", "remove-header:X-Remove-Me", "add-header:Bad Name:x", "add-header:X-Inject:a\r\nBcc: victim@example.org"]
    data-post = ["replace-body:new body\n", "replace-body:bare\rcr", "note:stage:a-post"]
    "#
}

fn actions_b() -> &'static str {
    r#"
    name = "b"
    hooks = ["mail", "rcpt", "data-post"]
    [actions]
    mail = ["read-note:stage", "read-note:seen-by"]
    rcpt = ["remove-rcpt:DROP@example.org"]
    data-post = ["read-body", "headers", "read-note:stage"]
    "#
}

#[tokio::test]
async fn mutations_reach_the_session_and_notes_pass_between_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let chain = [
        plugin("a", "probe", actions_a()),
        plugin("b", "probe", actions_b()),
    ];
    let host = PluginHost::load(&host_config(dir.path()), &chain)
        .await
        .unwrap();
    let mut s = host.session();
    let mut c = ctx("sess-m");
    open_txn(&mut c, "orig@example.net");
    assert_eq!(
        s.run(Hook::Mail("orig@example.net", &[]), &mut c).await,
        Verdict::Declined
    );
    c.txn.as_mut().unwrap().recipients.push(Recipient {
        address: "drop@example.org".into(),
        params: vec![],
    });
    assert_eq!(
        s.run(Hook::Rcpt("drop@example.org", &[]), &mut c).await,
        Verdict::Declined
    );
    set_raw_message(
        &mut c,
        "From: a@example.net\r\nSubject: hello\r\nX-Remove-Me: yes\r\n\r\n",
    );
    s.run(Hook::DataHeaders, &mut c).await;
    // The driver completes the message; the header edits are kept by Message.
    c.txn
        .as_mut()
        .unwrap()
        .message
        .as_mut()
        .unwrap()
        .append_body(b"body line\r\n");
    s.run(Hook::DataPost, &mut c).await;

    let txn = c.txn.as_ref().unwrap();
    assert_eq!(txn.sender, "rewritten@example.net");
    let rcpts: Vec<&str> = txn.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["extra@example.org"]);
    assert!(c.conn.relay_client);
    assert_eq!(txn.notes.get("stage").map(String::as_str), Some("a-post"));
    assert_eq!(c.conn.notes.get("seen-by").map(String::as_str), Some("a"));
    assert_eq!(
        delivered(&c),
        "X-First: 1\r\nFrom: a@example.net\r\nSubject: new subject\r\nX-Last: 2\r\n\r\nnew body\r\n"
    );

    let a = probe_log(&c, "a");
    assert!(
        a.contains("set-sender error: \"not an address\" is not local@domain"),
        "{a}"
    );
    assert!(a.contains("add-rcpt error"), "{a}");
    assert!(
        a.contains("add-header error: invalid header name \"Bad Name\""),
        "{a}"
    );
    assert!(
        a.contains("add-header error: header value contains CR, LF or NUL"),
        "{a}"
    );
    assert!(
        a.contains("replace-body error: body contains a bare CR or LF"),
        "{a}"
    );
    let b = probe_log(&c, "b");
    // Notes and edits of `a` are visible to `b` at once.
    assert!(b.contains("read-note -> stage=a-mail"), "{b}");
    assert!(b.contains("read-note -> seen-by=a"), "{b}");
    assert!(b.contains("remove-rcpt -> 1"), "{b}");
    assert!(
        b.contains("read-body -> size=10 body=\"new body\\r\\n\""),
        "{b}"
    );
    assert!(
        b.contains("headers -> X-First=1;From=a@example.net;Subject=new subject;X-Last=2"),
        "{b}"
    );
    assert!(b.contains("read-note -> stage=a-post"), "{b}");
}

#[tokio::test]
async fn deny_is_told_to_plugins_that_want_it() {
    let dir = tempfile::tempdir().unwrap();
    let chain = [
        plugin("watcher", "probe", "name = 'watcher'\nhooks = ['deny']"),
        plugin(
            "denier",
            "probe",
            "name = 'denier'\nhooks = ['rcpt']\n[verdicts]\nrcpt = 'deny-soft'",
        ),
    ];
    let host = PluginHost::load(&host_config(dir.path()), &chain)
        .await
        .unwrap();
    let mut s = host.session();
    let mut c = ctx("sess-d");
    open_txn(&mut c, "a@example.net");
    assert!(!s.wants(&Hook::Connect));
    assert!(s.wants(&Hook::Rcpt("", &[])));
    assert_eq!(s.run(Hook::Connect, &mut c).await, Verdict::Declined);
    let v = s.run(Hook::Rcpt("b@example.org", &[]), &mut c).await;
    assert!(matches!(v, Verdict::DenySoft(_)));
    assert_eq!(probe_log(&c, "watcher"), "deny(rcpt denier 451)\n");
    assert_eq!(probe_log(&c, "denier"), "rcpt(b@example.org [] so_far=)\n");
}

#[tokio::test]
async fn broken_plugins_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = host_config(dir.path());
    let err = |r: anyhow::Result<_>| format!("{:#}", r.expect_err("must fail"));

    let e =
        err(PluginHost::load(&cfg, &[PluginConfig::new("nohooks", wasm("not-a-plugin"))]).await);
    assert!(
        e.contains("plugin \"nohooks\"") && e.contains("wasmtp:plugin/hooks"),
        "{e}"
    );

    let e = err(PluginHost::load(
        &cfg,
        &[PluginConfig::new("ghost", dir.path().join("missing.wasm"))],
    )
    .await);
    assert!(
        e.contains("plugin \"ghost\"") && e.contains("cannot read"),
        "{e}"
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").unwrap();
    let e = err(PluginHost::load(&cfg, &[PluginConfig::new("junk", &junk)]).await);
    assert!(
        e.contains("plugin \"junk\"") && e.contains("not a valid component"),
        "{e}"
    );

    let e = err(PluginHost::load(&cfg, &[plugin("allow", "rcpt-allowlist", "")]).await);
    assert!(
        e.contains("plugin \"allow\"")
            && e.contains("init refused its config")
            && e.contains("domains"),
        "{e}"
    );

    let twice = [plugin("p", "probe", ""), plugin("p", "probe", "")];
    let e = err(PluginHost::load(&cfg, &twice).await);
    assert!(e.contains("used twice"), "{e}");

    let mut big = plugin("big", "probe", "");
    big.memory_mb = 100_000;
    let e = err(PluginHost::load(&cfg, &[big]).await);
    assert!(
        e.contains("plugin \"big\"") && e.contains("max_memory_mb"),
        "{e}"
    );
}

#[tokio::test]
async fn the_same_component_twice_with_different_config() {
    let dir = tempfile::tempdir().unwrap();
    let chain = [
        plugin("first", "probe", "name = 'first'\nhooks = ['helo']"),
        plugin(
            "second",
            "probe",
            "name = 'second'\nhooks = ['helo']\n[verdicts]\nhelo = 'ok'",
        ),
    ];
    let host = PluginHost::load(&host_config(dir.path()), &chain)
        .await
        .unwrap();
    assert_eq!(host.plugin_names(), ["first", "second"]);
    let mut c = ctx("sess-2");
    assert_eq!(
        host.session().run(Hook::Helo("h.example"), &mut c).await,
        Verdict::Ok
    );
    assert_eq!(
        probe_log(&c, "first"),
        "helo(h.example hello=HelloKind::None)\n"
    );
    assert_eq!(
        probe_log(&c, "second"),
        "helo(h.example hello=HelloKind::None)\n"
    );
}
