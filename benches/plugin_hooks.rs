//! Per-hook call overhead and per-connection instantiation cost of the
//! plugin host, with real components (`cargo bench --bench plugin_hooks`).
//!
//! - `connection/per-connection/<plugin>`: a new connection's first hook
//!   and its disconnect: instance from the pre-linked component (pooling
//!   allocator), `init`, one call, drop.
//! - `connection/pooled/<plugin>`: the same with `instances = "pooled"`:
//!   a warm instance taken from the plugin's pool, one call, given back.
//!   The difference with the line above is the instantiation cost.
//! - `hook/<plugin>`: one more hook call on a warm instance (state lent to
//!   the store, handles, verdict check).
//! - `hook/unwanted`: a hook no plugin wants (the host's fast path).

// Bench code: setup failures may panic. (The crate's [lints] deny
// unwrap/expect in the gateway itself.)
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtp::plugin::{Hook, InstanceMode, PluginConfig, PluginHost, Verdict};

#[path = "../tests/it/plugin_support/mod.rs"]
mod plugin_support;
use plugin_support::*;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chains = [
        (
            "rcpt-allowlist",
            plugin("allow", "rcpt-allowlist", "domains = ['example.org']"),
        ),
        ("probe", plugin("probe", "probe", "hooks = ['rcpt']")),
    ];
    let mut group = c.benchmark_group("plugin");
    group.measurement_time(Duration::from_secs(4));
    for (label, p) in chains {
        let pooled = PluginConfig {
            instances: InstanceMode::Pooled,
            pool_size: Some(1),
            ..p.clone()
        };
        for (mode, cfg) in [("per-connection", &p), ("pooled", &pooled)] {
            let host = rt
                .block_on(PluginHost::load(
                    &host_config(dir.path()),
                    std::slice::from_ref(cfg),
                ))
                .unwrap();
            group.bench_function(format!("connection/{mode}/{label}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let mut s = host.session();
                            let mut ctx = ctx("bench");
                            open_txn(&mut ctx, "a@example.net");
                            let v = s.run(Hook::Rcpt("x@example.org", &[]), &mut ctx).await;
                            assert!(!matches!(v, Verdict::DenySoft(_)));
                            s.disconnect(&mut ctx).await;
                        }
                        start.elapsed()
                    })
                })
            });
        }
        let host = rt
            .block_on(PluginHost::load(
                &host_config(dir.path()),
                std::slice::from_ref(&p),
            ))
            .unwrap();
        group.bench_function(format!("hook/{label}"), |b| {
            let mut s = host.session();
            let mut ctx = ctx("bench");
            open_txn(&mut ctx, "a@example.net");
            b.iter_custom(|iters| {
                rt.block_on(async {
                    s.run(Hook::Rcpt("x@example.org", &[]), &mut ctx).await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        s.run(Hook::Rcpt("x@example.org", &[]), &mut ctx).await;
                        // Keep the probe's note log from growing without bound.
                        ctx.conn.notes.clear();
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(format!("hook/unwanted-{label}"), |b| {
            let mut s = host.session();
            let mut ctx = ctx("bench");
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        s.run(Hook::Noop(""), &mut ctx).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
