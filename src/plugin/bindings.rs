//! The one `bindgen!` of the gateway: host-side bindings of the
//! `wasmtp:plugin` world (`wit/plugin.wit`).
//!
//! Imports (`session`, `host`) are synchronous host functions that may trap
//! (`trappable`): they only touch the session state lent to the store, so an
//! async host function would cost a fiber switch for nothing. Exports (the
//! hooks) are called with `call_async`, which runs the guest on a fiber so
//! epoch deadlines can yield to tokio and wall-clock timeouts can fire.

wasmtime::component::bindgen!({
    path: "wit",
    world: "plugin",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasmtp:plugin/session.connection": ConnectionHandle,
        "wasmtp:plugin/session.transaction": TransactionHandle,
    },
});

/// Host type behind a `connection` handle.
///
/// The handle is a token: the state is the `SessionContext` lent to the
/// store for the duration of one hook call. The component model's borrow
/// rules guarantee the guest cannot keep the handle beyond that call.
pub struct ConnectionHandle;

/// Host type behind a `transaction` handle (a token, like [`ConnectionHandle`]).
pub struct TransactionHandle;

// `self::`: under rustdoc the crate `wasmtp` is in scope too.
pub use self::wasmtp::plugin::types::{
    DeliveryReport as WitDeliveryReport, DeliveryStatus as WitDeliveryStatus, Header as WitHeader,
    HelloKind as WitHelloKind, HooksWanted, LogLevel, Param as WitParam, Recipient as WitRecipient,
    Reply as WitReply, TlsInfo as WitTlsInfo, Verdict as WitVerdict,
};
