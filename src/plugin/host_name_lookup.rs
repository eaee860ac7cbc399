//! `wasi:sockets/ip-name-lookup`, replaced. wasmtime-wasi's own
//! implementation either refuses everything (IP literals included) or asks
//! the operating system's resolver; neither fits a gateway whose plugins
//! may only use `[dns] resolver`. This one, linked over wasmtime-wasi's:
//!
//! - an IP literal (`192.0.2.1`, `::1`, `[::1]`) resolves to itself, with
//!   no lookup and no grant (what `getaddrinfo` in a Python or C plugin
//!   asks before every `connect`; the connect itself is still checked
//!   against the plugin's `connect` grant);
//! - a host name is looked up (A, then AAAA) through the gateway's resolver
//!   and cache when the plugin has `dns = true`, counting one query of the
//!   session's budget; without the grant it fails with
//!   `permanent-resolver-failure`, as wasmtime-wasi's refusal does.
//!
//! Errors map as `getaddrinfo` expects: NXDOMAIN or no address records →
//! `name-unresolvable`, SERVFAIL or timeout → `temporary-resolver-failure`.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network, Pollable};

use super::sandbox::StoreData;
use crate::dns::{LookupError, Lookups, Record, RecordKind};

/// The interface name as wasmtime-wasi 48 defines it (guests importing any
/// 0.2.x version are linked to it by semver).
const INTERFACE: &str = "wasi:sockets/ip-name-lookup@0.2.12";

type Addresses = Result<Vec<IpAddr>, ErrorCode>;

/// One `resolve-addresses` call: pending until its lookups finish, then
/// the addresses handed out one by one.
pub(crate) enum ResolveAddressStream {
    /// Lookups in flight.
    Pending(Pin<Box<dyn Future<Output = Addresses> + Send>>),
    /// The outcome.
    Ready(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
}

impl Pollable for ResolveAddressStream {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            if let Self::Pending(lookups) = self {
                let outcome = lookups.await;
                *self = Self::Ready(outcome.map(Vec::into_iter));
            }
        })
    }
}

/// Links the replacement over wasmtime-wasi's `ip-name-lookup`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut inst = linker.instance(INTERFACE)?;
    inst.resource(
        "resolve-address-stream",
        ResourceType::host::<ResolveAddressStream>(),
        |mut store, rep| {
            store
                .data_mut()
                .table
                .delete(Resource::<ResolveAddressStream>::new_own(rep))?;
            Ok(())
        },
    )?;
    inst.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, StoreData>,
         (network, name): (Resource<Network>, String)| {
            let data = store.data_mut();
            // The network resource is the capability; check it is one.
            data.table.get(&network)?;
            let stream = match resolve(data, &name) {
                Ok(stream) => stream,
                Err(code) => return Ok((Err(code),)),
            };
            Ok((Ok(data.table.push(stream)?),))
        },
    )?;
    inst.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store: StoreContextMut<'_, StoreData>, (this,): (Resource<ResolveAddressStream>,)| {
            let stream = store.data_mut().table.get_mut(&this)?;
            let next: Result<Option<IpAddress>, ErrorCode> = match stream {
                ResolveAddressStream::Pending(_) => Err(ErrorCode::WouldBlock),
                ResolveAddressStream::Ready(Ok(addrs)) => Ok(addrs.next().map(IpAddress::from)),
                ResolveAddressStream::Ready(Err(code)) => Err(*code),
            };
            Ok((next,))
        },
    )?;
    inst.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store: StoreContextMut<'_, StoreData>, (this,): (Resource<ResolveAddressStream>,)| {
            let pollable: Resource<DynPollable> =
                wasmtime_wasi::p2::subscribe(&mut store.data_mut().table, this)?;
            Ok((pollable,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The stream for `name`: an IP literal at once, a host name through the
/// gateway's resolver when granted.
fn resolve(data: &StoreData, name: &str) -> Result<ResolveAddressStream, ErrorCode> {
    if let Some(ip) = literal(name) {
        return Ok(ResolveAddressStream::Ready(Ok(vec![ip].into_iter())));
    }
    let plugin = &data.plugin.name;
    if !data.plugin.grants.dns {
        tracing::info!(plugin = %plugin, name, "host name lookup refused: dns is not granted (dns = true in its [[plugins]] entry)");
        return Err(ErrorCode::PermanentResolverFailure);
    }
    let Some(lookups) = data.services.dns.clone() else {
        tracing::info!(plugin = %plugin, name, "host name lookup refused: no [dns] resolver is configured");
        return Err(ErrorCode::PermanentResolverFailure);
    };
    if !data.budget.take_dns() {
        return Err(ErrorCode::TemporaryResolverFailure);
    }
    let name = name.to_string();
    Ok(ResolveAddressStream::Pending(Box::pin(addresses(
        lookups, name,
    ))))
}

/// `name` as an address, brackets allowed around IPv6; IPv4-mapped IPv6
/// addresses come out as IPv4 (the WIT promises none are returned).
fn literal(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    IpAddr::from_str(bare).ok().map(|ip| ip.to_canonical())
}

/// The A then AAAA addresses of `name`.
async fn addresses(lookups: Arc<Lookups>, name: String) -> Addresses {
    let mut found = Vec::new();
    let mut first_error = None;
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        match lookups.lookup(&name, kind).await {
            Ok(answer) => found.extend(answer.records.iter().filter_map(|r| match r {
                Record::A(ip) => Some(IpAddr::V4(*ip)),
                Record::Aaaa(ip) => Some(IpAddr::V6(*ip).to_canonical()),
                _ => None,
            })),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if !found.is_empty() {
        return Ok(found);
    }
    Err(match first_error {
        Some(LookupError::Invalid(_)) => ErrorCode::InvalidArgument,
        Some(LookupError::Timeout | LookupError::ServerFailure(_)) => {
            ErrorCode::TemporaryResolverFailure
        }
        Some(LookupError::NxDomain | LookupError::NoData) | None => ErrorCode::NameUnresolvable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_to_themselves() {
        assert_eq!(literal("127.0.0.1"), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(literal("::1"), Some("::1".parse().unwrap()));
        assert_eq!(literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(
            literal("::ffff:192.0.2.1"),
            Some(IpAddr::from([192, 0, 2, 1]))
        );
        assert_eq!(literal("localhost"), None);
        assert_eq!(literal("[localhost]"), None);
        assert_eq!(literal("1.2.3"), None);
    }
}
