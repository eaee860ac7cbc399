//! Queue administration: `wasmtp queue list|show ID|flush|delete ID [--json]`.
//!
//! Works while the gateway runs:
//! - `list` and `show` read the spool directory directly (message files are
//!   immutable once committed and state files are replaced atomically, so
//!   a reader never sees a torn file). They also work with the gateway
//!   stopped.
//! - `flush` and `delete` talk to the running gateway over the unix socket
//!   `<spool>/control.sock` (mode 0600; one JSON request line, one JSON
//!   answer line), so the scheduler's in-memory state stays right. With no
//!   gateway listening, `delete` removes the files itself and `flush` says
//!   there is nothing to flush (every message is tried at start).
//!
//! The socket also guards the spool: a gateway refuses to start on a spool
//! whose socket answers (another instance would deliver the same messages).
//!
//! The server's CLI wires this as a subcommand: `QueueArgs` is a clap
//! `Args` struct, and [`queue_command`] runs it against the `[delivery]`
//! section of the loaded config.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::Shared;
use super::spool::{self, SpoolDirs};
use crate::date::rfc5322_millis;
use crate::delivery::DeliveryConfig;

/// `wasmtp queue ...` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: QueueCommand,
}

/// Queue subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueueCommand {
    /// List spooled messages with their recipients' status.
    List,
    /// Show one message: envelope, delivery state and header.
    Show {
        /// Queue id.
        id: String,
    },
    /// Retry every deferred message now.
    Flush,
    /// Remove a message from the spool without delivering it.
    Delete {
        /// Queue id.
        id: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Flush,
    Delete { id: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    ok: bool,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    error: Option<String>,
}

/// Binds `control.sock`; fails when another gateway answers on it.
pub(super) fn bind(dirs: &SpoolDirs) -> anyhow::Result<UnixListener> {
    let path = dirs.control_socket();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!(
                "spool {} is in use by another running gateway",
                dirs.root.display()
            );
        }
        std::fs::remove_file(&path)?;
    }
    let l = UnixListener::bind(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Answers admin requests until aborted.
pub(super) async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), async move {
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                let mut r = tokio::io::BufReader::new(r).take(4096);
                use tokio::io::AsyncReadExt as _;
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                let resp = match serde_json::from_str::<Request>(&line) {
                    Ok(Request::Flush) => Response {
                        ok: true,
                        count: shared.flush(),
                        error: None,
                    },
                    Ok(Request::Delete { id }) if spool::is_safe_id(&id) => {
                        let found = shared.clone().delete(id).await;
                        Response {
                            ok: found,
                            count: usize::from(found),
                            error: (!found).then(|| "no such message".to_string()),
                        }
                    }
                    Ok(Request::Delete { .. }) => Response {
                        ok: false,
                        count: 0,
                        error: Some("invalid queue id".into()),
                    },
                    Err(e) => Response {
                        ok: false,
                        count: 0,
                        error: Some(format!("bad request: {e}")),
                    },
                };
                let mut out = serde_json::to_vec(&resp).unwrap_or_default();
                out.push(b'\n');
                let _ = w.write_all(&out).await;
            })
            .await;
        });
    }
}

fn ask(dirs: &SpoolDirs, req: &Request) -> Option<anyhow::Result<Response>> {
    let s = std::os::unix::net::UnixStream::connect(dirs.control_socket()).ok()?;
    Some((|| {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut w = &s;
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        w.write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(&s).read_line(&mut answer)?;
        Ok(serde_json::from_str(&answer)?)
    })())
}

