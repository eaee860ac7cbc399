//! Hostile plugins built from source (`tests/fixtures/hostile`): infinite
//! loop, memory.grow bomb, allocation bomb, deep recursion, panic, trap,
//! huge reply, CR/LF injection, invalid codes. Each gets its plugin's
//! failure policy as the answer, every time; the host, the session and
//! other sessions keep working.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::plugin::{FailurePolicy, Hook, PluginConfig, PluginHost, Verdict};

fn hostile(mode: &str, hook: &str) -> PluginConfig {
    let mut p = plugin(
        "hostile",
        "hostile",
        &format!("mode = '{mode}'\nhook = '{hook}'"),
    );
    p.cpu_ms = 40;
    p.timeout_ms = 5_000;
    p.memory_mb = 32;
    p
}

fn after() -> PluginConfig {
    plugin("after", "probe", "name = 'after'\nhooks = ['mail', 'rcpt']")
}

fn reply(v: &Verdict) -> String {
    v.reply().map(|r| r.to_string()).unwrap_or_default()
}

async fn assert_contained(p: PluginConfig) {
    let mode = p
        .config
        .get("mode")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::load(&host_config(dir.path()), &[p, after()])
        .await
        .unwrap();
    let mut s = host.session();
    let mut c = ctx("sess-h");
    open_txn(&mut c, "a@example.net");
    for round in 0..2 {
        let v = s.run(Hook::Rcpt("b@example.org", &[]), &mut c).await;
        assert!(
            matches!(v, Verdict::DenySoft(_)),
            "{mode} round {round}: {v:?}"
        );
        assert_eq!(
            reply(&v),
            "451 4.3.0 Temporary local problem, try again later",
            "{mode}"
        );
    }
    // The chain stopped at the failing plugin: `after` never saw the RCPT.
    assert!(!probe_log(&c, "after").contains("rcpt("), "{mode}");
    // The same session goes on (a fresh instance serves the next hook) ...
    assert_eq!(
        s.run(Hook::Mail("a@example.net", &[]), &mut c).await,
        Verdict::Declined,
        "{mode}"
    );
    assert!(
        probe_log(&c, "after").contains("mail(a@example.net"),
        "{mode}"
    );
    // ... the session state survived the failures ...
    assert_eq!(c.conn.id, "sess-h");
    assert_eq!(c.txn.as_ref().unwrap().sender, "a@example.net");
    // ... and new sessions work.
    let mut c2 = ctx("sess-2");
    open_txn(&mut c2, "x@example.net");
    assert_eq!(
        host.session()
            .run(Hook::Mail("x@example.net", &[]), &mut c2)
            .await,
        Verdict::Declined
    );
}

#[tokio::test]
async fn infinite_loop_hits_the_cpu_budget() {
    assert_contained(hostile("loop", "rcpt")).await;
}

#[tokio::test]
async fn memory_grow_bomb_hits_the_memory_cap() {
    assert_contained(hostile("grow", "rcpt")).await;
}

#[tokio::test]
async fn allocation_bomb_hits_the_memory_cap() {
    assert_contained(hostile("alloc", "rcpt")).await;
}

#[tokio::test]
async fn deep_recursion_traps() {
    assert_contained(hostile("recursion", "rcpt")).await;
}

#[tokio::test]
async fn panic_and_trap_are_contained() {
    assert_contained(hostile("panic", "rcpt")).await;
    assert_contained(hostile("trap", "rcpt")).await;
}

#[tokio::test]
async fn invalid_replies_are_plugin_failures() {
    for mode in ["crlf-reply", "bad-code", "bad-enhanced", "huge-reply"] {
        assert_contained(hostile(mode, "rcpt")).await;
    }
}

#[tokio::test]
async fn a_100_mb_reply_is_refused() {
    // Enough memory for the guest to build the reply: the host must refuse it.
    let mut p = hostile("huge-reply", "rcpt");
    p.memory_mb = 256;
    p.cpu_ms = 5_000;
    assert_contained(p).await;
}

