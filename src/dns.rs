//! Reverse DNS of clients, only when `[dns] resolver` is set.
//!
//! The resolver is pointed at that one address and nothing else: no
//! `/etc/resolv.conf`, no hosts file, no system resolver. The name is
//! forward-confirmed (its A/AAAA records must contain the client address),
//! as Postfix does before it trusts a client name; otherwise the client is
//! "unknown".

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use crate::config::DnsConfig;

/// Reverse lookups of client addresses (a no-op without a resolver).
#[derive(Clone)]
pub struct ReverseDns {
    resolver: Option<TokioResolver>,
}

impl std::fmt::Debug for ReverseDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseDns")
            .field("enabled", &self.resolver.is_some())
            .finish()
    }
}

impl ReverseDns {
    /// A resolver for `[dns]`; disabled when no resolver address is configured.
    pub fn new(config: &DnsConfig) -> Self {
        let Some(addr) = config.resolver else {
            return Self { resolver: None };
        };
        let servers: NameServerConfigGroup = vec![
            NameServerConfig::new(addr.0, Protocol::Udp),
            NameServerConfig::new(addr.0, Protocol::Tcp),
        ]
        .into();
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.ndots = 0;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), servers),
            TokioConnectionProvider::default(),
        )
        .with_options(opts)
        .build();
        Self {
            resolver: Some(resolver),
        }
    }

    /// A disabled resolver (no lookups).
    pub fn disabled() -> Self {
        Self { resolver: None }
    }

    /// Whether lookups happen at all.
    pub fn enabled(&self) -> bool {
        self.resolver.is_some()
    }

    /// The forward-confirmed name of `ip`, without the trailing dot.
    pub async fn lookup(&self, ip: IpAddr) -> Option<String> {
        let resolver = self.resolver.as_ref()?;
        let ptr = match resolver.reverse_lookup(ip).await {
            Ok(ptr) => ptr,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "reverse lookup failed");
                return None;
            }
        };
        for name in ptr.iter() {
            let mut fqdn = name.0.clone();
            fqdn.set_fqdn(true);
            match resolver.lookup_ip(fqdn).await {
                Ok(ips) if ips.iter().any(|a| a == ip) => {
                    let text = name.0.to_utf8();
                    return Some(text.trim_end_matches('.').to_ascii_lowercase());
                }
                Ok(_) => tracing::debug!(%ip, name = %name.0, "reverse name not forward-confirmed"),
                Err(e) => tracing::debug!(%ip, name = %name.0, error = %e, "forward lookup failed"),
            }
        }
        None
    }
}
