//! The spool on disk.
//!
//! ```text
//! <dir>/tmp/<id>      being written; removed at start (never acknowledged)
//! <dir>/msg/<id>      committed: fsynced, renamed here, msg/ fsynced — then 250
//! <dir>/state/<id>    delivery state after a failed attempt (JSON, atomic rename)
//! <dir>/control.sock  admin socket of the running gateway (see `admin`)
//! ```
//!
//! A message file is immutable once committed:
//!
//! ```text
//! WASMTP-SPOOL 1\n
//! {"id":..,"sender":..,"recipients":[..],"created_ms":<unix ms>,"size":<n>,"notes":{..},
//!  "body":"7bit"|"8bitmime"|"binarymime","smtputf8":<bool>}\n   (one line)
//! <n bytes: the message exactly as accepted (Received header first), CRLF>
//! ```
//!
//! A file whose body is shorter than `size` is incomplete and ignored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::protocol::params::BodyType;

/// First line of every message file.
pub const MAGIC: &str = "WASMTP-SPOOL 1";

/// The directories of a spool.
#[derive(Debug, Clone)]
pub struct SpoolDirs {
    /// The spool root.
    pub root: PathBuf,
    /// `tmp/`.
    pub tmp: PathBuf,
    /// `msg/`.
    pub msg: PathBuf,
    /// `state/`.
    pub state: PathBuf,
}

impl SpoolDirs {
    /// Paths under `root` (nothing is created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            msg: root.join("msg"),
            state: root.join("state"),
        }
    }

    /// Creates the directories when missing, all `0700` (the root too).
    pub fn create(&self) -> std::io::Result<()> {
        for d in [&self.root, &self.tmp, &self.msg, &self.state] {
            crate::delivery::util::private_dir(d)?;
        }
        Ok(())
    }

    /// The admin socket path.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
}

/// True for ids we use as file names: 1..=64 of `[A-Za-z0-9._-]`, not
/// starting with a dot.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub use crate::ids::new_id;

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The envelope and metadata line of a message file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    /// Queue id (= file name).
    pub id: String,
    /// Envelope sender; empty for the null sender.
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Accepted at (unix milliseconds).
    pub created_ms: u64,
    /// Message size in bytes.
    pub size: u64,
    /// Plugin-visible metadata (transaction notes) kept with the message.
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// `BODY=` as the client declared it (absent in older files: 7BIT).
    #[serde(default)]
    pub body: BodyType,
    /// The client declared `SMTPUTF8` (absent in older files: false).
    #[serde(default)]
    pub smtputf8: bool,
    /// The client was authenticated or in `relay_networks`, so the sender
    /// may be told of failures for any recipient (absent in older files:
    /// true, as they were bounced before).
    #[serde(default = "yes")]
    pub trusted: bool,
    /// Recipients the upstream accepted at RCPT time (verification).
    #[serde(default)]
    pub verified: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Meta {
    /// Whether a failure for `recipient` may be reported to the sender (a
    /// bounce or delay warning): never to the null sender; to a trusted
    /// client's sender always; otherwise only for a recipient verified at
    /// RCPT time, unless `bounce_unverified` says so (see
    /// [`crate::delivery`], Backscatter).
    pub fn may_notify(&self, recipient: &str, bounce_unverified: bool) -> bool {
        !self.sender.is_empty()
            && (self.trusted || bounce_unverified || self.verified.iter().any(|v| v == recipient))
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Not delivered yet.
    Pending,
    /// The upstream accepted it.
    Delivered,
    /// Permanently failed (a bounce was queued).
    Failed,
}

/// One recipient's delivery state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RcptState {
    /// The address.
    pub address: String,
    /// Status.
    pub status: RcptStatus,
    /// Last reply or error for it.
    #[serde(default)]
    pub last: Option<String>,
}

/// The mutable delivery state of a message (`state/<id>`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt not before (unix ms).
    pub next_attempt_ms: u64,
    /// Per recipient, in envelope order.
    pub recipients: Vec<RcptState>,
    /// A delay warning (`[delivery.spool] delay_warning_after`) has been
    /// queued for this message: never send another.
    #[serde(default)]
    pub delay_warned: bool,
}

