//! Store-and-forward: a durable spool with retries, bounces and crash
//! recovery. A 250 is a promise.
//!
//! # Accepting
//! [`Queue::enqueue`] writes envelope + metadata + message to `tmp/<id>`,
//! hands it to the group committer ([`commit`]): fdatasync, rename into
//! `msg/`, one fsync of `msg/` per batch — and only then returns
//! `250 2.0.0 Ok: queued as <id>`. Concurrent sessions share fsync rounds.
//!
//! # Delivering
//! `[delivery.spool] workers` tasks take due messages and send them through
//! the same upstream pool as forward mode (connection reuse, pipelining,
//! failover, TLS policy), with per-recipient results:
//! - accepted recipients are done; only the others are retried;
//! - a 4xx (or no connection, or `required` TLS unavailable) defers the
//!   recipient: the next attempt comes after `first_retry`, doubling up to
//!   `max_retry`;
//! - a 5xx, or still pending `max_lifetime` after acceptance, fails the
//!   recipient: one RFC 3464 bounce per attempt lists the recipients that
//!   failed in it ([`bounce`]), sent to the envelope sender — never for a
//!   message from the null sender. The bounce is itself spooled;
//! - a `BODY=BINARYMIME` message (the body type is kept in the spool file)
//!   goes with BDAT; when no upstream offers CHUNKING and BINARYMIME it
//!   fails with `554 5.6.3` at once and bounces, as does a message needing
//!   SMTPUTF8 (`553 5.6.7`) (see [`crate::delivery::client`]);
//! - with `delay_warning_after` set, a message that still has deferred
//!   recipients that long after acceptance causes one RFC 3464 delay
//!   warning (`Action: delayed`) to the envelope sender (never to the null
//!   sender); `state/<id>` remembers it was sent, so it is sent at most
//!   once (a crash between queueing it and writing the state can repeat
//!   it, as with bounces);
//! - bounces and delay warnings go to senders the gateway can hold
//!   accountable only (see Backscatter in [`crate::delivery`]).
//!
//! The decisions of an attempt are a pure function (`plan`, table-tested);
//! the worker does the I/O around it.
//!
//! After a failed attempt the state (`state/<id>`: per-recipient status,
//! attempts, next attempt time) is written atomically and fsynced. When no
//! recipient is pending, the message and its state are removed.
//!
//! # Guarantees
//! On start every committed message resumes and is tried at once (its
//! state says which recipients are still pending; a restart acts as a
//! flush); `tmp/` is cleared (those were never acknowledged). A message that got a 250 is never lost. Delivery is
//! at-least-once: if the gateway dies after the upstream's 250 and before
//! the spool entry (or its state) is updated, that recipient gets the
//! message again; a bounce can likewise be sent twice.
//!
//! # Administration
//! See [`admin`]: `wasmtp queue list|show|flush|delete`, working while the
//! gateway runs (listing reads the spool directory; flush and delete go
//! through `control.sock` in the spool).
//!
//! # Outcome notifications
//! [`Queue::subscribe`] gives a broadcast receiver of [`DeliveryReport`]s,
//! one per recipient and attempt, for the plugin host's `delivery` hook.

pub mod admin;
pub mod bounce;
pub mod commit;
mod plan;
pub mod report;
pub mod spool;
mod worker;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use admin::{QueueArgs, QueueCommand, queue_command};
pub use report::{DeliveryReport, DeliveryStatus};

use crate::context::Notes;
use crate::delivery::forward::UpstreamPool;
use crate::delivery::{DeliveryConfig, Envelope, SpoolConfig};
use crate::protocol::{Reply, replies};
use spool::{Meta, SpoolDirs, State};

/// Bodies of fresh messages kept in memory for their first attempt, in
/// total at most this many bytes (beyond, the worker reads the file).
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;

/// A message known to the scheduler.
#[derive(Debug)]
struct Entry {
    meta: Arc<Meta>,
    state: State,
    /// Message bytes kept from acceptance for the first attempt.
    body: Option<Arc<Vec<u8>>>,
    /// A worker has it now.
    in_flight: bool,
    /// Deleted by the admin while in flight.
    deleted: bool,
}

/// State shared by the queue's tasks.
#[derive(Debug)]
struct Shared {
    dirs: SpoolDirs,
    config: SpoolConfig,
    /// `[server] hostname`: the reporting MTA of bounces.
    hostname: String,
    pool: Arc<UpstreamPool>,
    entries: Mutex<HashMap<String, Entry>>,
    /// (due unix ms, id); stale items are skipped when popped.
    timers: Mutex<BinaryHeap<Reverse<(u64, String)>>>,
    wake: Notify,
    ready: mpsc::UnboundedSender<String>,
    reports: broadcast::Sender<DeliveryReport>,
    commit: mpsc::Sender<commit::CommitRequest>,
    cached_bytes: AtomicUsize,
}

