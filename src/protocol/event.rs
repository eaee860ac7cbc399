//! What the engine asks of the driver ([`Action`], [`Event`]) and what the
//! driver answers ([`Decision`]).

use super::reply::Reply;
use crate::context::Param;

/// The next thing the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the pending output (if any), then read more input and call `receive`.
    NeedInput,
    /// A hook point: run the plugin chain and the core policy, then call `decide`.
    Event(Event),
    /// Write the pending output (the 220 for STARTTLS), discard nothing else
    /// (the engine already dropped buffered plaintext), run the TLS handshake,
    /// then call `tls_established`.
    StartTls,
    /// Write the pending output and close the connection.
    Close,
}

/// A hook point. Every event carries what the hook needs; the engine has
/// already checked syntax, sequence and limits.
///
/// `Debug` redacts the AUTH password, so events can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// Before the greeting. `Default` sends `220 <host> ESMTP`.
    Connect,
    /// HELO with the client's name.
    Helo {
        /// The name given.
        host: String,
    },
    /// EHLO with the client's name. `Default` sends the capability list.
    Ehlo {
        /// The name given.
        host: String,
    },
    /// MAIL FROM. `sender` is empty for the null reverse-path.
    Mail {
        /// Reverse-path without brackets.
        sender: String,
        /// ESMTP parameters (SIZE, BODY, SMTPUTF8, ... upper-cased keys).
        params: Vec<Param>,
    },
    /// RCPT TO.
    Rcpt {
        /// Forward-path without brackets.
        recipient: String,
        /// ESMTP parameters.
        params: Vec<Param>,
    },
    /// DATA, or the first BDAT of a transaction, before any message byte is accepted.
    Data,
    /// The header block of the message is complete (`SmtpEngine::message_so_far`).
    DataHeaders,
    /// The message is complete (`SmtpEngine::take_message`). `Default` is not
    /// meaningful here: the driver answers with the delivery result.
    MessageComplete,
    /// RSET (the engine already reset its transaction state).
    Rset,
    /// QUIT. `Default` sends 221 and closes.
    Quit,
    /// NOOP with its (ignored) argument.
    Noop {
        /// Argument text.
        arg: String,
    },
    /// VRFY. `Default` sends 252.
    Vrfy {
        /// Argument text.
        arg: String,
    },
    /// HELP. `Default` sends 214.
    Help {
        /// Argument text.
        arg: String,
    },
    /// A command the engine does not know. `Default` sends 500 5.5.1.
    Unrecognized {
        /// The verb as sent.
        verb: String,
        /// The rest of the line.
        args: String,
    },
    /// AUTH with decoded credentials. `Default` = authenticated (235).
    /// A non-2xx reply is a failure (counted against the failure limit).
    Auth {
        /// "PLAIN" or "LOGIN".
        mechanism: String,
        /// Authorization identity (PLAIN), often empty.
        authzid: String,
        /// Authentication identity.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connect => f.write_str("Connect"),
            Event::Helo { host } => f.debug_struct("Helo").field("host", host).finish(),
            Event::Ehlo { host } => f.debug_struct("Ehlo").field("host", host).finish(),
            Event::Mail { sender, params } => f
                .debug_struct("Mail")
                .field("sender", sender)
                .field("params", params)
                .finish(),
            Event::Rcpt { recipient, params } => f
                .debug_struct("Rcpt")
                .field("recipient", recipient)
                .field("params", params)
                .finish(),
            Event::Data => f.write_str("Data"),
            Event::DataHeaders => f.write_str("DataHeaders"),
            Event::MessageComplete => f.write_str("MessageComplete"),
            Event::Rset => f.write_str("Rset"),
            Event::Quit => f.write_str("Quit"),
            Event::Noop { arg } => f.debug_struct("Noop").field("arg", arg).finish(),
            Event::Vrfy { arg } => f.debug_struct("Vrfy").field("arg", arg).finish(),
            Event::Help { arg } => f.debug_struct("Help").field("arg", arg).finish(),
            Event::Unrecognized { verb, args } => f
                .debug_struct("Unrecognized")
                .field("verb", verb)
                .field("args", args)
                .finish(),
            Event::Auth {
                mechanism,
                authzid,
                username,
                password: _,
            } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field("authzid", authzid)
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// The driver's answer to an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept with the engine's default reply for the event.
    Default,
    /// Send this reply. 2xx/3xx means accepted (state advances), 4xx/5xx rejected.
    Reply(Reply),
    /// Send this reply and close the connection.
    Disconnect(Reply),
}

