//! Host side of the `dns` interface, implemented on [`DnsView`]: the
//! plugin's grant, the shared lookup service and the session's budget,
//! borrowed for one call. The functions are async (see `bindings`): while
//! a lookup is in flight the plugin's fiber is parked and no tokio worker
//! is held; the wait counts against the call's wall-clock `timeout_ms`
//! only (the CPU budget is epoch ticks of guest code).
//!
//! Every refusal is a `dns-error` the plugin can handle: `refused` when
//! `dns` is not granted, no resolver is configured or the session's
//! budget is spent.

use wasmtime::component::HasData;

use super::bindings::wasmtp::plugin::dns::{
    self, Answer as WitAnswer, DnsError, MxRecord, RecordData, RecordType,
};
use super::sandbox::PluginInfo;
use super::services::SessionBudget;
use crate::dns::{Answer, LookupError, Lookups, Record, RecordKind};

/// The `dns` interface's view of a store.
pub(crate) struct DnsView<'a> {
    /// The plugin (its grants).
    pub plugin: &'a PluginInfo,
    /// The lookup service, if a resolver is configured.
    pub lookups: Option<&'a Lookups>,
    /// The session's budget.
    pub budget: &'a SessionBudget,
}

/// [`HasData`] marker linking `dns` to [`DnsView`].
pub(crate) struct DnsHost;

impl HasData for DnsHost {
    type Data<'a> = DnsView<'a>;
}

impl DnsView<'_> {
    /// The service, once the grant, the resolver and the budget allow a lookup.
    fn admit(&self) -> Result<&Lookups, DnsError> {
        if !self.plugin.grants.dns {
            return Err(DnsError::Refused(format!(
                "dns is not granted to plugin {:?} (dns = true in its [[plugins]] entry)",
                &*self.plugin.name
            )));
        }
        let Some(lookups) = self.lookups else {
            return Err(DnsError::Refused("no [dns] resolver is configured".into()));
        };
        if !self.budget.take_dns() {
            return Err(DnsError::Refused(
                "the session's DNS query budget ([dns] max_queries_per_session) is spent".into(),
            ));
        }
        Ok(lookups)
    }
}

fn kind(t: RecordType) -> RecordKind {
    match t {
        RecordType::A => RecordKind::A,
        RecordType::Aaaa => RecordKind::Aaaa,
        RecordType::Mx => RecordKind::Mx,
        RecordType::Txt => RecordKind::Txt,
        RecordType::Ptr => RecordKind::Ptr,
        RecordType::Cname => RecordKind::Cname,
        RecordType::Ns => RecordKind::Ns,
    }
}

fn wit(outcome: Result<Answer, LookupError>) -> Result<WitAnswer, DnsError> {
    match outcome {
        Ok(a) => Ok(WitAnswer {
            records: a
                .records
                .into_iter()
                .map(|r| match r {
                    Record::A(ip) => RecordData::A(ip.to_string()),
                    Record::Aaaa(ip) => RecordData::Aaaa(ip.to_string()),
                    Record::Mx {
                        preference,
                        exchange,
                    } => RecordData::Mx(MxRecord {
                        preference,
                        exchange,
                    }),
                    Record::Txt(strings) => RecordData::Txt(strings),
                    Record::Ptr(n) => RecordData::Ptr(n),
                    Record::Cname(n) => RecordData::Cname(n),
                    Record::Ns(n) => RecordData::Ns(n),
                })
                .collect(),
            ttl: a.ttl,
        }),
        Err(LookupError::NxDomain) => Err(DnsError::NxDomain),
        Err(LookupError::NoData) => Err(DnsError::NoData),
        Err(LookupError::ServerFailure(m)) => Err(DnsError::ServerFailure(m)),
        Err(LookupError::Timeout) => Err(DnsError::Timeout),
        Err(LookupError::Invalid(m)) => Err(DnsError::Invalid(m)),
    }
}

impl dns::Host for DnsView<'_> {
    async fn lookup(
        &mut self,
        name: String,
        rtype: RecordType,
    ) -> wasmtime::Result<Result<WitAnswer, DnsError>> {
        let lookups = match self.admit() {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        Ok(wit(lookups.lookup(&name, kind(rtype)).await))
    }

    async fn reverse(&mut self, ip: String) -> wasmtime::Result<Result<WitAnswer, DnsError>> {
        let lookups = match self.admit() {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        Ok(wit(lookups.reverse(&ip).await))
    }
}
