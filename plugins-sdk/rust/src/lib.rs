//! Write plugins for the wasmtp SMTP gateway in Rust (the gateway's README,
//! `README.md` at the root of the repository or of the `cargo xtask dist`
//! archive, has the operator's side; `wit/plugin.wit` is the contract).
//!
//! A plugin is a WebAssembly component (target `wasm32-wasip2`) that the
//! gateway calls at protocol events. With this crate you implement the
//! [`Plugin`] trait — every hook has a default that answers
//! [`Verdict::Declined`] — and export it with [`export_plugin!`]. No
//! knowledge of `wit-bindgen` is needed.
//!
//! # Example: refuse recipients outside one domain
//!
//! ```no_run
//! use wasmtp_plugin_sdk::{export_plugin, Config, Connection, Hooks, Param, Plugin, Transaction, Verdict};
//!
//! struct OnlyExample {
//!     domain: String,
//! }
//!
//! impl Plugin for OnlyExample {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         let domain = config.str("domain").unwrap_or("example.org").to_ascii_lowercase();
//!         Ok(Self { domain })
//!     }
//!
//!     fn hooks(&self) -> Hooks {
//!         Hooks::RCPT
//!     }
//!
//!     fn rcpt(&mut self, _c: &Connection, _t: &Transaction, rcpt: &str, _p: &[Param]) -> Verdict {
//!         let domain = rcpt.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
//!         if domain.as_deref() == Some(self.domain.as_str()) {
//!             Verdict::Ok
//!         } else {
//!             Verdict::deny("5.7.1", "relay access denied")
//!         }
//!     }
//! }
//!
//! export_plugin!(OnlyExample);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and point a `[[plugins]]` entry of the gateway config at the
//! `.wasm` file.
//!
//! # Model
//! - An instance of your type is created by [`Plugin::init`] when a
//!   connection reaches the first hook it wants. With the default
//!   `instances = "per-connection"` it lives until that connection closes,
//!   so `&mut self` state is per connection. With `instances = "pooled"` the
//!   gateway gives the instance back at disconnect and the next connection
//!   reuses it without calling `init` again: `&mut self` (and any static)
//!   then carries over from one connection to the next, so reset
//!   per-connection fields in [`Plugin::connect`] (or keep them in notes).
//!   Host-side state (the handles, notes, envelope, message) is always fresh.
//! - [`Plugin::hooks`] says which hooks you implement; the gateway never calls
//!   the others.
//! - The [`Connection`] and [`Transaction`] handles are shared by every plugin
//!   of the chain: an edit is visible to the next plugin at once. Notes
//!   ([`Connection::set_note`], [`Transaction::set_note`]) pass strings
//!   between plugins and hooks.
//! - A panic traps the instance: the gateway discards it and answers with the
//!   plugin's failure policy (by default `451 4.3.0`).
//!
//! # Host services
//! - [`dns`]: lookups through the gateway's resolver (granted with
//!   `dns = true`), with errors that tell NXDOMAIN, no-data, SERVFAIL and
//!   timeout apart, and a DNSBL helper ([`dns::dnsbl`]).
//! - [`kv`]: buckets of state shared by every instance and connection
//!   (granted with `kv = ["bucket", ...]`): get, set with TTL, delete,
//!   atomic increment, compare-and-set ([`kv::Bucket`]).
//! - [`mime`]: the message's MIME structure parsed once by the gateway
//!   (part tree, decoded file names, decoded text and content on request);
//!   no grant needed.
//! - Outgoing TCP (`std::net::TcpStream`) to the addresses granted with
//!   `connect = ["127.0.0.1:783"]`.
//!
//! A call the operator did not grant returns an error the plugin handles;
//! it never traps.
#![deny(missing_docs)]

use std::any::Any;
use std::cell::RefCell;

pub use wit_bindgen;

/// The bindings generated from the `wasmtp:plugin` WIT package.
///
/// Everything a plugin needs is re-exported at the crate root; this module is
/// public for the rare plugin that wants the raw generated items.
#[allow(missing_docs)]
pub mod bindings {
    #[cfg(not(feature = "lifecycle"))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__wasmtp_export",
        default_bindings_module: "::wasmtp_plugin_sdk::bindings",
        generate_all,
    });
    #[cfg(feature = "lifecycle")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin-with-lifecycle",
        pub_export_macro: true,
        export_macro_name: "__wasmtp_export",
        default_bindings_module: "::wasmtp_plugin_sdk::bindings",
        generate_all,
    });
}

