//! A small real SMTP sink for the delivery and spool tests: listens on
//! 127.0.0.1, speaks ESMTP (optionally PIPELINING, STARTTLS with an rcgen
//! certificate, CHUNKING/BINARYMIME with BDAT, 8BITMIME, SMTPUTF8), answers
//! per policy, and records sessions, commands and messages (raw wire bytes
//! and unstuffed).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One received message.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    /// Recipients the sink accepted.
    pub rcpts: Vec<String>,
    /// DATA as on the wire, up to and including the final ".\r\n"; for
    /// BDAT the chunk payloads (no commands), concatenated.
    pub wire: Vec<u8>,
    /// DATA unstuffed, without the final ".\r\n"; for BDAT the chunks.
    pub data: Vec<u8>,
    /// The MAIL command line as received.
    pub mail_line: String,
    /// Came with BDAT (else DATA).
    pub bdat: bool,
    /// Received over TLS.
    pub tls: bool,
    /// Session number (1-based) it arrived in.
    pub session: usize,
}

/// A reply decided by a policy, as the full line(s) without CRLF.
pub type Policy = Arc<dyn Fn(&str, usize) -> String + Send + Sync>;

/// How the sink behaves.
#[derive(Clone)]
pub struct SinkConfig {
    pub pipelining: bool,
    /// STARTTLS offered with this server config.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// RCPT reply for (address, message index); default 250.
    pub rcpt: Policy,
    /// Final DATA reply for (mail from, message index); default 250.
    pub data: Policy,
    /// Greeting line.
    pub greeting: String,
    /// Advertise CHUNKING (and accept BDAT).
    pub chunking: bool,
    /// Advertise BINARYMIME.
    pub binarymime: bool,
    /// Advertise 8BITMIME.
    pub eight_bit_mime: bool,
    /// Advertise SMTPUTF8.
    pub smtputf8: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            pipelining: true,
            tls: None,
            rcpt: Arc::new(|_, _| "250 2.1.5 Ok".to_string()),
            data: Arc::new(|_, n| format!("250 2.0.0 Ok: queued as SINK{n}")),
            greeting: "220 sink.test ESMTP".into(),
            chunking: false,
            binarymime: false,
            eight_bit_mime: true,
            smtputf8: false,
        }
    }
}

/// What the sink saw.
#[derive(Default)]
pub struct SinkState {
    pub sessions: AtomicUsize,
    pub messages: Mutex<Vec<Captured>>,
    /// Every command line received, with `(session, tls, line)`.
    pub commands: Mutex<Vec<(usize, bool, String)>>,
    pub changed: Notify,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(config: SinkConfig) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(l, config)
    }

    pub fn start_on(l: TcpListener, config: SinkConfig) -> Sink {
        let addr = l.local_addr().unwrap();
        let state = Arc::new(SinkState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let n = st.sessions.fetch_add(1, Ordering::SeqCst) + 1;
                let st = st.clone();
                let cfg = config.clone();
                tokio::spawn(async move {
                    let _ = session(s, n, cfg, st.clone()).await;
                    st.changed.notify_waiters();
                });
            }
        });
        Sink { addr, state, task }
    }

    pub fn messages(&self) -> Vec<Captured> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn sessions(&self) -> usize {
        self.state.sessions.load(Ordering::SeqCst)
    }

    pub fn commands(&self) -> Vec<(usize, bool, String)> {
        self.state.commands.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until `pred` holds for the messages.
    pub async fn wait_for(&self, pred: impl Fn(&[Captured]) -> bool) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.state.changed.notified();
            let msgs = self.messages();
            if pred(&msgs) {
                return msgs;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let msgs = self.messages();
                assert!(
                    pred(&msgs),
                    "sink condition not met in time; got {} messages",
                    msgs.len()
                );
                return msgs;
            }
        }
    }
}

