//! The WebAssembly plugin host (wasmtime component model).
//!
//! At every protocol event the driver calls [`PluginSession::run`]; the host
//! runs the hook through the chain of sandboxed components configured in
//! `[[plugins]]` and returns one checked [`Verdict`].
//!
//! # Layout
//! - `bindings`: the one `bindgen!` of the `wasmtp:plugin` world.
//! - `session_host` / `host`: host side of the `session` resources and the
//!   `host` interface, working on the [`SessionContext`] lent to the store.
//! - `chain`: [`PluginSession`], running a hook through the chain, failure
//!   policies and `deny` notifications.
//! - `verdict`: completing and checking plugin replies.
//! - `loader` / `cache`: compile (cached on disk), link, validate, probe.
//! - `sandbox`: engine, pooling allocator, epoch ticker, per-store limits, WASI.
//! - `pool`: warm instances kept across connections (`instances = "pooled"`).
//! - `metrics`: per-plugin, per-hook metric handles resolved at load (`[metrics]`).
//! - `swap`: [`PluginHost`], live reload through an `ArcSwap`.
//! - `config`: `[plugin_host]` and `[[plugins]]`.

mod bindings;
mod cache;
mod chain;
mod config;
mod host;
mod loader;
mod metrics;
mod pool;
mod sandbox;
mod session_host;
mod swap;
mod verdict;

pub use chain::PluginSession;
pub use config::{
    DEFAULT_POOL_SIZE, FailurePolicy, InstanceMode, MAX_POOL_SIZE, PluginConfig, PluginHostConfig,
};
pub use session_host::{MAX_NOTES_BYTES, MAX_RECIPIENTS, check_mailbox};
pub use swap::PluginHost;
pub use verdict::{MAX_LINE, MAX_LINES};

use crate::context::Param;
#[cfg(doc)]
use crate::context::SessionContext;
use crate::protocol::Reply;
use bindings::HooksWanted;

/// The outcome of a hook chain (qpsmtpd semantics). Replies are complete:
/// the host has filled in defaults and checked code classes and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every plugin declined (or none wants the hook): core policy decides.
    Declined,
    /// A plugin accepted; the default success reply applies.
    Ok,
    /// 5xx.
    Deny(Reply),
    /// 4xx.
    DenySoft(Reply),
    /// 5xx and close.
    DenyDisconnect(Reply),
    /// 4xx and close.
    DenySoftDisconnect(Reply),
    /// The plugin's own reply.
    Done(Reply),
}

/// A hook invocation with its arguments.
#[derive(Debug, Clone, Copy)]
pub enum Hook<'a> {
    /// A client connected.
    Connect,
    /// HELO.
    Helo(&'a str),
    /// EHLO.
    Ehlo(&'a str),
    /// MAIL FROM (sender, params).
    Mail(&'a str, &'a [Param]),
    /// RCPT TO (recipient, params).
    Rcpt(&'a str, &'a [Param]),
    /// DATA / first BDAT.
    Data,
    /// Header block complete.
    DataHeaders,
    /// A piece of the body at an offset.
    BodyChunk(u64, &'a [u8]),
    /// Message complete.
    DataPost,
    /// About to deliver.
    Queue,
    /// RSET.
    Reset,
    /// QUIT.
    Quit,
    /// Connection closed.
    Disconnect,
    /// Unknown command (verb, args).
    Unrecognized(&'a str, &'a str),
    /// VRFY.
    Vrfy(&'a str),
    /// NOOP.
    Noop(&'a str),
    /// HELP.
    Help(&'a str),
    /// AUTH (mechanism, authzid, username, password).
    Auth(&'a str, &'a str, &'a str, &'a str),
}

impl Hook<'_> {
    /// The hook's name as in the WIT (`data-post`, `unrecognized-command`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Helo(_) => "helo",
            Hook::Ehlo(_) => "ehlo",
            Hook::Mail(..) => "mail",
            Hook::Rcpt(..) => "rcpt",
            Hook::Data => "data",
            Hook::DataHeaders => "data-headers",
            Hook::BodyChunk(..) => "body-chunk",
            Hook::DataPost => "data-post",
            Hook::Queue => "queue",
            Hook::Reset => "reset",
            Hook::Quit => "quit",
            Hook::Disconnect => "disconnect",
            Hook::Unrecognized(..) => "unrecognized-command",
            Hook::Vrfy(_) => "vrfy",
            Hook::Noop(_) => "noop",
            Hook::Help(_) => "help",
            Hook::Auth(..) => "auth",
        }
    }

    fn flag(&self) -> HooksWanted {
        match self {
            Hook::Connect => HooksWanted::CONNECT,
            Hook::Helo(_) => HooksWanted::HELO,
            Hook::Ehlo(_) => HooksWanted::EHLO,
            Hook::Mail(..) => HooksWanted::MAIL,
            Hook::Rcpt(..) => HooksWanted::RCPT,
            Hook::Data => HooksWanted::DATA,
            Hook::DataHeaders => HooksWanted::DATA_HEADERS,
            Hook::BodyChunk(..) => HooksWanted::BODY_CHUNK,
            Hook::DataPost => HooksWanted::DATA_POST,
            Hook::Queue => HooksWanted::QUEUE,
            Hook::Reset => HooksWanted::RESET,
            Hook::Quit => HooksWanted::QUIT,
            Hook::Disconnect => HooksWanted::DISCONNECT,
            Hook::Unrecognized(..) => HooksWanted::UNRECOGNIZED_COMMAND,
            Hook::Vrfy(_) => HooksWanted::VRFY,
            Hook::Noop(_) => HooksWanted::NOOP,
            Hook::Help(_) => HooksWanted::HELP,
            Hook::Auth(..) => HooksWanted::AUTH,
        }
    }
}
