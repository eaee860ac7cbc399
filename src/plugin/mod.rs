//! The WebAssembly plugin host (wasmtime component model).
//!
//! At every protocol event the driver calls [`PluginSession::run`]; the host
//! runs the hook through the chain of sandboxed components configured in
//! `[[plugins]]` and returns one checked [`Verdict`].
//!
//! # Layout
//! - `bindings`: the one `bindgen!` of the `wasmtp:plugin` world.
//! - `host_session`, `host_log`, `host_dns`, `host_kv`: host side of the
//!   `session`, `host`, `dns` and `kv` interfaces, each on its own view of
//!   the store borrowed for one call (the session view sees only the
//!   [`SessionContext`] lent to the store).
//! - `services`: the DNS and key-value services granted plugins use, and
//!   the per-session budget.
//! - `grants`: the capability grants of a `[[plugins]]` entry.
//! - `failure`: [`PluginFailure`], why a plugin call failed.
//! - `chain`: [`PluginSession`], running a hook through the chain, failure
//!   policies and `deny` notifications.
//! - `instance`: a plugin instance, and instantiating one with `init` called
//!   (shared by the loader's probe and the chain).
//! - `verdict`: completing and checking plugin replies.
//! - `loader` / `cache`: compile (cached on disk), link, validate, probe.
//! - `sandbox`: engine, pooling allocator, epoch ticker, per-store limits, WASI.
//! - `pool`: warm instances kept across connections (`instances = "pooled"`).
//! - `metrics`: per-plugin, per-hook metric handles resolved at load (`[metrics]`).
//! - `swap`: [`PluginHost`], live reload through an `ArcSwap`.
//! - `inspect`: [`inspect()`], what `wasmtp plugin inspect` reports.
//! - `config`: `[plugin_host]` and `[[plugins]]`.

mod bindings;
mod cache;
mod chain;
mod config;
mod eviction;
mod failure;
pub mod grants;
mod host_dns;
mod host_http;
mod host_kv;
mod host_log;
mod host_mime;
mod host_name_lookup;
mod host_session;
mod inspect;
mod instance;
mod limiter;
mod loader;
mod metrics;
mod pool;
mod sandbox;
mod services;
mod swap;
mod verdict;

pub use chain::PluginSession;
pub use config::{
    DEFAULT_POOL_SIZE, FailurePolicy, InstanceMode, MAX_POOL_SIZE, PluginConfig, PluginHostConfig,
};
pub use failure::PluginFailure;
pub use grants::Grants;
pub use host_session::check_mailbox;
pub use inspect::{Inspection, inspect};
pub use services::HostServices;
pub use swap::{PluginHost, PluginProblem};
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

/// What ended a transaction (the `lifecycle.transaction-ended` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEnd {
    /// The message was accepted and handed to delivery.
    Delivered,
    /// Refused after the message was read (data-headers, data-post, queue,
    /// or the gateway's own end-of-data refusal).
    Refused,
    /// RSET.
    Reset,
    /// A new HELO or EHLO.
    Hello,
    /// STARTTLS.
    Starttls,
    /// The connection ended with a transaction open.
    Disconnect,
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

/// Every call the host makes into a plugin, in WIT `hooks-wanted` order:
/// the name as in the WIT and the flag that asks for it. The protocol hooks
/// come first ([`Hook::slot`] indexes them); the last two are the
/// notifications [`DENY_SLOT`] and [`DELIVERY_SLOT`].
pub(crate) const HOOKS: [(&str, HooksWanted); 20] = [
    ("connect", HooksWanted::CONNECT),
    ("helo", HooksWanted::HELO),
    ("ehlo", HooksWanted::EHLO),
    ("mail", HooksWanted::MAIL),
    ("rcpt", HooksWanted::RCPT),
    ("data", HooksWanted::DATA),
    ("data-headers", HooksWanted::DATA_HEADERS),
    ("body-chunk", HooksWanted::BODY_CHUNK),
    ("data-post", HooksWanted::DATA_POST),
    ("queue", HooksWanted::QUEUE),
    ("reset", HooksWanted::RESET),
    ("quit", HooksWanted::QUIT),
    ("disconnect", HooksWanted::DISCONNECT),
    ("unrecognized-command", HooksWanted::UNRECOGNIZED_COMMAND),
    ("vrfy", HooksWanted::VRFY),
    ("noop", HooksWanted::NOOP),
    ("help", HooksWanted::HELP),
    ("auth", HooksWanted::AUTH),
    ("deny", HooksWanted::DENY),
    ("delivery", HooksWanted::DELIVERY),
];

/// [`HOOKS`] slot of the `deny` notification.
pub(crate) const DENY_SLOT: usize = 18;
/// [`HOOKS`] slot of the `delivery` report.
pub(crate) const DELIVERY_SLOT: usize = 19;

impl Hook<'_> {
    /// The hook's name as in the WIT (`data-post`, `unrecognized-command`, ...).
    pub fn name(&self) -> &'static str {
        HOOKS[self.slot()].0
    }

    fn flag(&self) -> HooksWanted {
        HOOKS[self.slot()].1
    }

    /// The hook's position in [`HOOKS`].
    pub(crate) fn slot(&self) -> usize {
        match self {
            Hook::Connect => 0,
            Hook::Helo(_) => 1,
            Hook::Ehlo(_) => 2,
            Hook::Mail(..) => 3,
            Hook::Rcpt(..) => 4,
            Hook::Data => 5,
            Hook::DataHeaders => 6,
            Hook::BodyChunk(..) => 7,
            Hook::DataPost => 8,
            Hook::Queue => 9,
            Hook::Reset => 10,
            Hook::Quit => 11,
            Hook::Disconnect => 12,
            Hook::Unrecognized(..) => 13,
            Hook::Vrfy(_) => 14,
            Hook::Noop(_) => 15,
            Hook::Help(_) => 16,
            Hook::Auth(..) => 17,
        }
    }
}
