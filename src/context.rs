//! What plugins can see and edit: the connection and the transaction.
//!
//! The driver owns one [`SessionContext`] per TCP session. The plugin host
//! lends it to each plugin call, so every plugin of a chain sees the same
//! state and an edit by one is visible to the next at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::message::Message;

/// How the client introduced itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HelloKind {
    /// Nothing accepted yet.
    #[default]
    None,
    /// RFC 821 HELO.
    Helo,
    /// ESMTP EHLO.
    Ehlo,
}

/// Facts about the TLS layer of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version, e.g. "TLSv1.3".
    pub protocol: String,
    /// Cipher suite, e.g. "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
    /// Server name the client asked for (SNI).
    pub sni: Option<String>,
}

/// String notes plugins leave for later plugins and hooks.
pub type Notes = BTreeMap<String, String>;

/// One ESMTP parameter (`KEY` or `KEY=value`) of MAIL or RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Upper-cased keyword.
    pub key: String,
    /// Value, if given.
    pub value: Option<String>,
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Mailbox `local@domain` without angle brackets.
    pub address: String,
    /// ESMTP parameters given with RCPT.
    pub params: Vec<Param>,
}

/// The connection: from accept to close.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Session id, on every log line of the session.
    pub id: String,
    /// Client address.
    pub remote: SocketAddr,
    /// Local address the client connected to.
    pub local: SocketAddr,
    /// Reverse DNS name of the client, when a resolver is configured and it resolved.
    pub remote_host: Option<String>,
    /// HELO/EHLO, set once the helo/ehlo chain accepted it.
    pub hello: HelloKind,
    /// Name given with the accepted HELO/EHLO; empty before.
    pub hello_host: String,
    /// TLS facts once TLS is active.
    pub tls: Option<TlsInfo>,
    /// Authenticated user after a successful AUTH.
    pub auth_user: Option<String>,
    /// May relay to any domain (relay network, authenticated, or set by a plugin).
    pub relay_client: bool,
    /// Plugin notes for the whole connection.
    pub notes: Notes,
}

impl Connection {
    /// A fresh connection context.
    pub fn new(id: String, remote: SocketAddr, local: SocketAddr) -> Self {
        Self {
            id,
            remote,
            local,
            remote_host: None,
            hello: HelloKind::None,
            hello_host: String::new(),
            tls: None,
            auth_user: None,
            relay_client: false,
            notes: Notes::new(),
        }
    }
}

/// One mail transaction: MAIL to end of DATA or RSET.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// Transaction id; becomes the queue id of the accepted message.
    pub id: String,
    /// Reverse-path without brackets; empty for the null sender.
    pub sender: String,
    /// MAIL parameters.
    pub sender_params: Vec<Param>,
    /// Accepted recipients, in order.
    pub recipients: Vec<Recipient>,
    /// The message, from the data-headers hook on.
    pub message: Option<Message>,
    /// Plugin notes for this transaction.
    pub notes: Notes,
}

/// Everything a hook can see: the connection and, within MAIL..DATA, the transaction.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// The connection.
    pub conn: Connection,
    /// The current transaction, between MAIL and its end.
    pub txn: Option<Transaction>,
    /// Largest message the gateway accepts (bounds plugin body rewrites).
    pub max_message_size: u64,
}
