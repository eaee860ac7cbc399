//! Per-language cost of a plugin: loading (compile or cache hit), the first
//! hook of a connection (instantiation + `init` + the hook) and a warm hook
//! call. A measurement, not a test: it asserts nothing about time and is
//! ignored by default. Run it with
//!
//! ```sh
//! cargo test --release --test lang_timing -- --ignored --nocapture
//! ```

use crate::plugin_support;

use std::time::{Duration, Instant};

use plugin_support::*;
use wasmtp::plugin::{Hook, PluginConfig, Verdict};

const SESSIONS: u32 = 20;
const WARM_CALLS: u32 = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(lang: &str, plugin: PluginConfig) {
    let size = std::fs::metadata(&plugin.path)
        .map(|m| m.len())
        .unwrap_or(0);
    let started = Instant::now();
    let host = load(std::slice::from_ref(&plugin)).await;
    let load_time = started.elapsed();

    let mut first = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..SESSIONS {
        let mut session = host.session();
        let mut ctx = client_ctx();
        begin(&mut ctx, "alice@example.org", &["bob@example.test"]);
        set_message(
            &mut ctx,
            "Subject: hello\nMessage-ID: <1@x>\n\nhello world\n",
        );
        let t = Instant::now();
        let v = session.run(Hook::DataPost, &mut ctx).await;
        first.push(t.elapsed());
        assert!(!matches!(v, Verdict::DenySoft(_)), "{lang}: {v:?}");
        let t = Instant::now();
        for _ in 0..WARM_CALLS {
            set_message(
                &mut ctx,
                "Subject: hello\nMessage-ID: <1@x>\n\nhello world\n",
            );
            session.run(Hook::DataPost, &mut ctx).await;
        }
        warm.push(t.elapsed() / WARM_CALLS);
    }
    println!(
        "{lang:<7} {size:>9} B  load {:>8.1} ms  first call (instantiate+init+hook) median {:>7.3} ms  warm data-post median {:>7.3} ms",
        load_time.as_secs_f64() * 1e3,
        median(first).as_secs_f64() * 1e3,
        median(warm).as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn per_language_instantiation_and_call_cost() {
    println!(
        "(load: compile on a cold cache, a cache hit afterwards; {SESSIONS} connections, {WARM_CALLS} warm calls each)"
    );
    measure(
        "c",
        entry("fast-guard", "fast-guard", "stamp_header = \"X-Guard\""),
    )
    .await;
    measure(
        "js",
        entry(
            "header-rules",
            "header-rules",
            "[[rules]]\nheader = \"Subject\"\npattern = \"hello\"\nscore = 1",
        ),
    )
    .await;
    measure(
        "python",
        entry(
            "spam-score",
            "spam-score",
            "reject = false\nwords = { hello = 1 }",
        ),
    )
    .await;
    measure("rust", entry("header-stamp", "header-stamp", "")).await;
}
