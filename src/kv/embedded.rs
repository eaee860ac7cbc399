//! The embedded backend: one redb file (`<path>/kv.redb`) on local disk.
//!
//! Why redb: it is a pure-Rust, single-file, ACID store with MVCC (readers
//! never wait for the writer) and serialized write transactions, actively
//! maintained, with a stable file format since 2.0 and no C toolchain or
//! background compaction threads. Serialized writes are exactly what
//! `increment` and `compare-and-set` need to be atomic without locks of our
//! own. (fjall, an LSM tree, shines at write volumes far beyond a mail
//! gateway's, at the cost of background threads and a directory of files.)
//!
//! Threads: reads run on the caller's thread against a read snapshot (see
//! [`Embedded::get`] for why not on the blocking pool). Writes go over a bounded
//! channel to one dedicated writer thread, which applies every queued write
//! in one transaction and commits once (group commit, one fsync for the
//! batch), then answers each caller. Each write checks before it changes
//! anything, so a refused write (quota, not an integer) leaves the others of
//! its batch alone; a failed commit fails the whole batch with `unavailable`.
//!
//! Tables:
//! - `entries`: (bucket, key) -> (deadline ms or 0 for none, value);
//! - `expiry`: (deadline, bucket, key) -> () for the sweep;
//! - `counts`: bucket -> number of stored keys (the `max_keys` quota).
//!
//! A key at or past its deadline is absent for every call at once; the
//! periodic sweep (`[kv] sweep_interval`) deletes it, and a write that would
//! exceed `max_keys` sweeps first, so expired keys never hold a quota.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{KvConfig, KvError, Quota, now_ms, overflow, parse_counter};

const ENTRIES: TableDefinition<(&str, &str), (u64, &[u8])> = TableDefinition::new("entries");
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");

/// Writes waiting for the writer thread, at most.
const QUEUE: usize = 1024;
/// Writes applied in one transaction, at most.
const BATCH: usize = 256;
/// Expired keys one sweep removes, at most (the next sweep goes on).
const SWEEP_BATCH: usize = 10_000;

/// A write for the writer thread.
enum Op {
    Set {
        bucket: String,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    },
    Delete {
        bucket: String,
        key: String,
    },
    Increment {
        bucket: String,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
        quota: Quota,
    },
    CompareAndSet {
        bucket: String,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    },
    Sweep,
    /// Make every earlier write durable (`flush_interval`).
    Flush,
}

/// What a write answers.
enum Done {
    Unit,
    Bool(bool),
    Int(i64),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, KvError>>,
}

/// The embedded store. Dropping it stops the sweep, lets the writer finish
/// what is queued and closes the file (the drop waits for that).
pub struct Embedded {
    db: Arc<Database>,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Sends the periodic flush (`flush_interval`).
    flusher: Option<tokio::task::JoinHandle<()>>,
}

fn storage(e: impl Into<redb::Error>) -> KvError {
    KvError::Unavailable(format!("embedded store: {}", e.into()))
}

fn gone() -> KvError {
    KvError::Unavailable("embedded store: the writer has stopped".into())
}

impl Embedded {
    /// Opens (or creates) `<config.path>/kv.redb` and starts the writer
    /// thread and the periodic sweep. Fails if another process holds the file.
    pub async fn open(config: &KvConfig) -> Result<Self, KvError> {
        let dir = config.path.clone();
        let db = tokio::task::spawn_blocking(move || open_db(&dir))
            .await
            .map_err(|e| KvError::Unavailable(e.to_string()))??;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_db = db.clone();
        let relaxed = config.flush_interval.is_some();
        let writer = std::thread::Builder::new()
            .name("wasmtp-kv-writer".into())
            .spawn(move || writer_loop(&writer_db, rx, relaxed))
            .map_err(|e| KvError::Unavailable(format!("cannot start the kv writer: {e}")))?;
        let flusher = config.flush_interval.map(|every| {
            tokio::spawn(periodic(
                tx.downgrade(),
                every,
                || Op::Flush,
                "kv flush failed",
            ))
        });
        let sweeper = tokio::spawn(periodic(
            tx.downgrade(),
            config.sweep_interval,
            || Op::Sweep,
            "kv sweep failed",
        ));
        Ok(Self {
            db,
            tx: Some(tx),
            writer: Some(writer),
            sweeper,
            flusher,
        })
    }

    async fn write(&self, op: Op) -> Result<Done, KvError> {
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        let (reply, done) = oneshot::channel();
        tx.send(Job { op, reply }).await.map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// The value of `key`, if present and not expired.
    ///
    /// Runs on the caller's thread: a read of redb's cached pages takes a
    /// few microseconds, less than handing it to the blocking pool and
    /// back (two thread switches per read, measured as the larger cost
    /// under load); a page not in redb's cache is one `pread`, normally
    /// answered from the OS page cache.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let now = now_ms();
        Ok(table.get((bucket, key)).map_err(storage)?.and_then(|g| {
            let (deadline, value) = g.value();
            live(deadline, now).then(|| value.to_vec())
        }))
    }

