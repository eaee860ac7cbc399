//! SPF (RFC 7208) through `viaspf`, with the host's `dns` interface as the
//! resolver, and the `Received-SPF` field (RFC 7208 section 9.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use viaspf::lookup::{Lookup, LookupError, LookupResult, Name};
use viaspf::{Config as SpfConfig, DomainName, Sender, SpfResult};
use wasmtp_plugin_sdk::dns::{self, DnsError, RecordData, RecordType};

use crate::results::{clean_text, dot_atom_or_quoted, quote_value};

/// The host's `dns` interface as a `viaspf` resolver. Each call is a
/// blocking host call (the plugin's fiber is parked while it waits), so the
/// futures are always ready at their first poll.
pub struct HostLookup;

fn to_lookup_error(err: DnsError) -> LookupError {
    match err {
        DnsError::NxDomain | DnsError::NoData => LookupError::NoRecords,
        DnsError::Timeout => LookupError::Timeout,
        other => LookupError::Dns(Some(other.reason().into())),
    }
}

/// A no-records answer is an error for viaspf (a void lookup, RFC 7208 4.6.4).
fn non_empty<T>(records: Vec<T>) -> LookupResult<Vec<T>> {
    if records.is_empty() {
        Err(LookupError::NoRecords)
    } else {
        Ok(records)
    }
}

fn host_records(name: &Name, rtype: RecordType) -> LookupResult<Vec<RecordData>> {
    dns::lookup(name.as_str(), rtype)
        .map(|answer| answer.records)
        .map_err(to_lookup_error)
}

#[async_trait::async_trait]
impl Lookup for HostLookup {
    async fn lookup_a<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Ipv4Addr>> {
        let records = host_records(name, RecordType::A)?;
        non_empty(
            records
                .iter()
                .filter_map(|r| match r {
                    RecordData::A(ip) => ip.parse().ok(),
                    _ => None,
                })
                .collect(),
        )
    }

    async fn lookup_aaaa<'lookup, 'a>(
        &'lookup self,
        name: &'a Name,
    ) -> LookupResult<Vec<Ipv6Addr>> {
        let records = host_records(name, RecordType::Aaaa)?;
        non_empty(
            records
                .iter()
                .filter_map(|r| match r {
                    RecordData::Aaaa(ip) => ip.parse().ok(),
                    _ => None,
                })
                .collect(),
        )
    }

    async fn lookup_mx<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Name>> {
        let mut records: Vec<_> = host_records(name, RecordType::Mx)?
            .into_iter()
            .filter_map(|r| match r {
                RecordData::Mx(mx) => Some(mx),
                _ => None,
            })
            .collect();
        records.sort_by_key(|mx| mx.preference);
        non_empty(
            records
                .iter()
                .filter_map(|mx| Name::new(&mx.exchange).ok())
                .collect(),
        )
    }

    async fn lookup_txt<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<String>> {
        let records = host_records(name, RecordType::Txt)?;
        non_empty(
            records
                .into_iter()
                .filter_map(|r| match r {
                    RecordData::Txt(parts) => Some(parts.concat()),
                    _ => None,
                })
                .collect(),
        )
    }

    async fn lookup_ptr<'lookup>(&'lookup self, ip: IpAddr) -> LookupResult<Vec<Name>> {
        let names = dns::reverse(ip).map_err(to_lookup_error)?;
        non_empty(names.iter().filter_map(|n| Name::new(n).ok()).collect())
    }
}

/// Which identity SPF checked (RFC 7208 2.3 and 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The MAIL FROM address.
    MailFrom,
    /// The HELO name (null sender).
    Helo,
}

/// The outcome of one SPF check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfOutcome {
    /// The RFC 7208 result name (`pass`, `fail`, ..., `permerror`).
    pub result: &'static str,
    /// The identity checked.
    pub identity: Identity,
    /// The domain checked (MAIL FROM domain or HELO name), for DMARC.
    pub domain: String,
    /// The explanation of a `fail` (`exp=` or the default), cleaned.
    pub explanation: Option<String>,
    /// The `Received-SPF` field value.
    pub received_spf: String,
    /// The RFC 8601 resinfo (`spf=pass smtp.mailfrom=...`).
    pub resinfo: String,
}

