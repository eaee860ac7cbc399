//! The local control socket: `wasmtp reload` asks the running gateway to
//! reload its config and gets the outcome back on its terminal.
//!
//! A Unix socket at `[server] control_socket` (default `var/wasmtp.sock`,
//! relative to the config file's directory), created `0600` in a directory
//! created `0700` when missing, opened by `wasmtp run` only and removed at
//! shutdown. The protocol is one line each way: the client sends `reload`;
//! the gateway re-reads its config file as on SIGHUP and answers with
//! what changed, one line each (`applied <change>`, `restart <change>`:
//! changed but needing a restart), then `ok <plugin names>`; or
//! `error <the error, on one line>`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::reload::ReloadReport;
use crate::server::Reloader;

/// How long the client waits for the answer: compiling a JavaScript or
/// Python component takes 10-20 s, more on a loaded machine.
const CLIENT_WAIT: Duration = Duration::from_secs(600);

/// The serving end of the control socket; removes the socket when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlSocket {
    /// Binds `path` and serves reload requests with `reloader`. A socket
    /// left by a gateway that died is replaced; one a live gateway answers
    /// on is an error.
    pub fn open(path: &Path, reloader: Reloader) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("{}: another gateway is listening on it", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} 0600", path.display()))?;
        tracing::info!(path = %path.display(), "control socket open");
        let task = tokio::spawn(serve(listener, reloader));
        Ok(Self {
            path: path.to_path_buf(),
            task,
        })
    }
}

async fn serve(listener: UnixListener, reloader: Reloader) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // One request at a time: reloads are serialized anyway.
        if let Err(e) = answer(stream, &reloader).await {
            tracing::warn!(error = %e, "control socket request failed");
        }
    }
}

/// Reads one request line and writes the one-line answer.
async fn answer(stream: UnixStream, reloader: &Reloader) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = tokio::io::BufReader::new(read).take(1024);
    read.read_line(&mut line).await?;
    let reply = match line.trim() {
        "reload" => {
            tracing::info!("control socket: reloading the config");
            match reloader.reload().await {
                Ok(report) => {
                    let mut text = String::new();
                    for line in &report.applied {
                        text.push_str(&format!("applied {}\n", one_line(line)));
                    }
                    for line in &report.restart {
                        text.push_str(&format!("restart {}\n", one_line(line)));
                    }
                    text.push_str(&format!("ok {}\n", report.plugins.join(" ")));
                    text
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    tracing::error!(
                        error = %text,
                        "reload failed; the running config and chain stay"
                    );
                    format!("error {}\n", one_line(&text))
                }
            }
        }
        other => format!("error unknown request {:?}\n", one_line(other)),
    };
    write.write_all(reply.as_bytes()).await?;
    write.shutdown().await
}

fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The client side of `wasmtp reload`: asks the gateway listening on
/// `path` to reload and returns what changed and the new chain's plugin
/// names, or the gateway's error.
pub fn request_reload(path: &Path) -> anyhow::Result<ReloadReport> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the gateway's control socket {} (is `wasmtp run` running with this config?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(CLIENT_WAIT))?;
    stream.write_all(b"reload\n")?;
    let mut report = ReloadReport::default();
    let mut reader = BufReader::new(&stream);
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .context("reading the gateway's answer")?;
        let line = line.trim_end();
        if let Some(change) = line.strip_prefix("applied ") {
            report.applied.push(change.to_string());
        } else if let Some(change) = line.strip_prefix("restart ") {
            report.restart.push(change.to_string());
        } else if let Some(names) = line.strip_prefix("ok") {
            report.plugins = names.split_whitespace().map(str::to_string).collect();
            return Ok(report);
        } else if let Some(error) = line.strip_prefix("error ") {
            return Err(anyhow::anyhow!("{error}"));
        } else {
            anyhow::bail!(
                "unexpected answer from the gateway: {line:?}{}",
                if n == 0 { " (connection closed)" } else { "" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sent_on_one_line() {
        assert_eq!(one_line("a\nb\r\n\nc"), "a; b; c");
    }
}
