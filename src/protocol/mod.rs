//! The sans-IO SMTP protocol engine.
//!
//! No sockets, no tokio, no wasmtime: bytes go in through
//! [`Engine::receive`], and [`Engine::poll`] says what the driver must do
//! next ([`Action`]). When the engine needs a policy decision (a hook point)
//! it returns [`Action::Event`] and waits for [`Engine::decide`].
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
//! Replies are queued in an output buffer ([`Engine::output`] /
//! [`Engine::clear_output`]); the driver writes it whenever `poll` returns
//! [`Action::NeedInput`], [`Action::StartTls`] or [`Action::Close`], so
//! pipelined commands (RFC 2920) are answered in order and in one write.
//!
//! # Layout
//! - [`engine`]: the session state machine ([`Engine`]).
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
//! - [`replies`]: every reply the engine sends on its own; [`reply`]: the
//!   typed [`Reply`].

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
pub mod replies;
pub mod reply;

pub use engine::Engine;
pub use event::{Action, BareLineEndings, Decision, EngineConfig, Event};
pub use reply::{EnhancedCode, Reply};

#[cfg(test)]
mod tests;
