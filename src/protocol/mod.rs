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

pub mod reply;

pub use reply::{EnhancedCode, Reply};
pub mod event;

pub use event::{Action, BareLineEndings, Decision, EngineConfig, Event};

use std::sync::Arc;

/// One SMTP session's protocol state. See the module docs for the loop.
#[derive(Debug)]
pub struct Engine {
    config: Arc<EngineConfig>,
    tls_active: bool,
}

impl Engine {
    /// A new session; `tls_active` is true for implicit TLS (smtps).
    /// The first `poll` returns `Event::Connect`.
    pub fn new(config: Arc<EngineConfig>, tls_active: bool) -> Self {
        Self { config, tls_active }
    }

    /// Feeds bytes read from the client.
    pub fn receive(&mut self, _input: &[u8]) {
        todo!("protocol engine")
    }

    /// What the driver must do next.
    pub fn poll(&mut self) -> Action {
        todo!("protocol engine")
    }

    /// Answers the pending `Action::Event`.
    pub fn decide(&mut self, _decision: Decision) {
        todo!("protocol engine")
    }

    /// The TLS handshake finished: the session restarts (fresh EHLO needed,
    /// AUTH and transaction state cleared).
    pub fn tls_established(&mut self) {
        self.tls_active = true;
        todo!("protocol engine")
    }

    /// Whether TLS is active.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// Replies queued for the client, in order.
    pub fn output(&self) -> &[u8] {
        todo!("protocol engine")
    }

    /// Marks the queued output as written.
    pub fn clear_output(&mut self) {
        todo!("protocol engine")
    }

    /// The message bytes received so far (dot-unstuffed), for `DataHeaders`.
    pub fn message_so_far(&self) -> &[u8] {
        todo!("protocol engine")
    }

    /// Takes the complete message after `Event::MessageComplete`.
    pub fn take_message(&mut self) -> Vec<u8> {
        todo!("protocol engine")
    }

    /// The config this engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}