impl State {
    /// The state of a message never tried.
    pub fn fresh(meta: &Meta) -> Self {
        Self {
            attempts: 0,
            next_attempt_ms: 0,
            recipients: meta
                .recipients
                .iter()
                .map(|a| RcptState {
                    address: a.clone(),
                    status: RcptStatus::Pending,
                    last: None,
                })
                .collect(),
            delay_warned: false,
        }
    }
}

/// The header written before the message bytes.
pub fn header_bytes(meta: &Meta) -> std::io::Result<Vec<u8>> {
    let mut h = Vec::with_capacity(256);
    h.extend_from_slice(MAGIC.as_bytes());
    h.push(b'\n');
    serde_json::to_writer(&mut h, meta).map_err(std::io::Error::other)?;
    h.push(b'\n');
    Ok(h)
}

/// Writes `tmp/<id>` (not fsynced: the committer does that).
pub fn write_tmp(dirs: &SpoolDirs, meta: &Meta, body: &[u8]) -> std::io::Result<std::fs::File> {
    let path = dirs.tmp.join(&meta.id);
    let mut f = crate::delivery::util::private_file(&path)?;
    let r = (|| {
        f.write_all(&header_bytes(meta)?)?;
        f.write_all(body)
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads the header of `msg/<id>`; returns the metadata and the byte offset
/// of the message. Fails when the file is incomplete.
pub fn read_meta(path: &Path) -> std::io::Result<(Meta, u64)> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut r = BufReader::new(f);
    let mut magic = String::new();
    r.by_ref().take(64).read_line(&mut magic)?;
    if magic.trim_end() != MAGIC {
        return Err(bad(format!("{}: not a spool file", path.display())));
    }
    let mut line = Vec::new();
    r.by_ref()
        .take(16 * 1024 * 1024)
        .read_until(b'\n', &mut line)?;
    let meta: Meta = serde_json::from_slice(&line)
        .map_err(|e| bad(format!("{}: bad envelope: {e}", path.display())))?;
    let offset = (magic.len() + line.len()) as u64;
    if len != offset + meta.size {
        return Err(bad(format!(
            "{}: incomplete ({} of {} message bytes)",
            path.display(),
            len.saturating_sub(offset),
            meta.size
        )));
    }
    Ok((meta, offset))
}

/// Reads the message bytes of `msg/<id>`.
pub fn read_message(path: &Path) -> std::io::Result<(Meta, Vec<u8>)> {
    let (meta, offset) = read_meta(path)?;
    let mut f = std::fs::File::open(path)?;
    let mut all = Vec::with_capacity((offset + meta.size) as usize);
    f.read_to_end(&mut all)?;
    let body = all.split_off(offset as usize);
    if body.len() as u64 != meta.size {
        return Err(bad(format!("{}: size changed", path.display())));
    }
    Ok((meta, body))
}

/// Reads `state/<id>` if present.
pub fn read_state(dirs: &SpoolDirs, id: &str) -> std::io::Result<Option<State>> {
    match std::fs::read(dirs.state.join(id)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| bad(format!("state of {id}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `state/<id>` atomically and durably.
pub fn write_state(dirs: &SpoolDirs, id: &str, state: &State) -> std::io::Result<()> {
    let tmp = dirs.state.join(format!(".{id}.tmp"));
    // A leftover of a crash in the middle of the last write.
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::delivery::util::private_file(&tmp)?;
    f.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, dirs.state.join(id))?;
    crate::delivery::util::sync_dir(&dirs.state)
}

/// Removes a finished (or deleted) message: the message file first (it is
/// what makes a message exist), then its state.
pub fn remove(dirs: &SpoolDirs, id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dirs.msg.join(id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(dirs.state.join(id)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// One message as listed by `queue list` and recovered at start.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listed {
    /// Envelope and metadata.
    #[serde(flatten)]
    pub meta: Meta,
    /// Delivery state (fresh when never tried).
    pub state: State,
}

/// Reads every committed message (sorted by creation time, then id).
/// Incomplete or unreadable files are reported in the second list.
/// Files that could not be read, with the reason.
pub type Unreadable = Vec<(PathBuf, String)>;

/// Reads every committed message; see [`scan`].
pub fn scan(dirs: &SpoolDirs) -> std::io::Result<(Vec<Listed>, Unreadable)> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let rd = match std::fs::read_dir(&dirs.msg) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((ok, bad)),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if !is_safe_id(&name) {
            continue;
        }
        let path = ent.path();
        match read_meta(&path) {
            Ok((meta, _)) => {
                let state = match read_state(dirs, &name) {
                    Ok(Some(s)) if s.recipients.len() == meta.recipients.len() => s,
                    _ => State::fresh(&meta),
                };
                ok.push(Listed { meta, state });
            }
            Err(e) => bad.push((path, e.to_string())),
        }
    }
    ok.sort_by(|a, b| (a.meta.created_ms, &a.meta.id).cmp(&(b.meta.created_ms, &b.meta.id)));
    Ok((ok, bad))
}

/// Start-up cleanup: removes `tmp/*` (never acknowledged) and state files
/// without a message.
pub fn cleanup(dirs: &SpoolDirs) -> std::io::Result<()> {
    for ent in std::fs::read_dir(&dirs.tmp)? {
        let _ = std::fs::remove_file(ent?.path());
    }
    for ent in std::fs::read_dir(&dirs.state)? {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !dirs.msg.join(&name).exists() {
            let _ = std::fs::remove_file(ent.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_without_body_type_is_7bit() {
        let m: Meta = serde_json::from_str(
            r#"{"id":"X","sender":"a@b","recipients":["c@d"],"created_ms":1,"size":2}"#,
        )
        .unwrap();
        assert_eq!(m.body, BodyType::SevenBit);
        assert!(!m.smtputf8);
        // Spooled before the backscatter guard: bounced as before.
        assert!(m.trusted);
        assert!(m.verified.is_empty());
        assert!(m.may_notify("c@d", false));
    }

    #[test]
    fn untrusted_senders_hear_only_of_verified_recipients() {
        let m = Meta {
            id: "X".into(),
            sender: "maybe-forged@example.org".into(),
            recipients: vec!["a@x".into(), "b@x".into()],
            created_ms: 0,
            size: 0,
            notes: BTreeMap::new(),
            body: BodyType::SevenBit,
            smtputf8: false,
            trusted: false,
            verified: vec!["a@x".into()],
        };
        assert!(m.may_notify("a@x", false));
        assert!(!m.may_notify("b@x", false));
        assert!(m.may_notify("b@x", true), "bounce_unverified");
        let trusted = Meta {
            trusted: true,
            ..m.clone()
        };
        assert!(trusted.may_notify("b@x", false));
        let null = Meta {
            sender: String::new(),
            ..trusted
        };
        assert!(!null.may_notify("a@x", true), "never to the null sender");
    }

    #[test]
    fn write_read_roundtrip_and_incomplete() {
        let d = tempfile::tempdir().unwrap();
        let dirs = SpoolDirs::new(d.path());
        dirs.create().unwrap();
        let body = b"Subject: x\r\n\r\nhello\r\n".to_vec();
        let meta = Meta {
            id: new_id(),
            sender: "a@b".into(),
            recipients: vec!["c@d".into()],
            created_ms: now_ms(),
            size: body.len() as u64,
            notes: BTreeMap::new(),
            body: BodyType::BinaryMime,
            smtputf8: true,
            trusted: false,
            verified: vec!["c@d".into()],
        };
        assert!(is_safe_id(&meta.id));
        let header = String::from_utf8(header_bytes(&meta).unwrap()).unwrap();
        assert!(
            header.contains(r#""body":"binarymime","smtputf8":true"#),
            "{header}"
        );
        drop(write_tmp(&dirs, &meta, &body).unwrap());
        std::fs::rename(dirs.tmp.join(&meta.id), dirs.msg.join(&meta.id)).unwrap();
        let (m, b) = read_message(&dirs.msg.join(&meta.id)).unwrap();
        assert_eq!(m, meta);
        assert_eq!(b, body);
        // Truncated: refused.
        let p = dirs.msg.join(&meta.id);
        let all = std::fs::read(&p).unwrap();
        std::fs::write(&p, &all[..all.len() - 3]).unwrap();
        assert!(read_meta(&p).is_err());
        let (ok, bad) = scan(&dirs).unwrap();
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn ids() {
        assert!(is_safe_id("ABC123.x-y_z"));
        assert!(!is_safe_id("../x"));
        assert!(!is_safe_id(".hidden"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id(&"a".repeat(65)));
    }
}
