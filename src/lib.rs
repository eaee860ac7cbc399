//! wasmtp: an SMTP gateway whose policy lives in sandboxed WebAssembly plugins.
//!
//! # Layout
//! - [`protocol`]: the sans-IO SMTP engine (commands, replies, DATA/BDAT receivers,
//!   the session state machine). No I/O.
//! - [`context`]: the connection and transaction state plugins see and edit.
//! - [`message`]: the received message and plugin edits to it.
//! - [`plugin`]: the wasmtime component host: hook chain, sandbox, live swap.
//! - [`delivery`]: Maildir, synchronous forward, the SMTP client and upstream
//!   pool, and store-and-forward (`delivery::queue`: durable spool, retries,
//!   bounces, queue admin).
//! - [`config`]: the TOML config, validated, errors with key and line:column.
//! - [`server`]: listeners, connection caps, graceful shutdown, reload.
//! - [`session`]: the per-connection tokio driver around the engine.
//! - [`tls`], [`auth`], [`relay`], [`dns`]: TLS setup, AUTH users, relay
//!   policy, reverse DNS (only with a configured resolver).
//! - [`cli`], [`logging`]: the command line and tracing setup.
//! - [`metrics`]: `[metrics]`, the Prometheus endpoint and the gateway's counters.
//! - [`notify`]: systemd readiness notifications (`sd_notify`).
//! - [`kv`]: `[kv]`, the plugins' key-value state (embedded redb or Redis).
#![deny(missing_docs)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod delivery;
pub mod dns;
pub mod kv;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod plugin;
pub mod protocol;
pub mod relay;
pub mod server;
pub mod session;
pub mod tls;
