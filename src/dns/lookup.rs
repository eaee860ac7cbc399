//! Typed DNS lookups for plugins (the `dns` WIT interface), through
//! `[dns] resolver` only, with a host-side cache that honours TTLs.
//!
//! - Errors tell NXDOMAIN, no-data (NOERROR without records of the type),
//!   SERVFAIL (and REFUSED, malformed answers) and timeout apart: a DNSBL
//!   needs NXDOMAIN to mean "not listed".
//! - The cache ([`moka`], bounded by `[dns] cache_size` entries) keeps a
//!   positive answer for its smallest TTL and a negative one (NXDOMAIN,
//!   no-data) for the SOA's negative TTL when the server gave one; failures
//!   and timeouts are never cached. TTLs are capped at [`MAX_CACHE_TTL`].
//! - [`Lookups::fixed`] answers from a table instead of a server (the
//!   offline harness `wasmtp plugin test`: a dialog's DNS fixtures).
//! - What an answer can make the host hold is bounded: at most
//!   [`MAX_RECORDS`] records, names of at most 255 octets, TXT records of
//!   at most [`MAX_TXT_BYTES`] octets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_resolver::name_server::{NameServerPool, TokioConnectionProvider};
use hickory_resolver::proto::op::{Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::xfer::{DnsHandle, DnsRequestOptions, FirstAnswer};
use hickory_resolver::proto::{ProtoError, ProtoErrorKind};

use crate::config::DnsConfig;

/// Most records kept from one answer (the rest are dropped).
pub const MAX_RECORDS: usize = 64;
/// Most octets of one TXT record (its strings together) kept.
pub const MAX_TXT_BYTES: usize = 4096;
/// Longest a cached answer is kept, whatever its TTL.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The record types a plugin may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Pointer (reverse).
    Ptr,
    /// Canonical name.
    Cname,
    /// Name server.
    Ns,
}

impl RecordKind {
    fn wire(self) -> RecordType {
        match self {
            Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
            Self::Mx => RecordType::MX,
            Self::Txt => RecordType::TXT,
            Self::Ptr => RecordType::PTR,
            Self::Cname => RecordType::CNAME,
            Self::Ns => RecordType::NS,
        }
    }
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger (name without the trailing dot).
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The exchanger.
        exchange: String,
    },
    /// The character-strings of one TXT record (lossy UTF-8).
    Txt(Vec<String>),
    /// A PTR target.
    Ptr(String),
    /// A canonical name.
    Cname(String),
    /// A name server.
    Ns(String),
}

/// A positive answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Records of the asked type.
    pub records: Vec<Record>,
    /// Smallest TTL of the records, in seconds.
    pub ttl: u32,
}

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN.
    #[error("NXDOMAIN")]
    NxDomain,
    /// NOERROR without records of the type.
    #[error("no data")]
    NoData,
    /// SERVFAIL, REFUSED or a malformed answer.
    #[error("server failure: {0}")]
    ServerFailure(String),
    /// No answer within `[dns] timeout`.
    #[error("timeout")]
    Timeout,
    /// Not a valid name (or address, for reverse lookups).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// What one lookup gives.
pub type Outcome = Result<Answer, LookupError>;

/// A cached outcome and how long it lives.
#[derive(Clone)]
struct Cached {
    outcome: Outcome,
    ttl: Duration,
}

struct TtlExpiry;

impl moka::Expiry<(String, RecordKind), Cached> for TtlExpiry {
    fn expire_after_create(
        &self,
        _key: &(String, RecordKind),
        value: &Cached,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Where answers come from.
enum Source {
    /// `[dns] resolver`.
    Server(NameServerPool<TokioConnectionProvider>),
    /// A fixed table by (name, type), names lowercase without the trailing
    /// dot: a name absent from it is NXDOMAIN, a name present with other
    /// types only is no-data.
    Fixed(std::collections::HashMap<(String, RecordKind), Outcome>),
}

/// The lookup service shared by every plugin instance.
pub struct Lookups {
    source: Source,
    timeout: Duration,
    cache: moka::sync::Cache<(String, RecordKind), Cached>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl Lookups {
    /// The service for `[dns]`; `None` without a resolver.
    pub fn new(config: &DnsConfig) -> Option<Self> {
        let pool = super::pool(config)?;
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_size)
            .expire_after(TtlExpiry)
            .build();
        Some(Self {
            source: Source::Server(pool),
            timeout: config.timeout,
            cache,
        })
    }

    /// A service answering from `answers` only (no server, no cache): each
    /// (name, type) gets its outcome; a name absent from the table is
    /// NXDOMAIN, a name present with other types only is no-data.
    pub fn fixed(answers: impl IntoIterator<Item = ((String, RecordKind), Outcome)>) -> Self {
        let table = answers
            .into_iter()
            .map(|((name, kind), outcome)| {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                ((name, kind), outcome)
            })
            .collect();
        Self {
            source: Source::Fixed(table),
            timeout: Duration::from_secs(1),
            cache: moka::sync::Cache::builder()
                .max_capacity(0)
                .expire_after(TtlExpiry)
                .build(),
        }
    }

    /// Records of `kind` for `name` (absolute; a trailing dot is optional).
    pub async fn lookup(&self, name: &str, kind: RecordKind) -> Outcome {
        let name = parse_name(name)?;
        self.cached(name, kind).await
    }

    /// The PTR names of `ip`.
    pub async fn reverse(&self, ip: &str) -> Outcome {
        let ip = IpAddr::from_str(ip.trim())
            .map_err(|_| LookupError::Invalid(format!("{ip:?} is not an IP address")))?;
        self.cached(Name::from(ip), RecordKind::Ptr).await
    }

    async fn cached(&self, name: Name, kind: RecordKind) -> Outcome {
        let key = (name.to_ascii().to_ascii_lowercase(), kind);
        if let Some(hit) = self.cache.get(&key) {
            return hit.outcome;
        }
        // One query may wait for a UDP then a TCP answer; bound the whole.
        let limit = self.timeout.saturating_mul(2);
        let (outcome, ttl) = match tokio::time::timeout(limit, self.query(name, kind)).await {
            Ok(r) => r,
            Err(_) => (Err(LookupError::Timeout), None),
        };
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            let ttl = ttl.min(MAX_CACHE_TTL);
            self.cache.insert(
                key,
                Cached {
                    outcome: outcome.clone(),
                    ttl,
                },
            );
        }
        outcome
    }

    /// One query: the outcome and how long it may be cached.
    async fn query(&self, mut name: Name, kind: RecordKind) -> (Outcome, Option<Duration>) {
        name.set_fqdn(true);
        let pool = match &self.source {
            Source::Server(pool) => pool,
            Source::Fixed(table) => return (fixed_answer(table, &name, kind), None),
        };
        let query = Query::query(name.clone(), kind.wire());
        let response = pool
            .lookup(query, DnsRequestOptions::default())
            .first_answer()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return failure(&e),
        };
        if response.response_code() != ResponseCode::NoError {
            let code = response.response_code();
            return (Err(LookupError::ServerFailure(code.to_string())), None);
        }
        let mut ttl = u32::MAX;
        let mut records = Vec::new();
        for r in response.answers() {
            if r.record_type() != kind.wire() {
                continue;
            }
            if records.len() == MAX_RECORDS {
                break;
            }
            if let Some(rec) = convert(r.data()) {
                ttl = ttl.min(r.ttl());
                records.push(rec);
            }
        }
        if records.is_empty() {
            // NOERROR with only other types (e.g. a CNAME chain ending nowhere).
            let neg = response
                .negative_ttl()
                .map(|s| Duration::from_secs(s.into()));
            return (Err(LookupError::NoData), neg);
        }
        let answer = Answer { records, ttl };
        (Ok(answer), Some(Duration::from_secs(ttl.into())))
    }
}

