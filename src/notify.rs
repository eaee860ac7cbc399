//! systemd service notifications (`sd_notify(3)`), without libsystemd: one
//! datagram to the Unix socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract-namespace name written with a leading `@`). Without the
//! variable (not started by systemd with `Type=notify`) nothing is sent.
//!
//! `wasmtp run` sends `READY=1` once every listener is bound and the plugin
//! chain is loaded, `RELOADING=1` then `READY=1` around a SIGHUP reload,
//! and `STOPPING=1` when a shutdown begins.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixDatagram;

/// The service is ready: listeners bound, plugin chain loaded.
pub const READY: &str = "READY=1";
/// A reload began (followed by [`READY`] when it ends, failed or not).
pub const RELOADING: &str = "RELOADING=1";
/// A shutdown began.
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` (newline-separated `KEY=value` assignments) to the
/// service manager, if there is one. A failure is logged, never fatal.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    match send(&socket, state) {
        Ok(()) => tracing::debug!(state, "sd_notify"),
        Err(e) => tracing::warn!(error = %e, state, "sd_notify failed"),
    }
}

/// Sends one notification datagram to `socket` (`$NOTIFY_SOCKET`'s form).
pub fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let name = socket.as_bytes();
    let sent = match name.split_first() {
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty NOTIFY_SOCKET",
            ));
        }
        Some((&b'@', abstract_name)) => send_abstract(&sock, abstract_name, state)?,
        Some(_) => sock.send_to(state.as_bytes(), socket)?,
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short notification datagram",
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], state: &str) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract NOTIFY_SOCKET names need Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), READY).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_name() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("wasmtp-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), STOPPING).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn errors_are_reported() {
        assert!(send(OsStr::new(""), READY).is_err());
        assert!(send(OsStr::new("/nonexistent/wasmtp/notify.sock"), READY).is_err());
    }
}