/// `text` with every control character but tab shown as an escape
/// (`\u{1b}`), so a header or address from a client cannot drive the
/// operator's terminal. Line breaks are kept only where `keep_newlines`.
fn printable(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' if keep_newlines => out.push(c),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// A recipient's status line suffix: ` (last reply)`.
fn last_reply(last: Option<&str>, sep: &str) -> String {
    last.map(|t| format!("{sep}({})", printable(t, false)))
        .unwrap_or_default()
}

/// Runs a queue subcommand and writes its output to `out`.
pub fn queue_command(
    config: &DeliveryConfig,
    args: &QueueArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let dirs = SpoolDirs::new(&config.spool.dir);
    match &args.command {
        QueueCommand::List => list(&dirs, args.json, out),
        QueueCommand::Show { id } => show(&dirs, id, args.json, out),
        QueueCommand::Flush => flush(&dirs, args.json, out),
        QueueCommand::Delete { id } => delete(&dirs, id, args.json, out),
    }
}

/// `queue list`: every message and each recipient's status.
fn list(dirs: &SpoolDirs, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let (list, bad) = spool::scan(dirs)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    for l in &list {
        let m = &l.meta;
        writeln!(
            out,
            "{:<24} {:>9}  {}  <{}>  attempts={}{}",
            m.id,
            m.size,
            rfc5322_millis(m.created_ms),
            printable(&m.sender, false),
            l.state.attempts,
            if l.state.next_attempt_ms > spool::now_ms() {
                format!("  next={}", rfc5322_millis(l.state.next_attempt_ms))
            } else {
                String::new()
            }
        )?;
        for r in &l.state.recipients {
            writeln!(
                out,
                "    {:<40} {:?}{}",
                printable(&r.address, false),
                r.status,
                last_reply(r.last.as_deref(), "  ")
            )?;
        }
    }
    for (p, why) in &bad {
        writeln!(out, "!! {}: {}", p.display(), printable(why, false))?;
    }
    writeln!(out, "-- {} message(s)", list.len())?;
    Ok(())
}

/// `queue show ID`: envelope, delivery state and header section.
fn show(dirs: &SpoolDirs, id: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if !spool::is_safe_id(id) {
        anyhow::bail!("invalid queue id {id:?}");
    }
    let (meta, body) = spool::read_message(&dirs.msg.join(id))
        .map_err(|e| anyhow::anyhow!("no message {id} in {}: {e}", dirs.root.display()))?;
    let state = spool::read_state(dirs, id)?.unwrap_or_else(|| spool::State::fresh(&meta));
    let header = String::from_utf8_lossy(super::bounce::header_block(&body)).into_owned();
    if json {
        let v = serde_json::json!({
            "meta": meta,
            "state": state,
            "header": header,
        });
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "id:        {}", meta.id)?;
    writeln!(out, "sender:    <{}>", printable(&meta.sender, false))?;
    writeln!(out, "arrived:   {}", rfc5322_millis(meta.created_ms))?;
    writeln!(out, "size:      {}", meta.size)?;
    writeln!(out, "attempts:  {}", state.attempts)?;
    if state.next_attempt_ms > 0 {
        writeln!(out, "next:      {}", rfc5322_millis(state.next_attempt_ms))?;
    }
    for r in &state.recipients {
        writeln!(
            out,
            "rcpt:      <{}> {:?}{}",
            printable(&r.address, false),
            r.status,
            last_reply(r.last.as_deref(), " ")
        )?;
    }
    for (k, v) in &meta.notes {
        writeln!(
            out,
            "note:      {}={}",
            printable(k, false),
            printable(v, false)
        )?;
    }
    writeln!(out)?;
    write!(out, "{}", printable(&header.replace("\r\n", "\n"), true))?;
    Ok(())
}

/// `queue flush`: ask the running gateway to retry every message now.
fn flush(dirs: &SpoolDirs, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let (running, count) = match ask(dirs, &Request::Flush) {
        Some(r) => (true, r?.count),
        None => (false, 0),
    };
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"running": running, "flushed": count})
        )?;
    } else if running {
        writeln!(out, "flushed: {count} message(s) scheduled now")?;
    } else {
        writeln!(
            out,
            "gateway not running on {}: nothing to flush (every message is tried at start)",
            dirs.root.display()
        )?;
    }
    Ok(())
}

/// `queue delete ID`: through the running gateway, or on the files when
/// none runs.
fn delete(dirs: &SpoolDirs, id: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if !spool::is_safe_id(id) {
        anyhow::bail!("invalid queue id {id:?}");
    }
    let (running, deleted) = match ask(dirs, &Request::Delete { id: id.to_string() }) {
        Some(r) => (true, r?.ok),
        None => {
            let exists = dirs.msg.join(id).exists();
            spool::remove(dirs, id)?;
            (false, exists)
        }
    };
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"running": running, "deleted": deleted, "id": id})
        )?;
    } else if deleted {
        writeln!(out, "deleted {id}")?;
    } else {
        writeln!(out, "no message {id}")?;
    }
    if !deleted {
        anyhow::bail!("no message {id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\u{1b}[31mred\u{7}", false),
            "a\\u{1b}[31mred\\u{7}"
        );
        assert_eq!(printable("x\ny\tz\r", false), "x\\ny\tz\\r");
        assert_eq!(printable("x\ny", true), "x\ny");
        assert_eq!(printable("ünïcode", false), "ünïcode");
        assert_eq!(last_reply(Some("550\u{1b}x"), " "), " (550\\u{1b}x)");
        assert_eq!(last_reply(None, " "), "");
    }
}
