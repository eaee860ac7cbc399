//! wasmtp: an SMTP gateway whose policy lives in sandboxed WebAssembly plugins.
//!
//! # Layout
//! - [`protocol`]: the sans-IO SMTP engine (commands, replies, DATA/BDAT receivers,
//!   the session state machine). No I/O.
//! - [`context`]: the connection and transaction state plugins see and edit.
//! - [`message`]: the received message and plugin edits to it.
//! - [`date`]: the one date formatter (RFC 5322, `+0000`); [`ids`]: the one
//!   id helper (sessions, queued messages) and random names.
//! - [`plugin`]: the wasmtime component host: hook chain, sandbox, live swap.
//! - [`delivery`]: Maildir, synchronous forward, the SMTP client and upstream
//!   pool, and store-and-forward (`delivery::queue`: durable spool, retries,
//!   bounces, queue admin).
//! - [`config`]: the TOML config, validated, errors with key and line:column.
//! - [`server`]: listeners, connection caps, graceful shutdown.
//! - [`reload`]: whole-config reload (SIGHUP, `wasmtp reload`): what
//!   changed, what applies live, what needs a restart.
//! - [`session`]: the per-connection tokio driver around the engine.
//! - [`shutdown`]: the one-shot signal the listeners and sessions wait on.
//! - [`tls`], [`auth`], [`relay`], [`dns`]: TLS setup, AUTH users, relay
//!   policy, reverse DNS (only with a configured resolver).
//! - [`cli`], [`logging`]: the command line and tracing setup.
//! - [`kit`] (feature `plugin-kit`): `wasmtp plugin new|build`, plugin
//!   projects outside the repository.
//! - [`control`]: the local control socket behind `wasmtp reload`.
//! - [`metrics`]: `[metrics]`, the Prometheus endpoint and the gateway's counters.
//! - [`notify`]: systemd readiness notifications (`sd_notify`).
//! - [`kv`]: `[kv]`, the plugins' key-value state (embedded redb or Redis).
//! - [`harness`]: `wasmtp plugin test` (dialogs run offline against a
//!   plugin in the gateway's own code) and `wasmtp plugin inspect`.
#![deny(missing_docs)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod control;
pub mod date;
pub mod delivery;
pub mod dns;
pub mod harness;
pub mod ids;
#[cfg(feature = "plugin-kit")]
pub mod kit;
pub mod kv;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod mime;
pub mod notify;
pub mod plugin;
pub mod protocol;
pub mod relay;
pub mod reload;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod tls;
