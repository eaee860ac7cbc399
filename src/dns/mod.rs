//! DNS through `[dns] resolver` only: reverse DNS of clients (this file)
//! and the typed, cached lookups of the plugins' `dns` interface
//! ([`lookup`]).
//!
//! Every query goes to that one address and nothing else: no
//! `/etc/resolv.conf`, no hosts file, no system resolver. Without a resolver
//! no lookup is made at all. The name is forward-confirmed (its A/AAAA
//! records must contain the client address), as Postfix does before it
//! trusts a client name; otherwise the client is "unknown".
//!
//! The queries are sent through hickory's name-server pool rather than its
//! `Resolver`: the `Resolver` answers some names itself without asking the
//! server (RFC 6761: `localhost.` and the whole `127.in-addr.arpa.` zone
//! become `localhost.`/`127.0.0.1`, `*.invalid.` is NXDOMAIN). For a gateway
//! the configured server is the single source of truth, so a client on
//! loopback gets whatever name that server gives it (and it can be tested).

use std::net::IpAddr;

use hickory_resolver::config::{NameServerConfig, NameServerConfigGroup, ResolverOpts};
use hickory_resolver::name_server::{NameServerPool, TokioConnectionProvider};
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::xfer::{DnsHandle, DnsRequestOptions, FirstAnswer};

use crate::config::DnsConfig;

pub mod lookup;

pub use lookup::{Answer, LookupError, Lookups, Record, RecordKind};

/// The name-server pool for `[dns] resolver` (UDP, then TCP), or `None`
/// when no resolver is configured. hickory's own cache is off: callers
/// cache what they need.
pub(crate) fn pool(config: &DnsConfig) -> Option<NameServerPool<TokioConnectionProvider>> {
    let addr = config.resolver?;
    let servers: NameServerConfigGroup = vec![
        NameServerConfig::new(addr.0, Protocol::Udp),
        NameServerConfig::new(addr.0, Protocol::Tcp),
    ]
    .into();
    let mut opts = ResolverOpts::default();
    opts.timeout = config.timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    Some(NameServerPool::from_config(
        servers,
        opts,
        TokioConnectionProvider::default(),
    ))
}

/// At most this many PTR names are forward-checked (a hostile server may
/// return many).
const MAX_PTR_NAMES: usize = 4;

/// How long "no confirmed name" is remembered (the answers carry no SOA
/// to take a negative TTL from).
const NEGATIVE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest a confirmed name is remembered, whatever its TTLs say.
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Addresses remembered at most (the cache is emptied when full).
const MAX_CACHED: usize = 10_000;

/// A remembered answer: the confirmed name (or none) until a deadline.
type CachedName = (Option<String>, std::time::Instant);

/// Reverse lookups of client addresses (a no-op without a resolver),
/// cached per address for the answers' TTL (the smallest of the PTR and
/// the confirming A/AAAA record, at most an hour; a failed confirmation
/// for a minute; a timeout not at all).
#[derive(Clone)]
pub struct ReverseDns {
    pool: Option<NameServerPool<TokioConnectionProvider>>,
    timeout: std::time::Duration,
    cache: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, CachedName>>>,
}

impl std::fmt::Debug for ReverseDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseDns")
            .field("enabled", &self.pool.is_some())
            .finish()
    }
}

impl ReverseDns {
    /// A resolver for `[dns]`; disabled when no resolver address is configured.
    pub fn new(config: &DnsConfig) -> Self {
        let Some(pool) = pool(config) else {
            return Self::disabled();
        };
        Self {
            pool: Some(pool),
            timeout: config.timeout,
            cache: Default::default(),
        }
    }

    /// A disabled resolver (no lookups).
    pub fn disabled() -> Self {
        Self {
            pool: None,
            timeout: std::time::Duration::ZERO,
            cache: Default::default(),
        }
    }

    /// Whether lookups happen at all.
    pub fn enabled(&self) -> bool {
        self.pool.is_some()
    }

    /// The forward-confirmed name of `ip`, lowercase, without the trailing dot.
    pub async fn lookup(&self, ip: IpAddr) -> Option<String> {
        let pool = self.pool.as_ref()?;
        let now = std::time::Instant::now();
        if let Some((name, until)) = self.cached(ip)
            && until > now
        {
            return name;
        }
        // One query may wait for a UDP then a TCP answer; bound the whole.
        let limit = self.timeout.saturating_mul(4);
        match tokio::time::timeout(limit, Self::confirmed(pool, ip)).await {
            Ok((name, ttl)) => {
                let ttl = match &name {
                    Some(_) => ttl.min(MAX_TTL),
                    None => NEGATIVE_TTL,
                };
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(ip, (name.clone(), now + ttl));
                name
            }
            Err(_) => {
                tracing::debug!(%ip, "reverse lookup timed out");
                None
            }
        }
    }

    fn cached(&self, ip: IpAddr) -> Option<CachedName> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&ip).cloned()
    }

    /// The confirmed name and the smallest TTL of the records that gave it.
    async fn confirmed(
        pool: &NameServerPool<TokioConnectionProvider>,
        ip: IpAddr,
    ) -> (Option<String>, std::time::Duration) {
        let names = Self::query(pool, Name::from(ip), RecordType::PTR).await;
        let names = names.into_iter().filter_map(|(r, ttl)| match r {
            RData::PTR(p) => Some((p.0, ttl)),
            _ => None,
        });
        for (mut name, ptr_ttl) in names.take(MAX_PTR_NAMES) {
            name.set_fqdn(true);
            let want = match ip {
                IpAddr::V4(_) => RecordType::A,
                IpAddr::V6(_) => RecordType::AAAA,
            };
            let addrs = Self::query(pool, name.clone(), want).await;
            let confirmed = addrs.iter().find(|(r, _)| match (r, ip) {
                (RData::A(a), IpAddr::V4(v4)) => a.0 == v4,
                (RData::AAAA(a), IpAddr::V6(v6)) => a.0 == v6,
                _ => false,
            });
            if let Some((_, a_ttl)) = confirmed {
                let text = name.to_utf8();
                let ttl = std::time::Duration::from_secs(u64::from(ptr_ttl.min(*a_ttl)));
                return (Some(text.trim_end_matches('.').to_ascii_lowercase()), ttl);
            }
            tracing::debug!(%ip, %name, "reverse name not forward-confirmed");
        }
        (None, NEGATIVE_TTL)
    }

    /// The answer records of one query with their TTLs (empty on any error
    /// or NXDOMAIN).
    async fn query(
        pool: &NameServerPool<TokioConnectionProvider>,
        name: Name,
        kind: RecordType,
    ) -> Vec<(RData, u32)> {
        let options = DnsRequestOptions::default();
        let query = Query::query(name.clone(), kind);
        match pool.lookup(query, options).first_answer().await {
            Ok(response) => response
                .answers()
                .iter()
                .map(|r| (r.data().clone(), r.ttl()))
                .collect(),
            Err(e) => {
                tracing::debug!(%name, ?kind, error = %e, "DNS query failed");
                Vec::new()
            }
        }
    }
}