/// Why a transaction ended (see `Plugin::transaction_ended`; feature `lifecycle`).
#[cfg(feature = "lifecycle")]
pub use bindings::exports::wasmtp::plugin::lifecycle::TransactionEnd;
pub use bindings::wasmtp::plugin::host::{config as raw_config, config_get};
pub use bindings::wasmtp::plugin::session::{Connection, Transaction};
pub use bindings::wasmtp::plugin::types::{
    DeliveryReport, DeliveryStatus, Header, HelloKind, HooksWanted as Hooks, LogLevel, Param,
    Recipient, Reply, TlsInfo, Verdict,
};

mod config;
pub mod dns;
pub mod kv;
mod log;
pub mod mime;
mod verdict;

pub use config::Config;
pub use log::{debug, error, info, log, warn};

/// A wasmtp plugin. Implement the hooks you named in [`Plugin::hooks`];
/// every other hook keeps its default, which declines.
///
/// Verdicts follow qpsmtpd: [`Verdict::Declined`] asks the next plugin,
/// [`Verdict::Ok`] accepts and ends the chain, the `deny*` verdicts refuse
/// (see [`Verdict::deny`] and friends), [`Verdict::Done`] sends the plugin's
/// own reply.
#[allow(unused_variables)]
pub trait Plugin: Sized + 'static {
    /// Builds the per-connection instance from the plugin's `config` table.
    /// An error refuses the plugin (at gateway start) or the connection.
    fn init(config: &Config) -> Result<Self, String>;

    /// The hooks this plugin implements. Others are never called.
    fn hooks(&self) -> Hooks;

    /// A client connected. A deny answers the greeting and closes.
    fn connect(&mut self, conn: &Connection) -> Verdict {
        Verdict::Declined
    }
    /// HELO with the name the client gave.
    fn helo(&mut self, conn: &Connection, host: &str) -> Verdict {
        Verdict::Declined
    }
    /// EHLO with the name the client gave.
    fn ehlo(&mut self, conn: &Connection, host: &str) -> Verdict {
        Verdict::Declined
    }
    /// MAIL FROM; `sender` is "" for the null sender.
    fn mail(
        &mut self,
        conn: &Connection,
        txn: &Transaction,
        sender: &str,
        params: &[Param],
    ) -> Verdict {
        Verdict::Declined
    }
    /// RCPT TO. When every plugin declines, the gateway's relay policy decides.
    fn rcpt(
        &mut self,
        conn: &Connection,
        txn: &Transaction,
        rcpt: &str,
        params: &[Param],
    ) -> Verdict {
        Verdict::Declined
    }
    /// DATA (or the first BDAT), before the message is read.
    fn data(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        Verdict::Declined
    }
    /// The header block was read and is editable; the body was not read yet.
    fn data_headers(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        Verdict::Declined
    }
    /// A piece of the body, in order, between data-headers and data-post.
    fn body_chunk(
        &mut self,
        conn: &Connection,
        txn: &Transaction,
        offset: u64,
        chunk: &[u8],
    ) -> Verdict {
        Verdict::Declined
    }
    /// The whole message was read; headers and body are readable and editable.
    fn data_post(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        Verdict::Declined
    }
    /// About to deliver: `Ok`/`Done` means this plugin took delivery over.
    fn queue(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        Verdict::Declined
    }
    /// RSET.
    fn reset(&mut self, conn: &Connection) -> Verdict {
        Verdict::Declined
    }
    /// QUIT.
    fn quit(&mut self, conn: &Connection) -> Verdict {
        Verdict::Declined
    }
    /// The connection is gone; nothing can be replied.
    fn disconnect(&mut self, conn: &Connection) {}
    /// A command the gateway does not know.
    fn unrecognized_command(&mut self, conn: &Connection, verb: &str, args: &str) -> Verdict {
        Verdict::Declined
    }
    /// VRFY.
    fn vrfy(&mut self, conn: &Connection, arg: &str) -> Verdict {
        Verdict::Declined
    }
    /// NOOP.
    fn noop(&mut self, conn: &Connection, arg: &str) -> Verdict {
        Verdict::Declined
    }
    /// HELP.
    fn help(&mut self, conn: &Connection, arg: &str) -> Verdict {
        Verdict::Declined
    }
    /// AUTH with decoded credentials: `Ok` authenticates, a deny fails,
    /// `Declined` leaves it to the next plugin or the gateway's user list.
    fn auth(
        &mut self,
        conn: &Connection,
        mechanism: &str,
        authzid: &str,
        user: &str,
        password: &str,
    ) -> Verdict {
        Verdict::Declined
    }
    /// Another plugin (`plugin`) denied in `hook` with `code`.
    fn deny(&mut self, conn: &Connection, hook: &str, plugin: &str, code: u16) {}
    /// A spooled message was delivered, deferred or bounced for one recipient.
    fn delivery(&mut self, report: &DeliveryReport) {}
    /// The transaction ended, whatever ended it (`why`). Only with the
    /// crate feature `lifecycle`, which builds the component against the
    /// world `plugin-with-lifecycle`: the gateway then calls it at the end
    /// of every transaction of the connection (whether or not the plugin
    /// wanted a hook of it), so a pooled instance can clear what it kept.
    #[cfg(feature = "lifecycle")]
    fn transaction_ended(&mut self, conn: &Connection, why: TransactionEnd) {}
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Glue used by [`export_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// Implements the generated `Guest` trait for any [`Plugin`].
    pub struct Adapter<P>(std::marker::PhantomData<P>);

    fn with<P: Plugin, R>(default: R, f: impl FnOnce(&mut P) -> R) -> R {
        INSTANCE.with(|cell| {
            let mut slot = cell.borrow_mut();
            match slot.as_mut().and_then(|b| b.downcast_mut::<P>()) {
                Some(p) => f(p),
                None => default,
            }
        })
    }

    impl<P: Plugin> crate::bindings::exports::wasmtp::plugin::hooks::Guest for Adapter<P> {
        fn init(config: String) -> Result<Hooks, String> {
            let config = Config::parse(&config)?;
            let plugin = P::init(&config)?;
            let hooks = plugin.hooks();
            INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(plugin)));
            Ok(hooks)
        }
        fn connect(conn: &Connection) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.connect(conn))
        }
        fn helo(conn: &Connection, host: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.helo(conn, &host))
        }
        fn ehlo(conn: &Connection, host: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.ehlo(conn, &host))
        }
        fn mail(
            conn: &Connection,
            txn: &Transaction,
            sender: String,
            params: Vec<Param>,
        ) -> Verdict {
            with(Verdict::Declined, |p: &mut P| {
                p.mail(conn, txn, &sender, &params)
            })
        }
        fn rcpt(conn: &Connection, txn: &Transaction, rcpt: String, params: Vec<Param>) -> Verdict {
            with(Verdict::Declined, |p: &mut P| {
                p.rcpt(conn, txn, &rcpt, &params)
            })
        }
        fn data(conn: &Connection, txn: &Transaction) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.data(conn, txn))
        }
        fn data_headers(conn: &Connection, txn: &Transaction) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.data_headers(conn, txn))
        }
        fn body_chunk(
            conn: &Connection,
            txn: &Transaction,
            offset: u64,
            chunk: Vec<u8>,
        ) -> Verdict {
            with(Verdict::Declined, |p: &mut P| {
                p.body_chunk(conn, txn, offset, &chunk)
            })
        }
        fn data_post(conn: &Connection, txn: &Transaction) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.data_post(conn, txn))
        }
        fn queue(conn: &Connection, txn: &Transaction) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.queue(conn, txn))
        }
        fn reset(conn: &Connection) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.reset(conn))
        }
        fn quit(conn: &Connection) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.quit(conn))
        }
        fn disconnect(conn: &Connection) {
            with((), |p: &mut P| p.disconnect(conn))
        }
        fn unrecognized_command(conn: &Connection, verb: String, args: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| {
                p.unrecognized_command(conn, &verb, &args)
            })
        }
        fn vrfy(conn: &Connection, arg: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.vrfy(conn, &arg))
        }
        fn noop(conn: &Connection, arg: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.noop(conn, &arg))
        }
        fn help(conn: &Connection, arg: String) -> Verdict {
            with(Verdict::Declined, |p: &mut P| p.help(conn, &arg))
        }
        fn auth(
            conn: &Connection,
            mechanism: String,
            authzid: String,
            user: String,
            password: String,
        ) -> Verdict {
            with(Verdict::Declined, |p: &mut P| {
                p.auth(conn, &mechanism, &authzid, &user, &password)
            })
        }
        fn deny(conn: &Connection, hook: String, plugin: String, code: u16) {
            with((), |p: &mut P| p.deny(conn, &hook, &plugin, code))
        }
        fn delivery(report: DeliveryReport) {
            with((), |p: &mut P| p.delivery(&report))
        }
    }

    #[cfg(feature = "lifecycle")]
    impl<P: Plugin> crate::bindings::exports::wasmtp::plugin::lifecycle::Guest for Adapter<P> {
        fn transaction_ended(conn: &Connection, why: TransactionEnd) {
            with((), |p: &mut P| p.transaction_ended(conn, why))
        }
    }
}

/// Exports a [`Plugin`] implementation as the component's `hooks`.
///
/// Use it once per plugin crate: `export_plugin!(MyPlugin);`. With the
/// crate feature `lifecycle` the component also exports the optional
/// `lifecycle` interface and the gateway calls `Plugin::transaction_ended`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        type __WasmtpPluginAdapter = $crate::__private::Adapter<$plugin>;
        $crate::bindings::__wasmtp_export!(__WasmtpPluginAdapter with_types_in $crate::bindings);
    };
}

mod helpers;
