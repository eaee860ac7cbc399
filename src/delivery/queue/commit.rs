//! Group commit: one fsync round for many messages.
//!
//! Sessions write their message to `tmp/<id>` (on the blocking pool, no
//! fsync) and hand the open file to the committer. The committer takes the
//! first waiting file, then collects more for up to `commit_wait` or until
//! `commit_max_batch` files, and in one blocking job: `fdatasync`s every
//! file (in parallel threads, so the file system can merge the journal
//! commits), renames each into `msg/`, and fsyncs `msg/` **once** for the
//! whole batch. Only then are the waiting sessions answered, and only then
//! do they reply 250. Under load, the files of concurrent sessions share
//! one directory fsync (and usually one journal commit) instead of paying
//! one each; a session alone pays at most `commit_wait` extra.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::spool::SpoolDirs;
use crate::delivery::util::{blocking, sync_dir};

/// A written, not yet durable message.
#[derive(Debug)]
pub struct CommitRequest {
    /// The queue id (file name in `tmp/` and `msg/`).
    pub id: String,
    /// The open file in `tmp/`.
    pub file: File,
    /// Answered once the message is in `msg/` and durable.
    pub done: oneshot::Sender<std::io::Result<()>>,
}

/// Runs the committer until every sender is dropped.
pub async fn run(
    dirs: SpoolDirs,
    mut rx: mpsc::Receiver<CommitRequest>,
    wait: Duration,
    max_batch: usize,
) {
    let max_batch = max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        if !wait.is_zero() {
            let deadline = tokio::time::Instant::now() + wait;
            while batch.len() < max_batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    _ => break,
                }
            }
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let dirs2 = dirs.clone();
        let mut jobs: Vec<(String, File)> = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for r in batch {
            jobs.push((r.id, r.file));
            waiters.push(r.done);
        }
        let result = blocking(move || Ok(commit_batch(&dirs2, jobs))).await;
        match result {
            Ok(results) => {
                for (w, r) in waiters.into_iter().zip(results) {
                    let _ = w.send(r);
                }
            }
            Err(e) => {
                for w in waiters {
                    let _ = w.send(Err(std::io::Error::other(e.to_string())));
                }
            }
        }
    }
}

/// fdatasync each file (in parallel), rename into `msg/`, fsync `msg/` once.
fn commit_batch(dirs: &SpoolDirs, jobs: Vec<(String, File)>) -> Vec<std::io::Result<()>> {
    let n = jobs.len();
    let synced: Vec<std::io::Result<()>> = if n <= 2 {
        jobs.iter().map(|(_, f)| f.sync_data()).collect()
    } else {
        let threads = n.min(8);
        let per = n.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || chunk.iter().map(|(_, f)| f.sync_data()).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .zip(jobs.chunks(per))
                .flat_map(|(h, chunk)| {
                    h.join().unwrap_or_else(|_| {
                        chunk
                            .iter()
                            .map(|_| Err(std::io::Error::other("fsync thread panicked")))
                            .collect()
                    })
                })
                .collect()
        })
    };
    let mut results: Vec<std::io::Result<()>> = Vec::with_capacity(n);
    let mut renamed = Vec::new();
    for ((id, file), synced) in jobs.into_iter().zip(synced) {
        drop(file);
        let tmp: PathBuf = dirs.tmp.join(&id);
        let r = synced.and_then(|()| std::fs::rename(&tmp, dirs.msg.join(&id)));
        if r.is_ok() {
            renamed.push(id);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        results.push(r);
    }
    if !renamed.is_empty()
        && let Err(e) = sync_dir(&dirs.msg)
    {
        {
            // The renames may not be durable: withdraw and fail them all
            // (the clients retry).
            for id in &renamed {
                let _ = std::fs::remove_file(dirs.msg.join(id));
            }
            let kind = e.kind();
            let msg = e.to_string();
            for r in results.iter_mut() {
                if r.is_ok() {
                    *r = Err(std::io::Error::new(kind, msg.clone()));
                }
            }
        }
    }
    results
}
