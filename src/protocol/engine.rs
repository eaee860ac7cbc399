//! The session state machine: input bytes in, replies and [`Action`]s out.
//!
//! One `Phase` says how the next input octets are read (command lines,
//! an AUTH response, DATA content, a BDAT chunk, a refused chunk to skip).
//! Commands are handled one at a time; when one needs a policy decision the
//! engine parks it as the pending [`Event`] and reads nothing more until
//! [`SmtpEngine::decide`]. Replies go to one output buffer in command order, so
//! pipelined commands (RFC 2920) are answered in order.
//!
//! # Notes for the driver
//! - A transaction can end without `MessageComplete`: a message refused by
//!   the engine (552 size, 550 bare CR/LF, long line) or at `DataHeaders`
//!   ends it after the reply. [`SmtpEngine::in_transaction`] says whether one
//!   is open; mirror it into the plugin context after each `poll`.
//! - An accepted HELO/EHLO, RSET, the end of a message and a refused
//!   first BDAT (RFC 3030 4.2) end the transaction; a refused DATA does
//!   not. `tls_established` clears the transaction, HELO and AUTH
//!   ([`SmtpEngine::hello`], [`SmtpEngine::is_authenticated`]).
//! - A positive reply to `Event::Data` always becomes 354 (for DATA) or no
//!   reply at all (for the first BDAT, whose chunk reply comes later).
//! - Any 421 reply, from the engine or the driver, closes the session.
//! - Protocol errors (500-504, 555 from the engine's own checks or the
//!   default reply to an unknown verb) and RCPTs refused with a 5xx count
//!   towards `max_errors`; the `max_errors`-th is answered `421 4.7.0` and
//!   the session closes. The `max_auth_failures`-th failed AUTH (refused
//!   credentials, or a malformed or cancelled exchange) is likewise
//!   answered `421 4.7.0`, and so is the NOOP/VRFY/HELP/RSET past
//!   `max_junk_commands` (it never becomes an event).
//! - The engine owns the protocol state the driver needs:
//!   [`SmtpEngine::receiving_message`] (which read timeout applies),
//!   [`SmtpEngine::smtputf8`], [`SmtpEngine::headers_len`], and
//!   [`Decision::accepts`] is the one rule for what a decision accepts.

use std::sync::Arc;

use super::address::{self, AddressError, Path};
use super::auth::{self, Credentials, Mechanism};
use super::bdat::Chunk;
use super::body::{MessageBuffer, TextChecks};
use super::command::{Command, CommandError};
use super::data::{DataReceiver, DataStep};
use super::ehlo;
use super::event::{Action, BareLineEndings, Decision, EngineConfig, Event};
use super::line::{Line, LineReader};
use super::params::{self, BodyType, MailParams};
use super::replies;
use super::reply::Reply;
use crate::context::HelloKind;

/// How the next input octets are read.
#[derive(Debug)]
enum Phase {
    /// Command lines.
    Command,
    /// The greeting was refused: only QUIT is answered positively.
    Rejected,
    /// A line answering a 334 challenge.
    Auth(AuthStep),
    /// DATA content after 354.
    Data(DataReceiver),
    /// A BDAT chunk being stored.
    Bdat(Chunk),
    /// A chunk being discarded, then `reply` (counted as an error if `error`).
    Skip {
        /// What is left of the chunk.
        chunk: Chunk,
        /// The reply to the BDAT command.
        reply: Reply,
        /// Count the reply against `max_errors`.
        error: bool,
    },
    /// The message content is complete: DataHeaders / MessageComplete next.
    Finish,
    /// 220 to STARTTLS sent: waiting for `tls_established`.
    AwaitTls,
}

/// Where an AUTH exchange is.
#[derive(Debug)]
enum AuthStep {
    /// PLAIN, waiting for the response to `334 `.
    Plain,
    /// LOGIN, waiting for the username.
    LoginUser,
    /// LOGIN, waiting for the password.
    LoginPass {
        /// The username already given.
        username: String,
    },
}

/// What the pending event needs when its decision arrives.
#[derive(Debug)]
enum Pending {
    /// Nothing beyond the event.
    Plain,
    /// MAIL: the checked parameters.
    Mail(MailParams),
    /// The first BDAT of a transaction (the event is `Data`).
    FirstBdat(Chunk),
}

