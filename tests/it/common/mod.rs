//! Shared helpers for the integration tests: start the real `wasmtp` binary
//! with a temporary config on free ports, speak raw SMTP to it, and clean
//! up (kill by PID) on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A hang guard for blocking reads in tests (not a timing assertion).
pub const IO_GUARD: Duration = Duration::from_secs(60);
/// Upper bound on the gateway's start: a large plugin (a JavaScript
/// component) compiled by a debug build while other tests run can take
/// more than a minute on two cores the first time (later starts use the
/// compile cache). Not a timing assertion, only a hang guard.
pub const START_GUARD: Duration = Duration::from_secs(300);

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    /// Temporary directory holding the config, the maildir and certificates.
    pub dir: tempfile::TempDir,
    /// Bound addresses in listener order, with their mode.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Every log line so far (JSON).
    pub log: Arc<Mutex<Vec<String>>>,
    /// The config file.
    pub config_path: PathBuf,
}

/// A config for tests: the given listeners (mode names) on port 0, a
/// Maildir under the temp dir, plus `extra` TOML appended verbatim.
pub fn test_config(dir: &Path, modes: &[&str], extra: &str) -> String {
    let mut text = String::new();
    text.push_str("[server]\nhostname = \"mx.test\"\nshutdown_grace = \"30s\"\n\n");
    for mode in modes {
        text.push_str(&format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"{mode}\"\n\n"
        ));
    }
    text.push_str(&delivery_section(dir));
    text.push_str(extra);
    text.push('\n');
    text
}

/// The `[delivery]` section pointing at `dir/maildir`.
pub fn delivery_section(dir: &Path) -> String {
    format!(
        "[delivery]\nmode = \"maildir\"\nmaildir = \"{}\"\n\n",
        maildir(dir).display()
    )
}

/// The Maildir the test config delivers into.
pub fn maildir(dir: &Path) -> PathBuf {
    dir.join("maildir")
}

/// Default extra config for most tests.
pub const LOCAL: &str = "[relay]\nlocal_domains = [\"example.test\", \"localhost\"]\n";

impl Gateway {
    /// Starts the binary with one `smtp` listener and `extra` config.
    pub fn start(extra: &str) -> Self {
        Self::start_modes(&["smtp"], extra)
    }

    /// Starts the binary with the given listener modes and `extra` config.
    pub fn start_modes(modes: &[&str], extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = test_config(dir.path(), modes, extra);
        Self::start_text(dir, &text, modes.len())
    }

    /// Starts the binary with a complete config text expecting `n` listeners.
    pub fn start_text(dir: tempfile::TempDir, text: &str, n: usize) -> Self {
        Self::start_text_env(dir, text, n, &[])
    }

    /// As [`Gateway::start_text`], with extra environment variables.
    pub fn start_text_env(
        dir: tempfile::TempDir,
        text: &str,
        n: usize,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, text).unwrap();
        let binary = Path::new(env!("CARGO_BIN_EXE_wasmtp"));
        Self::spawn(binary, dir, config_path, n, env)
    }

    /// Starts `binary run --config config_path` in `dir` and waits for `n`
    /// listeners (a gateway from another build, e.g. the `dist` archive).
    pub fn spawn(
        binary: &Path,
        dir: tempfile::TempDir,
        config_path: PathBuf,
        n: usize,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let mut child = Command::new(binary)
            // never the test runner's own service manager
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .args(["run", "--config"])
            .arg(&config_path)
            .args(["--log-format", "json"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmtp");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Option<(String, SocketAddr)>>();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        let f = &v["fields"];
                        if f["message"] == "listening" {
                            let addr = f["address"].as_str().unwrap().parse().unwrap();
                            let mode = f["mode"].as_str().unwrap().to_string();
                            let _ = tx.send(Some((mode, addr)));
                        }
                    }
                    log.lock().unwrap().push(line);
                }
                let _ = tx.send(None);
            });
        }
        let mut listeners = Vec::new();
        let mut gw = Self {
            child: Some(child),
            dir,
            listeners: Vec::new(),
            log,
            config_path,
        };
        while listeners.len() < n {
            match rx.recv_timeout(START_GUARD) {
                Ok(Some(l)) => listeners.push(l),
                _ => panic!(
                    "wasmtp did not start; log:\n{}",
                    gw.log.lock().unwrap().join("\n")
                ),
            }
        }
        gw.listeners = listeners;
        gw
    }

    /// The address of the first listener of `mode`.
    pub fn addr(&self, mode: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(m, _)| m == mode)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {mode} listener"))
    }

    /// The first listener's address.
    pub fn smtp(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (by name, e.g. "TERM") to the gateway, by PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (hang guard), returning its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        for _ in 0..600 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("wasmtp did not exit");
    }

    /// The log so far, one JSON line per entry.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle` (hang guard).
    pub fn wait_log(&self, needle: &str) {
        for _ in 0..600 {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("log never contained {needle:?}:\n{}", self.log_text());
    }

    /// Waits (hang guard, not a timing assertion) until `n` sessions have
    /// finished: their disconnect hooks ran, their plugin instances were
    /// released and they left `wasmtp_connections_active`.
    pub fn wait_disconnects(&self, n: usize) {
        for _ in 0..600 {
            let done = self
                .log_text()
                .lines()
                .filter(|l| l.contains("\"message\":\"disconnected\""))
                .count();
            if done >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("never saw {n} disconnects; log:\n{}", self.log_text());
    }

    /// Messages delivered to the Maildir `new/` directory, sorted by name.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        maildir_messages(&maildir(self.dir.path()))
    }

    /// Connects to the first listener and reads the greeting.
    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.smtp())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Messages in `maildir/new`, sorted by file name.
