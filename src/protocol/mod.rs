//! The sans-IO SMTP protocol engine.
//!
//! No sockets, no tokio, no wasmtime: bytes go in through
//! [`SmtpEngine::receive`], and [`SmtpEngine::poll`] says what the driver must do
//! next ([`Action`]). When the engine needs a policy decision (a hook point)
//! it returns [`Action::Event`] and waits for [`SmtpEngine::decide`].
//!
//! ```text
//!  driver                         engine
//!  ------                         ------
//!  receive(bytes) ─────────────▶  buffers input
//!  poll() ◀─────────────────────  Action::Event(Event::Rcpt{..})
//!  (run plugins + core policy)
//!  decide(Decision::Default) ──▶  queues "250 2.1.5 Ok"
//!  poll() ◀─────────────────────  Action::NeedInput   (driver flushes output, reads)
//! ```
//!
//! Replies are queued in an output buffer ([`SmtpEngine::output`] /
//! [`SmtpEngine::clear_output`]); the driver writes it whenever `poll` returns
//! [`Action::NeedInput`], [`Action::StartTls`] or [`Action::Close`], so
//! pipelined commands (RFC 2920) are answered in order and in one write.
//!
//! # Why our own parser
//!
//! The command parser, line reader and DATA/BDAT receivers are ours; we do
//! not use the `smtp-proto` crate (0.2) for them. What it does is wrong for
//! a gateway whose job is to refuse ambiguous input: its line receiver ends
//! a line at a bare LF, drops CRs anywhere in the line and silently
//! truncates lines at a fixed 4096 octets instead of refusing them (RFC 5321
//! limits are 512 octets per command, plus what the parameters allow, and
//! ours are configurable); its errors (`SyntaxError`, `InvalidParameter`,
//! ...) do not say which reply the client deserves. Here every limit is
//! enforced exactly and every refusal maps to one precise reply; see
//! [`line`](mod@line) and [`command`] for the details. The crate was never
//! used and is not a dependency.
//!
//! # Layout
//! - [`engine`]: the session state machine ([`SmtpEngine`]).
//! - [`event`]: [`Action`], [`Event`], [`Decision`], [`EngineConfig`].
//! - [`line`](mod@line): the bounded command-line reader.
//! - [`command`]: command lines parsed into a typed [`command::Command`]
//!   (why we do not wrap `smtp-proto` is in its module doc).
//! - [`address`]: reverse/forward paths and helpers for relay policy.
//! - [`params`]: MAIL/RCPT parameters (SIZE, BODY, SMTPUTF8, AUTH=).
//! - [`ehlo`]: the capability list.
//! - [`auth`]: SASL PLAIN and LOGIN decoding.
//! - [`body`], [`data`], [`bdat`]: message reception (size accounting,
//!   bare CR/LF and line checks, dot-unstuffing, chunks).
//! - [`proxy`]: the PROXY protocol header (v1 and v2) a load balancer
//!   sends before SMTP.
//! - [`replies`]: the reply catalogue, every reply the gateway sends on its
//!   own; [`reply`]: the typed [`Reply`], whose constructors keep CR, LF and
//!   NUL out of every line.

pub mod address;
pub mod auth;
pub mod bdat;
pub mod body;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod engine;
pub mod event;
pub mod line;
pub mod params;
pub mod proxy;
pub mod replies;
pub mod reply;

pub use engine::SmtpEngine;
pub use event::{Action, BareLineEndings, Decision, EngineConfig, Event};
pub use reply::{EnhancedCode, Reply, UnsafeText};

#[cfg(test)]
mod tests;
