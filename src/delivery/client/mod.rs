//! Our own async SMTP client for relaying to upstreams.
//!
//! Why not lettre's transport: it hides per-recipient results (one error for
//! the whole send), re-encodes rather than sends our raw, already-accepted
//! bytes, and does not let us pipeline `MAIL`+`RCPT`s+`DATA` or abort a
//! transaction mid-DATA. A relay needs all of these, so this client is small
//! and does exactly that:
//!
//! - connect (TCP_NODELAY on), read the 220 greeting, EHLO (HELO when EHLO is
//!   refused);
//! - STARTTLS per [`TlsPolicy`]: `required` never sends MAIL in plaintext (the
//!   connection is refused with [`ClientError::TlsUnavailable`] before any
//!   envelope is sent); anything the upstream sent after its 220 to STARTTLS
//!   and before the handshake is discarded; EHLO again over TLS;
//! - PIPELINING when advertised: `[RSET] MAIL RCPT.. DATA` in one write, the
//!   replies read in order; one per recipient is returned;
//! - DATA with dot-stuffing into 256 KiB buffers (never line by line: with
//!   Nagle on, the last small segment waits for the peer's delayed ACK, about
//!   40 ms per message on Linux);
//! - `BODY=BINARYMIME` messages (RFC 3030) go with `MAIL .. BODY=BINARYMIME`
//!   and one `BDAT <size> LAST` carrying the bytes unchanged, only to an
//!   upstream advertising both CHUNKING and BINARYMIME. Otherwise nothing is
//!   sent and the result is [`ClientError::Unsupported`] (`554 5.6.3`,
//!   conversion required but not supported): DATA would corrupt a binary
//!   body (bare CR/LF, NUL, long lines) and we do not convert;
//! - `BODY=8BITMIME` (RFC 6152) is passed on when the message was declared
//!   8BITMIME or has 8-bit octets, and the upstream advertises 8BITMIME.
//!   When it does not, the message is still sent, unchanged and without the
//!   parameter: RFC 6152 leaves a relay the choice of converting to 7 bit or
//!   bouncing, but converting would break DKIM signatures and bouncing loses
//!   mail that in practice every server accepts 8-bit clean. This is what
//!   Postfix does by default;
//! - `SMTPUTF8` (RFC 6531) is passed on when an envelope address is not
//!   ASCII or our client declared it. When the message needs it (non-ASCII
//!   envelope, or declared and the header has non-ASCII octets) and the
//!   upstream does not advertise it, nothing is sent:
//!   [`ClientError::Unsupported`] (`553 5.6.7`), as RFC 6531 3.2 requires;
//! - RSET before each further transaction on the same connection (it doubles
//!   as a liveness check of a pooled connection), QUIT on close;
//! - a timeout on every read: `command_timeout` per reply, `data_timeout` for
//!   the message and its final reply.

pub mod dotstuff;
pub mod reply;
pub mod stream;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{ForwardConfig, TlsPolicy};
use crate::protocol::params::BodyType;
use crate::protocol::{Reply, replies};
pub use dotstuff::DotStuffer;
use reply::Parsed;
pub use stream::Stream;
pub use tls::TlsClientConfigs;

/// Settings shared by every connection of a deliverer.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Name sent with EHLO/HELO.
    pub helo_name: String,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// rustls configurations.
    pub tls_configs: TlsClientConfigs,
    /// Name the certificate must match; the upstream IP when `None`.
    pub tls_server_name: Option<ServerName<'static>>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout per command reply (and the TLS handshake).
    pub command_timeout: Duration,
    /// Timeout for the message body and the reply to the final dot.
    pub data_timeout: Duration,
}

impl ClientSettings {
    /// Builds the settings from `[delivery.forward]`; `hostname` (the
    /// gateway's `[server] hostname`) is the HELO name when `helo_name` is
    /// unset.
    pub fn from_config(c: &ForwardConfig, hostname: &str) -> anyhow::Result<Self> {
        let tls_server_name = match &c.tls_server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|e| {
                anyhow::anyhow!("delivery.forward.tls_server_name: invalid name {n:?}: {e}")
            })?),
            None => None,
        };
        let helo_name = c.helo_name.clone().unwrap_or_else(|| hostname.to_string());
        if helo_name.is_empty() || !helo_name.bytes().all(|b| b.is_ascii_graphic()) {
            anyhow::bail!("delivery.forward.helo_name: {helo_name:?} is not a valid host name");
        }
        Ok(Self {
            helo_name,
            tls: c.tls,
            tls_configs: TlsClientConfigs::new(c.ca_file.as_deref())?,
            tls_server_name,
            connect_timeout: c.connect_timeout,
            command_timeout: c.command_timeout,
            data_timeout: c.data_timeout,
        })
    }
}