/// A mail transaction between an accepted MAIL and its end.
#[derive(Debug)]
struct MailTransaction {
    /// MAIL parameters.
    params: MailParams,
    /// Recipients accepted so far.
    recipients: usize,
    /// A BDAT chunk was accepted (DATA is then refused).
    bdat: bool,
}

/// Reception of one message (DATA or BDAT chunks).
#[derive(Debug)]
struct Reception {
    /// Content checks (bare CR/LF, long lines, header end).
    text: TextChecks,
    /// The header block was reported (or skipped because the message is refused).
    headers_done: bool,
    /// A refusal decided at DataHeaders, sent at the end of the message.
    rejection: Option<Reply>,
    /// Octets stored when the header block was reported (`DataHeaders`).
    headers_len: usize,
    /// The session closes after the refusal (a pipelining violation).
    close_after: bool,
}

/// One SMTP session's protocol state. See the module docs for the loop.
///
/// Contract with the driver:
/// - `poll` while an event is pending returns that same event again.
/// - `decide` without a pending event is ignored.
/// - After `Action::Close`, `poll` keeps returning `Close` and input is ignored.
/// - After `Action::StartTls`, `poll` keeps returning `StartTls` and input
///   is ignored until `tls_established`.
#[derive(Debug)]
pub struct SmtpEngine {
    /// Listener settings.
    config: Arc<EngineConfig>,
    /// TLS is active on the connection.
    tls_active: bool,
    /// Unprocessed input is `input[pos..]`.
    input: Vec<u8>,
    /// Start of the unprocessed input.
    pos: usize,
    /// Replies not yet written.
    out: Vec<u8>,
    /// Finds command lines; discards overlong ones.
    lines: LineReader,
    /// How the next input is read.
    phase: Phase,
    /// The event waiting for `decide`, and what its decision needs.
    pending: Option<(Event, Pending)>,
    /// The session is over.
    closed: bool,
    /// The accepted HELO/EHLO.
    hello: HelloKind,
    /// AUTH succeeded.
    authenticated: bool,
    /// The mail transaction, between MAIL and its end.
    txn: Option<MailTransaction>,
    /// The message being received, if any.
    reception: Option<Reception>,
    /// The message octets (kept after the end until `take_message` or the next message).
    message: MessageBuffer,
    /// Protocol errors so far.
    errors: usize,
    /// AUTH failures so far (refused credentials and malformed exchanges).
    auth_failures: usize,
    /// NOOP/VRFY/HELP/RSET so far.
    junk_commands: usize,
}

impl SmtpEngine {
    /// A new session; `tls_active` is true for implicit TLS (smtps).
    /// The first `poll` returns `Event::Connect`.
    pub fn new(config: Arc<EngineConfig>, tls_active: bool) -> Self {
        let message = MessageBuffer::new(config.max_message_size);
        Self {
            config,
            tls_active,
            input: Vec::new(),
            pos: 0,
            out: Vec::new(),
            lines: LineReader::new(),
            phase: Phase::Command,
            pending: Some((Event::Connect, Pending::Plain)),
            closed: false,
            hello: HelloKind::None,
            authenticated: false,
            txn: None,
            reception: None,
            message,
            errors: 0,
            auth_failures: 0,
            junk_commands: 0,
        }
    }

    /// Feeds bytes read from the client. They are buffered and processed by
    /// `poll`; ignored after `Close` and between `StartTls` and
    /// `tls_established` (plaintext after STARTTLS is never interpreted).
    pub fn receive(&mut self, input: &[u8]) {
        if self.closed || matches!(self.phase, Phase::AwaitTls) {
            return;
        }
        self.input.extend_from_slice(input);
    }

    /// What the driver must do next.
    pub fn poll(&mut self) -> Action {
        if let Some(action) = self.blocked() {
            return action;
        }
        self.run();
        self.blocked().unwrap_or(Action::NeedInput)
    }

    /// Answers the pending `Action::Event`; ignored when none is pending.
    pub fn decide(&mut self, decision: Decision) {
        if self.closed {
            return;
        }
        let Some((event, pending)) = self.pending.take() else {
            return;
        };
        let positive = decision.accepts();
        let reply = match decision {
            Decision::Disconnect(r) => {
                self.send(&r);
                self.close();
                return;
            }
            Decision::Default => None,
            Decision::Reply(r) => Some(r),
        };
        self.apply(event, pending, reply, positive);
    }

