//! The WebAssembly plugin host (wasmtime component model).
//!
//! SKELETON: the public surface the driver calls. The plugin-host work fills
//! in the runtime behind it.

use std::sync::Arc;

use serde::Deserialize;

use crate::context::{Param, SessionContext};
use crate::protocol::Reply;

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

/// `[plugin_host]`: engine-wide settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginHostConfig {}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name used in logs and errors.
    pub name: String,
    /// Path to the component `.wasm`.
    pub path: std::path::PathBuf,
}

/// The loaded, swappable plugin chain.
#[derive(Debug, Default)]
pub struct PluginHost {}

impl PluginHost {
    /// Loads every plugin of the config.
    pub async fn load(
        _host: &PluginHostConfig,
        plugins: &[PluginConfig],
    ) -> anyhow::Result<Arc<Self>> {
        if !plugins.is_empty() {
            anyhow::bail!("plugins are not supported yet");
        }
        Ok(Arc::new(Self {}))
    }

    /// A per-connection view of the current chain.
    pub fn session(self: &Arc<Self>) -> PluginSession {
        PluginSession {}
    }
}

/// The chain as one connection sees it (instances are per connection).
#[derive(Debug)]
pub struct PluginSession {}

impl PluginSession {
    /// Runs the chain for one hook.
    pub async fn run(&mut self, _hook: Hook<'_>, _ctx: &mut SessionContext) -> Verdict {
        Verdict::Declined
    }
}