/// Why a connection or transaction failed without a usable reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The upstream.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The upstream greeted or answered EHLO/HELO with a failure.
    #[error("upstream refused the session: {}", .0.one_line())]
    Refused(Reply),
    /// TLS is required and the upstream offers no STARTTLS or refused it.
    /// Nothing of the envelope was sent.
    #[error("TLS required but not available: {0}")]
    TlsUnavailable(String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(String),
    /// A read or write failed, the connection closed, or a reply timed out,
    /// before the final dot was sent: nothing was delivered.
    #[error("connection lost during {stage}: {reason}")]
    Lost {
        /// The command or phase.
        stage: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Same after the final dot was sent: the upstream may or may not have
    /// accepted the message.
    #[error("connection lost after the message was sent (outcome unknown): {0}")]
    LostAfterData(String),
    /// The message needs an extension the upstream does not advertise
    /// (BINARYMIME, SMTPUTF8). Nothing of the transaction was sent and the
    /// connection stays usable; a permanent failure (see
    /// [`ClientError::unsupported_reply`]).
    #[error("{peer} does not support {extension}, which the message needs")]
    Unsupported {
        /// The upstream.
        peer: SocketAddr,
        /// The missing extension.
        extension: &'static str,
    },
    /// The upstream sent something that is not an SMTP reply.
    #[error("protocol error during {stage}: {reason}")]
    Protocol {
        /// The command or phase.
        stage: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// True when nothing can have been delivered, so another attempt (on a
    /// fresh connection or the next upstream) cannot duplicate the message.
    pub fn retry_safe(&self) -> bool {
        !matches!(self, ClientError::LostAfterData(_))
    }

    /// For [`ClientError::Unsupported`], the permanent reply that stands for
    /// the upstream's refusal: `554 5.6.3` (conversion required but not
    /// supported) for BINARYMIME, `553 5.6.7` (non-ASCII addresses not
    /// permitted) for SMTPUTF8. `None` for every other error.
    pub fn unsupported_reply(&self) -> Option<Reply> {
        let ClientError::Unsupported { peer, extension } = self else {
            return None;
        };
        Some(if *extension == "SMTPUTF8" {
            replies::upstream_no_smtputf8(peer)
        } else {
            replies::upstream_conversion_unsupported(peer, extension)
        })
    }
}

/// What our client declared at MAIL that the upstream must be told too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailOptions {
    /// `BODY=` as declared (BINARYMIME goes with BDAT).
    pub body: BodyType,
    /// `SMTPUTF8` was declared.
    pub smtputf8: bool,
}

/// What the upstream advertised in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// EHLO was accepted (else HELO: no extension).
    pub esmtp: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// SIZE (RFC 1870), with the limit if one was given (0 = no limit).
    pub size: Option<u64>,
    /// CHUNKING, i.e. BDAT (RFC 3030).
    pub chunking: bool,
    /// BINARYMIME (RFC 3030).
    pub binarymime: bool,
}

impl Capabilities {
    fn from_ehlo(r: &Reply) -> Self {
        let mut c = Capabilities {
            esmtp: true,
            ..Default::default()
        };
        for line in r.lines().iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.pipelining = true,
                "STARTTLS" => c.starttls = true,
                "8BITMIME" => c.eight_bit_mime = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "CHUNKING" => c.chunking = true,
                "BINARYMIME" => c.binarymime = true,
                "SIZE" => c.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        c
    }
}

/// How to treat refused recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptMode {
    /// Send the message only when every recipient was accepted (forward mode:
    /// the client's one reply must be true for all recipients).
    AllOrNothing,
    /// Send to the accepted ones (the spool retries or bounces the rest).
    AcceptedOnly,
}

/// A MAIL command built for one message and upstream.
struct MailCommand {
    /// The command line, CRLF included.
    line: String,
    /// The message size (the parts together).
    size: usize,
    /// `BODY=BINARYMIME`: the body goes in one `BDAT ... LAST`.
    binary: bool,
}