/// The running spool: committer, scheduler, workers and admin socket.
#[derive(Debug)]
pub struct Queue {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Queue {
    /// Opens (creates) the spool, recovers every committed message and
    /// starts the tasks. Needs a tokio runtime.
    /// `hostname` is the gateway's (`[server] hostname`): the outbound
    /// HELO when `helo_name` is unset, and the reporting MTA of bounces.
    pub async fn start(config: &DeliveryConfig, hostname: &str) -> anyhow::Result<Self> {
        let pool = Arc::new(UpstreamPool::new(&config.forward, hostname)?);
        let dirs = SpoolDirs::new(&config.spool.dir);
        let open_err = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "delivery.spool.dir: cannot open spool {}: {e}",
                config.spool.dir.display()
            )
        };
        dirs.create().map_err(|e| open_err(&e))?;
        // Bind the control socket first: it also refuses a spool another
        // running gateway uses (before we touch its tmp/).
        let listener = match admin::bind(&dirs) {
            Ok(l) => Some(l),
            Err(e) if e.to_string().contains("in use by another") => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "queue control socket unavailable; flush/delete only work offline");
                None
            }
        };
        let d2 = dirs.clone();
        let recovered = crate::delivery::util::blocking(move || {
            spool::cleanup(&d2)?;
            spool::scan(&d2)
        })
        .await
        .map_err(|e| open_err(&e))?;
        let (commit_tx, commit_rx) = mpsc::channel(config.spool.commit_max_batch.max(1) * 4);
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let (reports, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            dirs: dirs.clone(),
            config: config.spool.clone(),
            hostname: hostname.to_string(),
            pool,
            entries: Mutex::new(HashMap::new()),
            timers: Mutex::new(BinaryHeap::new()),
            wake: Notify::new(),
            ready: ready_tx,
            reports,
            commit: commit_tx,
            cached_bytes: AtomicUsize::new(0),
        });
        let (ok, bad) = recovered;
        for (path, why) in bad {
            tracing::warn!(path = %path.display(), %why, "ignoring unreadable spool file");
        }
        let n = ok.len();
        for mut l in ok {
            l.state.next_attempt_ms = 0;
            let id = l.meta.id.clone();
            // A (re)start is a queue run: every message is tried at once.
            let due = 0;
            shared.lock_entries().insert(
                id.clone(),
                Entry {
                    meta: Arc::new(l.meta),
                    state: l.state,
                    body: None,
                    in_flight: false,
                    deleted: false,
                },
            );
            shared.schedule(id, due);
        }
        if n > 0 {
            tracing::info!(messages = n, "spool recovered");
        }
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(commit::run(
            dirs.clone(),
            commit_rx,
            config.spool.commit_wait,
            config.spool.commit_max_batch,
        )));
        tasks.push(tokio::spawn(worker::scheduler(shared.clone())));
        let ready_rx = Arc::new(tokio::sync::Mutex::new(ready_rx));
        for _ in 0..config.spool.workers.max(1) {
            tasks.push(tokio::spawn(worker::worker(
                shared.clone(),
                ready_rx.clone(),
            )));
        }
        if let Some(listener) = listener {
            tasks.push(tokio::spawn(admin::serve(shared.clone(), listener)));
        }
        Ok(Self {
            shared,
            tasks: Mutex::new(tasks),
        })
    }

    /// Spools a message durably; `250 2.0.0 Ok: queued as <id>` once it is.
    pub async fn enqueue(&self, envelope: &Envelope, parts: &[&[u8]]) -> Reply {
        self.enqueue_with_notes(envelope, parts, &Notes::new())
            .await
    }

    /// Like [`Queue::enqueue`], keeping plugin-visible notes with the message.
    pub async fn enqueue_with_notes(
        &self,
        envelope: &Envelope,
        parts: &[&[u8]],
        notes: &Notes,
    ) -> Reply {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut body = Vec::with_capacity(total);
        for p in parts {
            body.extend_from_slice(p);
        }
        let recipients = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let options = envelope.mail_options();
        let meta = Meta {
            id: String::new(),
            sender: envelope.sender.clone(),
            recipients,
            created_ms: 0,
            size: 0,
            notes: notes.clone(),
            body: options.body,
            smtputf8: options.smtputf8,
            trusted: envelope.trusted,
            verified: envelope.verified.clone(),
        };
        match self.shared.spool_message(&envelope.id, meta, body).await {
            Ok(id) => replies::queued_as(&id),
            Err(e) => {
                tracing::error!(id = %envelope.id, error = %e, "spool write failed");
                replies::spool_error()
            }
        }
    }

    /// Delivery outcome reports.
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryReport> {
        self.shared.reports.subscribe()
    }

    /// The upstream pool.
    pub fn pool(&self) -> &UpstreamPool {
        &self.shared.pool
    }

    /// Messages in the spool (known to the scheduler).
    pub fn len(&self) -> usize {
        self.shared.lock_entries().len()
    }

    /// True when no message is spooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every deferred message due now.
    pub fn flush(&self) -> usize {
        self.shared.flush()
    }

    /// Removes a message; false when unknown.
    pub async fn delete(&self, id: &str) -> bool {
        self.shared.clone().delete(id.to_string()).await
    }

    /// Stops the tasks (spooled messages stay for the next start) and
    /// closes pooled connections.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(self.shared.dirs.control_socket());
        self.shared.pool.close().await;
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if !tasks.is_empty() {
            // Unlink the socket now: the aborted listener task may only be
            // dropped later, and a new queue on this spool must not take
            // it for another running gateway.
            let _ = std::fs::remove_file(self.shared.dirs.control_socket());
        }
        for t in tasks.iter() {
            t.abort();
        }
    }
}

