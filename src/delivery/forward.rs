//! Synchronous forwarding: the client gets the upstream's verdict.
//!
//! # Connections
//! [`UpstreamPool`] keeps up to `pool_size` idle connections and reuses them
//! across messages (RSET before each further transaction, pipelined with the
//! envelope when the upstream supports PIPELINING). A pooled connection that
//! turns out dead (closed by the upstream, timed out) before the message was
//! sent is dropped and the message goes over another pooled or a fresh
//! connection, transparently. Fresh connections try `upstreams` in order:
//! the next one when a connection, greeting, EHLO or required STARTTLS
//! fails. Idle connections older than `idle_timeout` or having carried
//! `max_messages_per_connection` messages are closed with QUIT.
//!
//! # Verdict mapping (what the client of the gateway is told)
//! - every recipient accepted and the message accepted: `250 2.0.0 Ok: queued
//!   as <our id> (upstream: <its reply>)`;
//! - MAIL refused: the upstream's code and enhanced code, with its text;
//! - some recipients refused, others accepted: the message is **not** sent
//!   (accepting it for some recipients only would either lose mail for the
//!   refused ones or, when the client retries the whole message, duplicate
//!   it for the others). The transaction is abandoned (RSET before the next
//!   one on that connection, or the connection is closed when the upstream
//!   already said 354 to a pipelined DATA) and the client gets `451 4.x.x`
//!   naming the first refused recipient. Only when every recipient was
//!   refused permanently is the reply a 5xx (the first refusal);
//! - DATA or the final dot refused: the upstream's code;
//! - no upstream reachable, or TLS required and unavailable: `451 4.4.1`
//!   (`4.7.5` for TLS);
//! - a `BODY=BINARYMIME` message and no upstream advertising CHUNKING and
//!   BINARYMIME: `554 5.6.3` (conversion required but not supported), and
//!   nothing was sent; likewise `553 5.6.7` for a message that needs
//!   SMTPUTF8 (see [`super::client`]). Temporary when another upstream was
//!   unreachable;
//! - connection lost after the message was sent: `451 4.4.2` — the outcome is
//!   unknown, so the client retries (a duplicate is possible, a loss is not).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::client::{ClientError, ClientSettings, MailOptions, RcptMode, SmtpClient, TxnOutcome};
use super::config::{ForwardConfig, TlsPolicy};
use crate::protocol::{Reply, replies};

#[derive(Debug)]
struct Idle {
    client: SmtpClient,
    since: Instant,
}

/// Pool of reusable connections to the upstreams, with failover.
#[derive(Debug)]
pub struct UpstreamPool {
    upstreams: Vec<SocketAddr>,
    settings: Arc<ClientSettings>,
    idle: Mutex<Vec<Idle>>,
    pool_size: usize,
    idle_timeout: Duration,
    max_messages: u32,
    connections_opened: AtomicU64,
}

impl UpstreamPool {
    /// Builds the pool (connects lazily); `hostname` is the HELO name when
    /// `helo_name` is unset.
    pub fn new(config: &ForwardConfig, hostname: &str) -> anyhow::Result<Self> {
        if config.upstreams.is_empty() {
            anyhow::bail!("delivery.forward.upstreams: at least one upstream (IP:port) is needed");
        }
        Ok(Self {
            upstreams: config.upstreams.clone(),
            settings: Arc::new(ClientSettings::from_config(config, hostname)?),
            idle: Mutex::new(Vec::new()),
            pool_size: config.pool_size,
            idle_timeout: config.idle_timeout,
            max_messages: config.max_messages_per_connection.max(1),
            connections_opened: AtomicU64::new(0),
        })
    }

