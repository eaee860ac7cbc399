//! wasmtp: an SMTP gateway whose policy lives in sandboxed WebAssembly plugins.
//!
//! # Layout
//! - [`protocol`]: the sans-IO SMTP engine (commands, replies, DATA/BDAT receivers,
//!   the session state machine). No I/O.
//! - [`context`]: the connection and transaction state plugins see and edit.
//! - [`message`]: the received message and plugin edits to it.
//! - [`plugin`]: the wasmtime component host: hook chain, sandbox, live swap.
//! - [`delivery`]: Maildir, synchronous forward, the SMTP client.
//! - [`queue`]: store-and-forward: durable spool, retries, bounces, queue admin.
#![deny(missing_docs)]

pub mod context;
pub mod delivery;
pub mod message;
pub mod plugin;
pub mod protocol;
pub mod queue;