impl Shared {
    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `id` on the timer heap (due at `due_ms`) and wakes the scheduler.
    fn schedule(&self, id: String, due_ms: u64) {
        self.timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse((due_ms, id)));
        self.wake.notify_one();
    }

    fn flush(&self) -> usize {
        let mut n = 0;
        let ids: Vec<String> = {
            let mut entries = self.lock_entries();
            entries
                .iter_mut()
                .filter(|(_, e)| !e.in_flight)
                .map(|(id, e)| {
                    e.state.next_attempt_ms = 0;
                    n += 1;
                    id.clone()
                })
                .collect()
        };
        for id in ids {
            self.schedule(id, 0);
        }
        n
    }

    async fn delete(self: Arc<Self>, id: String) -> bool {
        let known = {
            let mut entries = self.lock_entries();
            match entries.get_mut(&id) {
                Some(e) if e.in_flight => {
                    e.deleted = true;
                    true
                }
                Some(_) => {
                    entries.remove(&id);
                    true
                }
                None => false,
            }
        };
        let dirs = self.dirs.clone();
        let id2 = id.clone();
        let on_disk = crate::delivery::util::blocking(move || {
            let exists = dirs.msg.join(&id2).exists();
            spool::remove(&dirs, &id2).map(|()| exists)
        })
        .await
        .unwrap_or(false);
        known || on_disk
    }

    /// Writes and commits a message; returns its queue id once durable, and
    /// hands it to the workers.
    async fn spool_message(
        &self,
        wanted_id: &str,
        meta_base: Meta,
        body: Vec<u8>,
    ) -> std::io::Result<String> {
        let body = Arc::new(body);
        let mut id = if spool::is_safe_id(wanted_id) {
            wanted_id.to_string()
        } else {
            spool::new_id()
        };
        let meta_base = Meta {
            created_ms: spool::now_ms(),
            size: body.len() as u64,
            ..meta_base
        };
        let mut tries = 0;
        let (meta, file) = loop {
            let mut meta = meta_base.clone();
            meta.id = id.clone();
            let dirs = self.dirs.clone();
            let b = body.clone();
            let r = crate::delivery::util::blocking(move || {
                if dirs.msg.join(&meta.id).exists() {
                    return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                }
                spool::write_tmp(&dirs, &meta, &b).map(|f| (meta, f))
            })
            .await;
            match r {
                Ok(x) => break x,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 5 => {
                    tries += 1;
                    id = spool::new_id();
                }
                Err(e) => return Err(e),
            }
        };
        let (tx, rx) = oneshot::channel();
        self.commit
            .send(commit::CommitRequest {
                id: id.clone(),
                file,
                done: tx,
            })
            .await
            .map_err(|_| std::io::Error::other("spool committer stopped"))?;
        rx.await
            .map_err(|_| std::io::Error::other("spool committer stopped"))??;
        let cache = self.cached_bytes.fetch_add(body.len(), Ordering::Relaxed) + body.len()
            <= MAX_CACHED_BYTES;
        if !cache {
            self.cached_bytes.fetch_sub(body.len(), Ordering::Relaxed);
        }
        let state = State::fresh(&meta);
        self.lock_entries().insert(
            id.clone(),
            Entry {
                meta: Arc::new(meta),
                state,
                body: cache.then_some(body),
                in_flight: true,
                deleted: false,
            },
        );
        let _ = self.ready.send(id.clone());
        Ok(id)
    }
}
