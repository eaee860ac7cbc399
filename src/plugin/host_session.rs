//! Host side of the `session` interface: the `connection` and `transaction`
//! resources read and write the [`SessionContext`] lent to the store for
//! the duration of a hook call — no locks, no copies. They are implemented
//! on [`SessionView`], a borrow of that context made for one host call, so
//! no other host state is reachable from here.
//!
//! Everything a plugin writes is checked here: addresses, ESMTP parameters,
//! header names and values (no CR, LF or NUL can reach the message or the
//! envelope), body replacements, and the total size of notes.

use wasmtime::component::{HasData, Resource};

use super::bindings::wasmtp::plugin::session::{self, HostConnection, HostTransaction};
use super::bindings::wit_params;
use super::bindings::{
    ConnectionHandle, TransactionHandle, WitHeader, WitHelloKind, WitParam, WitRecipient,
    WitTlsInfo,
};
use super::failure::HostRefusal;
use crate::context::{
    HeaderEdit, HelloKind, NoteScope, Param, Recipient, SessionContext, Transaction,
};
use crate::protocol::address;

/// Notes past the session's bound ([`crate::context::PluginLimits`]) trap
/// (`set-note` has no error result in the WIT), and the plugin's failure
/// policy answers; every other bound returns the call's error.
/// Largest range returned by one `read-body` call.
pub(super) const MAX_READ: u32 = 1 << 20;

/// The `session` interface's view of a store: the session state lent to it.
///
/// Between hook calls the store holds an empty placeholder context; the
/// handles a guest could use only exist during a call (they are borrows),
/// so a view always sees the real session of the call in progress.
pub(crate) struct SessionView<'a> {
    /// The lent session state.
    pub ctx: &'a mut SessionContext,
}

/// [`HasData`] marker linking the `session` interface to [`SessionView`].
pub(crate) struct SessionHost;

impl HasData for SessionHost {
    type Data<'a> = SessionView<'a>;
}

impl SessionView<'_> {
    fn txn(&mut self) -> Option<&mut Transaction> {
        self.ctx.txn.as_mut()
    }
}

/// Checks a mailbox a plugin wants in the envelope with the rule the
/// engine applies to clients ([`address::check_mailbox`]: RFC 5321
/// `local@domain`, without brackets); UTF-8 is allowed (SMTPUTF8). The
/// empty string (null sender) is checked by callers.
pub fn check_mailbox(address: &str) -> Result<(), String> {
    if !address.contains('@') {
        return Err(format!("{address:?} is not local@domain"));
    }
    address::check_mailbox(address, true)
        .map_err(|e| format!("{address:?} is not a valid mailbox: {e}"))
}

fn check_params(params: &[WitParam]) -> Result<Vec<Param>, String> {
    params
        .iter()
        .map(|p| {
            let key_ok = !p.key.is_empty()
                && p.key.len() <= 64
                && p.key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = p.value.as_deref().is_none_or(|v| {
                v.len() <= 500 && !v.chars().any(|c| c.is_control() || c == ' ' || c == '=')
            });
            if !key_ok || !value_ok {
                return Err(format!("invalid ESMTP parameter {:?}", p.key));
            }
            Ok(Param {
                key: p.key.to_ascii_uppercase(),
                value: p.value.clone(),
            })
        })
        .collect()
}

impl session::Host for SessionView<'_> {}