fn result_name(r: &SpfResult) -> &'static str {
    match r {
        SpfResult::None => "none",
        SpfResult::Neutral => "neutral",
        SpfResult::Pass => "pass",
        SpfResult::Fail(_) => "fail",
        SpfResult::Softfail => "softfail",
        SpfResult::Temperror => "temperror",
        SpfResult::Permerror => "permerror",
    }
}

/// Checks `sender` (or `helo` for the null sender) for `ip`. `receiver` is
/// the gateway's name (the authserv-id), used in comments and `%{r}`.
pub fn check(ip: IpAddr, sender: &str, helo: &str, receiver: &str) -> SpfOutcome {
    let config = SpfConfig::builder().hostname(receiver).build();
    let helo_domain = DomainName::new(helo).ok();
    // RFC 7208 2.4: for the null sender, "postmaster@<helo>" is checked.
    let (identity, spf_sender) = if sender.is_empty() {
        (
            Identity::Helo,
            Sender::from_domain(helo).map_err(|_| "HELO name is not a domain"),
        )
    } else {
        (
            Identity::MailFrom,
            Sender::new(sender).map_err(|_| "MAIL FROM is not a valid address"),
        )
    };
    let (result, explanation, domain) = match spf_sender {
        Ok(s) => {
            let domain = s.domain().to_string();
            let q = pollster::block_on(viaspf::evaluate_sender(
                &HostLookup,
                &config,
                ip,
                &s,
                helo_domain.as_ref(),
            ));
            let exp = match &q.spf_result {
                SpfResult::Fail(e) => Some(clean_text(e.as_ref(), 200)),
                _ => None,
            };
            (result_name(&q.spf_result), exp, domain)
        }
        // RFC 7208 4.3: a malformed domain is "none".
        Err(_) => (
            "none",
            None,
            if sender.is_empty() {
                helo.to_string()
            } else {
                sender.rsplit('@').next().unwrap_or_default().to_string()
            },
        ),
    };
    let checked = match identity {
        Identity::MailFrom => sender.to_string(),
        Identity::Helo => format!("postmaster@{helo}"),
    };
    let comment = match result {
        "pass" => format!("{receiver}: domain of {checked} designates {ip} as permitted sender"),
        "fail" => {
            format!("{receiver}: domain of {checked} does not designate {ip} as permitted sender")
        }
        "softfail" => format!(
            "{receiver}: transitioning domain of {checked} does not designate {ip} as permitted sender"
        ),
        "neutral" => {
            format!("{receiver}: {ip} is neither permitted nor denied by domain of {checked}")
        }
        "none" => format!("{receiver}: domain of {checked} does not provide an SPF record"),
        "temperror" => {
            format!("{receiver}: temporary error in processing during lookup of {checked}")
        }
        _ => format!("{receiver}: permanent error in processing domain of {checked}"),
    };
    let identity_name = match identity {
        Identity::MailFrom => "mailfrom",
        Identity::Helo => "helo",
    };
    let received_spf = format!(
        "{result} ({}) client-ip={ip}; envelope-from={}; helo={}; receiver={}; identity={identity_name};",
        clean_text(&comment, 300).replace(['(', ')'], ""),
        dot_atom_or_quoted(sender),
        dot_atom_or_quoted(helo),
        dot_atom_or_quoted(receiver),
    );
    let resinfo = match identity {
        Identity::MailFrom => format!("spf={result} smtp.mailfrom={}", quote_value(sender)),
        Identity::Helo => format!("spf={result} smtp.helo={}", quote_value(helo)),
    };
    SpfOutcome {
        result,
        identity,
        domain: domain.to_ascii_lowercase(),
        explanation,
        received_spf,
        resinfo,
    }
}