    /// The TLS handshake finished: the session restarts (fresh EHLO needed,
    /// AUTH and transaction state cleared, buffered plaintext dropped).
    pub fn tls_established(&mut self) {
        self.tls_active = true;
        if self.closed {
            return;
        }
        self.input.clear();
        self.pos = 0;
        self.lines.reset();
        self.phase = Phase::Command;
        self.pending = None;
        self.hello = HelloKind::None;
        self.authenticated = false;
        self.txn = None;
        self.reception = None;
    }

    /// Whether TLS is active.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// Replies queued for the client, in order.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Marks the queued output as written.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// The message bytes received so far (dot-unstuffed), for `DataHeaders`.
    pub fn message_so_far(&self) -> &[u8] {
        self.message.bytes()
    }

    /// Octets of the message being received that are stored now (0 when
    /// none is, or once it is being discarded).
    pub fn message_stored_len(&self) -> usize {
        self.message.stored_len()
    }

    /// Refuses the message being received: nothing more of it is stored,
    /// the rest is read and discarded, and `reply` answers its end (a
    /// refusal decided earlier wins). No `DataHeaders` or
    /// `MessageComplete` follows. Ignored when no message is being received.
    pub fn refuse_message(&mut self, reply: Reply) {
        if self.reception.is_none() {
            return;
        }
        if self.refusal().is_none()
            && let Some(rec) = self.reception.as_mut()
        {
            rec.rejection = Some(reply);
        }
        self.message.discard();
    }

    /// Takes the complete message after `Event::MessageComplete`.
    pub fn take_message(&mut self) -> Vec<u8> {
        self.message.take()
    }

    /// Octets received but not processed yet. After `poll` returned
    /// `NeedInput` this is at most the command-line limit: overlong lines
    /// are discarded, not buffered.
    pub fn buffered_len(&self) -> usize {
        self.input.len() - self.pos
    }

    /// The HELO/EHLO the engine accepted (reset by STARTTLS).
    pub fn hello(&self) -> HelloKind {
        self.hello
    }

