//! Delivery of accepted messages: Maildir, synchronous forward, and the
//! durable spool (store-and-forward, in [`queue`]).
//!
//! The driver calls [`Deliverer::deliver`] once per accepted message with
//! the envelope and the message as parts (the Received header, then the
//! message; CRLF line endings, already dot-unstuffed). The returned reply is
//! what the client gets, and a 250 is a promise:
//!
//! | mode | 250 means |
//! |---|---|
//! | `maildir` | the file is fsynced and renamed into `new/`, and `new/` is fsynced ([`maildir`]) |
//! | `forward` | the upstream accepted the message for every recipient ([`forward`]) |
//! | `store-and-forward` | message and envelope are fsynced in the spool ([`crate::delivery::queue`]) |
//!
//! # Layout
//! - [`config`]: `[delivery]` and its sub-tables.
//! - [`maildir`]: the Maildir writer.
//! - [`client`]: our SMTP client (pipelining, STARTTLS policy, dot-stuffing).
//! - [`forward`]: the upstream connection pool and the verdict mapping.
//! - [`queue`]: store-and-forward, a backend of its own: the durable spool,
//!   retries, bounces, queue admin. It uses the client and pool above;
//!   nothing here but [`Deliverer`] uses it.
//! - [`util`]: host name, unique names, blocking-fs glue.
//! - [`verify`]: recipient verification at RCPT time (store-and-forward).
//!
//! # Backscatter
//! Store-and-forward accepts a message before the upstream has seen it, so
//! a recipient the upstream refuses later would bounce to the envelope
//! sender, which anyone can forge. Two guards, see [`SpoolConfig`]:
//! `verify_recipients` asks the upstream at RCPT time (the refusal then
//! happens in the session), and bounces and delay warnings go only to
//! senders the gateway can hold accountable (the client authenticated or
//! is in `relay_networks`) or for recipients verified at RCPT time;
//! otherwise the failure is logged (`bounce suppressed`) and not sent
//! (`bounce_unverified = true` restores bouncing). A bounce never quotes
//! more than the failed message's header section.

pub mod client;
pub mod config;
pub mod forward;
pub mod maildir;
pub mod queue;
pub mod util;
pub mod verify;

use std::sync::Arc;

pub use config::{DeliveryConfig, DeliveryMode, ForwardConfig, SpoolConfig, TlsPolicy};

use crate::context::Recipient;
use crate::protocol::params::BodyType;
use crate::protocol::{Reply, replies};
use client::{MailOptions, RcptMode};
use forward::UpstreamPool;
use maildir::Maildir;
use queue::{DeliveryReport, Queue};
use verify::{RecipientVerifier, Verification};

/// Envelope of a message to deliver.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// Queue id (shown in the 250 reply and the Received header).
    pub id: String,
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<Recipient>,
    /// `BODY=` the client declared; a BINARYMIME message is relayed only
    /// with BDAT to an upstream offering it.
    pub body: BodyType,
    /// The client declared `SMTPUTF8`.
    pub smtputf8: bool,
    /// The client was authenticated or in `relay_networks`: its sender may
    /// be told of failures (bounces, delay warnings) for any recipient.
    pub trusted: bool,
    /// Recipients the upstream accepted at RCPT time (see [`verify`]): a
    /// later failure for them is bounced even when not `trusted`.
    pub verified: Vec<String>,
}

impl Envelope {
    /// What the upstream must be told at MAIL.
    pub fn mail_options(&self) -> MailOptions {
        MailOptions {
            body: self.body,
            smtputf8: self.smtputf8,
        }
    }
}

/// The backend chosen by `[delivery] mode`.
#[derive(Debug)]
enum Backend {
    Maildir(Maildir),
    Forward(Arc<UpstreamPool>),
    Spool(Queue),
}

/// Delivers accepted messages according to the config.
#[derive(Debug)]
pub struct Deliverer {
    backend: Backend,
    /// Recipient verification (store-and-forward with `verify_recipients`).
    verifier: Option<RecipientVerifier>,
}

impl Deliverer {
    /// Builds the deliverer: creates directories, loads TLS roots and, in
    /// `store-and-forward`, recovers the spool and starts the delivery
    /// workers (needs a tokio runtime). Upstream connections open lazily.
    pub async fn new(config: &DeliveryConfig) -> anyhow::Result<Self> {
        Self::with_hostname(config, util::hostname()).await
    }