pub fn maildir_messages(maildir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Splits a delivered message into its first header field (our Received,
/// with folds) and the rest.
pub fn split_received(msg: &[u8]) -> (String, Vec<u8>) {
    assert!(msg.starts_with(b"Received: "), "no Received header first");
    let mut end = 0;
    loop {
        let nl = msg[end..].windows(2).position(|w| w == b"\r\n").unwrap() + end + 2;
        end = nl;
        if !matches!(msg.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    (
        String::from_utf8_lossy(&msg[..end]).into_owned(),
        msg[end..].to_vec(),
    )
}

/// One SMTP reply: the code and all its lines.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The full text, lines joined with "\n".
    pub text: String,
}

/// A raw SMTP client over a blocking socket.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    /// The greeting.
    pub greeting: Reply,
}

impl Smtp {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Self {
        let mut s = Self::connect_raw(addr);
        s.greeting = s.reply();
        s
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Self {
        Self::raw_stream(TcpStream::connect(addr).unwrap())
    }

    /// Wraps a connected stream (e.g. one bound to another loopback source
    /// address) and reads the greeting.
    pub fn from_stream(tcp: TcpStream) -> Self {
        let mut s = Self::raw_stream(tcp);
        s.greeting = s.reply();
        s
    }

    fn raw_stream(tcp: TcpStream) -> Self {
        tcp.set_read_timeout(Some(IO_GUARD)).unwrap();
        Self {
            reader: BufReader::new(tcp),
            greeting: Reply {
                code: 0,
                text: String::new(),
            },
        }
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one (possibly multi-line) reply. Panics at EOF.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|| panic!("connection closed while waiting for a reply"))
    }

    /// Reads one reply; `None` at EOF or on a reset.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end_matches("\r\n");
            assert!(line.len() >= 3, "short reply line {line:?}");
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
            if line.len() == 3 || line.as_bytes()[3] == b' ' {
                return Some(Reply {
                    code: line[..3].parse().unwrap(),
                    text,
                });
            }
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line} -> {}", r.text);
        r
    }

    /// True once the server closed the connection (reads EOF or reset).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    }

    /// EHLO, MAIL, RCPT..., DATA with `body` (already dot-stuffed, ending
    /// in CRLF), returning the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &[u8]) -> Reply {
        self.expect("EHLO client.test", 250);
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.expect("DATA", 354);
        self.send(body);
        self.send(b".\r\n");
        self.reply()
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Writes a self-signed certificate and key for "localhost" into `dir`,
/// returning (cert path, key path, cert DER).
pub fn write_cert(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// A blocking TLS client stream that trusts exactly `cert_der`.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Upgrades a raw client to TLS (after a 220 to STARTTLS, or at once for
/// smtps), trusting only `cert_der`.
pub fn tls_client(tcp: TcpStream, cert_der: &[u8]) -> TlsStream {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(cert_der.to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one reply from any reader (used over TLS).
pub fn read_reply<R: BufRead>(r: &mut R) -> Option<Reply> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = line.trim_end_matches("\r\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
        if line.len() <= 3 || line.as_bytes()[3] == b' ' {
            return Some(Reply {
                code: line.get(..3)?.parse().ok()?,
                text,
            });
        }
    }
}

/// AUTH PLAIN initial response for `user`/`pass`.
pub fn plain_auth(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// A password hash made by the real binary (`wasmtp hash-password`).
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `[auth]` with one user `alice` / `s3cret`.
pub fn alice_auth(allow_plaintext: bool) -> String {
    format!(
        "[auth]\nallow_plaintext = {allow_plaintext}\nmax_failures = 3\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n",
        hash_password("s3cret")
    )
}

/// A loopback HTTP/1.1 server answering every request with `NAME PATH`;
/// returns its address and the number of requests it has received.
pub fn http_server(
    name: &'static str,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut request_line = String::new();
                if r.read_line(&mut request_line).is_err() {
                    return;
                }
                // Skip the header block.
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("?");
                let body = format!("{name} {path}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (addr, hits)
}

/// A raw SMTP client whose socket is bound to `source` (a loopback address
/// such as 127.0.0.2), so the gateway sees that client IP.
pub fn connect_from(addr: SocketAddr, source: &str) -> Smtp {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let tcp: std::net::TcpStream = sock.into();
    tcp.set_read_timeout(Some(IO_GUARD)).unwrap();
    Smtp::from_stream(tcp)
}

/// The venv python of the test tools (dkimpy, pyspf, authheaders), which
/// `cargo xtask test` installs into target/venv-tests.
pub fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv-tests/bin/python");
    assert!(
        p.exists(),
        "{} is missing: `cargo xtask test` installs the Python tools into target/venv-tests",
        p.display()
    );
    p
}

/// Runs `cmd`, fails the test with its output unless it succeeded, and
/// returns its stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh certificate in `dir` and the `[tls]` section that serves it:
/// (the section, the certificate's DER).
pub fn tls_section(dir: &Path) -> (String, Vec<u8>) {
    let (cert, key, der) = write_cert(dir);
    let section = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    (section, der)
}

impl Gateway {
    /// The log lines at WARN or ERROR.
    pub fn warnings(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                matches!(v["level"].as_str(), Some("WARN" | "ERROR"))
            })
            .map(str::to_string)
            .collect()
    }

    /// Runs `wasmtp reload --config <this gateway's config>`: (success,
    /// stdout, stderr).
    pub fn reload_command(&self) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
            .args(["reload", "--config"])
            .arg(&self.config_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