/// The replies to the envelope (and to a pipelined DATA).
struct Envelope {
    mail: Reply,
    rcpts: Vec<Reply>,
    data: Option<Reply>,
}

/// Replies of one transaction.
#[derive(Debug, Clone)]
pub struct TxnOutcome {
    /// Reply to MAIL.
    pub mail: Reply,
    /// Reply to each RCPT, in the order given. When MAIL failed, the MAIL
    /// reply stands for every recipient.
    pub rcpts: Vec<Reply>,
    /// Reply to DATA when it was a failure, else the reply to the final dot;
    /// `None` when the message was not sent.
    pub data: Option<Reply>,
}

impl TxnOutcome {
    /// True when the message was accepted for the recipients whose RCPT was.
    pub fn delivered(&self) -> bool {
        self.data.as_ref().is_some_and(Reply::is_success)
    }
}

/// One connection to an upstream.
#[derive(Debug)]
pub struct SmtpClient {
    stream: Stream,
    rbuf: BytesMut,
    caps: Capabilities,
    peer: SocketAddr,
    settings: Arc<ClientSettings>,
    /// A transaction happened on this connection: RSET before the next.
    dirty: bool,
    /// The connection is in an unknown state and must not be reused.
    broken: bool,
    messages: u32,
}

impl SmtpClient {
    /// Connects, reads the greeting, says EHLO and does STARTTLS per policy.
    ///
    /// `allow_tls = false` skips STARTTLS (the `opportunistic` fallback after a
    /// failed handshake); it is ignored under `required`.
    pub async fn connect(
        peer: SocketAddr,
        settings: Arc<ClientSettings>,
        allow_tls: bool,
    ) -> Result<Self, ClientError> {
        let tcp =
            match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(peer)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(ClientError::Connect {
                        addr: peer,
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    return Err(ClientError::Connect {
                        addr: peer,
                        reason: "timed out".into(),
                    });
                }
            };
        let _ = tcp.set_nodelay(true);
        let mut c = SmtpClient {
            stream: Stream::Plain(tcp),
            rbuf: BytesMut::with_capacity(4096),
            caps: Capabilities::default(),
            peer,
            settings,
            dirty: false,
            broken: false,
            messages: 0,
        };
        let greeting = c.read_reply("greeting").await?;
        if !greeting.is_success() {
            c.quit().await;
            return Err(ClientError::Refused(greeting));
        }
        c.hello().await?;
        let policy = c.settings.tls;
        let want_tls = match policy {
            TlsPolicy::None => false,
            TlsPolicy::Opportunistic => allow_tls && c.caps.starttls,
            TlsPolicy::Required => true,
        };
        if want_tls {
            if !c.caps.starttls {
                c.quit().await;
                return Err(ClientError::TlsUnavailable(format!(
                    "{peer} does not offer STARTTLS"
                )));
            }
            c.write_all(b"STARTTLS\r\n", "STARTTLS").await?;
            let r = c.read_reply("STARTTLS").await?;
            if r.code() != 220 {
                if policy == TlsPolicy::Required {
                    c.quit().await;
                    return Err(ClientError::TlsUnavailable(format!(
                        "{peer} refused STARTTLS: {}",
                        r.one_line()
                    )));
                }
                // Opportunistic: go on in plaintext.
                return Ok(c);
            }
            c.start_tls().await?;
            c.hello().await?;
        }
        Ok(c)
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        let cmd = format!("EHLO {}\r\n", self.settings.helo_name);
        self.write_all(cmd.as_bytes(), "EHLO").await?;
        let r = self.read_reply("EHLO").await?;
        if r.is_success() {
            self.caps = Capabilities::from_ehlo(&r);
            return Ok(());
        }
        if r.is_permanent() {
            let cmd = format!("HELO {}\r\n", self.settings.helo_name);
            self.write_all(cmd.as_bytes(), "HELO").await?;
            let r = self.read_reply("HELO").await?;
            if r.is_success() {
                self.caps = Capabilities::default();
                return Ok(());
            }
            self.quit().await;
            return Err(ClientError::Refused(r));
        }
        self.quit().await;
        Err(ClientError::Refused(r))
    }