    /// [`Deliverer::new`] for a gateway named `hostname` (`[server]
    /// hostname`): the HELO name upstream unless `helo_name` is set, and
    /// the reporting MTA of bounces and delay warnings. (`new` uses the
    /// machine's host name.)
    pub async fn with_hostname(config: &DeliveryConfig, hostname: &str) -> anyhow::Result<Self> {
        let verifier = match config.mode {
            DeliveryMode::StoreAndForward => RecipientVerifier::new(&config.spool),
            _ => None,
        };
        let backend = match config.mode {
            DeliveryMode::Maildir => {
                Backend::Maildir(Maildir::open(&config.maildir).map_err(|e| {
                    anyhow::anyhow!(
                        "delivery.maildir: cannot create {}: {e}",
                        config.maildir.display()
                    )
                })?)
            }
            DeliveryMode::Forward => {
                Backend::Forward(Arc::new(UpstreamPool::new(&config.forward, hostname)?))
            }
            DeliveryMode::StoreAndForward => Backend::Spool(Queue::start(config, hostname).await?),
        };
        Ok(Self { backend, verifier })
    }

    /// Verifies a recipient of an untrusted client with the upstream
    /// (`[delivery.spool] verify_recipients`); `None` when verification is
    /// off or the mode is not store-and-forward.
    pub async fn verify_recipient(&self, recipient: &str) -> Option<Verification> {
        match (&self.backend, &self.verifier) {
            (Backend::Spool(q), Some(v)) => Some(v.verify(q.pool(), recipient).await),
            _ => None,
        }
    }

    /// Delivers one message, given as consecutive parts (e.g. the Received
    /// header, then the message). The reply is what the client gets: 250
    /// only once the message is safe (fsynced, or accepted upstream).
    pub async fn deliver(&self, envelope: &Envelope, parts: &[&[u8]]) -> Reply {
        if envelope.recipients.is_empty() {
            return replies::no_recipients();
        }
        match &self.backend {
            Backend::Maildir(m) => match m.deliver(parts).await {
                Ok(path) => {
                    tracing::info!(id = %envelope.id, path = %path.display(), "delivered to maildir");
                    replies::queued_as(&envelope.id)
                }
                Err(e) => {
                    tracing::error!(id = %envelope.id, error = %e, "maildir delivery failed");
                    replies::local_error()
                }
            },
            Backend::Forward(pool) => {
                let rcpts: Vec<&str> = envelope
                    .recipients
                    .iter()
                    .map(|r| r.address.as_str())
                    .collect();
                match pool
                    .send(
                        &envelope.sender,
                        &rcpts,
                        parts,
                        RcptMode::AllOrNothing,
                        envelope.mail_options(),
                    )
                    .await
                {
                    Ok((outcome, upstream)) => {
                        let reply = forward::verdict(&outcome, &rcpts, &envelope.id);
                        tracing::info!(id = %envelope.id, %upstream, reply = %reply, "forwarded");
                        reply
                    }
                    Err(e) => {
                        tracing::warn!(id = %envelope.id, error = %e, "forward failed");
                        forward::error_reply(&e)
                    }
                }
            }
            Backend::Spool(q) => q.enqueue(envelope, parts).await,
        }
    }

    /// Delivery outcome reports (store-and-forward only): one per recipient
    /// and attempt, for the plugin host's `delivery` hook.
    pub fn subscribe_reports(&self) -> Option<tokio::sync::broadcast::Receiver<DeliveryReport>> {
        match &self.backend {
            Backend::Spool(q) => Some(q.subscribe()),
            _ => None,
        }
    }

    /// The spool, in store-and-forward mode.
    pub fn queue(&self) -> Option<&Queue> {
        match &self.backend {
            Backend::Spool(q) => Some(q),
            _ => None,
        }
    }

    /// Upstream connections opened so far (forward mode; for tests and metrics).
    pub fn upstream_connections_opened(&self) -> Option<u64> {
        match &self.backend {
            Backend::Forward(p) => Some(p.connections_opened()),
            Backend::Spool(q) => Some(q.pool().connections_opened()),
            Backend::Maildir(_) => None,
        }
    }

    /// Graceful stop: QUIT pooled upstream connections, stop the spool
    /// workers (spooled messages stay for the next start).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Forward(p) => p.close().await,
            Backend::Spool(q) => q.shutdown().await,
            Backend::Maildir(_) => {}
        }
    }
}
