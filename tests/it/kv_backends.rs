//! One test suite for both key-value backends: every test below runs
//! against the embedded store (a redb file in a temp dir), against it with
//! `flush_interval` (writes fsynced only when the store closes, which
//! `restart` checks), against a real `redis-server` and against a real
//! three-master Redis Cluster (each started once per test process, see
//! `kv_support`).
//!
//! Time-dependent checks wait for "eventually" with a bounded poll; none
//! asserts how long anything took.

use crate::kv_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtp::kv::{BackendKind, KvConfig, KvError, KvStore};

/// The longest "eventually" wait (a hang guard, not a timing assertion).
const EVENTUALLY: Duration = Duration::from_secs(20);

/// A store under test and how to reopen it (a gateway restart).
struct Fixture {
    store: Option<Arc<KvStore>>,
    config: KvConfig,
    _dir: Option<tempfile::TempDir>,
}

fn base_config() -> KvConfig {
    let mut config: KvConfig = toml::from_str(
        r#"
        sweep_interval = "50ms"
        max_value_bytes = "1k"
        max_keys = 10000
        [buckets.small]
        max_value_bytes = 16
        max_keys = 3
        [buckets.race]
        max_keys = 5
        "#,
    )
    .unwrap();
    config.backend = BackendKind::Embedded;
    config
}

static PREFIX: AtomicUsize = AtomicUsize::new(0);

impl Fixture {
    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config();
        config.path = dir.path().join("kv");
        let store = Arc::new(KvStore::open(&config).await.unwrap());
        Self {
            store: Some(store),
            config,
            _dir: Some(dir),
        }
    }

    /// Embedded with `flush_interval` of an hour: no write is fsynced while
    /// the store is open, so `restart` shows the flush at shutdown.
    async fn embedded_flushed() -> Self {
        let mut f = Self::embedded().await;
        drop(f.store.take());
        f.config.flush_interval = Some(Duration::from_secs(3600));
        f.store = Some(Arc::new(KvStore::open(&f.config).await.unwrap()));
        f
    }

    async fn redis() -> Self {
        let server = kv_support::redis();
        let mut config = base_config();
        config.backend = BackendKind::Redis;
        config.url = Some(server.url.clone());
        // Each test has its own prefix on the shared server.
        config.key_prefix = format!(
            "t{}-{}:",
            std::process::id(),
            PREFIX.fetch_add(1, Ordering::SeqCst)
        );
        let store = Arc::new(KvStore::open(&config).await.unwrap());
        Self {
            store: Some(store),
            config,
            _dir: None,
        }
    }

    /// The Redis backend on the shared Redis Cluster (`[kv] cluster`).
    async fn redis_cluster() -> Self {
        let cluster = kv_support::cluster();
        let mut config = base_config();
        config.backend = BackendKind::Redis;
        config.cluster = Some(cluster.urls());
        config.key_prefix = format!(
            "c{}-{}:",
            std::process::id(),
            PREFIX.fetch_add(1, Ordering::SeqCst)
        );
        let store = Arc::new(KvStore::open(&config).await.unwrap());
        Self {
            store: Some(store),
            config,
            _dir: None,
        }
    }

    fn kv(&self) -> Arc<KvStore> {
        self.store.clone().unwrap()
    }

    /// Drops the store (closing the embedded file) and opens it again from the config.
    async fn reopen(&mut self) {
        let store = self.store.take().unwrap();
        drop(Arc::into_inner(store).expect("no other handle to the store"));
        self.store = Some(Arc::new(KvStore::open(&self.config).await.unwrap()));
    }
}