    async fn start_tls(&mut self) -> Result<(), ClientError> {
        // Anything the upstream sent after its 220 and before the handshake
        // is plaintext injection: drop it.
        self.rbuf.clear();
        let tcp = match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Ok(());
            }
        };
        let (config, name) = match self.settings.tls {
            TlsPolicy::Required => (
                self.settings.tls_configs.verified.clone(),
                self.settings
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(self.peer.ip().into())),
            ),
            _ => (
                self.settings.tls_configs.unverified.clone(),
                self.settings
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(self.peer.ip().into())),
            ),
        };
        let connector = TlsConnector::from(config);
        let t = self.settings.command_timeout;
        match tokio::time::timeout(t, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(ClientError::TlsHandshake(e.to_string()))
            }
            Err(_) => {
                self.broken = true;
                Err(ClientError::TlsHandshake("timed out".into()))
            }
        }
    }

    /// Capabilities from the last EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// True after a successful STARTTLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The upstream address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Messages sent on this connection.
    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// False when the connection is in an unknown state (timeout, abort
    /// mid-DATA, protocol error) and must be closed, not pooled.
    pub fn reusable(&self) -> bool {
        !self.broken
    }

    async fn write_all(&mut self, buf: &[u8], stage: &'static str) -> Result<(), ClientError> {
        let t = self.settings.command_timeout;
        let r = tokio::time::timeout(t, async {
            self.stream.write_all(buf).await?;
            self.stream.flush().await
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(ClientError::Lost {
                    stage,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                self.broken = true;
                Err(ClientError::Lost {
                    stage,
                    reason: "write timed out".into(),
                })
            }
        }
    }

    async fn read_reply(&mut self, stage: &'static str) -> Result<Reply, ClientError> {
        let t = self.settings.command_timeout;
        self.read_reply_within(stage, t).await
    }

    async fn read_reply_within(
        &mut self,
        stage: &'static str,
        t: Duration,
    ) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            match reply::parse(&self.rbuf) {
                Parsed::Reply(r, n) => {
                    let _ = self.rbuf.split_to(n);
                    return Ok(r);
                }
                Parsed::Invalid(reason) => {
                    self.broken = true;
                    return Err(ClientError::Protocol { stage, reason });
                }
                Parsed::Incomplete => {}
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) => {
                    self.broken = true;
                    return Err(ClientError::Lost {
                        stage,
                        reason: "connection closed by upstream".into(),
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.broken = true;
                    return Err(ClientError::Lost {
                        stage,
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    self.broken = true;
                    return Err(ClientError::Lost {
                        stage,
                        reason: "timed out waiting for the reply".into(),
                    });
                }
            }
        }
    }

    /// Sends one message: `[RSET] MAIL RCPT.. DATA` (pipelined when
    /// advertised), then the dot-stuffed parts; for `BODY=BINARYMIME`,
    /// `[RSET] MAIL RCPT..` then `BDAT <size> LAST` with the parts as they
    /// are (see the module doc for the body type and SMTPUTF8 rules).
    ///
    /// Returns the replies; an `Err` only when no complete answer could be
    /// had (see [`ClientError::retry_safe`]), or with
    /// [`ClientError::Unsupported`] before anything is sent.
    pub async fn send(
        &mut self,
        sender: &str,
        recipients: &[&str],
        parts: &[&[u8]],
        mode: RcptMode,
        options: MailOptions,
    ) -> Result<TxnOutcome, ClientError> {
        let mail = self.mail_command(sender, recipients, parts, options)?;
        let rset = std::mem::replace(&mut self.dirty, true);
        let envelope = if self.caps.pipelining {
            self.envelope_pipelined(rset, &mail, recipients).await?
        } else {
            self.envelope_stepwise(rset, &mail, recipients).await?
        };
        self.finish(envelope, recipients.len(), parts, mode, &mail)
            .await
    }

    /// The MAIL command for this message and upstream, or `Unsupported`
    /// when the message needs an extension the upstream lacks.
    fn mail_command(
        &self,
        sender: &str,
        recipients: &[&str],
        parts: &[&[u8]],
        options: MailOptions,
    ) -> Result<MailCommand, ClientError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let binary = options.body == BodyType::BinaryMime;
        if binary && !(self.caps.chunking && self.caps.binarymime) {
            return Err(ClientError::Unsupported {
                peer: self.peer,
                extension: "BINARYMIME",
            });
        }
        let utf8_addr = !sender.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
        let smtputf8 = utf8_addr || options.smtputf8;
        if !self.caps.smtputf8 && (utf8_addr || (options.smtputf8 && header_has_8bit(parts))) {
            return Err(ClientError::Unsupported {
                peer: self.peer,
                extension: "SMTPUTF8",
            });
        }
        let mut line = format!("MAIL FROM:<{sender}>");
        if self.caps.size.is_some() {
            line.push_str(&format!(" SIZE={size}"));
        }
        if binary {
            line.push_str(" BODY=BINARYMIME");
        } else if self.caps.eight_bit_mime
            && (options.body == BodyType::EightBitMime
                || parts.iter().any(|p| crate::message::has_8bit(p)))
        {
            line.push_str(" BODY=8BITMIME");
        }
        if smtputf8 && self.caps.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        line.push_str("\r\n");
        Ok(MailCommand { line, size, binary })
    }

    /// `[RSET] MAIL RCPT.. [DATA]` in one write, then their replies.
    async fn envelope_pipelined(
        &mut self,
        rset: bool,
        mail: &MailCommand,
        recipients: &[&str],
    ) -> Result<Envelope, ClientError> {
        let mut batch = Vec::with_capacity(64 + recipients.len() * 48);
        if rset {
            batch.extend_from_slice(b"RSET\r\n");
        }
        batch.extend_from_slice(mail.line.as_bytes());
        for r in recipients {
            batch.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
        }
        if !mail.binary {
            batch.extend_from_slice(b"DATA\r\n");
        }
        self.write_all(&batch, "MAIL").await?;
        if rset {
            self.expect_rset().await?;
        }
        let mail_r = self.read_reply("MAIL").await?;
        let mut rcpts = Vec::with_capacity(recipients.len());
        for _ in recipients {
            rcpts.push(self.read_reply("RCPT").await?);
        }
        let data = if mail.binary {
            None
        } else {
            Some(self.read_reply("DATA").await?)
        };
        Ok(Envelope {
            mail: mail_r,
            rcpts,
            data,
        })
    }

    /// `[RSET] MAIL RCPT..` one command and reply at a time (no RCPT after
    /// a refused MAIL).
    async fn envelope_stepwise(
        &mut self,
        rset: bool,
        mail: &MailCommand,
        recipients: &[&str],
    ) -> Result<Envelope, ClientError> {
        if rset {
            self.write_all(b"RSET\r\n", "RSET").await?;
            self.expect_rset().await?;
        }
        self.write_all(mail.line.as_bytes(), "MAIL").await?;
        let mail_r = self.read_reply("MAIL").await?;
        let mut rcpts = Vec::with_capacity(recipients.len());
        if mail_r.is_success() {
            for r in recipients {
                self.write_all(format!("RCPT TO:<{r}>\r\n").as_bytes(), "RCPT")
                    .await?;
                rcpts.push(self.read_reply("RCPT").await?);
            }
        }
        Ok(Envelope {
            mail: mail_r,
            rcpts,
            data: None,
        })
    }

    /// The reply to RSET; anything but success breaks the connection.
    async fn expect_rset(&mut self) -> Result<(), ClientError> {
        let r = self.read_reply("RSET").await?;
        if r.is_success() {
            return Ok(());
        }
        self.broken = true;
        Err(ClientError::Protocol {
            stage: "RSET",
            reason: r.one_line(),
        })
    }

    /// After the envelope: the body (DATA or BDAT) when the recipients
    /// allow it (`mode`), and the outcome.
    async fn finish(
        &mut self,
        envelope: Envelope,
        recipients: usize,
        parts: &[&[u8]],
        mode: RcptMode,
        mail: &MailCommand,
    ) -> Result<TxnOutcome, ClientError> {
        let Envelope {
            mail: mail_r,
            rcpts,
            data,
        } = envelope;
        if !mail_r.is_success() {
            if data.as_ref().is_some_and(|r| r.code() == 354) {
                // The upstream is waiting for a message we will not send.
                self.broken = true;
            }
            return Ok(TxnOutcome {
                rcpts: vec![mail_r.clone(); recipients],
                mail: mail_r,
                data: None,
            });
        }
        let accepted = rcpts.iter().filter(|r| r.is_success()).count();
        let go = accepted > 0 && (mode == RcptMode::AcceptedOnly || accepted == recipients);
        let outcome = |data| TxnOutcome {
            mail: mail_r.clone(),
            rcpts: rcpts.clone(),
            data,
        };
        if mail.binary {
            if !go {
                return Ok(outcome(None));
            }
            let r = self.send_bdat(parts, mail.size).await?;
            self.messages += 1;
            return Ok(outcome(Some(r)));
        }
        let data_r = match data {
            Some(r) => r,
            None if go => {
                self.write_all(b"DATA\r\n", "DATA").await?;
                self.read_reply("DATA").await?
            }
            None => return Ok(outcome(None)),
        };
        if data_r.code() != 354 {
            return Ok(outcome(go.then_some(data_r)));
        }
        if !go {
            // 354 to a pipelined DATA while we must not send: ending DATA
            // would deliver an empty message; closing the connection makes
            // the upstream discard the transaction (RFC 5321 3.8).
            self.broken = true;
            return Ok(outcome(None));
        }
        let final_r = self.send_body(parts).await?;
        self.messages += 1;
        Ok(outcome(Some(final_r)))
    }

    async fn send_body(&mut self, parts: &[&[u8]]) -> Result<Reply, ClientError> {
        let t = self.settings.data_timeout;
        let deadline = tokio::time::Instant::now() + t;
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::with_capacity(
            parts
                .iter()
                .map(|p| p.len())
                .sum::<usize>()
                .min(dotstuff::CHUNK)
                + 1024,
        );
        let write = async {
            for part in parts {
                for piece in part.chunks(dotstuff::CHUNK) {
                    stuffer.feed(piece, &mut out);
                    if out.len() >= dotstuff::CHUNK {
                        self.stream.write_all(&out).await?;
                        out.clear();
                    }
                }
            }
            stuffer.finish(&mut out);
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        };
        let written = tokio::time::timeout_at(deadline, write).await;
        self.finish_message(written, deadline, "DATA", "end of data")
            .await
    }

    /// `BDAT <size> LAST` and the parts unchanged (RFC 3030: no stuffing, no
    /// line rules), then the reply, all within `data_timeout`.
    async fn send_bdat(&mut self, parts: &[&[u8]], size: usize) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.settings.data_timeout;
        let mut out = Vec::with_capacity(size.min(dotstuff::CHUNK) + 32);
        out.extend_from_slice(format!("BDAT {size} LAST\r\n").as_bytes());
        let write = async {
            for part in parts {
                for piece in part.chunks(dotstuff::CHUNK) {
                    out.extend_from_slice(piece);
                    if out.len() >= dotstuff::CHUNK {
                        self.stream.write_all(&out).await?;
                        out.clear();
                    }
                }
            }
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        };
        let written = tokio::time::timeout_at(deadline, write).await;
        self.finish_message(written, deadline, "BDAT", "BDAT").await
    }

    /// After the message was written (or not, within `deadline`): the
    /// upstream's reply to it. Any failure leaves the connection unusable;
    /// one after the whole message was sent is `LostAfterData` (the outcome
    /// is unknown).
    async fn finish_message(
        &mut self,
        written: Result<std::io::Result<()>, tokio::time::error::Elapsed>,
        deadline: tokio::time::Instant,
        stage: &'static str,
        reply_to: &'static str,
    ) -> Result<Reply, ClientError> {
        let reason = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out sending the message".to_string()),
        };
        if let Some(reason) = reason {
            self.broken = true;
            return Err(ClientError::Lost { stage, reason });
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match self.read_reply_within(reply_to, left).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.broken = true;
                Err(ClientError::LostAfterData(e.to_string()))
            }
        }
    }

    /// Asks whether the upstream would take mail for `recipient`, without
    /// sending any: `MAIL FROM:<>` and `RCPT TO:<recipient>` (the
    /// transaction is reset before the next use of the connection). Returns
    /// the RCPT reply, or the MAIL reply when MAIL was refused.
    pub async fn probe(&mut self, recipient: &str) -> Result<Reply, ClientError> {
        if !recipient.is_ascii() && !self.caps.smtputf8 {
            return Err(ClientError::Unsupported {
                peer: self.peer,
                extension: "SMTPUTF8",
            });
        }
        if std::mem::replace(&mut self.dirty, true) {
            self.write_all(b"RSET\r\n", "RSET").await?;
            let r = self.read_reply("RSET").await?;
            if !r.is_success() {
                self.broken = true;
                return Err(ClientError::Protocol {
                    stage: "RSET",
                    reason: r.one_line(),
                });
            }
        }
        let utf8 = if recipient.is_ascii() {
            ""
        } else {
            " SMTPUTF8"
        };
        let mail = format!("MAIL FROM:<>{utf8}\r\n");
        let rcpt = format!("RCPT TO:<{recipient}>\r\n");
        if self.caps.pipelining {
            let mut batch = mail.into_bytes();
            batch.extend_from_slice(rcpt.as_bytes());
            self.write_all(&batch, "MAIL").await?;
            let mail_r = self.read_reply("MAIL").await?;
            let rcpt_r = self.read_reply("RCPT").await?;
            return Ok(if mail_r.is_success() { rcpt_r } else { mail_r });
        }
        self.write_all(mail.as_bytes(), "MAIL").await?;
        let mail_r = self.read_reply("MAIL").await?;
        if !mail_r.is_success() {
            return Ok(mail_r);
        }
        self.write_all(rcpt.as_bytes(), "RCPT").await?;
        self.read_reply("RCPT").await
    }

    /// Sends RSET (e.g. after a transaction we abandoned) and checks the reply.
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        self.write_all(b"RSET\r\n", "RSET").await?;
        let r = self.read_reply("RSET").await?;
        if r.is_success() {
            self.dirty = false;
            Ok(())
        } else {
            self.broken = true;
            Err(ClientError::Protocol {
                stage: "RSET",
                reason: r.one_line(),
            })
        }
    }

    /// Says QUIT (waiting briefly for the 221) and closes.
    pub async fn quit(&mut self) {
        if !self.broken {
            let t = self.settings.command_timeout.min(Duration::from_secs(5));
            let _ = tokio::time::timeout(t, async {
                if self.stream.write_all(b"QUIT\r\n").await.is_ok()
                    && self.stream.flush().await.is_ok()
                {
                    let _ = self.read_reply("QUIT").await;
                }
            })
            .await;
        }
        self.broken = true;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

/// True when the message header (up to the first empty line, across the
/// parts) has an octet above 127: an SMTPUTF8 message then really needs it.
fn header_has_8bit(parts: &[&[u8]]) -> bool {
    // The last three octets seen, to find CRLFCRLF across part boundaries.
    let mut tail = [0u8; 3];
    for part in parts {
        for &b in *part {
            if b >= 0x80 {
                return true;
            }
            if tail == *b"\r\n\r" && b == b'\n' {
                return false;
            }
            tail = [tail[1], tail[2], b];
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EnhancedCode;

    #[test]
    fn header_8bit_stops_at_the_empty_line() {
        assert!(!header_has_8bit(&[b"Subject: a\r\n\r\nbody \xc3\xa9\r\n"]));
        assert!(header_has_8bit(&[b"Subject: \xc3\xa9\r\n\r\nbody\r\n"]));
        // The empty line split across parts.
        assert!(!header_has_8bit(&[b"Received: x\r\n", b"\r\n\xff"]));
        assert!(!header_has_8bit(&[b"A: b\r\n\r", b"\n\xff"]));
        assert!(header_has_8bit(&[b"Received: x\r\n", b"S: \xff\r\n\r\n"]));
    }

    #[test]
    fn capabilities_from_ehlo() {
        let r = Reply::multiline(
            250,
            None,
            ["up.test", "chunking", "BINARYMIME", "8BITMIME", "SMTPUTF8"],
        );
        let c = Capabilities::from_ehlo(&r);
        assert!(c.chunking && c.binarymime && c.eight_bit_mime && c.smtputf8);
        assert!(!c.pipelining);
    }

    #[test]
    fn unsupported_maps_to_5_6_3_and_5_6_7() {
        let peer: SocketAddr = "127.0.0.1:25".parse().expect("address");
        let bin = ClientError::Unsupported {
            peer,
            extension: "BINARYMIME",
        };
        let r = bin.unsupported_reply().expect("a reply");
        assert_eq!(
            (r.code(), r.enhanced()),
            (554, Some(EnhancedCode::new(5, 6, 3)))
        );
        assert!(bin.retry_safe());
        let utf8 = ClientError::Unsupported {
            peer,
            extension: "SMTPUTF8",
        };
        let r = utf8.unsupported_reply().expect("a reply");
        assert_eq!(
            (r.code(), r.enhanced()),
            (553, Some(EnhancedCode::new(5, 6, 7)))
        );
        assert!(
            ClientError::LostAfterData("x".into())
                .unsupported_reply()
                .is_none()
        );
    }
}
