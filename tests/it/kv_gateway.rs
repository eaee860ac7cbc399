//! The `kv` interface end to end through the real binary: the probe fixture
//! (`kv_noop = true`) turns `NOOP <command>` into one kv call and answers
//! `250 kv <result>`. Embedded: state survives a gateway restart; an
//! ungranted bucket is `not-granted`. Redis: two gateways on one real
//! `redis-server` share a counter, and two gateways on one real Redis
//! Cluster (`[kv] cluster`) share a counter and a compare-and-set lock.

use crate::common;
use crate::kv_support;
use crate::plugin_support;

use std::path::Path;

use common::{Gateway, LOCAL};

fn config(kv: &str) -> String {
    config_granting(kv, "[\"grey\"]")
}

fn config_granting(kv: &str, buckets: &str) -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n{kv}\n\
         [[plugins]]\nname = \"probe\"\npath = {:?}\nkv = {buckets}\n\
         [plugins.config]\nkv_noop = true\nhooks = [\"noop\"]\n\n",
        cache.display().to_string(),
        plugin_support::wasm("probe").display().to_string(),
    )
}

fn noop(gw: &Gateway, command: &str) -> String {
    let mut s = gw.connect();
    s.expect("EHLO client.test", 250);
    let r = s.expect(&format!("NOOP {command}"), 250);
    s.expect("QUIT", 221);
    r.text
}

fn start(kv: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(dir.path(), &["smtp"], &config(kv));
    Gateway::start_text(dir, &text, 1)
}

#[test]
fn embedded_state_survives_restart_and_grants_hold() {
    let state = tempfile::tempdir().unwrap();
    let kv = format!(
        "[kv]\nbackend = \"embedded\"\npath = {:?}\n",
        state.path().join("kv").display().to_string()
    );
    let mut gw = start(&kv);
    assert!(noop(&gw, "incr grey n 1").ends_with("kv ok 1"));
    assert!(noop(&gw, "set grey k hello").ends_with("kv ok done"));
    assert!(noop(&gw, "get grey k").ends_with("kv ok hello"));
    let r = noop(&gw, "get other k");
    assert!(r.contains("kv err not-granted"), "{r}");
    gw.signal("TERM");
    assert!(gw.wait_exit().success());
    drop(gw);

    let gw = start(&kv);
    assert!(noop(&gw, "get grey k").ends_with("kv ok hello"));
    let r = noop(&gw, "incr grey n 1");
    assert!(r.ends_with("kv ok 2"), "{r}");
}

#[test]
fn redis_state_is_shared_between_gateways() {
    let redis = kv_support::redis();
    let kv = format!(
        "[kv]\nbackend = \"redis\"\nurl = {:?}\nkey_prefix = \"e2e-{}:\"\n",
        redis.url,
        std::process::id()
    );
    let a = start(&kv);
    let b = start(&kv);
    assert!(noop(&a, "incr grey n 5").ends_with("kv ok 5"));
    let r = noop(&b, "incr grey n 1");
    assert!(r.ends_with("kv ok 6"), "{r}");
    assert!(noop(&b, "cas grey lock - b").ends_with("kv ok true"));
    assert!(noop(&a, "cas grey lock - a").ends_with("kv ok false"));
    assert!(noop(&a, "get grey lock").ends_with("kv ok b"));
    let r = noop(&a, "get other k");
    assert!(r.contains("kv err not-granted"), "{r}");
}

#[test]
fn redis_cluster_state_is_shared_between_gateways() {
    let cluster = kv_support::cluster();
    let kv = format!(
        "[kv]\nbackend = \"redis\"\ncluster = {:?}\nkey_prefix = \"e2e-{}:\"\n",
        cluster.urls(),
        std::process::id()
    );
    let a = start(&kv);
    let b = start(&kv);
    assert!(noop(&a, "incr grey n 5").ends_with("kv ok 5"));
    let r = noop(&b, "incr grey n 1");
    assert!(r.ends_with("kv ok 6"), "{r}");
    assert!(noop(&b, "cas grey lock - b").ends_with("kv ok true"));
    assert!(noop(&a, "cas grey lock - a").ends_with("kv ok false"));
    assert!(noop(&a, "set grey k hello").ends_with("kv ok done"));
    assert!(noop(&b, "get grey k").ends_with("kv ok hello"));
    assert!(noop(&b, "get grey lock").ends_with("kv ok b"));
}

#[test]
fn a_bucket_granted_by_sighup_serves_new_sessions() {
    let state = tempfile::tempdir().unwrap();
    let kv = format!(
        "[kv]\nbackend = \"embedded\"\npath = {:?}\n",
        state.path().join("kv").display().to_string()
    );
    // No plugin is granted a bucket: no store is opened at start.
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(dir.path(), &["smtp"], &config_granting(&kv, "[]"));
    let gw = Gateway::start_text(dir, &text, 1);
    let r = noop(&gw, "incr grey n 1");
    assert!(r.contains("kv err not-granted"), "{r}");
    assert!(
        !gw.log_text().contains("kv store open"),
        "{}",
        gw.log_text()
    );
    assert!(!state.path().join("kv").exists());

    // The same plugin, now granted `grey`: the reload opens the store.
    let text = common::test_config(gw.dir.path(), &["smtp"], &config(&kv));
    std::fs::write(&gw.config_path, text).unwrap();
    gw.signal("HUP");
    gw.wait_log("plugin chain reloaded");
    assert!(gw.log_text().contains("kv store open"), "{}", gw.log_text());
    let r = noop(&gw, "incr grey n 1");
    assert!(r.ends_with("kv ok 1"), "{r}");
    let r = noop(&gw, "incr grey n 1");
    assert!(r.ends_with("kv ok 2"), "{r}");

    // Granted away again: refused, and the state stays for a later grant.
    let text = common::test_config(gw.dir.path(), &["smtp"], &config_granting(&kv, "[]"));
    std::fs::write(&gw.config_path, text).unwrap();
    gw.signal("HUP");
    wait_reloads(&gw, 2);
    let r = noop(&gw, "get grey n");
    assert!(r.contains("kv err not-granted"), "{r}");
}

/// Waits until the log shows `n` chain reloads (hang guard).
fn wait_reloads(gw: &Gateway, n: usize) {
    for _ in 0..600 {
        if gw.log_text().matches("plugin chain reloaded").count() >= n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("never saw {n} reloads:\n{}", gw.log_text());
}