    /// Sets `key`; see [`super::KvStore::set`].
    pub async fn set(
        &self,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<(), KvError> {
        let op = Op::Set {
            bucket: bucket.into(),
            key: key.into(),
            value,
            ttl_ms,
            quota,
        };
        self.write(op).await.map(|_| ())
    }

    /// Removes `key`; true if it was live.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let op = Op::Delete {
            bucket: bucket.into(),
            key: key.into(),
        };
        match self.write(op).await? {
            Done::Bool(b) => Ok(b),
            _ => Err(gone()),
        }
    }

    /// Atomic increment; see [`super::KvStore::increment`].
    pub async fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<i64, KvError> {
        let op = Op::Increment {
            bucket: bucket.into(),
            key: key.into(),
            delta,
            ttl_ms,
            quota,
        };
        match self.write(op).await? {
            Done::Int(n) => Ok(n),
            _ => Err(gone()),
        }
    }

    /// Atomic compare-and-set; see [`super::KvStore::compare_and_set`].
    pub async fn compare_and_set(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        quota: Quota,
    ) -> Result<bool, KvError> {
        let op = Op::CompareAndSet {
            bucket: bucket.into(),
            key: key.into(),
            expected,
            value,
            ttl_ms,
            quota,
        };
        match self.write(op).await? {
            Done::Bool(b) => Ok(b),
            _ => Err(gone()),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.sweeper.abort();
        if let Some(f) = &self.flusher {
            f.abort();
        }
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            // The writer ends once the queue is drained; the file is closed
            // when the last `Arc<Database>` goes, so a reopen can follow.
            let _ = writer.join();
        }
    }
}

fn open_db(dir: &Path) -> Result<Database, KvError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        KvError::Unavailable(format!("cannot create kv directory {}: {e}", dir.display()))
    })?;
    let file = dir.join("kv.redb");
    let db = Database::create(&file)
        .map_err(|e| KvError::Unavailable(format!("cannot open {}: {e}", file.display())))?;
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(ENTRIES).map_err(storage)?;
    txn.open_table(EXPIRY).map_err(storage)?;
    txn.open_table(COUNTS).map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(db)
}

/// Whether an entry with this deadline (0: none) is alive at `now`.
fn live(deadline: u64, now: u64) -> bool {
    deadline == 0 || now < deadline
}

fn deadline(ttl_ms: Option<u64>, now: u64) -> u64 {
    ttl_ms.map_or(0, |t| now.saturating_add(t).max(1))
}

/// Sends `op()` to the writer every `every` while the store lives; a
/// failure is logged as `failed`.
async fn periodic(
    tx: mpsc::WeakSender<Job>,
    every: std::time::Duration,
    op: fn() -> Op,
    failed: &'static str,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        let (reply, done) = oneshot::channel();
        if tx.send(Job { op: op(), reply }).await.is_err() {
            return;
        }
        drop(tx);
        if let Ok(Err(e)) = done.await {
            tracing::warn!(error = %e, "{failed}");
        }
    }
}

/// Applies queued writes in batches, one transaction and one commit each.
/// `relaxed` (`flush_interval`): commits are not fsynced, except a batch
/// holding a flush and the last commit when the queue closes.
fn writer_loop(db: &Database, mut rx: mpsc::Receiver<Job>, relaxed: bool) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let durable = !relaxed || jobs.iter().any(|j| matches!(j.op, Op::Flush));
        match run_batch(db, &mut jobs, durable) {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let e = storage(e);
                tracing::error!(error = %e, "kv write batch failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
    if relaxed {
        // The queue closed (shutdown): make the last writes durable.
        let flushed = db
            .begin_write()
            .map_err(redb::Error::from)
            .and_then(|t| t.commit().map_err(redb::Error::from));
        if let Err(e) = flushed {
            tracing::error!(error = %e, "kv: final flush failed");
        }
    }
}

fn run_batch(
    db: &Database,
    jobs: &mut [Job],
    durable: bool,
) -> Result<Vec<Result<Done, KvError>>, redb::Error> {
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    }
    let results = {
        let mut t = Tables::open(&txn)?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            let op = std::mem::replace(&mut job.op, Op::Sweep);
            results.push(t.apply(op, now_ms())?);
        }
        results
    };
    txn.commit()?;
    Ok(results)
}

/// The three tables, open in one write transaction.
struct Tables<'t> {
    entries: Table<'t, (&'static str, &'static str), (u64, &'static [u8])>,
    expiry: Table<'t, (u64, &'static str, &'static str), ()>,
    counts: Table<'t, &'static str, u64>,
}