/// The answer of a fixed table for (`name`, `kind`).
fn fixed_answer(
    table: &std::collections::HashMap<(String, RecordKind), Outcome>,
    name: &Name,
    kind: RecordKind,
) -> Outcome {
    let name = name_text(name).to_ascii_lowercase();
    if let Some(outcome) = table.get(&(name.clone(), kind)) {
        return outcome.clone();
    }
    if table.keys().any(|(n, _)| *n == name) {
        return Err(LookupError::NoData);
    }
    Err(LookupError::NxDomain)
}

/// The outcome of a failed exchange, and its negative TTL when cacheable.
fn failure(e: &ProtoError) -> (Outcome, Option<Duration>) {
    match e.kind() {
        ProtoErrorKind::NoRecordsFound {
            response_code,
            negative_ttl,
            ..
        } => {
            let ttl = negative_ttl.map(|s| Duration::from_secs(s.into()));
            match *response_code {
                ResponseCode::NXDomain => (Err(LookupError::NxDomain), ttl),
                ResponseCode::NoError => (Err(LookupError::NoData), ttl),
                code => (Err(LookupError::ServerFailure(code.to_string())), None),
            }
        }
        ProtoErrorKind::Timeout => (Err(LookupError::Timeout), None),
        _ => (Err(LookupError::ServerFailure(e.to_string())), None),
    }
}

fn parse_name(name: &str) -> Result<Name, LookupError> {
    let invalid = || LookupError::Invalid(format!("{name:?} is not a valid domain name"));
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid());
    }
    let mut n = Name::from_str(trimmed).map_err(|_| invalid())?;
    n.set_fqdn(true);
    Ok(n)
}

fn name_text(n: &Name) -> String {
    let text = n.to_utf8();
    let text = text.trim_end_matches('.');
    // Names are at most 255 octets on the wire; keep the text bounded too.
    text.chars().take(255).collect()
}

fn convert(data: &RData) -> Option<Record> {
    Some(match data {
        RData::A(a) => Record::A(a.0),
        RData::AAAA(a) => Record::Aaaa(a.0),
        RData::MX(mx) => Record::Mx {
            preference: mx.preference(),
            exchange: name_text(mx.exchange()),
        },
        RData::TXT(txt) => {
            let mut left = MAX_TXT_BYTES;
            let mut strings = Vec::new();
            for s in txt.iter() {
                if left == 0 {
                    break;
                }
                let take = s.len().min(left);
                left -= take;
                strings.push(String::from_utf8_lossy(&s[..take]).into_owned());
            }
            Record::Txt(strings)
        }
        RData::PTR(p) => Record::Ptr(name_text(&p.0)),
        RData::CNAME(c) => Record::Cname(name_text(&c.0)),
        RData::NS(ns) => Record::Ns(name_text(&ns.0)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_name("example.org").is_ok());
        assert!(parse_name("example.org.").is_ok());
        assert!(parse_name("2.0.0.127.zen.example").is_ok());
        for bad in ["", ".", "a b.example", "x\0y", &"a".repeat(300)] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn negative_outcomes() {
        let nx = ProtoError::from(ProtoErrorKind::NoRecordsFound {
            query: Box::new(Query::default()),
            soa: None,
            ns: None,
            negative_ttl: Some(30),
            response_code: ResponseCode::NXDomain,
            trusted: true,
            authorities: None,
        });
        assert_eq!(
            failure(&nx),
            (Err(LookupError::NxDomain), Some(Duration::from_secs(30)))
        );
        let t = ProtoError::from(ProtoErrorKind::Timeout);
        assert_eq!(failure(&t), (Err(LookupError::Timeout), None));
    }
}
