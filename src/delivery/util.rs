//! Small helpers shared by delivery and the queue: host name,
//! blocking-fs glue, private (0700/0600) directories and files. (Random
//! numbers for unique names are in `crate::ids`.)

use std::sync::OnceLock;

/// The machine's host name (`gethostname(2)`), or `localhost` when unknown.
/// Computed once.
pub fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname
        // writes at most that many and we stop at the first NUL.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return "localhost".to_string();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            "localhost".to_string()
        } else {
            name
        }
    })
}

/// Runs a blocking closure on tokio's blocking pool; a panicked or
/// cancelled task becomes an I/O error.
pub async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(format!("blocking task failed: {e}"))),
    }
}

/// Creates `dir` (and missing parents) and makes it `0700` whatever the
/// umask: spool and Maildir hold other people's mail.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        // An existing directory of another user (a Maildir the operator
        // made): used as it is, as before.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the directory 0700");
            Ok(())
        }
        other => other,
    }
}

/// Creates a new file (`create_new`) for writing, `0600` whatever the
/// umask.
pub fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask could only have removed bits; this also sets them.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// fsyncs a directory so the entries created or renamed in it are durable.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
