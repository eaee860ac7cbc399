//! A real `redis-server` for the kv tests: started once per test binary on
//! 127.0.0.1 with a free port, no persistence (`--save '' --appendonly no`)
//! and a temporary working directory; stopped by PID when the test process
//! exits (an `atexit` hook, as statics are never dropped).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The running server: its `redis://` URL.
pub struct Redis {
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    /// The port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Redis> = OnceLock::new();
static PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_server() {
    let pid = PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) on the PID of the child this process started.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shared server of this test binary, started on first use.
pub fn redis() -> &'static Redis {
    SERVER.get_or_init(start)
}

// The child is killed and reaped by `stop_server` (registered with
// atexit below), by PID, since the `Child` cannot live in the static.
#[allow(clippy::zombie_processes)]
fn start() -> Redis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.path().to_str().unwrap(),
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("redis-server must be installed (cargo xtask test installs it)");
    PID.store(child.id() as i32, Ordering::SeqCst);
    // SAFETY: registering a plain extern "C" fn with no captured state.
    #[allow(unsafe_code)]
    unsafe {
        libc::atexit(stop_server);
    }
    // Wait until it answers PING (a bounded readiness wait, not a timing assertion).
    for _ in 0..500 {
        if ping(port) {
            return Redis {
                url: format!("redis://127.0.0.1:{port}/0"),
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_server();
    panic!("redis-server on port {port} did not answer PING");
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
