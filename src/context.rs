//! What plugins can see and edit: the connection and the transaction.
//!
//! The driver owns one [`SessionContext`] per TCP session. The plugin host
//! lends it to each plugin call, so every plugin of a chain sees the same
//! state and an edit by one is visible to the next at once.
//!
//! Everything a plugin can make the host hold is bounded here, per session
//! ([`PluginLimits`]): notes, header edits, recipients. The checked methods
//! on [`SessionContext`] return a [`LimitError`] the host glue hands to the
//! plugin as its call's error; the session goes on.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::message::{EditError, Message};

/// Per-session bounds on what plugins can make the host hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Most octets (keys + values) of connection and transaction notes together.
    pub max_notes_bytes: usize,
    /// Most notes (connection and transaction together).
    pub max_notes: usize,
    /// Most header fields plugins may add or replace in one message.
    pub max_header_edits: usize,
    /// Most octets of header fields plugins may add to one message.
    pub max_added_header_bytes: usize,
    /// Most recipients of a transaction, plugin-added ones included
    /// (`[limits] max_recipients`).
    pub max_recipients: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            max_notes_bytes: 1 << 20,
            max_notes: 1024,
            max_header_edits: 100,
            max_added_header_bytes: 64 << 10,
            max_recipients: 1000,
        }
    }
}

/// A plugin asked for more than [`PluginLimits`] allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Notes would pass their octet or count bound.
    #[error("notes would exceed {0}")]
    Notes(String),
    /// The transaction already has the most recipients allowed.
    #[error("at most {0} recipients")]
    Recipients(usize),
    /// No transaction is open.
    #[error("no transaction is open")]
    NoTransaction,
    /// The message is not there yet (before data-headers).
    #[error("the message is not available before the data-headers hook")]
    NoMessage,
    /// A header edit was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// Which notes a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteScope {
    /// The connection's notes.
    Connection,
    /// The current transaction's notes.
    Transaction,
}

/// A header edit a plugin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// Append `name: value` to the header section.
    Add(&'a str, &'a str),
    /// Insert `name: value` at the top.
    Prepend(&'a str, &'a str),
    /// Replace every `name` field by one.
    Replace(&'a str, &'a str),
}

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
    /// Bounds on what plugins make the host hold for this session.
    pub limits: PluginLimits,
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
            limits: PluginLimits::default(),
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

fn notes_usage(notes: &Notes, except: &str) -> (usize, usize) {
    notes
        .iter()
        .filter(|(k, _)| k.as_str() != except)
        .fold((0, 0), |(b, n), (k, v)| (b + k.len() + v.len(), n + 1))
}

impl SessionContext {
    /// Sets a note within the session's bound on notes (connection and
    /// transaction notes together). Without a transaction, a transaction
    /// note is dropped.
    pub fn set_note(
        &mut self,
        scope: NoteScope,
        key: String,
        value: String,
    ) -> Result<(), LimitError> {
        let limits = self.conn.limits;
        let (cb, cn) = notes_usage(
            &self.conn.notes,
            if scope == NoteScope::Connection {
                key.as_str()
            } else {
                ""
            },
        );
        let (tb, tn) = match &self.txn {
            Some(t) => notes_usage(
                &t.notes,
                if scope == NoteScope::Transaction {
                    key.as_str()
                } else {
                    ""
                },
            ),
            None => (0, 0),
        };
        let bytes = cb + tb + key.len() + value.len();
        if bytes > limits.max_notes_bytes {
            return Err(LimitError::Notes(format!(
                "{} octets per session",
                limits.max_notes_bytes
            )));
        }
        if cn + tn + 1 > limits.max_notes {
            return Err(LimitError::Notes(format!(
                "{} notes per session",
                limits.max_notes
            )));
        }
        match scope {
            NoteScope::Connection => {
                self.conn.notes.insert(key, value);
            }
            NoteScope::Transaction => {
                if let Some(t) = self.txn.as_mut() {
                    t.notes.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// Adds a recipient a plugin asks for (already checked as an address),
    /// within `max_recipients`.
    pub fn add_recipient(&mut self, recipient: Recipient) -> Result<(), LimitError> {
        let max = self.conn.limits.max_recipients;
        let txn = self.txn.as_mut().ok_or(LimitError::NoTransaction)?;
        if txn.recipients.len() >= max {
            return Err(LimitError::Recipients(max));
        }
        txn.recipients.push(recipient);
        Ok(())
    }

    /// Applies a plugin's header edit within the message size limit and the
    /// per-message bounds on edits; the added field is folded (or refused
    /// when it cannot be, see [`crate::message::fold_field`]).
    pub fn edit_header(&mut self, edit: HeaderEdit<'_>) -> Result<(), LimitError> {
        let limits = self.conn.limits;
        let size_limit = self.max_message_size;
        let txn = self.txn.as_mut().ok_or(LimitError::NoTransaction)?;
        let m = txn.message.as_mut().ok_or(LimitError::NoMessage)?;
        let (HeaderEdit::Add(name, value)
        | HeaderEdit::Prepend(name, value)
        | HeaderEdit::Replace(name, value)) = edit;
        if m.edits() >= limits.max_header_edits {
            return Err(EditError::Limit(format!(
                "at most {} header edits per message",
                limits.max_header_edits
            ))
            .into());
        }
        // Folding adds a CRLF per 38 octets of value at most.
        let grown = name.len() + value.len() + value.len() / 38 + 4;
        if m.added_bytes() + grown > limits.max_added_header_bytes {
            return Err(EditError::Limit(format!(
                "at most {} octets of added header fields per message",
                limits.max_added_header_bytes
            ))
            .into());
        }
        if m.len() as u64 + grown as u64 > size_limit {
            return Err(EditError::TooLarge(size_limit).into());
        }
        match edit {
            HeaderEdit::Add(..) => m.add_header(name, value)?,
            HeaderEdit::Prepend(..) => m.prepend_header(name, value)?,
            HeaderEdit::Replace(..) => m.replace_header(name, value)?,
        }
        Ok(())
    }
}