/// Polls `get` until the key is gone; panics after [`EVENTUALLY`].
async fn until_absent(kv: &KvStore, bucket: &str, key: &str) {
    let start = std::time::Instant::now();
    while kv.get(bucket, key).await.unwrap().is_some() {
        assert!(start.elapsed() < EVENTUALLY, "{bucket}/{key} never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_set_delete(f: &mut Fixture) {
    let kv = f.kv();
    assert_eq!(kv.get("b", "k").await.unwrap(), None);
    kv.set("b", "k", b"one".to_vec(), None).await.unwrap();
    assert_eq!(kv.get("b", "k").await.unwrap(), Some(b"one".to_vec()));
    kv.set("b", "k", b"two".to_vec(), None).await.unwrap();
    assert_eq!(kv.get("b", "k").await.unwrap(), Some(b"two".to_vec()));
    // Buckets are separate name spaces.
    assert_eq!(kv.get("other", "k").await.unwrap(), None);
    // Binary values and odd keys round-trip.
    let bin = vec![0u8, 0xff, b'\r', b'\n', b'{', b'}'];
    kv.set("b", "{x}:v:y é", bin.clone(), None).await.unwrap();
    assert_eq!(kv.get("b", "{x}:v:y é").await.unwrap(), Some(bin));
    kv.set("b", "empty", Vec::new(), None).await.unwrap();
    assert_eq!(kv.get("b", "empty").await.unwrap(), Some(Vec::new()));
    assert!(kv.delete("b", "k").await.unwrap());
    assert!(!kv.delete("b", "k").await.unwrap());
    assert_eq!(kv.get("b", "k").await.unwrap(), None);
    // Bad arguments.
    for r in [
        kv.set("b", "", b"x".to_vec(), None).await,
        kv.set("b", "k", b"x".to_vec(), Some(0)).await,
        kv.set("b{", "k", b"x".to_vec(), None).await,
        kv.set("b", &"k".repeat(600), b"x".to_vec(), None).await,
    ] {
        assert!(matches!(r, Err(KvError::Invalid(_))), "{r:?}");
    }
    assert!(matches!(kv.get("", "k").await, Err(KvError::Invalid(_))));
}

async fn ttl_expiry(f: &mut Fixture) {
    let kv = f.kv();
    kv.set("t", "short", b"v".to_vec(), Some(150))
        .await
        .unwrap();
    kv.set("t", "cleared", b"v".to_vec(), Some(150))
        .await
        .unwrap();
    // A set without TTL removes the previous TTL.
    kv.set("t", "cleared", b"w".to_vec(), None).await.unwrap();
    kv.set("t", "long", b"v".to_vec(), Some(3_600_000))
        .await
        .unwrap();
    until_absent(&kv, "t", "short").await;
    assert_eq!(kv.get("t", "cleared").await.unwrap(), Some(b"w".to_vec()));
    assert_eq!(kv.get("t", "long").await.unwrap(), Some(b"v".to_vec()));
    // An expired key is absent for every call.
    assert!(!kv.delete("t", "short").await.unwrap());
    assert!(
        kv.compare_and_set("t", "short", None, b"new".to_vec(), None)
            .await
            .unwrap()
    );
    assert_eq!(kv.get("t", "short").await.unwrap(), Some(b"new".to_vec()));
}

async fn increment(f: &mut Fixture) {
    let kv = f.kv();
    assert_eq!(kv.increment("c", "n", 5, None).await.unwrap(), 5);
    assert_eq!(kv.increment("c", "n", -7, None).await.unwrap(), -2);
    assert_eq!(kv.get("c", "n").await.unwrap(), Some(b"-2".to_vec()));
    kv.set("c", "text", b"abc".to_vec(), None).await.unwrap();
    assert!(matches!(
        kv.increment("c", "text", 1, None).await,
        Err(KvError::Invalid(_))
    ));
    assert_eq!(kv.get("c", "text").await.unwrap(), Some(b"abc".to_vec()));
    kv.set("c", "big", i64::MAX.to_string().into_bytes(), None)
        .await
        .unwrap();
    assert!(matches!(
        kv.increment("c", "big", 1, None).await,
        Err(KvError::Invalid(_))
    ));
    assert_eq!(
        kv.increment("c", "big", -1, None).await.unwrap(),
        i64::MAX - 1
    );
    // Fixed window: the TTL of the creating call holds; later TTLs are ignored.
    assert_eq!(kv.increment("c", "w", 1, Some(300)).await.unwrap(), 1);
    assert_eq!(kv.increment("c", "w", 1, Some(3_600_000)).await.unwrap(), 2);
    until_absent(&kv, "c", "w").await;
    assert_eq!(kv.increment("c", "w", 1, Some(300)).await.unwrap(), 1);
}

async fn increment_race(f: &mut Fixture) {
    let kv = f.kv();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..25 {
                    seen.push(
                        kv.increment("race-c", "hits", 1, Some(600_000))
                            .await
                            .unwrap(),
                    );
                }
                seen
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        for n in t.await.unwrap() {
            assert!(all.insert(n), "{n} returned twice");
        }
    }
    assert_eq!(all, (1..=800).collect::<HashSet<i64>>());
    assert_eq!(
        kv.get("race-c", "hits").await.unwrap(),
        Some(b"800".to_vec())
    );
}

async fn compare_and_set(f: &mut Fixture) {
    let kv = f.kv();
    assert!(
        kv.compare_and_set("s", "k", None, b"a".to_vec(), None)
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_set("s", "k", None, b"b".to_vec(), None)
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_set("s", "k", Some(b"x".to_vec()), b"b".to_vec(), None)
            .await
            .unwrap()
    );
    assert!(
        kv.compare_and_set("s", "k", Some(b"a".to_vec()), b"b".to_vec(), None)
            .await
            .unwrap()
    );
    assert_eq!(kv.get("s", "k").await.unwrap(), Some(b"b".to_vec()));
    assert!(
        !kv.compare_and_set("s", "absent", Some(b"a".to_vec()), b"b".to_vec(), None)
            .await
            .unwrap()
    );
    assert_eq!(kv.get("s", "absent").await.unwrap(), None);

    // Exactly one of many concurrent CAS wins, for create and for update.
    for expected in [None, Some(b"v0".to_vec())] {
        let key = if expected.is_some() { "upd" } else { "new" };
        if let Some(v) = &expected {
            kv.set("s", key, v.clone(), None).await.unwrap();
        }
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let kv = kv.clone();
                let expected = expected.clone();
                tokio::spawn(async move {
                    let mine = format!("task-{i}").into_bytes();
                    let won = kv
                        .compare_and_set("s", key, expected, mine.clone(), Some(600_000))
                        .await
                        .unwrap();
                    won.then_some(mine)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            winners.extend(t.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        assert_eq!(kv.get("s", key).await.unwrap(), Some(winners[0].clone()));
    }
}

async fn quotas(f: &mut Fixture) {
    let kv = f.kv();
    // Value size: refused, nothing stored.
    let r = kv.set("small", "big", vec![b'x'; 17], None).await;
    assert!(matches!(r, Err(KvError::Quota(_))), "{r:?}");
    assert_eq!(kv.get("small", "big").await.unwrap(), None);
    let r = kv
        .compare_and_set("small", "big", None, vec![b'x'; 17], None)
        .await;
    assert!(matches!(r, Err(KvError::Quota(_))), "{r:?}");
    // Buckets without a section take the [kv] default (1k here).
    assert!(matches!(
        kv.set("other", "big", vec![b'x'; 1025], None).await,
        Err(KvError::Quota(_))
    ));
    kv.set("other", "big", vec![b'x'; 1024], None)
        .await
        .unwrap();
    // Key count: three keys fit, a fourth does not, by any call.
    for k in ["a", "b", "c"] {
        kv.set("small", k, vec![b'x'; 16], None).await.unwrap();
    }
    let r = kv.set("small", "d", b"x".to_vec(), None).await;
    assert!(matches!(r, Err(KvError::Quota(_))), "{r:?}");
    assert!(matches!(
        kv.increment("small", "d", 1, None).await,
        Err(KvError::Quota(_))
    ));
    assert!(matches!(
        kv.compare_and_set("small", "d", None, b"x".to_vec(), None)
            .await,
        Err(KvError::Quota(_))
    ));
    assert_eq!(kv.get("small", "d").await.unwrap(), None);
    // Overwriting an existing key adds none.
    kv.set("small", "a", b"again".to_vec(), None).await.unwrap();
    // Deleting frees one.
    assert!(kv.delete("small", "a").await.unwrap());
    kv.set("small", "d", b"x".to_vec(), None).await.unwrap();
    // Expired keys do not hold the quota.
    assert!(kv.delete("small", "b").await.unwrap());
    assert!(kv.delete("small", "c").await.unwrap());
    kv.set("small", "e", b"x".to_vec(), Some(100))
        .await
        .unwrap();
    kv.set("small", "g", b"x".to_vec(), Some(100))
        .await
        .unwrap();
    assert!(matches!(
        kv.set("small", "h", b"x".to_vec(), None).await,
        Err(KvError::Quota(_))
    ));
    until_absent(&kv, "small", "e").await;
    until_absent(&kv, "small", "g").await;
    kv.set("small", "h", b"x".to_vec(), None).await.unwrap();
    kv.set("small", "i", b"x".to_vec(), None).await.unwrap();

    // Concurrent creators: exactly max_keys (5) succeed.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.set("race", &format!("k{i}"), b"v".to_vec(), None).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(KvError::Quota(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 5);
}

async fn restart(f: &mut Fixture) {
    let kv = f.kv();
    kv.set("p", "kept", b"value".to_vec(), None).await.unwrap();
    kv.set("p", "ttl", b"value".to_vec(), Some(3_600_000))
        .await
        .unwrap();
    assert_eq!(kv.increment("p", "n", 41, None).await.unwrap(), 41);
    for k in ["a", "b", "c"] {
        kv.set("small", k, b"x".to_vec(), None).await.unwrap();
    }
    drop(kv);
    f.reopen().await;
    let kv = f.kv();
    assert_eq!(kv.get("p", "kept").await.unwrap(), Some(b"value".to_vec()));
    assert_eq!(kv.get("p", "ttl").await.unwrap(), Some(b"value".to_vec()));
    assert_eq!(kv.increment("p", "n", 1, None).await.unwrap(), 42);
    // The key count survives too.
    assert!(matches!(
        kv.set("small", "d", b"x".to_vec(), None).await,
        Err(KvError::Quota(_))
    ));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let mut f = super::Fixture::embedded().await;
                    super::$name(&mut f).await;
                }
            )*
        }
        mod embedded_flushed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let mut f = super::Fixture::embedded_flushed().await;
                    super::$name(&mut f).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let mut f = super::Fixture::redis().await;
                    super::$name(&mut f).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let mut f = super::Fixture::redis_cluster().await;
                    super::$name(&mut f).await;
                }
            )*
        }
    };
}

