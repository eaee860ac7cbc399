//! The one `bindgen!` of the gateway: host-side bindings of the
//! `wasmtp:plugin` package (`wit/plugin.wit`), world `plugin-with-lifecycle`
//! (the `plugin` world plus the optional `lifecycle` export).
//!
//! Imports `session` and `host` are synchronous host functions that may trap
//! (`trappable`): they only touch state lent to the store, so an async host
//! function would cost a fiber switch for nothing. `dns` and `kv` are
//! generated `async`: a plugin waiting on a DNS server or a key-value
//! backend parks its fiber and holds no tokio worker thread. Exports (the
//! hooks) are called with `call_async`, which runs the guest on a fiber so
//! epoch deadlines can yield to tokio and wall-clock timeouts can fire.
//!
//! Each import interface is linked on its own view of the store (see
//! `super::loader::linker`); the world-level linker function is not used.
//! The `lifecycle` export is optional: the host looks it up per component
//! (`lifecycle::GuestIndices::new`) and calls it only where it exists.

wasmtime::component::bindgen!({
    path: "wit",
    world: "plugin-with-lifecycle",
    imports: {
        "wasmtp:plugin/dns": async | trappable,
        "wasmtp:plugin/kv": async | trappable,
        default: trappable,
    },
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
// `pub`: the code `bindgen!` generates re-exports it with `pub use`.
#[allow(unreachable_pub)]
pub struct ConnectionHandle;

/// Host type behind a `transaction` handle (a token, like [`ConnectionHandle`]).
// `pub`: the code `bindgen!` generates re-exports it with `pub use`.
#[allow(unreachable_pub)]
pub struct TransactionHandle;

// `self::`: under rustdoc the crate `wasmtp` is in scope too.
pub(super) use self::exports::wasmtp::plugin::hooks::{
    Guest as HooksGuest, GuestIndices as HooksIndices,
};
pub(super) use self::exports::wasmtp::plugin::lifecycle::{
    Guest as LifecycleGuest, GuestIndices as LifecycleIndices, TransactionEnd as WitTransactionEnd,
};
pub(super) use self::wasmtp::plugin::types::{
    DeliveryReport as WitDeliveryReport, DeliveryStatus as WitDeliveryStatus, Header as WitHeader,
    HelloKind as WitHelloKind, HooksWanted, LogLevel, Param as WitParam, Recipient as WitRecipient,
    Reply as WitReply, TlsInfo as WitTlsInfo, Verdict as WitVerdict,
};

/// MAIL/RCPT parameters as the WIT `param` records plugins see.
pub(crate) fn wit_params(params: &[crate::context::Param]) -> Vec<WitParam> {
    params
        .iter()
        .map(|p| WitParam {
            key: p.key.clone(),
            value: p.value.clone(),
        })
        .collect()
}
