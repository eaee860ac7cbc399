//! Live swap: reloads during concurrent sessions drop nothing; a session
//! keeps the chain it started with; a broken component is refused and the
//! old chain keeps serving; file watching picks up a replaced plugin.

use crate::plugin_support;

use std::sync::Arc;
use std::time::Duration;

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

fn allow(domain: &str) -> PluginConfig {
    plugin(
        "allow",
        "rcpt-allowlist",
        &format!("domains = ['{domain}']"),
    )
}

/// Which of the two domains the session's chain accepts.
async fn accepted(host: &Arc<PluginHost>, id: &str) -> &'static str {
    let mut s = host.session();
    let mut c = ctx(id);
    open_txn(&mut c, "a@example.net");
    let a = s.run(Hook::Rcpt("x@a.example", &[]), &mut c).await;
    let b = s.run(Hook::Rcpt("x@b.example", &[]), &mut c).await;
    s.disconnect(&mut c).await;
    match (a, b) {
        (Verdict::Ok, Verdict::Deny(_)) => "a",
        (Verdict::Deny(_), Verdict::Ok) => "b",
        other => panic!("session {id} saw a mixed or failed chain: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_concurrent_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::load(&host_config(dir.path()), &[allow("a.example")])
        .await
        .unwrap();

    // A session that starts before the swap finishes on the old chain.
    let mut early = host.session();
    let mut early_ctx = ctx("early");
    open_txn(&mut early_ctx, "a@example.net");

    let mut workers = Vec::new();
    for w in 0..4 {
        let host = host.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0..25 {
                seen.push(accepted(&host, &format!("w{w}-{n}")).await);
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    for round in 0..6 {
        let domain = if round % 2 == 0 {
            "b.example"
        } else {
            "a.example"
        };
        host.reload(&[allow(domain)]).await.unwrap();
        tokio::task::yield_now().await;
    }
    host.reload(&[allow("b.example")]).await.unwrap();
    for w in workers {
        // Every session saw one consistent chain and no failure (checked in `accepted`).
        assert_eq!(w.await.unwrap().len(), 25);
    }
    assert_eq!(
        early
            .run(Hook::Rcpt("x@a.example", &[]), &mut early_ctx)
            .await,
        Verdict::Ok,
        "a session keeps the chain it started with"
    );
    assert_eq!(accepted(&host, "late").await, "b");
}

#[tokio::test]
async fn a_broken_reload_keeps_the_old_chain() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::load(&host_config(dir.path()), &[allow("a.example")])
        .await
        .unwrap();

    let broken = [
        allow("b.example"),
        PluginConfig::new("broken", wasm("not-a-plugin")),
    ];
    let e = format!("{:#}", host.reload(&broken).await.unwrap_err());
    assert!(e.contains("plugin \"broken\""), "{e}");
    assert_eq!(host.plugin_names(), ["allow"]);
    assert_eq!(accepted(&host, "after-broken").await, "a");

    let bad_config = [plugin(
        "allow",
        "rcpt-allowlist",
        "on_match = 'maybe'\ndomains = ['b.example']",
    )];
    let e = format!("{:#}", host.reload(&bad_config).await.unwrap_err());
    assert!(
        e.contains("plugin \"allow\"") && e.contains("on_match"),
        "{e}"
    );
    assert_eq!(accepted(&host, "after-bad-config").await, "a");
}

#[tokio::test]
async fn replacing_the_file_and_reloading_changes_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("active.wasm");
    std::fs::copy(wasm("rcpt-allowlist"), &file).unwrap();
    let mut p = PluginConfig::new("active", &file);
    p.config = toml::from_str("domains = ['a.example']").unwrap();
    let mut cfg = host_config(dir.path());
    cfg.watch = true;
    cfg.watch_interval_ms = 50;
    let host = PluginHost::load(&cfg, &[p]).await.unwrap();
    assert_eq!(accepted(&host, "before").await, "a");

    // A garbage file is refused: the old chain keeps serving.
    std::fs::write(&file, b"garbage").unwrap();
    assert!(host.reload_files().await.is_err());
    assert_eq!(accepted(&host, "garbage").await, "a");

    // Swap in another component (the probe declines everything) and wait
    // for the watcher to pick it up (compiling it may take seconds on a
    // loaded machine: a generous hang guard, not a timing assertion).
    std::fs::copy(wasm("probe"), &file).unwrap();
    let mut changed = false;
    for _ in 0..2400 {
        let mut c = ctx("watch");
        open_txn(&mut c, "a@example.net");
        if host
            .session()
            .run(Hook::Rcpt("x@b.example", &[]), &mut c)
            .await
            == Verdict::Declined
        {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(changed, "the watcher did not reload the replaced file");
}