suite!(
    get_set_delete,
    ttl_expiry,
    increment,
    increment_race,
    compare_and_set,
    quotas,
    restart,
);

/// A Redis that is not there: calls fail with `unavailable`, no hang.
#[tokio::test]
async fn redis_down_is_unavailable() {
    let mut config = base_config();
    config.backend = BackendKind::Redis;
    config.url = Some(format!("redis://127.0.0.1:{}/0", kv_support::free_port()));
    config.connect_timeout = Duration::from_millis(500);
    let kv = KvStore::open(&config).await.unwrap();
    let r = kv.get("b", "k").await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
    let r = kv.increment("b", "k", 1, None).await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
}

/// A Redis Cluster none of whose seed nodes is there: calls fail with
/// `unavailable` (the connection is made on first use), no hang.
#[tokio::test]
async fn redis_cluster_down_is_unavailable() {
    let mut config = base_config();
    config.backend = BackendKind::Redis;
    config.cluster = Some(vec![format!(
        "redis://127.0.0.1:{}",
        kv_support::free_port()
    )]);
    config.connect_timeout = Duration::from_millis(500);
    let kv = KvStore::open(&config).await.unwrap();
    let r = kv.get("b", "k").await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
    let r = kv.increment("b", "k", 1, None).await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
}

/// Two stores on one embedded file cannot both be open: the second says why.
#[tokio::test]
async fn embedded_file_is_exclusive() {
    let f = Fixture::embedded().await;
    let r = KvStore::open(&f.config).await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
}