trait Io: tokio::io::AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn session(
    s: TcpStream,
    n: usize,
    cfg: SinkConfig,
    st: Arc<SinkState>,
) -> std::io::Result<()> {
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(s));
    let mut tls = false;
    io.get_mut()
        .write_all(format!("{}\r\n", cfg.greeting).as_bytes())
        .await?;
    let mut mail_from: Option<String> = None;
    let mut mail_line = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    // BDAT chunks of the current transaction.
    let mut chunks: Vec<u8> = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        st.commands.lock().unwrap().push((n, tls, cmd.clone()));
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-sink.test\r\n250-SIZE 100000000\r\n");
            if cfg.eight_bit_mime {
                r.push_str("250-8BITMIME\r\n");
            }
            if cfg.chunking {
                r.push_str("250-CHUNKING\r\n");
            }
            if cfg.binarymime {
                r.push_str("250-BINARYMIME\r\n");
            }
            if cfg.smtputf8 {
                r.push_str("250-SMTPUTF8\r\n");
            }
            if cfg.pipelining {
                r.push_str("250-PIPELINING\r\n");
            }
            if cfg.tls.is_some() && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 ENHANCEDSTATUSCODES");
            r
        } else if upper.starts_with("HELO") {
            "250 sink.test".into()
        } else if upper == "STARTTLS" && cfg.tls.is_some() && !tls {
            io.get_mut()
                .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await?;
            // Plaintext pipelined after STARTTLS would be in io's buffer: drop it.
            let inner = io.into_inner();
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg.tls.clone().unwrap());
            // The Box<dyn Io> is a TcpStream here (only one upgrade).
            let tls_stream = acceptor.accept(inner).await?;
            io = BufReader::new(Box::new(tls_stream));
            tls = true;
            mail_from = None;
            rcpts.clear();
            continue;
        } else if upper.starts_with("MAIL FROM:") {
            let addr = cmd[10..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<')
                .to_string();
            mail_from = Some(addr);
            mail_line = cmd.clone();
            rcpts.clear();
            chunks.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            if mail_from.is_none() {
                "503 5.5.1 Error: need MAIL command".into()
            } else {
                let addr = cmd[8..]
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('<')
                    .to_string();
                let idx = st.messages.lock().unwrap().len();
                let r = (cfg.rcpt)(&addr, idx);
                if r.starts_with('2') {
                    rcpts.push(addr);
                }
                r
            }
        } else if upper == "DATA" {
            if mail_from.is_none() || rcpts.is_empty() {
                "554 5.5.1 Error: no valid recipients".into()
            } else {
                io.get_mut()
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut wire = Vec::new();
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if io.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(()); // aborted mid-DATA: discard
                    }
                    wire.extend_from_slice(&l);
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b".") {
                        data.extend_from_slice(&l[1..]);
                    } else {
                        data.extend_from_slice(&l);
                    }
                }
                let from = mail_from.take().unwrap_or_default();
                let line = std::mem::take(&mut mail_line);
                finish(&cfg, &st, from, line, &mut rcpts, wire, data, tls, n, false)
            }
        } else if cfg.chunking && upper.starts_with("BDAT ") {
            let mut words = upper[5..].split_ascii_whitespace();
            let size: Option<usize> = words.next().and_then(|w| w.parse().ok());
            let last = words.next() == Some("LAST");
            let Some(size) = size else {
                // Cannot know how much to skip: close, as RFC 3030 servers do.
                io.get_mut()
                    .write_all(b"501 5.5.4 bad BDAT size\r\n")
                    .await?;
                return Ok(());
            };
            let mut chunk = vec![0u8; size];
            if tokio::io::AsyncReadExt::read_exact(&mut io, &mut chunk)
                .await
                .is_err()
            {
                return Ok(()); // aborted mid-chunk: discard
            }
            if mail_from.is_none() || rcpts.is_empty() {
                chunks.clear();
                "554 5.5.1 Error: no valid recipients".into()
            } else if !last {
                chunks.extend_from_slice(&chunk);
                format!("250 2.0.0 {size} octets received")
            } else {
                chunks.extend_from_slice(&chunk);
                let from = mail_from.take().unwrap_or_default();
                let line = std::mem::take(&mut mail_line);
                let data = std::mem::take(&mut chunks);
                finish(
                    &cfg,
                    &st,
                    from,
                    line,
                    &mut rcpts,
                    data.clone(),
                    data,
                    tls,
                    n,
                    true,
                )
            }
        } else if upper == "RSET" {
            mail_from = None;
            rcpts.clear();
            chunks.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Error: command not recognized".into()
        };
        io.get_mut()
            .write_all(format!("{reply}\r\n").as_bytes())
            .await?;
        io.get_mut().flush().await?;
    }
}

/// Records a message at the end of DATA or the last BDAT and returns the
/// reply the data policy gives.
#[allow(clippy::too_many_arguments)]
fn finish(
    cfg: &SinkConfig,
    st: &SinkState,
    from: String,
    mail_line: String,
    rcpts: &mut Vec<String>,
    wire: Vec<u8>,
    data: Vec<u8>,
    tls: bool,
    session: usize,
    bdat: bool,
) -> String {
    let idx = st.messages.lock().unwrap().len();
    let r = (cfg.data)(&from, idx);
    // Refused attempts are recorded too, so policies can index them.
    let mail_from = if r.starts_with('2') {
        from
    } else {
        format!("REFUSED:{from}")
    };
    st.messages.lock().unwrap().push(Captured {
        mail_from,
        rcpts: std::mem::take(rcpts),
        wire,
        data,
        mail_line,
        bdat,
        tls,
        session,
    });
    st.changed.notify_waiters();
    r
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn generate() -> TestPki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wasmtp test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let chain = vec![leaf.der().clone(), CertificateDer::from(ca.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        TestPki {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.ca_pem).unwrap();
        p
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
