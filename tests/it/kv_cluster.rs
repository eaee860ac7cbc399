//! The Redis backend on a Redis Cluster that fails over under load: three
//! masters with one replica each (`kv_support::Cluster`, its own for this
//! test), tasks incrementing counters through the gateway's `KvStore`, and
//! a failover of the master holding the counters' slot, first graceful
//! (`CLUSTER FAILOVER` on its replica), then forced (the new master killed
//! with SIGKILL, its replica promoted after `cluster-node-timeout`).
//!
//! Each task owns one counter and increments it one at a time, so the value
//! each acknowledged increment returns tells what happened before it: one
//! more than the previous acknowledged value is the normal case; less means
//! acknowledged increments were lost; more means increments were applied
//! without an acknowledgement (a call that failed or timed out after Redis
//! had applied it, or a retry of one whose answer was lost).
//!
//! Asserted: a graceful failover loses no acknowledged increment, and after
//! either failover the store serves again (a hang guard bounds the wait).
//! The forced failover's losses are what Redis documents (asynchronous
//! replication); they are measured and printed, not asserted.

use crate::kv_support::Cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use wasmtp::kv::{BackendKind, KvConfig, KvStore};

/// Concurrent incrementing tasks.
const TASKS: usize = 8;
/// Acknowledged increments before a failover, and again after it.
const PHASE_OPS: u64 = 400;

/// What one load run saw, summed over its tasks.
#[derive(Debug, Default)]
struct Outcome {
    /// Increments acknowledged with a value.
    acked: u64,
    /// Acknowledged increments missing from a later value.
    lost: u64,
    /// Increments applied without being acknowledged.
    unacked_applied: u64,
    /// Calls that failed (`unavailable`).
    errors: u64,
    /// The longest run of failed calls of one task.
    max_consecutive_errors: u64,
    /// The longest time of one task from its first failed call of a run
    /// to its next acknowledgement (measured, not asserted).
    longest_outage: Duration,
}

/// Tasks incrementing their own counters until stopped.
struct Load {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
}

impl Load {
    fn start(kv: &Arc<KvStore>, phase: &str) -> Self {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..TASKS)
            .map(|i| {
                let (kv, acked, stop) = (kv.clone(), acked.clone(), stop.clone());
                let key = format!("{phase}-{i}");
                tokio::spawn(async move {
                    let mut out = Outcome::default();
                    let (mut last, mut run) = (0i64, 0u64);
                    let mut failing_since: Option<std::time::Instant> = None;
                    while !stop.load(Ordering::SeqCst) {
                        match kv.increment("load", &key, 1, None).await {
                            Ok(v) => {
                                let expected = last + 1;
                                if v < expected {
                                    out.lost += (expected - v) as u64;
                                } else if v > expected {
                                    out.unacked_applied += (v - expected) as u64;
                                }
                                last = v;
                                out.acked += 1;
                                run = 0;
                                if let Some(t) = failing_since.take() {
                                    out.longest_outage = out.longest_outage.max(t.elapsed());
                                }
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                out.errors += 1;
                                run += 1;
                                failing_since.get_or_insert_with(std::time::Instant::now);
                                out.max_consecutive_errors = out.max_consecutive_errors.max(run);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    // The final value against the last acknowledgement: the
                    // last call may have failed after Redis applied it.
                    let end = kv.get("load", &key).await.unwrap().unwrap();
                    let end: i64 = String::from_utf8(end).unwrap().parse().unwrap();
                    if end < last {
                        out.lost += (last - end) as u64;
                    } else {
                        out.unacked_applied += (end - last) as u64;
                    }
                    out
                })
            })
            .collect();
        Self { acked, stop, tasks }
    }

    /// Waits until `n` increments in all were acknowledged (hang guard:
    /// two minutes, far more than a failover takes).
    async fn until_acked(&self, n: u64) {
        for _ in 0..2400 {
            if self.acked.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the store did not serve again: {} of {n} increments acknowledged",
            self.acked.load(Ordering::SeqCst)
        );
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    async fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Outcome::default();
        for t in self.tasks {
            let o = t.await.unwrap();
            all.acked += o.acked;
            all.lost += o.lost;
            all.unacked_applied += o.unacked_applied;
            all.errors += o.errors;
            all.max_consecutive_errors = all.max_consecutive_errors.max(o.max_consecutive_errors);
            all.longest_outage = all.longest_outage.max(o.longest_outage);
        }
        all
    }
}

/// Runs load, calls `failover` once `PHASE_OPS` increments were
/// acknowledged, and stops `PHASE_OPS` acknowledged increments after it
/// returned.
async fn under_load(kv: &Arc<KvStore>, phase: &str, failover: impl FnOnce()) -> Outcome {
    let load = Load::start(kv, phase);
    load.until_acked(PHASE_OPS).await;
    tokio::task::block_in_place(failover);
    let after = load.acked();
    load.until_acked(after + PHASE_OPS).await;
    load.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_under_load_loses_no_acknowledged_increment_when_graceful() {
    let cluster = tokio::task::block_in_place(|| Cluster::start(3, 1, 3000));
    let mut config = KvConfig {
        backend: BackendKind::Redis,
        cluster: Some(cluster.urls()),
        key_prefix: "fo:".into(),
        ..KvConfig::default()
    };
    config.max_keys = 1000;
    let kv = Arc::new(KvStore::open(&config).await.unwrap());
    // Every key of the bucket is in the slot of its hash tag.
    let slot = tokio::task::block_in_place(|| cluster.keyslot("fo:{load}:v:x"));
    let first = tokio::task::block_in_place(|| cluster.master_of(slot));
    let second = tokio::task::block_in_place(|| cluster.replica_of(first)).unwrap();

    // Graceful: the replica takes over once it has every write.
    let graceful = under_load(&kv, "graceful", || {
        assert_eq!(cluster.query(second, &["CLUSTER", "FAILOVER"]), "OK");
        cluster.wait_master(second);
    })
    .await;
    eprintln!("graceful failover: {graceful:?}");
    assert_eq!(graceful.lost, 0, "{graceful:?}");
    assert!(graceful.acked >= 2 * PHASE_OPS);

    // Forced: the new master crashes; the old one, now its replica, is
    // promoted without it.
    tokio::task::block_in_place(|| {
        cluster.wait(
            || {
                cluster.replica_of(second) == Some(first)
                    && cluster
                        .try_query(first, &["INFO", "replication"])
                        .is_some_and(|s| s.contains("master_link_status:up"))
            },
            "the old master replicates the new one",
        )
    });
    let forced = under_load(&kv, "forced", || {
        cluster.kill(second);
        cluster.wait_master(first);
    })
    .await;
    eprintln!("forced failover: {forced:?}");
    assert!(forced.acked >= 2 * PHASE_OPS);
}