/// How to treat a bare CR or LF inside DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BareLineEndings {
    /// Read to the end of data, then reject with `550 5.5.2` (Postfix
    /// `smtpd_forbid_bare_newline`).
    #[default]
    Reject,
    /// Turn each bare CR or LF into CRLF.
    Normalize,
}

/// Per-listener settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our host name, in the greeting and EHLO.
    pub hostname: String,
    /// STARTTLS can be offered (a certificate is loaded and TLS is not yet active).
    pub starttls: bool,
    /// TLS is required before MAIL and AUTH (submission).
    pub require_tls: bool,
    /// AUTH is required before MAIL (submission).
    pub require_auth: bool,
    /// AUTH is offered at all (users or an auth plugin exist).
    pub auth: bool,
    /// AUTH is allowed over plaintext (otherwise only after TLS).
    pub auth_plaintext: bool,
    /// Max command line in octets including CRLF (RFC 5321: 512).
    pub max_command_line: usize,
    /// Extra octets allowed on MAIL and RCPT for ESMTP parameters (RFC 5321 4.5.3.1.4).
    pub command_line_extension: usize,
    /// Max text line in DATA in octets including CRLF (RFC 5321: 1000).
    pub max_text_line: usize,
    /// Max message size in octets (SIZE); larger messages are read, discarded and refused 552.
    pub max_message_size: u64,
    /// Max recipients per transaction (>= 100); past it 452.
    pub max_recipients: usize,
    /// Protocol errors before `421` and close.
    pub max_errors: usize,
    /// AUTH failures before `421` and close.
    pub max_auth_failures: usize,
    /// Bare CR/LF policy in DATA.
    pub bare_line_endings: BareLineEndings,
    /// Offer CHUNKING (BDAT).
    pub chunking: bool,
    /// Offer SMTPUTF8.
    pub smtputf8: bool,
    /// Refuse the sloppy envelope forms (a space after `FROM:`/`TO:`, an
    /// address without `<>`) as Postfix's `strict_rfc821_envelopes` does;
    /// off by default: printers, scanners and scripts send them.
    pub strict_envelopes: bool,
    /// The address `RCPT TO:<Postmaster>` (no domain, RFC 5321 4.5.1)
    /// stands for: `postmaster@<first local domain>`, else
    /// `postmaster@<hostname>`. Plugins, relay policy and delivery see it.
    pub postmaster: String,
    /// Refuse (554 and close) an unauthenticated client that sends commands
    /// before the reply to the end of DATA (Postfix
    /// `smtpd_forbid_unauth_pipelining`). Off by default.
    pub forbid_unauth_pipelining: bool,
    /// NOOP, VRFY, HELP and RSET allowed per session (each one may call
    /// plugins); the next gets `421 4.7.0` and the session closes (Postfix
    /// `smtpd_junk_command_limit`).
    pub max_junk_commands: usize,
}

impl Decision {
    /// Whether the engine treats this decision as acceptance (the one rule
    /// [`SmtpEngine::decide`](super::SmtpEngine::decide) and the driver share).
    pub fn accepts(&self) -> bool {
        match self {
            Decision::Default => true,
            Decision::Reply(r) => r.is_positive(),
            Decision::Disconnect(_) => false,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            starttls: false,
            require_tls: false,
            require_auth: false,
            auth: false,
            auth_plaintext: false,
            max_command_line: 512,
            command_line_extension: 512,
            max_text_line: 1000,
            max_message_size: 35 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            max_auth_failures: 3,
            bare_line_endings: BareLineEndings::Reject,
            chunking: true,
            smtputf8: true,
            strict_envelopes: false,
            postmaster: "postmaster@localhost".into(),
            forbid_unauth_pipelining: false,
            max_junk_commands: 100,
        }
    }
}