#[tokio::test]
async fn wall_clock_timeout_fires() {
    let mut p = hostile("loop", "rcpt");
    p.cpu_ms = 600_000;
    p.timeout_ms = 100;
    assert_contained(p).await;
}

#[tokio::test]
async fn failure_policies_skip_and_reject() {
    let dir = tempfile::tempdir().unwrap();
    let mut skip = hostile("trap", "rcpt");
    skip.failure_policy = FailurePolicy::Skip;
    let host = PluginHost::load(&host_config(dir.path()), &[skip, after()])
        .await
        .unwrap();
    let mut c = ctx("sess-skip");
    open_txn(&mut c, "a@example.net");
    assert_eq!(
        host.session()
            .run(Hook::Rcpt("b@example.org", &[]), &mut c)
            .await,
        Verdict::Declined
    );
    assert!(probe_log(&c, "after").contains("rcpt(b@example.org"));

    let mut reject = hostile("panic", "rcpt");
    reject.failure_policy = FailurePolicy::Reject;
    let host = PluginHost::load(&host_config(dir.path()), &[reject])
        .await
        .unwrap();
    let v = host
        .session()
        .run(Hook::Rcpt("b@example.org", &[]), &mut c)
        .await;
    assert!(matches!(v, Verdict::Deny(_)));
    assert_eq!(reply(&v), "554 5.3.0 Permanent local problem");
}

#[tokio::test]
async fn header_injection_and_oversized_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, error) in [
        ("crlf-header", "header value contains CR, LF or NUL"),
        ("huge-header", "at most 65536 octets of added header fields"),
    ] {
        let mut p = plugin(
            "hostile",
            "hostile",
            &format!("mode = '{mode}'\nhook = 'data-post'\nsize = 20000000"),
        );
        p.memory_mb = 128;
        let host = PluginHost::load(&host_config(dir.path()), &[p])
            .await
            .unwrap();
        let mut c = ctx("sess-hdr");
        open_txn(&mut c, "a@example.net");
        set_raw_message(&mut c, "Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            host.session().run(Hook::DataPost, &mut c).await,
            Verdict::Declined
        );
        let note = c
            .txn
            .as_ref()
            .unwrap()
            .notes
            .get("hostile.header_error")
            .cloned()
            .unwrap_or_default();
        assert!(note.contains(error), "{mode}: {note}");
        assert_eq!(delivered(&c), "Subject: x\r\n\r\nbody\r\n", "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_does_not_stall_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut spin = hostile("loop", "helo");
    spin.cpu_ms = 2_000;
    let host = PluginHost::load(&host_config(dir.path()), &[spin, after()])
        .await
        .unwrap();
    let spinner = {
        let host = host.clone();
        tokio::spawn(async move {
            let mut c = ctx("spinner");
            host.session().run(Hook::Helo("x.example"), &mut c).await
        })
    };
    let mut handles = Vec::new();
    for n in 0..4 {
        let host = host.clone();
        handles.push(tokio::spawn(async move {
            let mut s = host.session();
            let mut c = ctx(&format!("good-{n}"));
            open_txn(&mut c, "a@example.net");
            for _ in 0..20 {
                assert_eq!(
                    s.run(Hook::Rcpt("b@example.org", &[]), &mut c).await,
                    Verdict::Declined
                );
            }
            probe_log(&c, "after").lines().count()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 20);
    }
    let v = spinner.await.unwrap();
    assert_eq!(
        reply(&v),
        "451 4.3.0 Temporary local problem, try again later"
    );
}

#[tokio::test]
async fn a_plugin_spinning_in_init_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let e = PluginHost::load(&host_config(dir.path()), &[hostile("init-loop", "rcpt")])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("plugin \"hostile\"") && e.contains("init failed"),
        "{e}"
    );
}