    /// Whether AUTH succeeded in this session (reset by STARTTLS).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether a mail transaction (accepted MAIL, not yet ended) is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Whether message content is being read (DATA after 354, a BDAT chunk
    /// being stored or discarded): the driver then reads with the data-block
    /// timeout, otherwise with the command timeout. False again as soon as
    /// the content ended, whether the message was accepted or refused.
    pub fn receiving_message(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data(_) | Phase::Bdat(_) | Phase::Skip { .. }
        )
    }

    /// Whether the open transaction's MAIL carried SMTPUTF8 (RFC 6531).
    pub fn smtputf8(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.params.smtputf8)
    }

    /// Octets of the message that `message_so_far` held when
    /// `Event::DataHeaders` was reported (0 if it was not): the driver parses
    /// that prefix once and appends only the rest at `MessageComplete`.
    pub fn headers_len(&self) -> usize {
        self.reception.as_ref().map_or(0, |r| r.headers_len)
    }

    // ---- the loop ----

    /// What blocks the loop: closed, an event, or STARTTLS in progress.
    fn blocked(&self) -> Option<Action> {
        if self.closed {
            return Some(Action::Close);
        }
        if let Some((event, _)) = &self.pending {
            return Some(Action::Event(event.clone()));
        }
        if matches!(self.phase, Phase::AwaitTls) {
            return Some(Action::StartTls);
        }
        None
    }

    /// Processes buffered input until an event, STARTTLS, close, or no
    /// complete unit of input is left.
    fn run(&mut self) {
        while self.blocked().is_none() {
            let progressed = match self.phase {
                Phase::Command | Phase::Rejected | Phase::Auth(_) => self.step_line(),
                Phase::Data(_) => self.step_data(),
                Phase::Bdat(_) => self.step_bdat(),
                Phase::Skip { .. } => self.step_skip(),
                Phase::Finish => {
                    self.step_finish();
                    true
                }
                Phase::AwaitTls => false,
            };
            if !progressed {
                break;
            }
        }
        self.compact();
    }

    /// Drops processed input (cheaply: only when most of it is processed).
    fn compact(&mut self) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos >= 4096 && self.pos * 2 >= self.input.len() {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn step_line(&mut self) -> bool {
        let avail = &self.input[self.pos..];
        let long = matches!(self.phase, Phase::Auth(_)) || Command::has_long_line(avail);
        let limit = if long {
            self.config
                .max_command_line
                .saturating_add(self.config.command_line_extension)
        } else {
            self.config.max_command_line
        };
        match self.lines.next_line(avail, limit) {
            Line::NeedMore { consumed } => {
                self.pos += consumed;
                false
            }
            Line::TooLong { consumed } => {
                self.pos += consumed;
                self.abort_auth();
                self.error(replies::line_too_long());
                true
            }
            Line::BareLf { consumed } => {
                self.pos += consumed;
                self.abort_auth();
                self.error(replies::bare_lf_command());
                true
            }
            Line::Complete { len, consumed } => {
                let line = avail[..len].to_vec();
                self.pos += consumed;
                match std::mem::replace(&mut self.phase, Phase::Command) {
                    Phase::Auth(step) => self.auth_line(step, &line),
                    Phase::Rejected => {
                        self.phase = Phase::Rejected;
                        self.rejected_line(&line);
                    }
                    _ => self.command_line(&line),
                }
                true
            }
        }
    }

    fn step_data(&mut self) -> bool {
        let avail = &self.input[self.pos..];
        if avail.is_empty() {
            return false;
        }
        let (Phase::Data(rx), Some(rec)) = (&mut self.phase, self.reception.as_mut()) else {
            self.phase = Phase::Command;
            return true;
        };
        let (n, step) = rx.feed(avail, &mut rec.text, &mut self.message);
        self.pos += n;
        self.after_feed();
        match step {
            DataStep::NeedMore => {}
            DataStep::HeadersEnd => self.headers_end(),
            DataStep::End => {
                self.check_pipelining();
                self.content_end();
            }
        }
        true
    }

    fn step_bdat(&mut self) -> bool {
        let avail = &self.input[self.pos..];
        let (Phase::Bdat(chunk), Some(rec)) = (&mut self.phase, self.reception.as_mut()) else {
            self.phase = Phase::Command;
            return true;
        };
        if chunk.is_done() {
            let chunk = *chunk;
            if chunk.last {
                self.content_end();
            } else {
                self.phase = Phase::Command;
                self.send(&replies::chunk_ok(chunk.size));
            }
            return true;
        }
        if avail.is_empty() {
            return false;
        }
        let (n, headers_end) = chunk.feed(avail, &mut rec.text, &mut self.message);
        self.pos += n;
        self.after_feed();
        if headers_end {
            self.headers_end();
        }
        true
    }

    fn step_skip(&mut self) -> bool {
        let avail = &self.input[self.pos..];
        let Phase::Skip { chunk, .. } = &mut self.phase else {
            return false;
        };
        if !chunk.is_done() {
            if avail.is_empty() {
                return false;
            }
            self.pos += chunk.skip(avail);
            return true;
        }
        if let Phase::Skip { reply, error, .. } = std::mem::replace(&mut self.phase, Phase::Command)
        {
            if error {
                self.error(reply);
            } else {
                self.send(&reply);
            }
        }
        true
    }

    /// Stops storing a message that will be refused anyway.
    fn after_feed(&mut self) {
        if self.refusal().is_some() {
            self.message.discard();
        }
    }

    /// RFC 2920 3.1: the end of DATA must be the last command of a group.
    /// With `forbid_unauth_pipelining`, input already waiting from an
    /// unauthenticated client refuses the message and closes the session.
    fn check_pipelining(&mut self) {
        if !self.config.forbid_unauth_pipelining
            || self.authenticated
            || self.pos >= self.input.len()
        {
            return;
        }
        if let Some(rec) = self.reception.as_mut() {
            rec.rejection = Some(replies::pipelining_violation());
            rec.close_after = true;
            self.message.discard();
        }
    }

    /// The header block ended: report it once, unless the message is refused already.
    fn headers_end(&mut self) {
        let Some(rec) = self.reception.as_mut() else {
            return;
        };
        if rec.headers_done {
            return;
        }
        rec.headers_done = true;
        rec.headers_len = self.message.stored_len();
        if self.refusal().is_none() {
            self.pending = Some((Event::DataHeaders, Pending::Plain));
        }
    }

    /// The last content octet arrived (CRLF.CRLF or the end of BDAT LAST).
    fn content_end(&mut self) {
        self.phase = Phase::Finish;
        if let Some(rec) = self.reception.as_mut()
            && rec.text.finish(&mut self.message)
        {
            self.headers_end();
        }
    }

    /// After DataHeaders (if any): refuse, or ask for the final decision.
    fn step_finish(&mut self) {
        if let Some(r) = self.refusal() {
            let close = self.reception.as_ref().is_some_and(|r| r.close_after);
            self.message.discard();
            self.end_transaction();
            self.send(&r);
            if close {
                self.close();
            }
        } else {
            self.pending = Some((Event::MessageComplete, Pending::Plain));
        }
    }

    /// Why the message being received will be refused, if it will.
    fn refusal(&self) -> Option<Reply> {
        let rec = self.reception.as_ref()?;
        if let Some(r) = &rec.rejection {
            return Some(r.clone());
        }
        if self.message.overflow() {
            return Some(replies::too_big());
        }
        if rec.text.bare() && self.config.bare_line_endings == BareLineEndings::Reject {
            return Some(replies::bare_line_ending());
        }
        if rec.text.long_line() {
            return Some(replies::text_line_too_long());
        }
        if rec.text.nul() {
            return Some(replies::nul_in_content());
        }
        None
    }

    fn end_transaction(&mut self) {
        self.txn = None;
        self.reception = None;
        self.phase = Phase::Command;
    }

    fn start_reception(&mut self, body: BodyType) {
        self.message = MessageBuffer::new(self.config.max_message_size);
        self.reception = Some(Reception {
            text: TextChecks::new(
                self.config.max_text_line,
                self.config.bare_line_endings,
                body == BodyType::BinaryMime,
            ),
            headers_done: false,
            rejection: None,
            headers_len: 0,
            close_after: false,
        });
    }

    // ---- output ----

    /// Queues a reply; a 421 closes the session (RFC 5321 3.8).
    fn send(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
        if reply.code() == 421 {
            self.close();
        }
    }

    /// Queues a syntax/sequence error; the `max_errors`-th is replaced by
    /// `421 4.7.0 Too many errors` and the session closes.
    fn error(&mut self, reply: Reply) {
        self.errors += 1;
        if self.errors >= self.config.max_errors.max(1) {
            self.send(&replies::too_many_errors());
        } else {
            self.send(&reply);
        }
    }

    /// A refusal from the engine's own checks: syntax-class codes count as errors.
    fn refuse(&mut self, reply: Reply) {
        if matches!(reply.code(), 500..=504 | 555) {
            self.error(reply);
        } else {
            self.send(&reply);
        }
    }

    /// A failed or malformed AUTH exchange: the `max_auth_failures`-th is
    /// answered `421 4.7.0` and the session closes.
    fn auth_failure(&mut self, reply: Reply) {
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures.max(1) {
            self.send(&replies::too_many_auth_failures());
        } else {
            self.send(&reply);
        }
    }

    /// Counts a NOOP/VRFY/HELP/RSET; false (after `421`) past the budget.
    fn junk_allowed(&mut self) -> bool {
        self.junk_commands += 1;
        if self.junk_commands > self.config.max_junk_commands {
            self.send(&replies::too_many_commands());
            return false;
        }
        true
    }

    fn close(&mut self) {
        self.closed = true;
        self.pending = None;
        self.input = Vec::new();
        self.pos = 0;
    }

    fn ask(&mut self, event: Event) {
        self.pending = Some((event, Pending::Plain));
    }

    // ---- commands ----

    fn rejected_line(&mut self, line: &[u8]) {
        if matches!(Command::parse(line), Ok(Command::Quit)) {
            self.send(&replies::bye());
            self.close();
        } else {
            self.error(replies::sequence("Service refused, only QUIT is accepted"));
        }
    }

    fn command_line(&mut self, line: &[u8]) {
        let cmd = match Command::parse_with(line, self.config.strict_envelopes) {
            Ok(cmd) => cmd,
            Err(CommandError::BadBytes) => return self.error(replies::bad_bytes()),
            Err(CommandError::Syntax(what)) => return self.error(replies::syntax(what)),
            Err(CommandError::BdatSize) => {
                // the chunk length is unknown: the stream cannot be resynchronised
                self.errors += 1;
                self.send(&replies::syntax("invalid BDAT chunk size"));
                return self.close();
            }
            Err(CommandError::BdatArgs { size }) => {
                return self.skip(size, replies::syntax("invalid BDAT arguments"), true);
            }
        };
        match cmd {
            Command::Helo(host) | Command::Ehlo(host) if !ehlo::valid_hello_arg(&host) => {
                self.error(replies::syntax("invalid domain name"))
            }
            Command::Helo(host) => self.ask(Event::Helo { host }),
            Command::Ehlo(host) => self.ask(Event::Ehlo { host }),
            Command::Mail { path, params } => self.mail(&path, &params),
            Command::Rcpt { path, params } => self.rcpt(&path, &params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset | Command::Noop(_) | Command::Vrfy(_) | Command::Help(_)
                if !self.junk_allowed() => {}
            Command::Rset => {
                self.end_transaction();
                self.ask(Event::Rset);
            }
            Command::Quit => self.ask(Event::Quit),
            Command::Noop(arg) => self.ask(Event::Noop { arg }),
            Command::Vrfy(arg) => self.ask(Event::Vrfy { arg }),
            Command::Expn(_) => self.send(&replies::not_implemented()),
            Command::Help(arg) => self.ask(Event::Help { arg }),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial.as_deref()),
            Command::Unknown { verb, args } => self.ask(Event::Unrecognized { verb, args }),
        }
    }

    fn mail(&mut self, path: &str, params: &[crate::context::Param]) {
        if self.hello == HelloKind::None {
            return self.error(replies::sequence("Send HELO/EHLO first"));
        }
        if self.txn.is_some() {
            return self.error(replies::sequence("Nested MAIL command"));
        }
        if self.config.require_tls && !self.tls_active {
            return self.send(&replies::tls_required());
        }
        if self.config.require_auth && !self.authenticated {
            return self.send(&replies::auth_required());
        }
        let mp = match params::mail_params(params, &self.config, self.hello == HelloKind::Ehlo) {
            Ok(mp) => mp,
            Err(r) => return self.refuse(r),
        };
        let sender = match address::parse_path(path, mp.smtputf8) {
            Ok(Path::Null) => String::new(),
            Ok(Path::Mailbox(m)) => m,
            Ok(Path::Postmaster) => {
                return self.error(replies::bad_address(true, "missing @domain"));
            }
            Err(e) => return self.address_error(true, e),
        };
        let event = Event::Mail {
            sender,
            params: mp.normalized.clone(),
        };
        self.pending = Some((event, Pending::Mail(mp)));
    }

    fn rcpt(&mut self, path: &str, params: &[crate::context::Param]) {
        let Some(txn) = &self.txn else {
            return self.error(replies::sequence("Need MAIL command"));
        };
        if txn.recipients >= self.config.max_recipients {
            return self.send(&replies::too_many_recipients());
        }
        let utf8 = txn.params.smtputf8;
        let params = match params::rcpt_params(params) {
            Ok(p) => p,
            Err(r) => return self.refuse(r),
        };
        let recipient = match address::parse_path(path, utf8) {
            Ok(Path::Null) => return self.error(replies::bad_address(false, "null recipient")),
            // RFC 5321 4.5.1: accepted, and meant for our postmaster
            Ok(Path::Postmaster) if !self.config.postmaster.is_empty() => {
                self.config.postmaster.clone()
            }
            Ok(p) => p.into_string(),
            Err(e) => return self.address_error(false, e),
        };
        self.ask(Event::Rcpt { recipient, params });
    }

    fn address_error(&mut self, sender: bool, e: AddressError) {
        match e {
            AddressError::NonAscii => self.send(&replies::needs_smtputf8()),
            other => self.error(replies::bad_address(sender, &other.to_string())),
        }
    }

    fn data(&mut self) {
        let Some(txn) = &self.txn else {
            return self.error(replies::sequence("Need MAIL command"));
        };
        if txn.bdat {
            return self.error(replies::sequence("DATA not allowed after BDAT"));
        }
        if txn.params.body == BodyType::BinaryMime {
            return self.error(replies::sequence("BODY=BINARYMIME requires BDAT"));
        }
        if txn.recipients == 0 {
            return self.send(&replies::no_recipients());
        }
        self.ask(Event::Data);
    }

    fn bdat(&mut self, size: u64, last: bool) {
        let chunk = Chunk::new(size, last);
        if !self.config.chunking {
            return self.skip(size, replies::not_implemented(), true);
        }
        let Some(txn) = &self.txn else {
            return self.skip(size, replies::sequence("Need MAIL command"), true);
        };
        if txn.recipients == 0 {
            return self.skip(size, replies::no_recipients(), false);
        }
        if txn.bdat {
            self.message.announce(size);
            self.phase = Phase::Bdat(chunk);
        } else {
            self.pending = Some((Event::Data, Pending::FirstBdat(chunk)));
        }
    }

    /// Discards a chunk of `size` octets, then sends `reply`.
    fn skip(&mut self, size: u64, reply: Reply, error: bool) {
        self.phase = Phase::Skip {
            chunk: Chunk::new(size, false),
            reply,
            error,
        };
    }

    fn starttls(&mut self) {
        if self.tls_active {
            return self.error(replies::sequence("TLS already active"));
        }
        if !self.config.starttls {
            return self.send(&replies::tls_unavailable());
        }
        if self.txn.is_some() {
            return self.error(replies::sequence("MAIL transaction in progress"));
        }
        self.send(&replies::starttls());
        // CVE-2011-0411: nothing pipelined after STARTTLS may survive into TLS
        self.input.clear();
        self.pos = 0;
        self.lines.reset();
        self.phase = Phase::AwaitTls;
    }

    fn auth(&mut self, mechanism: &str, initial: Option<&str>) {
        if !self.config.auth {
            return self.error(replies::not_implemented());
        }
        if self.hello != HelloKind::Ehlo {
            return self.error(replies::sequence("Send EHLO first"));
        }
        if self.authenticated {
            return self.error(replies::sequence("Already authenticated"));
        }
        if self.txn.is_some() {
            return self.error(replies::sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if !ehlo::auth_usable(&self.config, self.tls_active) {
            return self.send(&replies::auth_needs_tls());
        }
        let Some(mech) = Mechanism::from_name(mechanism) else {
            return self.error(replies::unknown_mechanism());
        };
        match (mech, initial) {
            (Mechanism::Plain, None) => {
                self.phase = Phase::Auth(AuthStep::Plain);
                self.send(&replies::auth_challenge(""));
            }
            (Mechanism::Plain, Some(ir)) => self.auth_step(AuthStep::Plain, ir.as_bytes()),
            (Mechanism::Login, None) => {
                self.phase = Phase::Auth(AuthStep::LoginUser);
                self.send(&replies::auth_challenge(auth::LOGIN_USERNAME));
            }
            (Mechanism::Login, Some(ir)) => self.auth_step(AuthStep::LoginUser, ir.as_bytes()),
        }
    }

    /// A line answering a 334 challenge.
    fn auth_line(&mut self, step: AuthStep, line: &[u8]) {
        if line == b"*" {
            return self.auth_failure(replies::auth_cancelled());
        }
        self.auth_step(step, line);
    }

    fn auth_step(&mut self, step: AuthStep, response: &[u8]) {
        // A malformed response is a failed attempt, not a mere syntax
        // error: it counts towards `max_auth_failures`.
        let decoded = match auth::decode_response(response) {
            Ok(d) => d,
            Err(r) => return self.auth_failure(r),
        };
        let mechanism = match step {
            AuthStep::Plain => Mechanism::Plain.name(),
            _ => Mechanism::Login.name(),
        };
        let creds = match step {
            AuthStep::Plain => auth::parse_plain(&decoded),
            AuthStep::LoginUser => {
                return match auth::utf8(&decoded) {
                    Ok(username) => {
                        self.phase = Phase::Auth(AuthStep::LoginPass { username });
                        self.send(&replies::auth_challenge(auth::LOGIN_PASSWORD));
                    }
                    Err(r) => self.auth_failure(r),
                };
            }
            AuthStep::LoginPass { username } => auth::utf8(&decoded).map(|password| Credentials {
                authzid: String::new(),
                username,
                password,
            }),
        };
        match creds {
            Ok(c) => self.ask(Event::Auth {
                mechanism: mechanism.into(),
                authzid: c.authzid,
                username: c.username,
                password: c.password,
            }),
            Err(r) => self.auth_failure(r),
        }
    }

    /// An AUTH exchange interrupted by a bad line goes back to commands.
    fn abort_auth(&mut self) {
        if matches!(self.phase, Phase::Auth(_)) {
            self.phase = Phase::Command;
        }
    }

    // ---- decisions ----

    fn apply(&mut self, event: Event, pending: Pending, reply: Option<Reply>, positive: bool) {
        let or = |r: Option<Reply>, default: fn() -> Reply| r.unwrap_or_else(default);
        match event {
            Event::Connect => {
                let r = reply.unwrap_or_else(|| replies::greeting(&self.config.hostname));
                if !positive {
                    self.phase = Phase::Rejected;
                }
                self.send(&r);
            }
            Event::Helo { .. } | Event::Ehlo { .. } => {
                let ehlo = matches!(event, Event::Ehlo { .. });
                let r = match reply {
                    Some(r) => r,
                    None if ehlo => ehlo::capabilities(&self.config, self.tls_active),
                    None => replies::helo(&self.config.hostname),
                };
                if positive {
                    self.hello = if ehlo {
                        HelloKind::Ehlo
                    } else {
                        HelloKind::Helo
                    };
                    self.end_transaction();
                }
                self.send(&r);
            }
            Event::Mail { .. } => {
                if positive && let Pending::Mail(params) = pending {
                    self.txn = Some(MailTransaction {
                        params,
                        recipients: 0,
                        bdat: false,
                    });
                }
                self.send(&or(reply, replies::mail_ok));
            }
            Event::Rcpt { .. } => {
                if positive && let Some(txn) = self.txn.as_mut() {
                    txn.recipients += 1;
                }
                match reply {
                    // A permanently refused recipient counts towards
                    // `max_errors`: recipient probing is capped.
                    Some(r) if r.code() >= 500 => self.error(r),
                    r => self.send(&or(r, replies::rcpt_ok)),
                }
            }
            Event::Data => self.apply_data(pending, reply, positive),
            Event::DataHeaders => {
                if !positive && let (Some(r), Some(rec)) = (reply, self.reception.as_mut()) {
                    rec.rejection = Some(r);
                    self.message.discard();
                }
            }
            Event::MessageComplete => {
                self.end_transaction();
                self.send(&or(reply, replies::queued));
            }
            Event::Rset => self.send(&or(reply, replies::ok)),
            Event::Quit => {
                self.send(&or(reply, replies::bye));
                self.close();
            }
            Event::Noop { .. } => self.send(&or(reply, replies::ok)),
            Event::Vrfy { .. } => self.send(&or(reply, replies::vrfy)),
            Event::Help { .. } => self.send(&or(reply, replies::help)),
            Event::Unrecognized { .. } => match reply {
                Some(r) if r.code() < 500 => self.send(&r),
                Some(r) => self.error(r),
                None => self.error(replies::unrecognized()),
            },
            Event::Auth { .. } => {
                if positive {
                    self.authenticated = true;
                    self.send(&or(reply, replies::auth_ok));
                } else {
                    self.auth_failure(reply.unwrap_or_else(replies::permanent_local_error));
                }
            }
        }
    }

    fn apply_data(&mut self, pending: Pending, reply: Option<Reply>, positive: bool) {
        let body = self.txn.as_ref().map(|t| t.params.body).unwrap_or_default();
        match pending {
            Pending::FirstBdat(chunk) => {
                if positive {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.bdat = true;
                    }
                    self.start_reception(body);
                    self.message.announce(chunk.size);
                    self.phase = Phase::Bdat(chunk);
                } else {
                    // RFC 3030 4.2: the transaction failed; later chunks
                    // already pipelined are discarded with 503
                    self.end_transaction();
                    let r = reply.unwrap_or_else(replies::permanent_local_error);
                    self.phase = Phase::Skip {
                        chunk: Chunk::new(chunk.remaining, false),
                        reply: r,
                        error: false,
                    };
                }
            }
            _ => {
                if positive {
                    self.start_reception(body);
                    self.phase = Phase::Data(DataReceiver::new());
                    let r = reply
                        .filter(|r| r.code() == 354)
                        .unwrap_or_else(replies::start_data);
                    self.send(&r);
                } else if let Some(r) = reply {
                    self.send(&r);
                }
            }
        }
    }
}
