//! The `delivery` hook end to end: the real binary in store-and-forward
//! mode relays to a sink that accepts one recipient and refuses the other;
//! a plugin that wants `delivery` is told `delivered` for the first and
//! `bounced` for the second (it logs what it was told, and the log is what
//! the test reads). The client is a relay client, so its sender is bounced
//! (see `delivery_backscatter` for the untrusted case).

use crate::common;
use crate::delivery_support;
use crate::plugin_support;

use std::sync::Arc;

use common::{Gateway, LOCAL};
use delivery_support::{Sink, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_hear_delivered_and_bounced() {
    let sink = Sink::start(SinkConfig {
        rcpt: Arc::new(|rcpt: &str, _| {
            if rcpt.contains("nobody@") {
                "550 5.1.1 No such user".to_string()
            } else {
                "250 2.1.5 Ok".to_string()
            }
        }),
        ..SinkConfig::default()
    })
    .await;
    let upstream = sink.addr;
    let probe = plugin_support::wasm("probe");

    let gw = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let cache =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
        let text = format!(
            "[server]\nhostname = \"mx.test\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
             {LOCAL}relay_networks = [\"127.0.0.1\"]\n\n\
             [delivery]\nmode = \"store-and-forward\"\n\
             [delivery.forward]\nupstreams = [\"{upstream}\"]\ntls = \"none\"\n\
             [delivery.spool]\ndir = {spool:?}\nfirst_retry = \"1s\"\n\n\
             [plugin_host]\ncache_dir = {cache:?}\nmax_connections = 8\n\n\
             [[plugins]]\nname = \"reports\"\npath = {probe:?}\n\
             [plugins.config]\nhooks = [\"delivery\"]\n",
            spool = spool.display().to_string(),
            cache = cache.display().to_string(),
            probe = probe.display().to_string(),
        );
        Gateway::start_text(dir, &text, 1)
    })
    .await
    .unwrap();

    let gw = tokio::task::spawn_blocking(move || {
        let mut s = gw.connect();
        s.expect("EHLO client.example.net", 250);
        s.expect("MAIL FROM:<alice@example.test>", 250);
        s.expect("RCPT TO:<bob@example.test>", 250);
        s.expect("RCPT TO:<nobody@example.test>", 250);
        s.expect("DATA", 354);
        s.send(b"Subject: reports\r\n\r\nhello\r\n.\r\n");
        let r = s.reply();
        assert_eq!(r.code, 250, "{}", r.text);
        assert!(r.text.contains("queued as"), "{}", r.text);
        s.expect("QUIT", 221);
        gw.wait_log("delivery bob@example.test DeliveryStatus::Delivered");
        gw.wait_log("delivery nobody@example.test DeliveryStatus::Bounced");
        gw
    })
    .await
    .unwrap();

    // The accepted recipient reached the upstream; the refused one was not
    // retried after its 5xx, and the bounce went to the sender (the bounce
    // is queued after the hook hears `bounced`, so wait for it to arrive).
    let messages = sink
        .wait_for(|m| m.iter().any(|m| m.mail_from.is_empty()))
        .await;
    assert!(
        messages
            .iter()
            .any(|m| m.rcpts == ["bob@example.test"] && m.data.ends_with(b"hello\r\n")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.mail_from.is_empty() && m.rcpts == ["alice@example.test"]),
        "no bounce to the sender: {messages:?}"
    );
    let log = gw.log_text();
    assert_eq!(
        log.matches("delivery nobody@example.test DeliveryStatus::Bounced")
            .count(),
        1,
        "{log}"
    );
    drop(gw);
}