    /// Connections opened so far (for tests and metrics).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Ordering::Relaxed)
    }

    fn take_idle(&self) -> Option<SmtpClient> {
        let mut expired = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match idle.pop() {
                    None => break None,
                    Some(i) if i.since.elapsed() > self.idle_timeout => expired.push(i.client),
                    Some(i) => break Some(i.client),
                }
            }
        };
        for c in expired {
            close_in_background(c);
        }
        found
    }

    fn put_back(&self, client: SmtpClient) {
        if !client.reusable() || client.messages() >= self.max_messages {
            close_in_background(client);
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.pool_size {
            idle.push(Idle {
                client,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            close_in_background(client);
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SmtpClient, ClientError> {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
        match SmtpClient::connect(addr, self.settings.clone(), true).await {
            Err(ClientError::TlsHandshake(e)) if self.settings.tls == TlsPolicy::Opportunistic => {
                tracing::warn!(upstream = %addr, error = %e, "opportunistic STARTTLS failed; retrying in plaintext");
                self.connections_opened.fetch_add(1, Ordering::Relaxed);
                SmtpClient::connect(addr, self.settings.clone(), false).await
            }
            other => other,
        }
    }

    /// Sends one message over a pooled or fresh connection (see the module
    /// doc for reuse and failover). Returns the replies and the upstream used.
    ///
    /// An upstream lacking an extension the message needs (see
    /// [`ClientError::Unsupported`]) is skipped; when no other upstream took
    /// the message, the error is that one unless another upstream failed
    /// temporarily (it might support it once back).
    pub async fn send(
        &self,
        sender: &str,
        recipients: &[&str],
        parts: &[&[u8]],
        mode: RcptMode,
        options: MailOptions,
    ) -> Result<(TxnOutcome, SocketAddr), ClientError> {
        let mut unsupported = None;
        let mut lacking = Vec::new();
        let mut healthy = Vec::new();
        let pooled = loop {
            let Some(mut c) = self.take_idle() else {
                break None;
            };
            match c.send(sender, recipients, parts, mode, options).await {
                Ok(o) => {
                    let peer = c.peer();
                    self.put_back(c);
                    break Some(Ok((o, peer)));
                }
                Err(e @ ClientError::Unsupported { .. }) => {
                    tracing::debug!(upstream = %c.peer(), error = %e, "pooled connection lacks an extension; trying another");
                    lacking.push(c.peer());
                    healthy.push(c);
                    unsupported = Some(e);
                }
                Err(e) if e.retry_safe() => {
                    tracing::debug!(upstream = %c.peer(), error = %e, "pooled connection unusable; trying another");
                }
                Err(e) => break Some(Err(e)),
            }
        };
        // Back after the loop, so the loop does not take them again.
        for c in healthy {
            self.put_back(c);
        }
        if let Some(result) = pooled {
            return result;
        }
        let mut last = None;
        for &addr in &self.upstreams {
            if lacking.contains(&addr) {
                continue;
            }
            let mut c = match self.connect(addr).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(upstream = %addr, error = %e, "upstream unavailable");
                    last = Some(e);
                    continue;
                }
            };
            match c.send(sender, recipients, parts, mode, options).await {
                Ok(o) => {
                    self.put_back(c);
                    return Ok((o, addr));
                }
                Err(e @ ClientError::Unsupported { .. }) => {
                    tracing::warn!(upstream = %addr, error = %e, "upstream cannot take this message");
                    self.put_back(c);
                    unsupported = Some(e);
                }
                Err(e) if e.retry_safe() => {
                    tracing::warn!(upstream = %addr, error = %e, "upstream failed before the message was sent");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.or(unsupported).unwrap_or(ClientError::Lost {
            stage: "connect",
            reason: "no upstream configured".into(),
        }))
    }

    /// Probes whether the upstream takes mail for `recipient` (see
    /// [`SmtpClient::probe`]) over a pooled or fresh connection, trying the
    /// upstreams in order until one answers.
    pub async fn probe(&self, recipient: &str) -> Result<Reply, ClientError> {
        if let Some(mut c) = self.take_idle() {
            match c.probe(recipient).await {
                Ok(r) => {
                    self.put_back(c);
                    return Ok(r);
                }
                Err(e) => {
                    tracing::debug!(upstream = %c.peer(), error = %e, "pooled connection unusable for a probe");
                }
            }
        }
        let mut last = None;
        for &addr in &self.upstreams {
            let mut c = match self.connect(addr).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(upstream = %addr, error = %e, "upstream unavailable");
                    last = Some(e);
                    continue;
                }
            };
            match c.probe(recipient).await {
                Ok(r) => {
                    self.put_back(c);
                    return Ok(r);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Lost {
            stage: "connect",
            reason: "no upstream configured".into(),
        }))
    }

    /// Closes every idle connection with QUIT.
    pub async fn close(&self) {
        let all: Vec<Idle> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for mut i in all {
            i.client.quit().await;
        }
    }
}

fn close_in_background(mut client: SmtpClient) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move { client.quit().await });
    }
}

/// The reply for a connection-level failure.
pub fn error_reply(e: &ClientError) -> Reply {
    if let Some(r) = e.unsupported_reply() {
        return r;
    }
    match e {
        ClientError::TlsUnavailable(_) | ClientError::TlsHandshake(_) => {
            replies::upstream_tls_unavailable()
        }
        ClientError::LostAfterData(_) => replies::upstream_lost_after_data(),
        ClientError::Refused(r) if r.is_permanent() => replies::upstream_refused_session(r.code()),
        _ => replies::upstream_unavailable(),
    }
}

/// Maps the upstream's replies to the one reply our client gets (see the
/// module doc).
pub fn verdict(outcome: &TxnOutcome, recipients: &[&str], queue_id: &str) -> Reply {
    if !outcome.mail.is_success() {
        return replies::relayed(&outcome.mail, "MAIL");
    }
    let refused: Vec<(usize, &Reply)> = outcome
        .rcpts
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_success())
        .collect();
    if let Some(&(i, first)) = refused.first() {
        let who = recipients.get(i).copied().unwrap_or("?");
        if refused.len() == recipients.len() && refused.iter().all(|(_, r)| r.is_permanent()) {
            return replies::relayed(first, &format!("RCPT <{who}>"));
        }
        return replies::upstream_refused_recipient(who, first);
    }
    match &outcome.data {
        Some(r) if r.is_success() => replies::queued_upstream(queue_id, &r.one_line()),
        Some(r) => replies::relayed(r, "DATA"),
        None => replies::local_error(),
    }
}