/// A write's outcome: the outer error aborts the batch, the inner one is
/// the caller's (nothing changed).
type Applied = Result<Result<Done, KvError>, redb::Error>;

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Self {
            entries: txn.open_table(ENTRIES)?,
            expiry: txn.open_table(EXPIRY)?,
            counts: txn.open_table(COUNTS)?,
        })
    }

    fn apply(&mut self, op: Op, now: u64) -> Applied {
        match op {
            Op::Set {
                bucket,
                key,
                value,
                ttl_ms,
                quota,
            } => Ok(self
                .put(&bucket, &key, &value, deadline(ttl_ms, now), &quota, now)?
                .map(|()| Done::Unit)),
            Op::Delete { bucket, key } => Ok(Ok(Done::Bool(self.remove(&bucket, &key, now)?))),
            Op::Increment {
                bucket,
                key,
                delta,
                ttl_ms,
                quota,
            } => {
                let (n, dl) = match self.live(&bucket, &key, now)? {
                    Some((dl, value)) => match parse_counter(&value) {
                        Ok(old) => match old.checked_add(delta) {
                            Some(n) => (n, dl),
                            None => return Ok(Err(overflow())),
                        },
                        Err(e) => return Ok(Err(e)),
                    },
                    None => (delta, deadline(ttl_ms, now)),
                };
                let text = n.to_string();
                Ok(self
                    .put(&bucket, &key, text.as_bytes(), dl, &quota, now)?
                    .map(|()| Done::Int(n)))
            }
            Op::CompareAndSet {
                bucket,
                key,
                expected,
                value,
                ttl_ms,
                quota,
            } => {
                let current = self.live(&bucket, &key, now)?.map(|(_, v)| v);
                if current != expected {
                    return Ok(Ok(Done::Bool(false)));
                }
                Ok(self
                    .put(&bucket, &key, &value, deadline(ttl_ms, now), &quota, now)?
                    .map(|()| Done::Bool(true)))
            }
            Op::Sweep => {
                self.sweep(now)?;
                Ok(Ok(Done::Unit))
            }
            Op::Flush => Ok(Ok(Done::Unit)),
        }
    }

    /// The stored entry, expired or not: (deadline, value).
    fn stored(&self, bucket: &str, key: &str) -> Result<Option<(u64, Vec<u8>)>, redb::Error> {
        Ok(self.entries.get((bucket, key))?.map(|g| {
            let (dl, v) = g.value();
            (dl, v.to_vec())
        }))
    }

    fn live(
        &self,
        bucket: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, redb::Error> {
        Ok(self.stored(bucket, key)?.filter(|(dl, _)| live(*dl, now)))
    }

    fn count(&self, bucket: &str) -> Result<u64, redb::Error> {
        Ok(self.counts.get(bucket)?.map_or(0, |g| g.value()))
    }

    fn put(
        &mut self,
        bucket: &str,
        key: &str,
        value: &[u8],
        dl: u64,
        quota: &Quota,
        now: u64,
    ) -> Result<Result<(), KvError>, redb::Error> {
        let old = self.stored(bucket, key)?.map(|(dl, _)| dl);
        let count = self.count(bucket)?;
        if old.is_none() && count >= quota.max_keys {
            self.sweep(now)?;
            let count = self.count(bucket)?;
            if count >= quota.max_keys {
                return Ok(Err(KvError::Quota(format!(
                    "bucket {bucket:?} holds its max_keys of {}",
                    quota.max_keys
                ))));
            }
        }
        if let Some(old_dl) = old
            && old_dl != 0
        {
            self.expiry.remove((old_dl, bucket, key))?;
        }
        self.entries.insert((bucket, key), (dl, value))?;
        if dl != 0 {
            self.expiry.insert((dl, bucket, key), ())?;
        }
        if old.is_none() {
            let count = self.count(bucket)?;
            self.counts.insert(bucket, count + 1)?;
        }
        Ok(Ok(()))
    }

    /// Removes the entry; true if it was live.
    fn remove(&mut self, bucket: &str, key: &str, now: u64) -> Result<bool, redb::Error> {
        let Some((dl, _)) = self.stored(bucket, key)? else {
            return Ok(false);
        };
        self.entries.remove((bucket, key))?;
        if dl != 0 {
            self.expiry.remove((dl, bucket, key))?;
        }
        let count = self.count(bucket)?;
        if count <= 1 {
            self.counts.remove(bucket)?;
        } else {
            self.counts.insert(bucket, count - 1)?;
        }
        Ok(live(dl, now))
    }

    /// Deletes up to [`SWEEP_BATCH`] keys at or past their deadline.
    fn sweep(&mut self, now: u64) -> Result<(), redb::Error> {
        let mut due = Vec::new();
        for item in self.expiry.range(..(now.saturating_add(1), "", ""))? {
            let (k, _) = item?;
            let (dl, bucket, key) = k.value();
            due.push((dl, bucket.to_string(), key.to_string()));
            if due.len() >= SWEEP_BATCH {
                break;
            }
        }
        for (dl, bucket, key) in due {
            match self.stored(&bucket, &key)? {
                Some((current, _)) if current == dl => {
                    self.remove(&bucket, &key, now)?;
                }
                _ => {
                    self.expiry.remove((dl, bucket.as_str(), key.as_str()))?;
                }
            }
        }
        Ok(())
    }
}