impl HostConnection for SessionView<'_> {
    fn id(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<String> {
        Ok(self.ctx.conn.id.clone())
    }
    fn remote_ip(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<String> {
        Ok(self.ctx.conn.remote.ip().to_string())
    }
    fn remote_port(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<u16> {
        Ok(self.ctx.conn.remote.port())
    }
    fn remote_host(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.conn.remote_host.clone())
    }
    fn local_ip(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<String> {
        Ok(self.ctx.conn.local.ip().to_string())
    }
    fn local_port(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<u16> {
        Ok(self.ctx.conn.local.port())
    }
    fn hello(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<WitHelloKind> {
        Ok(match self.ctx.conn.hello {
            HelloKind::None => WitHelloKind::None,
            HelloKind::Helo => WitHelloKind::Helo,
            HelloKind::Ehlo => WitHelloKind::Ehlo,
        })
    }
    fn hello_host(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<String> {
        Ok(self.ctx.conn.hello_host.clone())
    }
    fn tls(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<Option<WitTlsInfo>> {
        Ok(self.ctx.conn.tls.as_ref().map(|t| WitTlsInfo {
            protocol: t.protocol.clone(),
            cipher: t.cipher.clone(),
            sni: t.sni.clone(),
        }))
    }
    fn auth_user(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.conn.auth_user.clone())
    }
    fn relay_client(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<bool> {
        Ok(self.ctx.conn.relay_client)
    }
    fn set_relay_client(
        &mut self,
        _: Resource<ConnectionHandle>,
        allowed: bool,
    ) -> wasmtime::Result<()> {
        self.ctx.conn.relay_client = allowed;
        Ok(())
    }
    fn note(
        &mut self,
        _: Resource<ConnectionHandle>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.conn.notes.get(&key).cloned())
    }
    fn set_note(
        &mut self,
        _: Resource<ConnectionHandle>,
        key: String,
        value: String,
    ) -> wasmtime::Result<()> {
        self.ctx
            .set_note(NoteScope::Connection, key, value)
            .map_err(|e| wasmtime::Error::new(HostRefusal(e.to_string())))
    }
    fn remove_note(&mut self, _: Resource<ConnectionHandle>, key: String) -> wasmtime::Result<()> {
        self.ctx.conn.notes.remove(&key);
        Ok(())
    }
    fn drop(&mut self, _: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        // Handles are only ever lent (borrowed), never owned by a guest.
        Ok(())
    }
}

const NO_TXN: &str = "no transaction is open";
const NO_MESSAGE: &str = "the message is not available before the data-headers hook";

impl HostTransaction for SessionView<'_> {
    fn id(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<String> {
        Ok(self.txn().map(|t| t.id.clone()).unwrap_or_default())
    }
    fn sender(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<String> {
        Ok(self.txn().map(|t| t.sender.clone()).unwrap_or_default())
    }
    fn set_sender(
        &mut self,
        _: Resource<TransactionHandle>,
        address: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let Some(txn) = self.txn() else {
            return Ok(Err(NO_TXN.into()));
        };
        if !address.is_empty()
            && let Err(e) = check_mailbox(&address)
        {
            return Ok(Err(e));
        }
        txn.sender = address;
        Ok(Ok(()))
    }
    fn recipients(
        &mut self,
        _: Resource<TransactionHandle>,
    ) -> wasmtime::Result<Vec<WitRecipient>> {
        Ok(self
            .txn()
            .map(|t| {
                t.recipients
                    .iter()
                    .map(|r| WitRecipient {
                        address: r.address.clone(),
                        params: wit_params(&r.params),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
    fn add_recipient(
        &mut self,
        _: Resource<TransactionHandle>,
        address: String,
        params: Vec<WitParam>,
    ) -> wasmtime::Result<Result<(), String>> {
        let params = match check_mailbox(&address).and_then(|()| check_params(&params)) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .ctx
            .add_recipient(Recipient { address, params })
            .map_err(|e| e.to_string()))
    }
    fn remove_recipient(
        &mut self,
        _: Resource<TransactionHandle>,
        address: String,
    ) -> wasmtime::Result<u32> {
        let Some(txn) = self.txn() else { return Ok(0) };
        let before = txn.recipients.len();
        txn.recipients
            .retain(|r| !r.address.eq_ignore_ascii_case(&address));
        Ok(u32::try_from(before - txn.recipients.len()).unwrap_or(u32::MAX))
    }
    fn header(
        &mut self,
        _: Resource<TransactionHandle>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .txn()
            .and_then(|t| t.message.as_ref())
            .map(|m| m.header_values(&name))
            .unwrap_or_default())
    }
    fn headers(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<Vec<WitHeader>> {
        Ok(self
            .txn()
            .and_then(|t| t.message.as_ref())
            .map(|m| {
                m.fields()
                    .filter(|f| !f.name().is_empty())
                    .map(|f| WitHeader {
                        name: f.name_str().into_owned(),
                        value: f.value(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
    fn raw_headers(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<Vec<Vec<u8>>> {
        Ok(self
            .txn()
            .and_then(|t| t.message.as_ref())
            .map(|m| {
                m.fields()
                    .filter(|f| !f.name().is_empty())
                    .map(|f| f.raw.to_vec())
                    .collect()
            })
            .unwrap_or_default())
    }
    fn add_header(
        &mut self,
        _: Resource<TransactionHandle>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.edit_header(HeaderEdit::Add(&name, &value))
    }
    fn prepend_header(
        &mut self,
        _: Resource<TransactionHandle>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.edit_header(HeaderEdit::Prepend(&name, &value))
    }
    fn remove_header(
        &mut self,
        _: Resource<TransactionHandle>,
        name: String,
    ) -> wasmtime::Result<u32> {
        Ok(self
            .txn()
            .and_then(|t| t.message.as_mut())
            .map(|m| m.remove_header(&name))
            .unwrap_or(0))
    }
    fn replace_header(
        &mut self,
        _: Resource<TransactionHandle>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.edit_header(HeaderEdit::Replace(&name, &value))
    }
    fn body_size(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<u64> {
        Ok(self
            .txn()
            .and_then(|t| t.message.as_ref())
            .map(|m| m.body().len() as u64)
            .unwrap_or(0))
    }
    fn read_body(
        &mut self,
        _: Resource<TransactionHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Vec<u8>> {
        let Some(m) = self.txn().and_then(|t| t.message.as_ref()) else {
            return Ok(Vec::new());
        };
        let body = m.body();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(body.len());
        let len = len.min(MAX_READ) as usize;
        Ok(body[start..(start.saturating_add(len)).min(body.len())].to_vec())
    }
    fn replace_body(
        &mut self,
        _: Resource<TransactionHandle>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let ctx = &mut *self.ctx;
        let limit = ctx.max_message_size;
        let Some(txn) = ctx.txn.as_mut() else {
            return Ok(Err(NO_TXN.into()));
        };
        let Some(m) = txn.message.as_mut() else {
            return Ok(Err(NO_MESSAGE.into()));
        };
        Ok(m.replace_body(body, limit).map_err(|e| e.to_string()))
    }
    fn note(
        &mut self,
        _: Resource<TransactionHandle>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.txn().and_then(|t| t.notes.get(&key).cloned()))
    }
    fn set_note(
        &mut self,
        _: Resource<TransactionHandle>,
        key: String,
        value: String,
    ) -> wasmtime::Result<()> {
        if self.ctx.txn.is_none() {
            return Ok(());
        }
        self.ctx
            .set_note(NoteScope::Transaction, key, value)
            .map_err(|e| wasmtime::Error::new(HostRefusal(e.to_string())))
    }
    fn remove_note(&mut self, _: Resource<TransactionHandle>, key: String) -> wasmtime::Result<()> {
        if let Some(t) = self.txn() {
            t.notes.remove(&key);
        }
        Ok(())
    }
    fn drop(&mut self, _: Resource<TransactionHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl SessionView<'_> {
    /// Applies a header edit within the session's bounds
    /// ([`SessionContext::edit_header`]); a refusal is the call's error.
    fn edit_header(&mut self, edit: HeaderEdit<'_>) -> wasmtime::Result<Result<(), String>> {
        Ok(self.ctx.edit_header(edit).map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_mailbox;

    #[test]
    fn plugins_get_the_clients_mailbox_rule() {
        assert_eq!(check_mailbox("a@b.example"), Ok(()));
        assert_eq!(check_mailbox("üser@b.example"), Ok(()));
        assert_eq!(
            check_mailbox("not an address"),
            Err("\"not an address\" is not local@domain".into())
        );
        // Refused by the RFC 5321 rule, accepted by the old plugin check.
        for bad in ["a..b@b.example", "a(b@b.example", "a@b_c.example", "a@[x]"] {
            assert!(check_mailbox(bad).is_err(), "{bad}");
        }
    }
}
