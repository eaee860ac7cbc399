//! Maildir delivery: one file per message, durable before the 250.
//!
//! The Maildir at `[delivery] maildir` is the mailbox of every local
//! recipient: the message is written once, whatever the number of
//! recipients (the envelope recipients are in the Received header's `for`
//! clause when there is one). Per-recipient or per-domain mailboxes are not
//! implemented; put a plugin or a local delivery agent behind the gateway
//! for that.
//!
//! The write follows the Maildir protocol plus the fsyncs that make it
//! crash-safe: create `tmp/<unique>` exclusively, write every part, fsync
//! the file, rename it into `new/<unique>`, fsync `new/`. Only then does
//! [`Maildir::deliver`] return, and the driver answer 250. The unique name
//! is `<secs>.M<usecs>P<pid>Q<counter>R<random>.<host>` (the host name with
//! `/` and `:` escaped as the Maildir convention says).
//!
//! The file system work runs on tokio's blocking pool, never on the reactor.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::util::{blocking, hostname, private_dir, private_file, sync_dir};
use crate::ids::random_u64;

/// A Maildir root with `tmp/`, `new/` and `cur/`.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    counter: AtomicU64,
}

impl Maildir {
    /// Creates the directories when missing (`0700`; files are `0600`).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        private_dir(root)?;
        for sub in ["tmp", "new", "cur"] {
            private_dir(&root.join(sub))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    /// The Maildir root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh unique file name.
    fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host: String = hostname()
            .chars()
            .map(|c| match c {
                '/' => "\\057".to_string(),
                ':' => "\\072".to_string(),
                c => c.to_string(),
            })
            .collect();
        format!(
            "{}.M{}P{}Q{}R{:016x}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed),
            random_u64(),
            host
        )
    }

    /// Writes the parts as one message file and makes it durable; returns
    /// the path under `new/`.
    pub async fn deliver(&self, parts: &[&[u8]]) -> std::io::Result<PathBuf> {
        let name = self.unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let new_dir = self.root.join("new");
        let new = new_dir.join(&name);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut data = Vec::with_capacity(total);
        for p in parts {
            data.extend_from_slice(p);
        }
        blocking(move || {
            let result = write_durably(&tmp, &data, &new, &new_dir);
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.map(|()| new)
        })
        .await
    }
}

fn write_durably(tmp: &Path, data: &[u8], new: &Path, new_dir: &Path) -> std::io::Result<()> {
    let mut f = private_file(tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, new)?;
    sync_dir(new_dir)
}
